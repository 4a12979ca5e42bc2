"""A store's stock per lot as the cloud keeps it: every `StockMoved` a store sends says how its delta falls on the
SKU's lots (a box older than lots sends none: all of it is unlotted), and the cloud adds each share to
`stock_lots` (store, sku, lot, use-by, on-hand).

Guarantee: each (event, lot) share is added once - it is journaled in `stock_movement_lots` under that key in the
same statement that adds it, so a batch applied twice (a redelivery racing its first application) adds nothing
more. The lots of a store therefore sum to what its movements say, like the box's own. A lot refilled from nothing
on hand takes the incoming use-by (as the box's `edge.lots_db.move`).
"""
from __future__ import annotations

from protocol.lots import UNLOTTED
from protocol.messages import StockMoved

ADD_SHARES = """
with shares as (
    insert into stock_movement_lots (event_id, lot, store_id, sku, delta, use_by, wall_ms)
    select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[])
    on conflict do nothing
    returning store_id, sku, lot, delta, use_by, wall_ms)
insert into stock_lots (store_id, sku, lot, use_by, on_hand, updated_ms)
select store_id, sku, lot, max(use_by), sum(delta), max(wall_ms) from shares group by store_id, sku, lot
on conflict (store_id, sku, lot) do update set on_hand = stock_lots.on_hand + excluded.on_hand,
    use_by = case when stock_lots.use_by = '' or (stock_lots.on_hand <= 0 and excluded.on_hand > 0
                                                  and excluded.use_by <> '') then excluded.use_by
                  else stock_lots.use_by end,
    updated_ms = greatest(stock_lots.updated_ms, excluded.updated_ms)
"""


async def record(conn, moves: list[StockMoved]) -> None:
    """Add the movements' lot shares to their stores' lots (inside the bridge's transaction for the batch)."""
    rows = [(e.event_id, share.lot, e.store_id, e.sku, share.delta, share.use_by, e.wall_ms)
            for e in moves for share in (e.lots or ())]
    rows += [(e.event_id, UNLOTTED, e.store_id, e.sku, e.delta, "", e.wall_ms) for e in moves if not e.lots]
    if rows:
        await conn.execute(ADD_SHARES, *(list(column) for column in zip(*rows, strict=True)))


async def store_lots(db, store_id: str, sku: str | None = None) -> dict[str, list[dict]]:
    """A store's lots with stock (or below zero), per SKU, earliest use-by first."""
    rows = await db.fetch(
        """select sku, lot, use_by, on_hand from stock_lots where store_id = $1 and ($2::text is null or sku = $2)
           and on_hand <> 0 order by sku, use_by = '', use_by, lot""", store_id, sku)
    lots: dict[str, list[dict]] = {}
    for r in rows:
        lots.setdefault(r["sku"], []).append({"lot": r["lot"], "use_by": r["use_by"], "on_hand": r["on_hand"]})
    return lots
