"""The till's reading of a scanned code: GS1 codes with AIs (lot, use-by, weight, price) through edge.core.gs1_lines
with the box's own lots and the chain's business day; every other code as before (edge.core.cart.line_for_code).

Called inside the StoreActor's mailbox (`_scan`): the lots it reads are the writer's, as the sale will see them.
"""
from __future__ import annotations

from edge.core.cart import CartLine, line_for_code
from edge.core.gs1_lines import checked_line, product_of
from protocol.gs1 import looks_like_gs1, parse_gs1
from protocol.lots import chain_day


async def scanned_line(actor, code: str) -> CartLine:
    catalogue = actor._catalogue()
    if not looks_like_gs1(code):
        return line_for_code(code, catalogue, actor.layouts)
    day = chain_day(actor.clock.now_ms())
    scan = parse_gs1(code, this_year=int(day[:4]))
    known = await actor.db.lot_levels(product_of(scan, catalogue).sku) if scan.lot else []
    return checked_line(scan, catalogue, known, day)
