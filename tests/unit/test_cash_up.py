"""The shift cash-up (edge/core/cash_up.py), the shift report's own checks (protocol/shift_messages.py) and what the
cloud believes of a report (protocol/shift_facts.py): pure, no servers."""
from __future__ import annotations

import pytest

from edge.core.cash_up import cash_up, refund_split, tenders_of
from edge.core.outcome import Refused
from protocol import codec
from protocol.errors import ProtocolError
from protocol.ids import make_id
from protocol.shift_facts import judge_shift_reports
from protocol.shift_messages import DenominationCount, MethodTotal, ShiftReported

CASH_SALE = {"total_fen": 2_350, "payments": [["cash", 2_350, ""]]}  # as the box stores it: change taken off
SV_SALE = {"total_fen": 1_000, "payments": [["stored_value", 1_000, "hold:x"]]}
POINTS_AND_CASH = {"total_fen": 3_000, "payments": [["points", 500, "p1"], ["cash", 2_500, ""]]}
SPLIT = {"total_fen": 5_000, "change_fen": 300, "tenders": [{"method": "cash", "amount_fen": 2_300},
                                                             {"method": "wallet_sim", "amount_fen": 3_000}]}


def test_cash_expected_is_float_plus_sales_less_change_plus_top_ups_less_refunds():
    up = cash_up(20_000, [CASH_SALE, SV_SALE, POINTS_AND_CASH, SPLIT], [("cash", 800), ("stored_value", 1_000)],
                 topups_fen=10_000, counted={10_000: 3, 1_000: 2, 500: 1, 100: 5, 50: 1}, voids=2)
    # 200.00 float + (23.50 + 25.00 + 23.00) cash - 3.00 change + 100.00 top-ups - 8.00 refunded
    assert up.cash.expected_fen == 20_000 + 2_350 + 2_500 + 2_300 - 300 + 10_000 - 800 == 36_050
    assert up.cash.counted_fen == 30_000 + 2_000 + 500 + 500 + 50 == 33_050
    assert up.difference_fen == -3_000
    assert (up.cash_sales_fen, up.change_fen, up.topups_fen, up.cash_refunds_fen) == (7_150, 300, 10_000, 800)
    others = {m.method: (m.expected_fen, m.counted_fen) for m in up.methods[1:]}
    assert others == {"points": (500, 500), "stored_value": (0, 0), "wallet_sim": (3_000, 3_000)}
    assert (up.sales, up.returns, up.voids) == (4, 2, 2)
    assert up.counted[0] == (10_000, 3) and len(up.counted) == 8
    assert up.change_known  # the split sale kept its change; the box's own sales are net of it
    assert not cash_up(0, [CASH_SALE], [], 0, {}).change_known


def test_an_exact_count_has_no_difference_and_a_confirmed_wallet_total_shows_its_own():
    up = cash_up(10_000, [CASH_SALE], [], 0, {10_000: 1, 2_000: 1, 100: 3, 50: 1}, confirmed={"wallet_sim": 1_200})
    assert up.cash.expected_fen == up.cash.counted_fen == 12_350 and up.difference_fen == 0
    (wallet,) = up.methods[1:]
    assert (wallet.expected_fen, wallet.counted_fen, wallet.difference_fen) == (0, 1_200, 1_200)


def test_an_online_orders_return_moves_no_money_at_the_till_but_counts_as_a_return():
    up = cash_up(0, [], [("original_payment", 5_000)], 0, {})
    assert up.cash.expected_fen == 0 and up.returns == 1 and len(up.methods) == 1


def test_a_return_of_a_sale_paid_partly_with_points_gives_points_back_in_proportion():
    assert refund_split("cash", 1_500, POINTS_AND_CASH["payments"]) == [("points", 250), ("cash", 1_250)]
    assert refund_split("cash", 1_000, CASH_SALE["payments"]) == [("cash", 1_000)]
    assert refund_split("original_payment", 900, None) == [("original_payment", 900)]
    up = cash_up(0, [POINTS_AND_CASH], [refund_split("cash", 3_000, POINTS_AND_CASH["payments"])], 0, {})
    assert up.cash.expected_fen == 0 and [(m.method, m.expected_fen) for m in up.methods[1:]] == [("points", 0)]
    assert up.returns == 1


def test_a_bad_count_is_refused_naming_it():
    with pytest.raises(Refused, match="2.00 yuan is not a denomination"):
        cash_up(0, [], [], 0, {200: 1})
    with pytest.raises(Refused, match="count of 1.00 yuan: 0..100000 pieces, not -1"):
        cash_up(0, [], [], 0, {100: -1})


def test_tenders_read_from_the_sale_as_it_was_stored():
    assert tenders_of(SPLIT) == [("cash", 2_300), ("wallet_sim", 3_000)]
    assert tenders_of(CASH_SALE) == [("cash", 2_350)]
    assert tenders_of({"method": "cash", "total_fen": 900}) == [("cash", 900)]
    assert tenders_of({"tenders": [["cash", 100]]}) == [("cash", 100)]


def count(d: int, n: int) -> DenominationCount:
    return DenominationCount(denomination_fen=d, pieces=n)


def method(name: str, expected: int, counted: int) -> MethodTotal:
    return MethodTotal(method=name, expected_fen=expected, counted_fen=counted)


def report(**over) -> ShiftReported:
    body = dict(event_id=make_id(1_700_000_000_000, 1), store_id="S052", seq=1, wall_ms=1_700_000_000_000, mono_ms=0,
                shift_id=make_id(1_700_000_000_000, 2), cashier_id="c1", lane="1", opened_ms=1, closed_ms=2,
                float_fen=10_000, counted=(count(10_000, 1), count(100, 2)),
                methods=(method("cash", 10_300, 10_200), method("stored_value", 500, 500)),
                difference_fen=-100, sales=1, returns=0, voids=0)
    body.update(over)
    return ShiftReported(**body)


def test_a_report_travels_and_refuses_figures_that_do_not_add_up():
    r = report()
    assert codec.decode(codec.encode(r)) == r
    with pytest.raises(ProtocolError, match="difference_fen"):
        report(difference_fen=0)
    with pytest.raises(ProtocolError, match="not the sum of the count"):
        report(methods=(method("cash", 10_300, 10_300),), difference_fen=0)
    with pytest.raises(ProtocolError, match="not a denomination"):
        report(counted=(count(300, 1),))
    with pytest.raises(ProtocolError, match="closed before it opened"):
        report(opened_ms=5, closed_ms=2)


def test_the_cloud_believes_one_report_per_shift_and_only_from_its_own_store():
    r = report()
    assert judge_shift_reports([r], {}, {}) == {}
    assert judge_shift_reports([r], {r.shift_id: ("S052", r.event_id)}, {}) == {}  # a re-send: the same event
    other = report(event_id=make_id(1_700_000_000_000, 9), store_id="S053")
    refused = judge_shift_reports([r, other], {}, {})
    assert list(refused) == [other.event_id] and "reported already (event" in refused[other.event_id]
    taken = judge_shift_reports([r], {}, {r.shift_id: frozenset({"S053"})})
    assert "is a shift of store S053" in taken[r.event_id]


def test_an_old_frame_without_uncounted_still_decodes_as_a_counted_report():
    r = report()
    wire = codec.unpack(codec.encode(r))
    assert wire.pop("uncounted") is False  # a new frame says it
    old = codec.pack(wire)  # a frame from a box before the field: no `uncounted` at all
    assert codec.decode(old) == r and codec.decode(old).uncounted is False


def test_an_uncounted_report_claims_no_count_and_no_difference():
    r = report(uncounted=True, counted=(), methods=(method("cash", 10_300, 10_300), method("points", 5, 5)),
               difference_fen=0)
    assert codec.decode(codec.encode(r)).uncounted is True
    with pytest.raises(ProtocolError, match="uncounted report"):
        report(uncounted=True, counted=(), methods=(method("cash", 10_300, 10_200),), difference_fen=-100)
    with pytest.raises(ProtocolError, match="uncounted report"):
        report(uncounted=True, methods=(method("cash", 10_200, 10_200),), difference_fen=0)  # a count given
