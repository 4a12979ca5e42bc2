"""The store database's side of picking: the `picks` table (what the picker recorded per order line) and reading
orders as the picker sees them. Effects are executed by `edge.store_db` (in its one transaction per outcome);
reads go through its reader connection, which never sees a transaction in progress."""
from __future__ import annotations

import json

from edge.core.outcome import RecordPick
from edge.core.picking import LineToPick, PickOrder
from protocol.messages import PickedLine

SCHEMA = """
create table if not exists picks (order_id text not null, sku text not null, ordered integer not null,
    picked integer not null, short integer not null, substitute_sku text not null, substitute_qty integer not null,
    primary key (order_id, sku));
"""
PICK_LIST_MAX = 200  # orders shown to pick at once (the oldest slots first)
OPEN_STATUSES = ("to_pick", "picking")


async def record_pick(db, e: RecordPick) -> None:
    p = e.line
    await db.execute("insert into picks (order_id, sku, ordered, picked, short, substitute_sku, substitute_qty) "
                     "values (?, ?, ?, ?, ?, ?, ?) on conflict (order_id, sku) do update set picked = excluded.picked, "
                     "short = excluded.short, substitute_sku = excluded.substitute_sku, "
                     "substitute_qty = excluded.substitute_qty",
                     (e.order_id, p.sku, p.ordered, p.picked, p.short, p.substitute_sku, p.substitute_qty))


def _order(row, picks: list) -> PickOrder:
    payload = json.loads(row[2])
    lines = tuple(LineToPick(line["sku"], line["qty"], line.get("unit", "piece")) for line in payload["lines"])
    return PickOrder(order_id=row[0], status=row[1], fulfilment=payload.get("fulfilment", "pickup"),
                     allow_substitutions=bool(payload.get("allow_substitutions", False)),
                     slot_start_ms=payload.get("slot_start_ms") or 0, lines=lines,
                     picks={p[0]: PickedLine(sku=p[0], ordered=p[1], picked=p[2], short=p[3], substitute_sku=p[4],
                                             substitute_qty=p[5]) for p in picks})


async def _fetch(store_db, sql: str, params=()) -> list:
    async with store_db.reader.execute(sql, params) as cur:
        return list(await cur.fetchall())


async def pick_order(store_db, order_id: str) -> PickOrder | None:
    rows = await _fetch(store_db, "select order_id, status, payload from orders where order_id = ?", (order_id,))
    if not rows:
        return None
    picks = await _fetch(store_db, "select sku, ordered, picked, short, substitute_sku, substitute_qty from picks "
                                   "where order_id = ?", (order_id,))
    return _order(rows[0], picks)


async def orders_to_pick(store_db) -> list[PickOrder]:
    """Orders waiting to be picked or being picked, the earliest slot first."""
    rows = await _fetch(store_db, "select order_id, status, payload from orders where status in (?, ?) "
                                  "order by json_extract(payload, '$.slot_start_ms'), order_id limit ?",
                        (*OPEN_STATUSES, PICK_LIST_MAX))
    found = []
    for row in rows:
        picks = await _fetch(store_db, "select sku, ordered, picked, short, substitute_sku, substitute_qty from picks "
                                       "where order_id = ?", (row[0],))
        found.append(_order(row, picks))
    return found
