"""The money and trust defects a review of the till's money code found (issue 19), each as the attack or fault
that broke it: pure parts (no servers)."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from edge import lane_guard
from edge.core import returns, selling
from edge.core.outcome import InsertReturn, PrintTicket, Publish, Refused
from edge.core.split_tender import Tender
from edge.till.counter_routes import FloatBody
from protocol.digits import is_whole_number
from protocol.errors import ProtocolError
from protocol.ids import make_id
from protocol.messages import Payment, Quantity
from protocol.return_facts import ReturnsKnown, SaleFacts, judge_returns
from protocol.return_messages import GoodsReturned, ReturnLine
from protocol.returns import Back
from protocol.tender_refunds import TenderRefused, by_method, over_paid, split_money
from tests.unit.test_returns import NOW, stamp
from tests.unit.test_till_money import sale_of, split_pay


# 2. a split's stored-value part against a granted hold is captured, even if the box went offline meanwhile
def test_a_split_whose_hold_was_granted_is_not_an_offline_spend_when_the_box_went_offline_before_the_pay():
    hold = selling.Authorisation("hold:01KDVDNA000000000000000H11", "M1", 1_000, granted=True)
    sale = sale_of(split_pay(Tender("stored_value", 1_000), tendered=500, auth=hold, online=False))
    assert sale.payments[0].reference == hold.hold_id
    assert not sale.offline  # names the hold: the cloud captures it (an offline sale would be a Spend besides)


def test_a_split_paid_offline_without_a_hold_still_says_offline():
    sale = sale_of(split_pay(Tender("stored_value", 1_000), tendered=500, online=False))
    assert sale.offline and sale.payments[0].reference != ""


# 7. a float the shift could never close with is refused, naming the bound
def test_a_float_past_100000_yuan_is_refused_naming_the_bound():
    assert FloatBody(amount_fen=10_000_000).amount_fen == 10_000_000
    with pytest.raises(ProtocolError, match="0 to 100000.00 yuan"):
        FloatBody(amount_fen=10_000_000_000)


# 8. unicode digits are not whole numbers (int("²") raised: a 500)
@pytest.mark.parametrize("text", ["²", "①", "١٢", "", "-1", "1.0", " 1"])
def test_what_is_not_ascii_digits_is_not_a_whole_number(text):
    assert not is_whole_number(text)


def test_ascii_digits_are_a_whole_number_within_the_digits_allowed():
    assert is_whole_number("0") and is_whole_number("123456789", 9) and not is_whole_number("1234567890", 9)


# 1. a split sale's return gives each tender back its share, never more than it paid less earlier refunds
SPLIT = (("stored_value", 2_000), ("cash", 3_000))


def test_a_split_sale_returned_whole_gives_each_tender_back_what_it_paid():
    assert split_money(SPLIT, {}, 5_000) == (("stored_value", 2_000), ("cash", 3_000))


def test_partial_returns_share_the_tenders_in_proportion_and_add_up_to_what_was_paid():
    first = split_money(SPLIT, {}, 1_001)
    assert first == (("stored_value", 401), ("cash", 600))  # the rounding fen: the first tender's
    second = split_money(SPLIT, by_method(first), 3_999)
    assert sum(f for _, f in second) == 3_999
    assert by_method(first + second) == {"stored_value": 2_000, "cash": 3_000}  # all back, each by its own tender


def test_more_than_the_tenders_have_left_is_refused_naming_the_amounts():
    with pytest.raises(TenderRefused, match="have 1000 fen left"):
        split_money(SPLIT, {"stored_value": 2_000, "cash": 2_000}, 1_001)


def test_an_earlier_lopsided_refund_never_pushes_a_tender_past_what_it_paid():
    parts = split_money(SPLIT, {"stored_value": 2_000}, 3_000)  # an old return took all of stored value first
    assert parts == (("cash", 3_000),)


def test_the_cloud_refuses_a_claim_past_a_methods_payment():
    assert over_paid(SPLIT, {}, (("stored_value", 5_000),)) == (
        "5000 fen refunded by stored_value, but the sale paid 2000 fen by stored_value and 0 fen went back by it before")
    assert over_paid(SPLIT, {"cash": 1_000}, (("cash", 2_001),)).startswith("2001 fen refunded by cash")
    assert over_paid(SPLIT, {}, (("stored_value", 2_000), ("cash", 3_000))) == ""


SPLIT_SALE = returns.Source("sale", "01SPLIT", "sold", (("APPLE", 5, "piece", 5_000),), 5_000, "stored_value", "M1",
                            payments=SPLIT)


def returned(source: returns.Source, qty: int, before=None):
    out = returns.take(source, "sale", before or {}, [returns.Asked("APPLE", qty, "piece", "resaleable")], {},
                       make_id(NOW.wall_ms, 900 + qty), "1", stamp())
    event = next(e.event for e in out.effects if isinstance(e, Publish))
    return out, event


def test_a_split_sale_returned_whole_refunds_each_tender_its_part_and_opens_the_drawer_for_the_cash():
    out, event = returned(SPLIT_SALE, 5)
    assert [(p.method, p.amount_fen) for p in event.refunds] == [("stored_value", 2_000), ("cash", 3_000)]
    row = next(e for e in out.effects if isinstance(e, InsertReturn))
    assert row.refunds == (("stored_value", 2_000), ("cash", 3_000))  # kept per method (the cash-up sums these)
    assert out.reply["refund"]["parts"] == [{"method": "stored_value", "amount_fen": 2_000},
                                            {"method": "cash", "amount_fen": 3_000}]
    assert returns.DRAWER_KICK in next(a.ticket for a in out.after if isinstance(a, PrintTicket))


def test_a_later_return_of_a_split_sale_counts_what_each_tender_got_back_before():
    _, first = returned(SPLIT_SALE, 2)  # 20.00: 8.00 stored value, 12.00 cash
    assert [(p.method, p.amount_fen) for p in first.refunds] == [("stored_value", 800), ("cash", 1_200)]
    later = replace(SPLIT_SALE, refunded=tuple((p.method, p.amount_fen) for p in first.refunds))
    _, rest = returned(later, 3, {"APPLE": Back(2, 2_000)})
    assert [(p.method, p.amount_fen) for p in rest.refunds] == [("stored_value", 1_200), ("cash", 1_800)]


SPLIT_FACTS = ReturnsKnown(sales={"SPLIT": SaleFacts("SPLIT", "S063", (("APPLE", 5, "piece", 5_000),), 5_000,
                                                     ("stored_value", "cash"), "M1", paid=SPLIT)})


def split_return(refunds: tuple[tuple[str, int], ...], qty: int = 5) -> GoodsReturned:
    total = sum(fen for _, fen in refunds)
    return GoodsReturned(event_id=make_id(NOW.wall_ms, 700 + qty + total % 97), store_id="S063", seq=1, wall_ms=1,
                         mono_ms=1, return_id=make_id(NOW.wall_ms, 800 + qty + total % 97), sale_id="SPLIT",
                         order_id="", lane="1",
                         lines=(ReturnLine(sku="APPLE", quantity=Quantity(amount=qty, unit="piece"), amount_fen=total,
                                           disposition="resaleable"),),
                         total_fen=total, refunds=tuple(Payment(method=m, amount_fen=fen, reference="r")
                                                        for m, fen in refunds), member_id="M1")


def test_the_cloud_refuses_a_split_sales_refund_claimed_all_by_its_first_tender():
    greedy = split_return((("stored_value", 5_000),))
    why = judge_returns([greedy], SPLIT_FACTS).refused[greedy.event_id]
    assert why.endswith("5000 fen refunded by stored_value, but the sale paid 2000 fen by stored_value and 0 fen "
                        "went back by it before")
    fair = split_return((("stored_value", 2_000), ("cash", 3_000)))
    assert fair.event_id not in judge_returns([fair], SPLIT_FACTS).refused


def test_the_cloud_counts_refunds_by_method_before_and_earlier_in_the_batch():
    first = split_return((("stored_value", 800), ("cash", 1_200)), qty=2)
    second = split_return((("stored_value", 1_300), ("cash", 1_700)), qty=3)  # 13.00 by stored value: 12.00 left
    verdicts = judge_returns([first, second], SPLIT_FACTS)
    assert first.event_id not in verdicts.refused
    assert "1300 fen refunded by stored_value, but the sale paid 2000 fen by stored_value and 800 fen went back" in \
        verdicts.refused[second.event_id]
    known = replace(SPLIT_FACTS, earlier={"sale:SPLIT": [("APPLE", 2, 2_000)]},
                    refunded={"SPLIT": [("stored_value", 800), ("cash", 1_200)]})
    assert "800 fen went back" in judge_returns([second], known).refused[second.event_id]


# 5. the till lock holds on the lane API too, on a box with cashiers
class _Pins:
    def __init__(self, hashes: dict) -> None:
        self.hashes = hashes


class _Actor:
    def __init__(self, on_duty: dict) -> None:
        self.on_duty = on_duty


class _Box:
    def __init__(self, cashiers: bool, on_duty: dict) -> None:
        self.cashier_pins, self.actor = _Pins({"C1": "h"} if cashiers else {}), _Actor(on_duty)


@pytest.mark.parametrize("path", ["/lanes/1/pay", "/lanes/1/returns", "/lanes/1/coupon", "/till/1/members",
                                  "/till/1/coupons/apply", "/till/1/tender", "/till/1/pickup", "/till/1/return"])
def test_money_routes_need_a_cashier_signed_in_at_their_lane(path):
    with pytest.raises(Refused, match="no cashier is signed in at lane 1") as refused:
        lane_guard.check(_Box(True, {"2": object()}), "POST", path, {"lane": "1"}, {})
    assert refused.value.status == 403
    lane_guard.check(_Box(True, {"1": object()}), "POST", path, {"lane": "1"}, {})  # signed in: through
    lane_guard.check(_Box(False, {}), "POST", path, {"lane": "1"}, {})  # no cashiers configured: as before


def test_a_pickup_needs_a_cashier_on_the_lane_it_names_or_on_any_lane():
    with pytest.raises(Refused, match="no cashier is signed in at any lane"):
        lane_guard.check(_Box(True, {}), "POST", "/pickups/12345678", {"code": "12345678"}, {})
    with pytest.raises(Refused, match="no cashier is signed in at lane 3"):
        lane_guard.check(_Box(True, {"1": object()}), "POST", "/pickups/12345678", {"code": "12345678"},
                         {"lane": "3"})
    lane_guard.check(_Box(True, {"1": object()}), "POST", "/pickups/12345678", {"code": "12345678"}, {})
    lane_guard.check(_Box(True, {}), "POST", "/lanes/1/scan", {"lane": "1"}, {})  # not money: the page lock's job


def test_a_self_checkout_lane_takes_money_with_no_cashier_and_other_lanes_do_not():
    box = SimpleNamespace(cashier_pins=SimpleNamespace(hashes={"c1": "hash"}), actor=SimpleNamespace(on_duty={}),
                          config={"self_checkout_lanes": ["9"]})
    lane_guard.check(box, "POST", "/lanes/9/pay", {"lane": "9"}, {})  # the kiosk: nobody needs to sign in
    lane_guard.check(box, "POST", "/pickups/12345678", {}, {"lane": "9"})
    for path, params, query in (("/lanes/1/pay", {"lane": "1"}, {}), ("/pickups/12345678", {}, {})):
        with pytest.raises(Refused) as refused:
            lane_guard.check(box, "POST", path, params, query)
        assert refused.value.status == 403
    box.config = {"self_checkout_lanes": ["*"]}  # every lane a kiosk (the demo's simulated tills)
    lane_guard.check(box, "POST", "/lanes/1/pay", {"lane": "1"}, {})
    lane_guard.check(box, "POST", "/pickups/12345678", {}, {})
