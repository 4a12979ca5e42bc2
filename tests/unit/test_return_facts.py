"""What the cloud believes of a store's return (protocol.return_facts) and the store's after-sales decisions
(edge.core.after_sales): pure, no servers."""
from __future__ import annotations

import pytest

from edge.core import after_sales
from edge.core.outcome import DecideAfterSales, MoveStock, Publish, Refused
from edge.core.state import EventStamp, Moment, StockLevel
from protocol.ids import make_id
from protocol.messages import Payment, Quantity
from protocol.return_facts import OrderFacts, ReturnsKnown, SaleFacts, judge_returns
from protocol.return_messages import AfterSalesDecided, GoodsReturned, ReturnLine

N = iter(range(1, 10**6))


def an_id() -> str:
    return make_id(1_760_000_000_000, next(N))


def returned(store: str, *, sale_id: str = "", order_id: str = "", lines=(("APPLE", 1, 100),), method="cash",
             member_id=None, return_id: str | None = None) -> GoodsReturned:
    body = tuple(ReturnLine(sku=s, quantity=Quantity.pieces(q), amount_fen=f, disposition="resaleable")
                 for s, q, f in lines)
    total = sum(f for *_, f in lines)
    refunds = (Payment(method=method, amount_fen=total, reference="r"),) if sale_id and total else ()
    return GoodsReturned(event_id=an_id(), store_id=store, seq=1, wall_ms=1, mono_ms=1, return_id=return_id or an_id(),
                         sale_id=sale_id, order_id=order_id, lane="1", lines=body, total_fen=total, refunds=refunds,
                         member_id=member_id)


KNOWN = ReturnsKnown(
    sales={"SALE1": SaleFacts("SALE1", "S001", (("APPLE", 3, "piece", 300),), 300, ("cash",), None),
           "SALE2": SaleFacts("SALE2", "S001", (("APPLE", 2, "piece", 200),), 200, ("stored_value",), "M1")},
    orders={"ORD1": OrderFacts("ORD1", "picked_up", frozenset({"S001"}), {"S001": (("MILK", 2, "piece", 700),)}),
            "ORD2": OrderFacts("ORD2", "paid", frozenset(), {"S001": (("MILK", 1, "piece", 350),)})})


def test_a_store_is_believed_about_its_own_sales_within_what_was_sold_and_paid():
    ok = returned("S001", sale_id="SALE1", lines=(("APPLE", 2, 200),))
    later = returned("S001", sale_id="SALE1", lines=(("APPLE", 2, 100),))  # only 1 left after the first
    verdicts = judge_returns([ok, later], KNOWN)
    assert ok.event_id not in verdicts.refused and verdicts.amounts[ok.event_id] == 200
    assert "APPLE: 2 piece asked, but 3 piece were sold and 2 piece returned already" in verdicts.refused[later.event_id]


@pytest.mark.parametrize(("event", "why"), [
    (returned("S002", sale_id="SALE1"), "of sale SALE1, which is another store's"),
    (returned("S001", sale_id="NOPE"), "of sale NOPE, which the cloud has no record of"),
    (returned("S001", sale_id="SALE1", lines=(("APPLE", 1, 101),)), "APPLE: 101 fen claimed back, at most 100 fen"),
    (returned("S001", sale_id="SALE1", method="stored_value"), "refunded by stored_value; sale SALE1 was paid by cash"),
    (returned("S001", sale_id="SALE2", method="stored_value", member_id="M2"), "to member 'M2', but sale SALE2"),
    (returned("S002", order_id="ORD1", lines=(("MILK", 1, 350),)), "which was not picked up at this store"),
    (returned("S001", order_id="ORD2", lines=(("MILK", 1, 350),)), "which was not picked up at this store"),
    (returned("S001", order_id="ORD1", lines=(("EGG", 1, 0),)), "EGG was not sold on it"),
])
def test_anything_else_is_refused_with_the_reason(event, why):
    reason = judge_returns([event], KNOWN).refused[event.event_id]
    assert reason.startswith(f"store {event.store_id} goods.returned refused: return {event.return_id}: ") and why in reason


def test_an_orders_refund_is_the_clouds_own_figure_and_a_return_id_is_used_once():
    estimate = returned("S001", order_id="ORD1", lines=(("MILK", 2, 0),))  # a store without line amounts claims 0
    verdicts = judge_returns([estimate], KNOWN)
    assert verdicts.amounts[estimate.event_id] == 700 and verdicts.all_back[estimate.event_id]
    high = returned("S001", order_id="ORD1", lines=(("MILK", 1, 9_999),))  # an estimate too high: its own figure
    assert judge_returns([high], KNOWN).amounts[high.event_id] == 350
    reused = returned("S001", sale_id="SALE1", return_id=estimate.return_id)
    assert "this return id was used already" in judge_returns([estimate, reused], KNOWN).refused[reused.event_id]


def stamp() -> EventStamp:
    return EventStamp("S001", 3, Moment(1_760_000_000_000, 1), an_id)


def test_the_staff_decide_a_request_once_and_a_refusal_says_why():
    request = {"request_id": "R1", "order_id": "ORD1", "status": "requested", "amount_fen": 350}
    out = after_sales.decide(request, "R1", True, "", "W01", stamp())
    event = next(e.event for e in out.effects if isinstance(e, Publish))
    assert isinstance(event, AfterSalesDecided) and event.approved and event.order_id == "ORD1" and event.seq == 4
    assert any(isinstance(e, DecideAfterSales) and e.status == "approved" for e in out.effects)
    decided = {**request, "status": "approved"}
    assert after_sales.decide(decided, "R1", True, "", "W01", stamp()).effects == ()  # the same again: as it is
    with pytest.raises(Refused, match="was approved already") as e:
        after_sales.decide(decided, "R1", False, "no", "W01", stamp())
    assert e.value.status == 409
    with pytest.raises(Refused, match="a refusal says why"):
        after_sales.decide(request, "R1", False, " ", "W01", stamp())
    with pytest.raises(Refused, match="no after-sales request R9") as e:
        after_sales.decide(None, "R9", True, "", "", stamp())
    assert e.value.status == 404


def test_an_approval_with_the_goods_brought_back_takes_them_into_stock():
    request = {"request_id": "R2", "order_id": "ORD1", "status": "requested", "with_return": True,
               "lines": [{"sku": "MILK", "qty": 2}]}
    out = after_sales.decide(request, "R2", True, "", "W01", stamp(), {"MILK": StockLevel("MILK", 5, 2)}, "damaged")
    moves = [(e.event.delta, e.event.reason, e.event.shrinkage_reason, e.event.on_hand_after, e.event.reference)
             for e in out.effects if isinstance(e, MoveStock)]
    assert moves == [(2, "return", "", 7, "R2"), (-2, "shrinkage", "damaged", 5, "R2")]
    refused = after_sales.decide(request, "R2", False, "no proof", "W01", stamp(), {}, "damaged")
    assert not [e for e in refused.effects if isinstance(e, MoveStock)]  # a refusal takes nothing back
    with pytest.raises(Refused, match="disposition must be one of"):
        after_sales.decide(request, "R2", True, "", "W01", stamp(), {}, "lost")


def test_a_return_that_keeps_a_gift_back_is_believed_for_what_the_till_paid_out_and_its_lines_count_whole():
    from protocol.return_messages import ReturnDeduction
    lines = (ReturnLine(sku="APPLE", quantity=Quantity.pieces(2), amount_fen=200, disposition="resaleable"),)
    kept = GoodsReturned(event_id=an_id(), store_id="S001", seq=1, wall_ms=1, mono_ms=1, return_id=an_id(),
                         sale_id="SALE1", order_id="", lane="1", lines=lines, total_fen=150,
                         refunds=(Payment(method="cash", amount_fen=150, reference="r"),), member_id=None,
                         deductions=(ReturnDeduction(rule_id="G1", sku="TOFU", amount_fen=50),))
    last = returned("S001", sale_id="SALE1", lines=(("APPLE", 1, 100),))  # the rest of the line: its share, not more
    verdicts = judge_returns([kept, last], KNOWN)
    assert verdicts.amounts[kept.event_id] == 150 and verdicts.lines[kept.event_id] == [("APPLE", 2, 200)]
    assert last.event_id not in verdicts.refused and verdicts.amounts[last.event_id] == 100
