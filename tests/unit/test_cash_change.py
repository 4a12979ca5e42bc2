"""The cash-up shows the change given as its own line: a cash sale keeps what was handed over and the change
(edge/core/selling.py's RecordSaleCash, in the sale's transaction; edge/shifts_db.py), so expected cash = float +
tendered - change + top-ups - refunds is shown in full, and the expected total is the same as before."""
from __future__ import annotations

from dataclasses import replace

from edge import shift_ops, shifts_db
from edge.core.cash_up import cash_up
from edge.core.cashiers import OnDuty
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
        duty = {"1": OnDuty("C1", "SH1", "1")}
        await db.apply(shift_ops.with_shifts(duty, tuple(e for e in out.effects
                                                          if isinstance(e, InsertSale | RecordSaleCash))))
        sale = next(e for e in out.effects if isinstance(e, InsertSale))
        got = await shifts_db.taken(db.writer, "SH1")
        up = cash_up(5_000, got["sales"], got["refunds"], 0, {})
        change = 100_000 - sale.total_fen
        assert (up.cash_sales_fen, up.change_fen, up.change_known) == (100_000, change, True)
        assert up.cash.expected_fen == 5_000 + 100_000 - change == 5_000 + sale.total_fen
    finally:
        await db.close()


async def test_a_shift_counts_its_own_sales_whatever_the_wall_clock_said(tmp_path):
    """The box's clock set back after the shift opened: its sales carry times before the opening, and still count;
    another lane's sale and a sale with nobody on duty do not (they are no drawer's of this shift)."""
    db = await StoreDb(tmp_path / "store.db").open()
    try:
        def sold(lane: str, at_ms: int):
            out = pay(cart_of("6901234567892"), tendered=100_000)
            sale_id = f"SALE{len(made)}"
            made.append(sale_id)
            return tuple(replace(e, lane=lane, at_ms=at_ms, sale_id=sale_id) if isinstance(e, InsertSale)
                         else replace(e, sale_id=sale_id) for e in out.effects
                         if isinstance(e, InsertSale | RecordSaleCash))
        made: list[str] = []
        duty = {"1": OnDuty("C1", "SH1", "1"), "2": OnDuty("C2", "SH2", "2")}
        opened = 1_800_000_000_000
        await db.apply(shift_ops.with_shifts(duty, sold("1", opened + 60_000)))
        await db.apply(shift_ops.with_shifts(duty, sold("1", opened - 86_400_000)))  # after the clock went back a day
        await db.apply(shift_ops.with_shifts(duty, sold("2", opened + 60_000)))  # another lane's shift
        await db.apply(shift_ops.with_shifts({}, sold("1", opened + 120_000)))  # nobody on duty at the lane
        got = await shifts_db.taken(db.writer, "SH1")
        assert len(got["sales"]) == 2
        assert len((await shifts_db.taken(db.writer, "SH2"))["sales"]) == 1
    finally:
        await db.close()
