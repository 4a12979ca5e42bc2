"""The store's record of transfers between stores in SQLite: one row per transfer, kept whole by the
`SaveTransfer` effect in the same transaction as the step's movements and outbox rows (registered with
`edge.store_db`: its schema and executor), and the reads the steps and the list decide on.
"""
from __future__ import annotations

import json
from typing import Any

from edge.core.outcome import SaveTransfer
from edge.core.transfers import Transfer
from protocol import codec
from protocol.errors import ProtocolError
from protocol.transfer_messages import TransferRequested

SCHEMA = """
create table if not exists transfers (transfer_id text primary key, direction text not null,
    other_store text not null, status text not null, asked text not null, reason text not null,
    requested_by text not null, sent text not null, dispatched_by text not null, received text not null,
    received_by text not null, updated_ms integer not null);
create index if not exists transfers_status on transfers (status);
"""
COLUMNS = ("transfer_id, direction, other_store, status, asked, reason, requested_by, sent, dispatched_by, received, "
           "received_by, updated_ms")
LIST_MAX = 200


async def save(db, e: SaveTransfer) -> None:
    t: Transfer = e.transfer
    await db.execute(f"insert or replace into transfers ({COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                     (t.transfer_id, t.direction, t.other_store, t.status, json.dumps(t.asked), t.reason,
                      t.requested_by, json.dumps(t.sent), t.dispatched_by, json.dumps(t.received), t.received_by,
                      t.updated_ms))


EXECUTORS: dict[type, Any] = {SaveTransfer: save}


def _transfer(row) -> Transfer:
    return Transfer(row[0], row[1], row[2], row[3], tuple(tuple(x) for x in json.loads(row[4])), row[5], row[6],
                    tuple(tuple(x) for x in json.loads(row[7])), row[8], tuple(tuple(x) for x in json.loads(row[9])),
                    row[10], row[11])


async def one(db, transfer_id: str) -> Transfer | None:
    async with db.execute(f"select {COLUMNS} from transfers where transfer_id = ?", (transfer_id,)) as cur:  # noqa: S608
        row = await cur.fetchone()
    return _transfer(row) if row is not None else None


async def listed(db, status: str | None = None) -> list[Transfer]:
    """The store's transfers, newest first (`status`: only those)."""
    async with db.execute(f"select {COLUMNS} from transfers where ? is null or status = ? "  # noqa: S608
                          f"order by updated_ms desc, rowid desc limit {LIST_MAX}", (status, status)) as cur:
        return [_transfer(r) for r in await cur.fetchall()]


async def refused_requests(db) -> dict[str, str]:
    """transfer id -> the cloud's reason, for this store's requests the cloud refused (set aside from the outbox):
    the list shows them refused, not waiting for ever."""
    async with db.execute("select frame, reason from refused_events where kind = ?", (TransferRequested.KIND,)) as cur:
        rows = list(await cur.fetchall())
    refused = {}
    for frame, reason in rows:
        try:
            event = codec.decode(frame)
        except ProtocolError:
            continue
        if isinstance(event, TransferRequested):
            refused[event.transfer_id] = reason
    return refused
