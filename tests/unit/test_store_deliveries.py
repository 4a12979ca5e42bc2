"""A store's part in deliveries as pure decisions (edge/core/deliveries.py), and what the cloud believes of a store's
staff delivery (protocol/store_facts.py): no servers."""
from __future__ import annotations

import itertools

import pytest

from edge.core import cloud_messages, deliveries
from edge.core.outcome import InsertOrder, MarkApplied, MoveStock, Publish, Refused, SetOrderStatus
from edge.core.state import Books, EventStamp, Moment, StockLevel
from protocol.delivery_messages import DeliveryReturned, StaffDelivery
from protocol.ids import make_id
from protocol.messages import OrderLine, PickedLine
from protocol.store_facts import Known, OrderFacts, judge

NOW = Moment(wall_ms=1_767_229_200_000, mono_ms=42)
LINES = (("MILK", 2), ("EGGS", 1))
LEVELS = {"MILK": StockLevel("MILK", 10, 4), "EGGS": StockLevel("EGGS", 0, 0)}


def stamp(last_seq: int = 7) -> EventStamp:
    n = itertools.count(1)
    return EventStamp("S001", last_seq, NOW, lambda: make_id(NOW.wall_ms, next(n)))


def test_goods_sent_back_mark_the_order_returned_once():
    message = DeliveryReturned(event_id=make_id(NOW.wall_ms, 99), store_id="S001", seq=3, wall_ms=1, mono_ms=1,
                               order_id="O1", lines=(OrderLine(sku="MILK", qty=2, amount_fen=0),), reason="no_rider")
    outcome = cloud_messages.apply_cloud_message(message, False, Books(), NOW)
    assert outcome.reply == "applied"
    kinds = [type(e) for e in outcome.effects]
    assert kinds == [MarkApplied, InsertOrder, SetOrderStatus]
    assert outcome.effects[2] == SetOrderStatus("O1", "returned")
    assert outcome.effects[1].payload["lines"] == [{"sku": "MILK", "qty": 2}]
    assert cloud_messages.apply_cloud_message(message, True, Books(), NOW).reply == "duplicate"


def test_booked_back_on_hand_each_line_returns():
    outcome = deliveries.book_returned("O1", "returned", LINES, "stock", "", LEVELS, stamp())
    moves = [e.event for e in outcome.effects if isinstance(e, MoveStock)]
    assert [(m.sku, m.delta, m.reason, m.on_hand_after, m.reference) for m in moves] == [
        ("MILK", 2, "return", 12, "O1"), ("EGGS", 1, "return", 1, "O1")]
    assert [m.seq for m in moves] == [8, 9] and outcome.last_seq == 9
    assert outcome.effects[-1] == SetOrderStatus("O1", "returned_to_stock", only_from="returned")
    assert outcome.reply["on_hand"] == {"MILK": 12, "EGGS": 1}


def test_booked_to_shrinkage_the_loss_is_journaled_with_its_reason():
    outcome = deliveries.book_returned("O1", "returned", LINES, "shrinkage", "spoiled", LEVELS, stamp())
    moves = [e.event for e in outcome.effects if isinstance(e, MoveStock)]
    assert [(m.sku, m.delta, m.reason, m.shrinkage_reason, m.on_hand_after) for m in moves] == [
        ("MILK", 2, "return", "", 12), ("MILK", -2, "shrinkage", "spoiled", 10),
        ("EGGS", 1, "return", "", 1), ("EGGS", -1, "shrinkage", "spoiled", 0)]
    assert outcome.reply["on_hand"] == {"MILK": 10, "EGGS": 0}


def test_booking_again_answers_the_first_booking_and_moves_nothing():
    again = deliveries.book_returned("O1", "returned_to_stock", LINES, "shrinkage", "spoiled", LEVELS, stamp())
    assert again.effects == () and again.reply == {"order_id": "O1", "status": "returned_to_stock"}


@pytest.mark.parametrize(("status", "to", "reason", "code", "words"), [
    (None, "stock", "", 404, "no order"),
    ("to_pick", "stock", "", 409, "only goods the cloud sent back"),
    ("returned", "shrinkage", "", 422, "reason"),
    ("returned", "bin", "", 422, "stock or shrinkage"),
])
def test_booking_what_did_not_come_back_is_refused(status, to, reason, code, words):
    with pytest.raises(Refused, match=words) as refused:
        deliveries.book_returned("O1", status, LINES, to, reason, LEVELS, stamp())
    assert refused.value.status == code


def test_staff_take_a_delivery_out_then_deliver_it():
    out = deliveries.staff_delivery("O1", "picked", "delivery", "out", "li-lei", stamp())
    event = next(e.event for e in out.effects if isinstance(e, Publish))
    assert isinstance(event, StaffDelivery) and (event.step, event.staff_id, event.seq) == ("out", "li-lei", 8)
    assert out.effects[-1] == SetOrderStatus("O1", "out_with_staff", only_from="picked")
    done = deliveries.staff_delivery("O1", "out_with_staff", "delivery", "delivered", "li-lei", stamp())
    assert next(e.event for e in done.effects if isinstance(e, Publish)).step == "delivered"
    for status, step in (("out_with_staff", "out"), ("delivered_by_staff", "out"),
                         ("delivered_by_staff", "delivered")):
        repeat = deliveries.staff_delivery("O1", status, "delivery", step, "li-lei", stamp())
        assert repeat.effects == () and repeat.reply["status"] == status


@pytest.mark.parametrize(("status", "fulfilment", "step", "words"), [
    (None, None, "out", "no order"),
    ("to_pick", "pickup", "out", "only deliveries"),
    ("to_pick", "delivery", "delivered", "before delivering"),
    ("cancelled", "delivery", "out", "cannot go out"),
    ("returned", "delivery", "out", "cannot go out"),
    # not picked yet: nothing left the shelf, and the cloud cannot hand a paid order to a rider (it would stay paid)
    ("to_pick", "delivery", "out", "pick it first"),
    ("picking", "delivery", "out", "pick it first"),
])
def test_staff_steps_out_of_place_are_refused(status, fulfilment, step, words):
    with pytest.raises(Refused, match=words):
        deliveries.staff_delivery("O1", status, fulfilment, step, "li-lei", stamp())


def test_the_cloud_believes_staff_only_about_its_own_paid_delivery_orders():
    known = Known(orders={
        "O-mine": OrderFacts("O-mine", "delivery", "ready", frozenset({"S001"})),
        "O-theirs": OrderFacts("O-theirs", "delivery", "ready", frozenset({"S002"})),
        "O-pickup": OrderFacts("O-pickup", "pickup", "paid", frozenset({"S001"})),
        "O-unpaid": OrderFacts("O-unpaid", "delivery", "reserved", frozenset({"S001"})),
    })
    n = itertools.count(1)
    events = {o: StaffDelivery(event_id=make_id(NOW.wall_ms, next(n)), store_id="S001", seq=i, wall_ms=1, mono_ms=1,
                               order_id=o, step="out", staff_id="li-lei")
              for i, o in enumerate(("O-mine", "O-theirs", "O-pickup", "O-unpaid", "O-none"), start=1)}
    refused = judge(events.values(), known)
    assert {o for o, e in events.items() if e.event_id in refused} == {"O-theirs", "O-pickup", "O-unpaid", "O-none"}
    assert "not allocated to this store" in refused[events["O-theirs"].event_id]
    assert "reserved, not paid" in refused[events["O-unpaid"].event_id]


def test_goods_come_back_as_picked_not_as_ordered():
    """Short units never left the shelf, a substitute left instead of its original, a weighed line left what the
    scale said: those come back, not the ordered lines."""
    picks = [PickedLine(sku="MILK", ordered=3, picked=1, short=2, substitute_sku="", substitute_qty=0),
             PickedLine(sku="EGGS", ordered=2, picked=0, short=0, substitute_sku="MILK", substitute_qty=2),
             PickedLine(sku="PORK", ordered=500, picked=530, short=0, substitute_sku="", substitute_qty=0),
             PickedLine(sku="FISH", ordered=1, picked=0, short=1, substitute_sku="", substitute_qty=0)]
    lines = deliveries.returned_lines(picks)
    assert lines == (("MILK", 3), ("PORK", 530))
    outcome = deliveries.book_returned("O1", "returned", lines, "stock", "", LEVELS, stamp())
    moves = [e.event for e in outcome.effects if isinstance(e, MoveStock)]
    assert [(m.sku, m.delta) for m in moves] == [("MILK", 3), ("PORK", 530)]
    assert deliveries.returned_lines([]) == ()  # never picked here: nothing comes back
