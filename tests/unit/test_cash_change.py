"""The cash-up shows the change given as its own line: a cash sale keeps what was handed over and the change
(edge/core/selling.py's RecordSaleCash, in the sale's transaction; edge/shifts_db.py), so expected cash = float +
tendered - change + top-ups - refunds is shown in full, and the expected total is the same as before."""
from __future__ import annotations

from edge import shifts_db
from edge.core.cash_up import cash_up
from edge.core.outcome import InsertSale
from edge.core.shift_effects import RecordSaleCash
from edge.store_db import StoreDb
from tests.unit.test_edge_core import cart_of, pay


def test_a_cash_sale_keeps_what_was_handed_over_and_the_change():
    out = pay(cart_of("6901234567892"), tendered=100_000)
    sale = next(e for e in out.effects if isinstance(e, InsertSale))
    kept = [e for e in out.effects if isinstance(e, RecordSaleCash)]
    change = out.reply["change_fen"]
    assert kept == [RecordSaleCash(sale.sale_id, 100_000, change)] and change == 100_000 - sale.total_fen > 0
    assert not any(isinstance(e, RecordSaleCash) for e in pay(cart_of("6901234567892"), "wallet_sim").effects)


async def test_the_cash_up_lists_tendered_and_change_and_expects_the_same_cash(tmp_path):
    db = await StoreDb(tmp_path / "store.db").open()
    try:
        out = pay(cart_of("6901234567892"), tendered=100_000)
        await db.apply([e for e in out.effects if isinstance(e, InsertSale | RecordSaleCash)])
        sale = next(e for e in out.effects if isinstance(e, InsertSale))
        got = await shifts_db.taken(db.writer, "1", 0, 10**13, "SH1")
        up = cash_up(5_000, got["sales"], got["refunds"], 0, {})
        change = 100_000 - sale.total_fen
        assert (up.cash_sales_fen, up.change_fen, up.change_known) == (100_000, change, True)
        assert up.cash.expected_fen == 5_000 + 100_000 - change == 5_000 + sale.total_fen
    finally:
        await db.close()
