"""The cash-up counts each return's refunds as the till gave them (issue 19 review, defect 4): it used to work a
points sale's split out again (`refund_split`, rounding to the nearest fen on each return alone) while the till
splits over the sale's returns so far (`edge.core.returns.sale_refunds`): 1-3 fen apart on multi-part returns. Now
the return's row keeps `GoodsReturned.refunds` and `edge.shifts_db.taken` sums those. A real store db in a temp file;
the returns are the till's own (`edge.core.returns.take`)."""
from __future__ import annotations

from dataclasses import replace

from edge import shift_ops, shifts_db
from edge.core import returns
from edge.core.cash_up import cash_up, refund_split
from edge.core.cashiers import OnDuty
from edge.core.outcome import InsertReturn, Publish
from edge.store_db import StoreDb
from protocol.ids import make_id
from protocol.points import points_for_fen
from protocol.returns import returned_so_far
from tests.unit.test_returns import NOW, stamp

# 10.01 paid: 3.33 by points, the rest in cash
LINES = (("APPLE", 7, "piece", 1_001),)


async def test_the_cash_up_sums_the_refunds_the_till_gave(tmp_path):
    paid_points = 333
    source = returns.Source("sale", "01PTS", "sold", LINES, 1_001, "cash", "M1",
                            payments=(("points", paid_points), ("cash", 1_001 - paid_points)))
    db = await StoreDb(tmp_path / "store.db").open()
    try:
        given, before, lines_back = [], {}, []
        for n, qty in enumerate((3, 2, 2), start=1):  # three part returns of one sale
            out = returns.take(source, "sale", before, [returns.Asked("APPLE", qty, "piece", "resaleable")], {},
                               make_id(NOW.wall_ms, 500 + n), "1", stamp())
            row = next(e for e in out.effects if isinstance(e, InsertReturn))
            event = next(e.event for e in out.effects if isinstance(e, Publish))
            await db.apply(shift_ops.with_shifts({"1": OnDuty("C1", "SHIFT", "1")}, (row,)))
            given.append([(p.method, p.amount_fen) for p in event.refunds])
            lines_back += [(line.sku, line.quantity.amount, line.amount_fen) for line in event.lines]
            before = returned_so_far(lines_back)
            back_points = sum(points_for_fen(p.amount_fen) for p in event.refunds if p.method == "points")
            source = replace(source, points_back=source.points_back + back_points,
                             refunded=(*source.refunded, *((p.method, p.amount_fen) for p in event.refunds)))
        got = await shifts_db.taken(db.writer, "SHIFT")
        assert got["refunds"] == given  # as the till gave them back, return by return
        cash_back = sum(fen for refund in given for m, fen in refund if m == "cash")
        assert cash_up(10_000, [], got["refunds"], 0, {}).cash_refunds_fen == cash_back
        worked_out = [refund_split("cash", sum(f for _, f in g), source.payments) for g in given]
        assert worked_out != given  # what the cash-up counted before: fen apart from what the till paid
    finally:
        await db.close()
