"""Market stalls' till sales, on the cloud's side (issue 21.6): believed by `protocol/stalls.judge_sale`, recorded
with their stall.

Guarantees:
- A `SaleCommitted` that names a stall is believed only when the stall is one of the sending store's stalls
  (`stalls`, migration 48): a claim on another store's stall, or on no stall, is refused with the reason through
  the bridge's normal path (dead-lettered, the store told `refused`) and the rest of the batch applies.
- A paid sale is never refused for its lines: a line that is not a product of the sale's stall (the box sold by
  the catalogue it held; a product may have moved to or off a stall since) is logged as a warning naming the sale,
  and the sale stands on the stall the box named, so stock, money and the store's figures stay whole.
- Recorded in the bridge's transaction: the believed sale's stall is written on its `till_sales` row, so a stall's
  sales and settlement read exactly what was believed (a re-sent event changes nothing).
"""
from __future__ import annotations

import logging

from protocol.messages import Message, SaleCommitted
from protocol.stalls import judge_sale, lines_off_stall

log = logging.getLogger("freshmesh.stalls")


def _sales(events: list[Message]) -> list[SaleCommitted]:
    return [e for e in events if isinstance(e, SaleCommitted)]


async def admit(cloud, events: list[Message]) -> dict[str, str]:
    sales = _sales(events)
    product_stall = cloud.world.catalogue.stall_of()
    if not any(e.stall for e in sales) and not any(line.sku in product_stall for e in sales for line in e.lines):
        return {}  # no stall in sight (the common case): no query
    named = sorted({e.stall for e in sales if e.stall})
    stalls = {r["stall_id"]: r["store_id"] for r in await cloud.db.fetch(
        "select stall_id, store_id from stalls where stall_id = any($1::text[])", named)} if named else {}
    refused = {}
    for e in sales:
        why = judge_sale(e.store_id, e.sale_id, e.stall, stalls)
        if why:
            refused[e.event_id] = why
        elif off := lines_off_stall(e.store_id, e.sale_id, e.stall, [line.sku for line in e.lines], product_stall):
            log.warning("stall sale applied with lines off its stall: %s", off)
    return refused


async def record(conn, events: list[Message]) -> None:
    """After the sales' rows are written (same transaction): a stall's sale gets its stall."""
    rows = [(e.sale_id, e.store_id, e.stall) for e in _sales(events) if e.stall]
    if rows:
        await conn.executemany("update till_sales set stall_id = $3 where sale_id = $1 and store_id = $2", rows)
