"""The order lifecycle as a pure state machine: every path a real order takes, and the steps it must refuse."""
import pytest

from protocol import order_lifecycle as lc


def walk(fulfilment, events, start=lc.PENDING):
    status = start
    for event in events:
        status = lc.step(fulfilment, status, event)
    return status


def test_a_pickup_order_from_created_to_completed():
    assert walk("pickup", ["reserve", "pay", "start_picking", "picked", "pick_up", "complete"]) == lc.COMPLETED


def test_a_delivery_order_goes_through_the_rider_and_may_be_redispatched_after_a_failure():
    path = ["reserve", "pay", "start_picking", "picked", "hand_to_rider", "fail_delivery", "redispatch",
            "hand_to_rider", "deliver"]
    assert walk("delivery", path) == lc.DELIVERED


def test_a_customer_at_the_counter_may_collect_a_paid_pickup_order_before_it_was_picked():
    assert walk("pickup", ["reserve", "pay", "pick_up"]) == lc.PICKED_UP


@pytest.mark.parametrize(("fulfilment", "status", "event"), [
    ("pickup", lc.READY, "hand_to_rider"),  # a pickup order never goes to a rider
    ("delivery", lc.READY, "pick_up"),  # a delivery is never collected at the counter
    ("pickup", lc.RESERVED, "start_picking"),  # nothing is picked before it is paid
    ("pickup", lc.CANCELLED, "pay"),  # a late payment cannot revive a cancelled order
    ("delivery", lc.DELIVERED, "cancel"),  # handed over: after-sales, not a cancel
    ("delivery", lc.EXPIRED, "deliver"),
    ("pickup", lc.REFUNDED, "refund"),  # refunded once
    ("pickup", lc.PAID, "refund_part"),  # a partial refund before handing over is a note, not a status
])
def test_steps_the_status_does_not_allow_are_refused_and_say_what_is_allowed(fulfilment, status, event):
    with pytest.raises(lc.IllegalTransition) as caught:
        lc.step(fulfilment, status, event)
    assert status in str(caught.value) and event in str(caught.value)
    assert not lc.can(fulfilment, status, event)


def test_notes_keep_the_status_and_unknown_events_are_refused():
    assert lc.step("delivery", lc.OUT_FOR_DELIVERY, "rider") == lc.OUT_FOR_DELIVERY
    assert lc.step("pickup", lc.PICKING, "weighed") == lc.PICKING
    with pytest.raises(lc.ProtocolError, match="unknown order event"):
        lc.step("pickup", lc.PAID, "teleport")
    with pytest.raises(lc.ProtocolError, match="fulfilment"):
        lc.step("drone", lc.PAID, "pay")


def test_every_paid_status_can_be_refunded_whole_and_only_handed_over_ones_in_part():
    for status in lc.PAID_STATUSES:
        assert lc.step("delivery" if status in (lc.OUT_FOR_DELIVERY, lc.DELIVERY_FAILED, lc.DELIVERED) else "pickup",
                       status, "refund") == lc.REFUNDED
    assert lc.step("pickup", lc.PICKED_UP, "refund_part") == lc.PARTIALLY_REFUNDED
    assert lc.step("pickup", lc.PARTIALLY_REFUNDED, "refund_part") == lc.PARTIALLY_REFUNDED
    assert lc.step("pickup", lc.PARTIALLY_REFUNDED, "refund") == lc.REFUNDED


def test_every_status_is_reachable_and_every_final_one_is_final():
    reachable, frontier = {lc.PENDING}, [lc.PENDING]
    while frontier:
        status = frontier.pop()
        for fulfilment in ("pickup", "delivery"):
            for event in lc.allowed_events(fulfilment, status):
                new = lc.step(fulfilment, status, event)
                if new not in reachable:
                    reachable.add(new)
                    frontier.append(new)
    assert reachable == set(lc.STATUSES)
    for status in (lc.CANCELLED, lc.EXPIRED, lc.REJECTED, lc.REFUNDED):
        assert not lc.allowed_events("pickup", status) and not lc.allowed_events("delivery", status)
    for status in lc.STATUSES:
        assert lc.is_final(status) == (status in lc.FINAL_STATUSES)


def test_a_split_order_is_as_far_as_its_least_advanced_live_part():
    assert lc.overall([lc.READY, lc.PICKING]) == lc.PICKING
    assert lc.overall([lc.DELIVERED, lc.DELIVERED]) == lc.DELIVERED
    assert lc.overall([lc.DELIVERED, lc.CANCELLED]) == lc.DELIVERED  # a part re-routed away and cancelled
    assert lc.overall([lc.CANCELLED, lc.CANCELLED]) == lc.CANCELLED
    with pytest.raises(lc.ProtocolError):
        lc.overall([])


def test_an_open_order_says_what_it_waits_for_and_an_ended_one_says_nothing():
    assert "payment" in lc.why_open(lc.RESERVED, "pickup", 1_000, expires_ms=61_000) and "60 s" in \
        lc.why_open(lc.RESERVED, "pickup", 1_000, expires_ms=61_000)
    assert "rider" in lc.why_open(lc.READY, "delivery", 0)
    assert "collect" in lc.why_open(lc.READY, "pickup", 0, slot_start_ms=600_000) and "10 min" in \
        lc.why_open(lc.READY, "pickup", 0, slot_start_ms=600_000)
    for status in lc.STATUSES:
        assert (lc.why_open(status, "delivery", 0) == "") == lc.is_final(status)
        assert "no rule" not in lc.why_open(status, "delivery", 0)
