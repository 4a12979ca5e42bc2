"""A store's event seq lives in memory (the StoreActor is its only writer) and is recovered at start: it never
goes back - not when the cloud's acks emptied the outbox before a restart, not after a kill - and a failed
transaction uses none. Real SQLite, no cloud (acks are handed to the actor as the sync task would)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge.box import EdgeBox
from protocol import codec
from protocol.messages import Ack, BusinessAck
from tests.integration.harness import envelope

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S013"


def packed() -> dict:
    return next(p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"])


def config(tmp_path) -> dict:
    return {"store_id": STORE, "data_dir": str(tmp_path / "data"), "world": str(WORLD)}


async def sell(box, lane: str = "1") -> None:
    await box.actor.ask("scan", lane=lane, code=packed()["gtin"])
    await box.actor.ask("pay", lane=lane, method="wallet_sim")


async def outbox_seqs(box) -> list[int]:
    return [seq for seq, _, _, _ in await box.store_db.outbox(0, 10_000)]


async def ack_everything(box, n: int) -> None:
    rows = await box.store_db.outbox(0, 10_000)
    acks = tuple(Ack(event_id=event_id, seq=seq, result="ok", detail="") for seq, event_id, _, _ in rows)
    assert await box.actor.ask("cloud_message", message=BusinessAck(**envelope(STORE, n), acks=acks)) == "acked"


async def test_seq_continues_after_acks_emptied_the_outbox_and_a_restart(tmp_path):
    box = await EdgeBox(config(tmp_path)).start()
    try:
        await box.actor.ask("receive", sku=packed()["sku"], qty=50)
        for _ in range(3):
            await sell(box)
        seqs = await outbox_seqs(box)
        assert seqs == list(range(1, len(seqs) + 1)) and box.actor.last_seq == seqs[-1]  # no gaps, in memory
        await ack_everything(box, 1)
        assert await box.store_db.outbox_depth() == 0
    finally:
        await box.stop()
    box = await EdgeBox(config(tmp_path)).start()  # the outbox is empty: only the seq floor remembers
    try:
        assert box.actor.last_seq == seqs[-1]
        await sell(box)
        assert min(await outbox_seqs(box)) == seqs[-1] + 1
    finally:
        await box.stop()


async def test_seq_recovers_from_the_outbox_after_a_kill(tmp_path):
    """The first box is never stopped (as after kill -9: no close, no last write); its committed events are what
    a second box on the same file sees."""
    first = await EdgeBox(config(tmp_path)).start()
    await first.actor.ask("receive", sku=packed()["sku"], qty=50)
    await sell(first)
    await ack_everything(first, 1)  # some events acked and dropped (the floor) ...
    await sell(first)  # ... and some still waiting in the outbox
    published = first.actor.last_seq
    second = await EdgeBox(config(tmp_path)).start()
    try:
        assert second.actor.last_seq == published
        await sell(second, lane="2")
        assert min(s for s in await outbox_seqs(second) if s > published) == published + 1
    finally:
        await second.stop()
        for task in first._tasks.values():
            task.cancel()
        await first.store_db.close()


async def test_a_failed_sale_uses_no_seq(tmp_path, monkeypatch):
    box = await EdgeBox(config(tmp_path)).start()
    try:
        await box.actor.ask("receive", sku=packed()["sku"], qty=5)
        before = box.actor.last_seq
        real_apply = box.store_db.apply

        async def failing(effects):
            raise sqlite3.OperationalError("disk I/O error")
        monkeypatch.setattr(box.store_db, "apply", failing)
        await box.actor.ask("scan", lane="1", code=packed()["gtin"])
        with pytest.raises(sqlite3.OperationalError):
            await box.actor.ask("pay", lane="1", method="wallet_sim")
        assert box.actor.last_seq == before
        monkeypatch.setattr(box.store_db, "apply", real_apply)
        await box.actor.ask("pay", lane="1", method="wallet_sim")  # the cart is still there: the sale goes through
        frames = [codec.decode(f) for _, _, f, _ in await box.store_db.outbox(0, 100)]
        assert [m.seq for m in frames] == list(range(1, len(frames) + 1))
    finally:
        await box.stop()


async def test_a_box_upgraded_from_the_per_event_counter_continues_above_it(tmp_path):
    box = await EdgeBox(config(tmp_path)).start()
    await box.stop()
    conn = sqlite3.connect(tmp_path / "data" / f"{STORE}.sqlite")  # what older boxes kept
    conn.execute("insert into meta (key, value) values ('event_seq', '777')")
    conn.commit()
    conn.close()
    box = await EdgeBox(config(tmp_path)).start()
    try:
        assert box.actor.last_seq == 777
    finally:
        await box.stop()
