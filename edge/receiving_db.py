"""The store's record of delivery notes received, in SQLite. Registered with `edge.store_db` (its schema and the
`InsertReceiving` executor), so a receiving commits in the same transaction as its stock movements, lot costs and
outbox rows; one row per note (supplier + note number unique: the same note is booked once).
"""
from __future__ import annotations

import json
from typing import Any

from edge.core.outcome import InsertReceiving

SCHEMA = """
create table if not exists receivings (receiving_id text primary key, supplier text not null, note_no text not null,
    received_by text not null, asked text not null, reply text not null, at_ms integer not null,
    unique (supplier, note_no));
create index if not exists receivings_at on receivings (at_ms);
create index if not exists movements_shrinkage_ref on movements (reference) where reason = 'shrinkage';
"""
LIST_MAX = 200


async def insert_receiving(db, e: InsertReceiving) -> None:
    await db.execute("insert into receivings (receiving_id, supplier, note_no, received_by, asked, reply, at_ms) "
                     "values (?, ?, ?, ?, ?, ?, ?)",
                     (e.receiving_id, e.supplier, e.note_no, e.received_by, e.asked, e.reply, e.at_ms))


EXECUTORS: dict[type, Any] = {InsertReceiving: insert_receiving}


async def by_note(db, supplier: str, note_no: str) -> InsertReceiving | None:
    """The note's receiving, if it was received (read on the writer connection: the actor decides on it)."""
    async with db.execute("select receiving_id, supplier, note_no, received_by, asked, reply, at_ms from receivings "
                          "where supplier = ? and note_no = ?", (supplier, note_no)) as cur:
        row = await cur.fetchone()
    return InsertReceiving(*row) if row is not None else None


async def since(db, since_ms: int) -> list[dict]:
    """The notes received at or after `since_ms`, oldest first (at most LIST_MAX), as they were answered."""
    async with db.execute("select reply from receivings where at_ms >= ? order by at_ms, rowid limit ?",
                          (since_ms, LIST_MAX)) as cur:
        return [json.loads(r[0]) for r in await cur.fetchall()]


async def shrinkage_since(db, since_ms: int) -> list[dict]:
    """The write-offs booked at or after `since_ms`, oldest first (at most LIST_MAX): id, sku, qty, reason, on hand
    after, when."""
    async with db.execute("select reference, sku, delta, shrinkage_reason, on_hand_after, at_ms from movements "
                          "where reason = 'shrinkage' and at_ms >= ? order by at_ms, id limit ?",
                          (since_ms, LIST_MAX)) as cur:
        return [{"shrinkage_id": ref, "sku": sku, "qty": -delta, "reason": why, "on_hand": on_hand, "at_ms": at}
                for ref, sku, delta, why, on_hand, at in await cur.fetchall()]


async def shrinkage_done(db, shrinkage_id: str) -> dict | None:
    """A write-off already recorded under this id (its movement's reference), as it was booked: a retry of
    `POST /shrinkage` with the same id changes nothing and answers this."""
    async with db.execute("select event_id, sku, delta, shrinkage_reason, on_hand_after from movements "
                          "where reason = 'shrinkage' and reference = ?", (shrinkage_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    async with db.execute("select lot, delta from movement_lots where event_id = ? order by rowid", (row[0],)) as cur:
        lots = [{"lot": lot, "qty": -delta} for lot, delta in await cur.fetchall()]
    return {"shrinkage_id": shrinkage_id, "sku": row[1], "qty": -row[2], "reason": row[3], "on_hand": row[4],
            "lots": lots, "repeated": True}
