"""protocol.seq_gate: once a store's event was dropped, that store's events apply only in its order."""
from __future__ import annotations

from protocol.seq_gate import SeqGates


def applied(gates: SeqGates, items, now_ms: int = 0):
    order, held, _ = gates.admit(items, now_ms)
    return [items[i] for i in order], [items[i] for i in held]


def test_an_ungated_store_passes_as_it_came():
    gates = SeqGates()
    items = [("A", 3), ("A", 1), ("B", 9)]
    assert applied(gates, items) == (items, [])


def test_the_later_events_of_a_throttled_store_wait_for_the_dropped_one():
    """The fault: the receiving (seq 5) was dropped over the rate; the grant (seq 6) must not apply before it."""
    gates = SeqGates()
    gates.hold_from("A", 5, now_ms=0)
    ok, held = applied(gates, [("A", 6), ("B", 1), ("A", 7)], now_ms=1_000)
    assert ok == [("B", 1)] and held == [("A", 6), ("A", 7)]
    # the store sends again from its head, in order (with a duplicate of an applied one): all pass, in order
    ok, held = applied(gates, [("A", 4), ("A", 5), ("A", 6), ("A", 7), ("A", 8)], now_ms=35_000)
    assert ok == [("A", 4), ("A", 5), ("A", 6), ("A", 7), ("A", 8)] and held == []
    assert gates.expecting("A") == 9


def test_a_gated_store_is_applied_in_sequence_order_in_its_own_places():
    gates = SeqGates()
    gates.hold_from("A", 1, now_ms=0)
    ok, held = applied(gates, [("A", 2), ("B", 7), ("A", 1), ("A", 4)])
    assert ok == [("A", 1), ("B", 7), ("A", 2)] and held == [("A", 4)]  # 3 is missing: 4 waits
    assert gates.expecting("A") == 3


def test_a_dropped_re_send_below_the_expectation_does_not_lower_it():
    gates = SeqGates()
    gates.hold_from("A", 10, now_ms=0)
    assert applied(gates, [("A", 10), ("A", 11)])[1] == []
    gates.hold_from("A", 3, now_ms=1)  # an old copy was throttled: events 4..11 are acked and never come again
    assert gates.expecting("A") == 12
    assert applied(gates, [("A", 12)]) == ([("A", 12)], [])


def test_a_gate_whose_event_never_comes_resumes_after_a_stall():
    gates = SeqGates()
    gates.hold_from("A", 5, now_ms=0)
    assert applied(gates, [("A", 6)], now_ms=gates.STALL_MS - 1)[1] == [("A", 6)]  # still waiting for 5
    order, held, resumed = gates.admit([("A", 7), ("A", 6)], gates.STALL_MS)
    assert (order, held, resumed) == ([1, 0], [], ["A"])  # 5 was set aside by the store: go on from 6, in order
    assert gates.expecting("A") == 8


def test_a_gate_that_moves_does_not_resume_past_a_gap():
    gates = SeqGates()
    gates.hold_from("A", 5, now_ms=0)
    ok, held = applied(gates, [("A", 5), ("A", 7)], now_ms=gates.STALL_MS * 2)
    assert ok == [("A", 5)] and held == [("A", 7)]  # it moved (5 came): 6 is still to come


def test_a_gate_moves_past_what_the_cloud_already_applied():
    """A gate set at a stale copy (seq 3, applied long ago) must not wait for events the store was acked for."""
    gates = SeqGates()
    gates.hold_from("A", 3, now_ms=0)
    assert gates.waits("A", 100) and not gates.waits("A", 3) and not gates.waits("B", 100)
    gates.seen("A", [5, 3, 4, 7], now_ms=1)  # 6 is not applied: the gate waits there
    assert gates.expecting("A") == 6
    gates.seen("B", [1], now_ms=1)  # an ungated store stays ungated
    assert not gates.gated("B")
