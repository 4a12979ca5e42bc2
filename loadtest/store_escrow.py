"""Stores that grant the flash sale its units, for `freshmesh load flashsale`: each store receives goods and grants
the cloud online escrow, speaking NATS as its own user exactly as a store box does (its events on its own subjects,
its own inbox), so that the sale can take its units from the stores' escrow and its orders go to those stores."""
from __future__ import annotations

import asyncio
import json
import os
import time

import nats

from loadtest.http import Connection
from protocol import codec, subjects
from protocol.ids import IdFactory
from protocol.messages import EscrowGranted, StockMoved

GRANT_WAIT_S = 30.0


def _envelope(ids: IdFactory, store_id: str, seq: int) -> dict:
    return {"event_id": ids.new(), "store_id": store_id, "seq": seq, "wall_ms": time.time_ns() // 1_000_000,
            "mono_ms": time.monotonic_ns() // 1_000_000}


async def grant(stack, host: str, port: int, stores: list[str], sku: str, units: int) -> dict[str, int]:
    """Each store receives `units` of `sku` and grants them all online; returns the escrow the cloud shows per store."""
    ids = IdFactory(lambda: time.time_ns() // 1_000_000, lambda: int.from_bytes(os.urandom(10), "big"))
    for store_id in stores:
        user, password = stack.store_credentials(store_id)
        nc = await nats.connect(stack.nats_address, user=user, password=password,
                                inbox_prefix=subjects.store_inbox_prefix(store_id))
        try:
            js = nc.jetstream()
            seq = 0  # the load's own new stack: the store has sent nothing before
            events = [StockMoved(**_envelope(ids, store_id, seq + 1), sku=sku, delta=units, reason="receiving",
                                 shrinkage_reason="", on_hand_after=units, reference="load"),
                      EscrowGranted(**_envelope(ids, store_id, seq + 2), sku=sku, qty=units, escrow_after=units)]
            for event in events:
                await js.publish(subjects.store_event(store_id, event.KIND), codec.encode(event),
                                 headers={subjects.MSG_ID_HEADER: event.event_id})
        finally:
            await nc.close()
    deadline = time.monotonic() + GRANT_WAIT_S
    while True:
        shown = {s: await _escrow(host, port, s, sku) for s in stores}
        if all(v >= units for v in shown.values()) or time.monotonic() > deadline:
            return shown
        await asyncio.sleep(0.2)


async def _escrow(host: str, port: int, store_id: str, sku: str) -> int:
    conn = Connection(host, port)
    try:
        _, _, body = await conn.request(f"GET /stores/{store_id}/stock?sku={sku} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    finally:
        conn.close()
    rows = json.loads(body).get("stock", [])
    return next((r["escrow"] for r in rows if r["sku"] == sku), 0)
