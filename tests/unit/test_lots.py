"""Lots as pure rules: first-expiry-first-out, expiry by the chain's day, movements whose lots add up."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError
from protocol.lots import (
    LotDelta,
    LotLevel,
    back_in_unlotted,
    chain_day,
    check_lots,
    days_left,
    fefo,
    fefo_for_loss,
    is_expired,
)
from protocol.messages import StockMoved

DAY = "2026-11-30"


def test_fefo_takes_the_earliest_use_by_first_skips_expired_and_takes_unlotted_last():
    levels = [LotLevel("L-late", "2026-12-05", 4), LotLevel("L-soon", "2026-12-01", 3),
              LotLevel("L-gone", "2026-11-29", 9), LotLevel("", "", 2), LotLevel("L-none", "", 1)]
    assert fefo(levels, 9, DAY) == (LotDelta(lot="L-soon", delta=-3, use_by="2026-12-01"),
                                    LotDelta(lot="L-late", delta=-4, use_by="2026-12-05"),
                                    LotDelta(lot="L-none", delta=-1), LotDelta(lot="", delta=-1))


def test_fefo_beyond_the_lots_on_record_takes_from_unlotted_stock_which_may_go_negative():
    assert fefo([LotLevel("A", "2026-12-02", 2)], 5, DAY) == (LotDelta(lot="A", delta=-2, use_by="2026-12-02"),
                                                              LotDelta(lot="", delta=-3))
    assert fefo([], 4, DAY) == (LotDelta(lot="", delta=-4),)


def test_a_lot_is_sold_on_its_use_by_day_and_not_the_day_after():
    assert not is_expired("2026-11-30", DAY) and is_expired("2026-11-29", DAY) and not is_expired("", DAY)
    assert days_left("2026-11-30", DAY) == 0 and days_left("2026-12-02", DAY) == 2 and days_left("", DAY) is None


def test_the_chain_day_is_china_time():
    assert chain_day(1_764_518_400_000) == "2025-12-01"  # 2025-11-30T16:00Z is midnight in Shanghai
    assert chain_day(1_764_518_399_999) == "2025-11-30"


@pytest.mark.parametrize("lot, use_by, why", [("bad lot!", "", "a lot is"), ("L1", "2026-13-01", "calendar day"),
                                              ("L1", "30/11/2026", "YYYY-MM-DD"), ("x" * 41, "", "a lot is")])
def test_bad_lots_and_dates_are_refused_naming_what(lot, use_by, why):
    with pytest.raises(ProtocolError, match=why):
        LotDelta(lot=lot, delta=1, use_by=use_by)


def test_a_movement_whose_lots_do_not_add_up_is_refused():
    with pytest.raises(ProtocolError, match="add up"):
        StockMoved(event_id="01JDK3ZQ5W6V3W8N3V5T4Y2X1A", store_id="S1", seq=1, wall_ms=1, mono_ms=1, sku="A",
                   delta=-5, reason="sale", shrinkage_reason="", on_hand_after=0, reference="",
                   lots=(LotDelta(lot="L1", delta=-2),))
    with pytest.raises(ProtocolError, match="twice"):
        check_lots((LotDelta(lot="L1", delta=-2), LotDelta(lot="L1", delta=-3)), -5)
    assert back_in_unlotted(3) == (LotDelta(lot="", delta=-3),)


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 20)), max_size=6), st.integers(1, 200))
def test_fefo_always_takes_exactly_the_quantity_and_never_from_an_expired_lot(lots, qty):
    levels = [LotLevel(f"L{i}", f"2026-11-{min(day, 28) + 1:02d}" if day else "", on_hand)
              for i, (on_hand, day) in enumerate(lots)]
    taken = fefo(levels, qty, "2026-11-15")
    assert sum(t.delta for t in taken) == -qty
    by_lot = {lv.lot: lv for lv in levels}
    for t in taken:
        if t.lot:
            assert not is_expired(by_lot[t.lot].use_by, "2026-11-15") and -t.delta <= by_lot[t.lot].on_hand


def test_a_gs1_lot_outside_the_lot_name_set_gets_one_canonical_name():
    from protocol.lots import check_lot, lot_name

    assert lot_name("") == "" and lot_name("AB-12/3.x_") == "AB-12/3.x_"  # a valid name is itself
    odd = ["L*1", "L+1", "A(B)", "%&'\"!,:;<=>?", "x" * 20 + "*"]
    names = [lot_name(raw) for raw in odd]
    for name in names:
        check_lot(name)  # a valid lot name, at most 40 characters
    assert len(set(names)) == len(odd)  # lots that differ only in the replaced characters stay apart
    assert names[0] == lot_name("L*1") and names[0].startswith("L_1-") and len(names[0]) == 10


def test_a_sale_naming_a_lot_takes_at_most_its_on_hand_and_the_rest_fefo():
    from protocol.lots import after, take

    levels = [LotLevel("A", "2026-01-05", 2), LotLevel("B", "2026-01-02", 1), LotLevel("", "", 0)]
    taken = take(levels, 5, "2026-01-01", "A")
    assert taken == (LotDelta(lot="A", delta=-2, use_by="2026-01-05"), LotDelta(lot="B", delta=-1, use_by="2026-01-02"),
                     LotDelta(lot="", delta=-2))
    assert {lv.lot: lv.on_hand for lv in after(levels, taken)} == {"A": 0, "B": 0, "": -2}
    assert take(levels, 1, "2026-01-01", "UNKNOWN") == (LotDelta(lot="B", delta=-1, use_by="2026-01-02"),)  # none made
    assert take(levels, 1, "2026-01-06", "A") == (LotDelta(lot="", delta=-1),)  # A expired: not sold from it


def test_a_write_off_takes_expired_lots_first_then_first_expiry_then_unlotted():
    levels = [LotLevel("A", "2026-01-05", 3), LotLevel("X", "2025-12-01", 2), LotLevel("N", "", 4),
              LotLevel("E", "2025-12-28", 1), LotLevel("Z", "2026-01-02", 0), LotLevel("", "", 9)]
    assert fefo_for_loss(levels, 12, "2026-01-01") == (
        LotDelta(lot="X", delta=-2, use_by="2025-12-01"), LotDelta(lot="E", delta=-1, use_by="2025-12-28"),
        LotDelta(lot="A", delta=-3, use_by="2026-01-05"), LotDelta(lot="N", delta=-4), LotDelta(lot="", delta=-2))
    with pytest.raises(ValueError):
        fefo_for_loss(levels, 0, "2026-01-01")


def test_goods_of_another_use_by_arriving_into_a_lot_with_stock_get_a_lot_of_their_own():
    from protocol.lots import check_lot, lot_for_arrival
    levels = [LotLevel("L1", "2026-12-05", 3), LotLevel("L2", "2026-12-01", 0), LotLevel("L3", "", 2)]
    assert lot_for_arrival(levels, "L1", "2026-11-28") == "L1_20261128"
    assert lot_for_arrival(levels, "L1", "2026-12-05") == "L1"  # same use-by: the same goods
    assert lot_for_arrival(levels, "L2", "2026-12-09") == "L2"  # emptied: refilled, it takes the new use-by
    assert lot_for_arrival(levels, "L3", "2026-12-09") == "L3"  # no use-by known: it takes the first one
    assert lot_for_arrival(levels, "NEW", "2026-12-09") == "NEW" and lot_for_arrival(levels, "", "2026-12-09") == ""
    long = "X" * 40
    named = lot_for_arrival([LotLevel(long, "2026-12-05", 1)], long, "2026-11-28")
    check_lot(named)
    assert len(named) == 40 and named.endswith("_20261128")
