"""The backends behind the console, for people on call: NATS connected, PostgreSQL reachable (and how fast), the
bridge's backlog in JetStream, and the dead letters kept.

Each is read with a short timeout at each console tick, concurrently; one that does not answer is shown as
such ("down" with why), never waited for and never shown as fine. PostgreSQL's latency comes from this worker's
watch (`cloud.http.db_watch`) when it runs, else from a `select 1` timed here.
"""
from __future__ import annotations

import asyncio
import time

from cloud.http import db_watch
from cloud.messaging import bridge_shards

READ_TIMEOUT_S = 1.0
DEAD_LETTERS_SQL = "select count(*) as n, max(at_ms) as last_ms from dead_letters"


async def _postgres(cloud) -> dict:
    watch = db_watch.current
    if watch is not None:
        return {"ok": watch.up, "latency_ms": watch.latency_ms, "why": watch.why or None}
    started = time.perf_counter()
    await asyncio.wait_for(cloud.db.fetchval("select 1"), READ_TIMEOUT_S)
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1), "why": None}


async def _bridge(cloud) -> dict:
    """The bridge's backlog: its shards' consumers each carry their own partition of the events
    (cloud/messaging/bridge_shards.py), so the backlog is the sum of theirs."""
    js = cloud.nats.jetstream()
    # each shard's current consumer (named by its lease's generation): found by listing
    infos = list((await asyncio.wait_for(bridge_shards.shard_consumer_infos(js), READ_TIMEOUT_S)).values())
    if not infos:
        raise RuntimeError("no consumer of the bridge's shards found")
    return {"ok": True, "pending": sum(i.num_pending or 0 for i in infos),
            "ack_pending": sum(i.num_ack_pending or 0 for i in infos),
            "redelivered": sum(i.num_redelivered or 0 for i in infos)}


async def _dead_letters(cloud) -> dict:
    row = await asyncio.wait_for(cloud.db.fetchrow(DEAD_LETTERS_SQL), READ_TIMEOUT_S)
    return {"ok": True, "count": row["n"], "last_ms": row["last_ms"]}


async def backend_health(cloud) -> dict:
    """{nats: {ok}, postgres: {ok, latency_ms, why}, bridge: {ok, pending, ack_pending}, dead_letters: {ok, count}}"""
    nats_ok = cloud.nats is not None and cloud.nats.is_connected

    async def read(coro) -> dict:
        try:
            return await coro
        except Exception as exc:  # noqa: BLE001 - shown on the page as down, with why
            return {"ok": False, "why": f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__}

    postgres, dead = await asyncio.gather(read(_postgres(cloud)), read(_dead_letters(cloud)))
    bridge = await read(_bridge(cloud)) if nats_ok else {"ok": False, "why": "NATS not connected"}
    if not postgres["ok"]:  # the dead-letter count is PostgreSQL's: its own failure says nothing new
        dead = {"ok": False, "why": "PostgreSQL not answering"}
    return {"nats": {"ok": nats_ok, "why": None if nats_ok else "not connected (reconnecting)"},
            "postgres": postgres, "bridge": bridge, "dead_letters": dead}
