"""FlashSaleGate and LeaseHolder without Ray: leases, exact sell-out, member limits, throttling, typed commands,
stateful."""
from __future__ import annotations

import random

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors.base import Expire, Result
from actors.flash_lease import LEASE_RETURN_IDLE_MS, QUEUE_FLOOR, QUEUE_WAIT_MS, SOLD_OUT_SYNC_MS, LeaseHolder
from actors.flash_sale import LEASE_IDLE_MS, ORPHAN_AFTER_MS, AdmittedSale, FlashSaleGate, LeaseSync, OpenSale
from protocol.codec import pack, unpack
from protocol.errors import ProtocolError

T0 = 1_767_225_600_000


def sale(quantity=100, limit=1, rate=1_000_000, cid="open"):
    return OpenSale(id=cid, sale_id="F1", sku="EGGS", quantity=quantity, price_fen=990, starts_ms=T0,
                    ends_ms=T0 + 3_600_000, per_member_limit=limit, rate_per_s=rate)


def open_gate(quantity=100, limit=1, rate=1_000_000):
    gate = FlashSaleGate()
    assert gate.apply(sale(quantity, limit, rate), T0).status == "ok"
    return gate


def holder(gate, worker, now=T0, block=20):
    first = gate.apply(LeaseSync(id=f"{worker}-0", worker=worker, want=block), now)
    assert first.status == "ok"
    return LeaseHolder(worker, first.values, now, block=block)


class Counter:
    n = 0

    @classmethod
    def next(cls):
        cls.n += 1
        return f"sync-{cls.n}"


def test_1000_attempts_by_300_members_sell_exactly_100_with_limit_1():
    gate = open_gate(quantity=100, limit=1)
    workers = [holder(gate, f"w{i}") for i in range(4)]
    rng = random.Random(3)
    accepted, now = {}, T0
    for attempt in range(1000):
        w = workers[attempt % 4]
        member = f"m{rng.randint(1, 300)}"
        w.admit(f"o{attempt}", member, 1, now)
        if attempt % 10 == 9:  # batches
            for holder_ in workers:
                verdicts = holder_.take_results(gate.apply(holder_.sync_command(Counter.next(), now), now))
                accepted.update({o: v for o, v in verdicts.items() if v == "accepted"})
            now += 5
    for _ in range(5):  # requests waiting for units handed back between workers get them, then their verdicts
        for holder_ in workers:
            verdicts = holder_.take_results(gate.apply(holder_.sync_command(Counter.next(), now), now))
            accepted.update({o: v for o, v in verdicts.items() if v == "accepted"})
            holder_.drain_queue(now)
        now += 5
    assert gate.sold == len(accepted) == 100
    assert max(gate.member_units.values()) == 1
    assert gate.audit() == []
    assert all(w.sold_out for w in workers)
    assert workers[0].admit("late", "m999", 1, now) == "sold_out"


def test_member_limit_is_global_across_workers():
    gate = open_gate(quantity=10, limit=1)
    a, b = holder(gate, "a", block=5), holder(gate, "b", block=5)
    assert a.admit("o1", "alice", 1, T0) == "admitted"
    assert a.admit("o2", "alice", 1, T0) == "over_limit"  # known locally
    assert b.admit("o3", "alice", 1, T0) == "admitted"  # b does not know yet...
    assert a.take_results(gate.apply(a.sync_command("s1", T0), T0)) == {"o1": "accepted"}
    assert b.take_results(gate.apply(b.sync_command("s2", T0), T0)) == {"o3": "over_limit"}  # ...the gate does
    assert gate.sold == 1 and gate.audit() == []


def test_throttling_and_window():
    gate = open_gate(quantity=100, rate=2)
    w = holder(gate, "w")
    verdicts = [w.admit(f"o{i}", f"m{i}", 1, T0) for i in range(5)]
    assert verdicts.count("admitted") == 2 and verdicts.count("throttled") == 3
    assert w.admit("later", "mx", 1, T0 + 1000) == "admitted"  # tokens refill
    assert w.admit("x", "my", 1, T0 - 1) == "not_started"
    assert w.admit("y", "mz", 1, T0 + 3_600_000) == "ended"


def test_idle_leases_are_taken_back_and_commits_then_need_unleased_units():
    gate = open_gate(quantity=20)
    w1 = holder(gate, "w1", block=20)  # takes everything
    assert gate.unleased == 0
    assert gate.apply(Expire(id="e1"), T0 + LEASE_IDLE_MS + 1)["taken_back"] == 20
    assert gate.unleased == 20 and gate.leases.get("w1", 0) == 0
    w1.admit("o1", "m1", 1, T0 + LEASE_IDLE_MS + 2)
    verdicts = w1.take_results(gate.apply(w1.sync_command("s1", T0 + LEASE_IDLE_MS + 2), T0 + LEASE_IDLE_MS + 2))
    assert verdicts == {"o1": "accepted"} and gate.sold == 1 and gate.audit() == []


def test_sync_retry_is_idempotent():
    gate = open_gate(quantity=5)
    w = holder(gate, "w")
    w.admit("o1", "m1", 1, T0)
    command = w.sync_command("s1", T0)
    first = gate.apply(command, T0)
    assert gate.apply(command, T0) == Result(status="exists", first=first)
    assert gate.sold == 1


def test_a_sync_answer_lost_and_resent_gives_the_first_verdicts():
    gate = open_gate(quantity=5)
    w = holder(gate, "w", block=4)
    assert w.admit("o1", "m1", 1, T0) == "admitted"
    command = w.sync_command("s1", T0)
    assert command == LeaseSync(id="s1", worker="w", sales=(AdmittedSale(order_id="o1", member="m1", qty=1),), want=0)
    first = gate.apply(command, T0)  # the answer is lost on the way back
    retried = gate.apply(command, T0)
    assert retried.status == "exists" and retried.settled == first and retried.succeeded
    assert w.take_results(retried) == {"o1": "again"}  # stale maybe: confirmed once more before its row
    assert w.status == first.values
    assert w.take_results(gate.apply(w.sync_command("s2", T0), T0)) == {"o1": "accepted"}
    assert gate.sold == 1 and gate.audit() == []


def test_a_sync_result_reports_verdicts_and_the_workers_status():
    gate = open_gate(quantity=3, limit=1, rate=10)
    result = gate.apply(LeaseSync(id="s1", worker="w", sales=(AdmittedSale(order_id="o1", member="m1", qty=1),
                                                         AdmittedSale(order_id="o2", member="m1", qty=1),
                                                         AdmittedSale(order_id="o3", member="m2", qty=0)), want=1), T0)
    assert result == Result(status="ok", values={
        "results": [["o1", "accepted"], ["o2", "over_limit"], ["o3", "invalid"]], "adopted": [],
        "members": [["m1", 1, "o1", 1]], "members_seen": 1, "lease": 1, "unleased": 1,
        "sold": 1, "quantity": 3, "sold_out": False, "hand_back": False, "rate_per_s": 10.0,
        "starts_ms": T0, "ends_ms": T0 + 3_600_000,
        "per_member_limit": 1, "price_fen": 990, "sku": "EGGS", "returned": 0})


def test_the_gate_refuses_a_second_open_and_a_sync_before_it_opens():
    gate = FlashSaleGate()
    assert gate.apply(LeaseSync(id="s0", worker="w", want=5), T0) == Result(status="error",
                                                                      reason="the sale is not configured")
    opened = gate.apply(sale(quantity=10), T0)
    assert opened.status == "ok" and opened["config"]["quantity"] == 10
    again = gate.apply(sale(quantity=20, cid="open-2"), T0)
    assert again == Result(status="rejected", reason="the sale is configured already",
                           values={"config": opened["config"]})
    assert gate.quantity == 10


@pytest.mark.parametrize("wire, message", [
    ({"op": "open", "id": "o", "sale_id": "F1", "sku": "EGGS", "quantity": 0, "price_fen": 990, "starts_ms": T0,
      "ends_ms": T0 + 1, "per_member_limit": 1, "rate_per_s": 10}, "open: quantity must be positive"),
    ({"op": "open", "id": "o", "sale_id": "F1", "sku": "EGGS", "quantity": 5, "price_fen": 990, "starts_ms": T0,
      "ends_ms": T0, "per_member_limit": 1, "rate_per_s": 10}, "open: ends_ms must be after starts_ms"),
    ({"op": "sync", "id": "s", "worker": "w", "sales": [], "want": -1, "returned": 0},
     "sync: want must be a non-negative integer"),
    ({"op": "sync", "id": "s", "worker": "", "want": 1}, "sync: worker must not be empty"),
])
def test_a_command_that_fails_validation_is_refused_at_construction_and_by_decode(wire, message):
    kind = {c.OP: c for c in FlashSaleGate.COMMANDS}[wire["op"]]
    with pytest.raises(ProtocolError, match=message):
        kind(**{k: v for k, v in wire.items() if k != "op"})
    with pytest.raises(ProtocolError, match=message):
        FlashSaleGate.decode(wire)


def test_decode_builds_the_admitted_sales_and_checks_them():
    wire = {"op": "sync", "id": "s", "worker": "w", "sales": [{"order_id": "o1", "member": "m1", "qty": 1}]}
    assert FlashSaleGate.decode(wire) == LeaseSync(id="s", worker="w", sales=(AdmittedSale(order_id="o1", member="m1",
                                                                                      qty=1),))
    with pytest.raises(ProtocolError, match=r"sync\.sales\[0\]\.qty: missing"):
        FlashSaleGate.decode({**wire, "sales": [{"order_id": "o1", "member": "m1"}]})


def test_snapshot_round_trip_keeps_leases_sales_and_remembered_results():
    gate = open_gate(quantity=10, limit=2)
    w = holder(gate, "w", block=4)
    for n, member in enumerate(("m1", "m1", "m2")):
        assert w.admit(f"o{n}", member, 1, T0) == "admitted"
    command = w.sync_command("s1", T0)
    first_open, first_init = gate.seen["open"][1], gate.seen["w-0"][1]
    first = gate.apply(command, T0)
    restored = FlashSaleGate()
    restored.restore(unpack(pack(gate.snapshot())))  # as the durable host stores it
    assert (restored.status(), restored.leases, restored.orders, restored.audit()) == (
        gate.status(), gate.leases, gate.orders, [])
    assert restored.apply(command, T0 + 1) == Result(status="exists", first=first)
    assert restored.apply(sale(quantity=10, limit=2), T0 + 1) == Result(status="exists", first=first_open)
    assert restored.apply(LeaseSync(id="w-0", worker="w", want=4), T0 + 1) == Result(status="exists", first=first_init)
    assert restored.sold == gate.sold == 3


class GateMachine(RuleBasedStateMachine):
    """Workers admit, sync (answers sometimes lost), write rows (written, refused, or unknown either way), look
    unsure rows up, and go silent; the gate never oversells, and a unit is sold exactly when its row exists or is
    still unrecorded."""

    @initialize(quantity=st.integers(1, 30), limit=st.integers(1, 3))
    def setup(self, quantity, limit):
        self.gate = open_gate(quantity=quantity, limit=limit)
        self.workers = [holder(self.gate, f"w{i}", block=4) for i in range(3)]
        self.now, self.n = T0, 0
        self.rows: set[str] = set()

    @rule(w=st.integers(0, 2), member=st.integers(0, 8), qty=st.integers(1, 2))
    def admit(self, w, member, qty):
        self.n += 1
        self.workers[w].admit(f"o{self.n}", f"m{member}", qty, self.now)

    @rule(w=st.integers(0, 2), outcome=st.sampled_from(["written", "refused", "unknown", "unknown_written"]),
          lost=st.booleans())
    def sync(self, w, outcome, lost):
        self.n += 1
        worker = self.workers[w]
        command = worker.sync_command(f"s{self.n}", self.now)
        result = self.gate.apply(command, self.now)
        if lost:  # the answer never comes back: the same command goes again
            return
        verdicts = worker.take_results(result)
        accepted = [s for s in command.sales if verdicts.get(s.order_id) == "accepted"]
        if outcome in ("written", "unknown_written"):
            self.rows.update(s.order_id for s in accepted)
        if outcome == "refused":
            worker.rows_failed(accepted)
        elif outcome.startswith("unknown"):
            worker.rows_unsure(accepted)
        worker.drain_queue(self.now)

    @rule(w=st.integers(0, 2))
    def look_up_unsure_rows(self, w):
        checked = list(self.workers[w].unsure)
        self.workers[w].rows_checked(checked, {o for o in checked if o in self.rows})

    @rule(ms=st.integers(0, 2 * ORPHAN_AFTER_MS))
    def tick(self, ms):
        self.now += ms
        self.n += 1
        assert self.gate.apply(Expire(id=f"e{self.n}"), self.now).status == "ok"

    @invariant()
    def never_over_and_sold_only_with_a_row(self):
        assert self.gate.audit() == []
        assert self.gate.sold <= self.gate.quantity
        unrecorded = {o for sales in (*self.gate.unrecorded.values(), self.gate.orphans) for o in sales}
        assert all(o in self.rows or o in unrecorded for o in self.gate.orders), "a recorded sale without a row"
        assert self.rows <= set(self.gate.orders), "a row whose sale was unsold"


TestGateMachine = GateMachine.TestCase


def sync(gate, worker, now, cid=None):
    """One sync of `worker` with its answer, then its waiting requests that can be decided: (verdicts, queue's)."""
    verdicts = worker.take_results(gate.apply(worker.sync_command(cid or Counter.next(), now), now))
    return verdicts, worker.drain_queue(now)


def test_two_workers_sell_every_unit_though_one_leased_them_all():
    """40 units, 40 buyers half on each worker: the worker with no lease queues its buyers (never "sold out"), the
    gate tells the other it is short, the other hands its spare units back."""
    gate = open_gate(quantity=40)
    a, b = holder(gate, "a", block=200), holder(gate, "b", block=200)
    assert (a.units, b.units, gate.unleased) == (40, 0, 0)
    verdicts = {}
    for i in range(20):
        assert a.admit(f"a{i}", f"ma{i}", 1, T0) == "admitted"
        assert b.admit(f"b{i}", f"mb{i}", 1, T0) == "queued"  # units remain elsewhere: not sold out
    for now in range(T0, T0 + 10):
        for worker in (a, b):
            got, decided = sync(gate, worker, now)
            verdicts.update(got)
            assert all(v == "admitted" for v in decided.values())
    assert sorted(verdicts.values()) == ["accepted"] * 40
    assert gate.sold == 40 and gate.audit() == []
    assert a.sold_out and b.sold_out and b.admit("late", "mz", 1, T0 + 11) == "sold_out"  # known locally


def test_an_idle_worker_hands_its_lease_back_and_does_not_take_it_again():
    gate = open_gate(quantity=100)
    w = holder(gate, "w", block=50)
    assert w.admit("o1", "m1", 1, T0) == "admitted"
    sync(gate, w, T0)
    assert not w.needs_sync(T0 + 100, T0)
    later = T0 + LEASE_RETURN_IDLE_MS
    assert w.needs_sync(later, T0)
    command = w.sync_command("back", later)
    assert (command.returned, command.want) == (49, 0)
    w.take_results(gate.apply(command, later))
    assert (w.units, gate.leases["w"], gate.unleased) == (0, 0, 99)
    assert not w.needs_sync(later + 10, later)  # idle, nothing held: no sync until the idle heartbeat
    assert w.admit("o2", "m2", 1, later + 20) == "queued"  # demand again: units are asked for
    assert sync(gate, w, later + 20)[1] == {"o2": "admitted"}


def test_a_queued_request_waits_at_most_queue_wait_ms_then_is_throttled():
    gate = open_gate(quantity=10)
    a, b = holder(gate, "a", block=10), holder(gate, "b", block=10)
    a.admit("keep-busy", "ma", 1, T0)
    assert b.admit("o1", "m1", 1, T0) == "queued"
    assert b.drain_queue(T0 + QUEUE_WAIT_MS - 1) == {}
    assert b.drain_queue(T0 + QUEUE_WAIT_MS) == {"o1": "throttled"}
    assert b.members.get("m1", 0) == 0  # the member may try again


def test_a_queued_request_is_told_sold_out_only_when_nothing_is_left_anywhere():
    gate = open_gate(quantity=2)
    a, b = holder(gate, "a", block=2), holder(gate, "b", block=2)
    assert b.admit("b1", "mb", 1, T0) == "queued"
    a.admit("a1", "m1", 1, T0)
    a.admit("a2", "m2", 1, T0)
    sync(gate, a, T0)
    assert sync(gate, b, T0 + 1)[1] == {"b1": "sold_out"}


def test_a_refused_row_unsells_the_unit_for_someone_else():
    gate = open_gate(quantity=1)
    w = holder(gate, "w", block=1)
    assert w.admit("o1", "bad", 1, T0) == "admitted"
    assert sync(gate, w, T0)[0] == {"o1": "accepted"} and gate.sold == 1
    w.rows_failed([AdmittedSale(order_id="o1", member="bad", qty=1)])
    command = w.sync_command("s-next", T0)
    assert command.released == ("o1",)
    w.take_results(gate.apply(command, T0))
    assert (gate.sold, gate.released_units, gate.audit()) == (0, 1, [])
    assert w.admit("o2", "good", 1, T0 + 1) in ("admitted", "queued")
    sync(gate, w, T0 + 1)
    assert sync(gate, w, T0 + 2)[0] == {"o2": "accepted"} and gate.orders == {"o2": ("good", 1)}


def test_an_unsure_row_stays_sold_until_looked_up():
    gate = open_gate(quantity=5)
    w = holder(gate, "w", block=5)
    w.admit("o1", "m1", 1, T0)
    w.admit("o2", "m2", 1, T0)
    sync(gate, w, T0)
    w.rows_unsure([AdmittedSale(order_id="o1", member="m1", qty=1), AdmittedSale(order_id="o2", member="m2", qty=1)])
    sync(gate, w, T0 + 1)  # the database is still away: both stay sold, unrecorded
    assert gate.sold == 2 and gate.status()["unrecorded"] == 2
    w.rows_checked(["o1", "o2"], present={"o1"})  # o1's row made it, o2's did not
    sync(gate, w, T0 + 2)
    assert gate.orders == {"o1": ("m1", 1)} and gate.status()["unrecorded"] == 0 and gate.audit() == []
    assert w.members.get("m2", 0) == 0


def test_a_same_key_retry_through_another_worker_takes_the_sale_over():
    """Worker a sold o1 but could not write its row; the buyer's retry went to b, which wrote it: a's release of o1
    comes later and must not unsell it."""
    gate = open_gate(quantity=5)
    a, b = holder(gate, "a", block=2), holder(gate, "b", block=2)
    a.admit("o1", "m1", 1, T0)
    sync(gate, a, T0)
    b.admit("o1", "m1", 1, T0 + 1)
    assert sync(gate, b, T0 + 1)[0] == {"o1": "accepted"}  # a duplicate, accepted again: b writes the row
    a.rows_failed([AdmittedSale(order_id="o1", member="m1", qty=1)])
    sync(gate, a, T0 + 2)
    sync(gate, b, T0 + 2)
    assert gate.orders == {"o1": ("m1", 1)} and gate.sold == 1 and gate.status()["unrecorded"] == 0


def test_a_silent_workers_unrecorded_sales_are_adopted_and_checked():
    gate = open_gate(quantity=5)
    a, b = holder(gate, "a", block=2), holder(gate, "b", block=2)
    a.admit("o1", "m1", 1, T0)
    a.admit("o2", "m2", 1, T0)
    sync(gate, a, T0)  # then a dies before writing its rows (or after writing one)
    later = T0 + ORPHAN_AFTER_MS + 1
    assert gate.apply(Expire(id="e1"), later)["orphaned"] == 2
    command = b.sync_command("b-adopt", later)
    result = gate.apply(command, later)
    assert sorted(result["adopted"]) == ["o1", "o2"]
    b.take_results(result)
    b.rows_checked(sorted(b.unsure), present={"o2"})
    sync(gate, b, later + 1)
    assert gate.orders == {"o2": ("m2", 1)} and gate.status()["unrecorded"] == 0 and gate.audit() == []


def test_a_lost_sync_is_sent_again_unchanged_before_any_other():
    gate = open_gate(quantity=5)
    w = holder(gate, "w", block=5)
    w.admit("o1", "m1", 1, T0)
    first = w.sync_command("s1", T0)
    w.admit("o2", "m2", 1, T0)  # admitted while the first sync is away
    assert w.sync_command("s2", T0) is first  # the answer never came: the same command again
    assert [s.order_id for s in w.in_flight] == ["o1"]
    assert w.take_results(gate.apply(first, T0)) == {"o1": "accepted"}
    assert [s.order_id for s in w.sync_command("s3", T0).sales] == ["o2"]


def test_a_unit_unsold_after_sell_out_is_heard_of_soon_by_a_worker_whose_buyers_hear_sold_out():
    gate = open_gate(quantity=1)
    a, b = holder(gate, "a", block=1), holder(gate, "b", block=1)
    a.admit("o1", "m1", 1, T0)
    sync(gate, a, T0)
    sync(gate, b, T0)
    assert b.admit("o2", "m2", 1, T0 + 1) == "sold_out"
    a.rows_failed([AdmittedSale(order_id="o1", member="m1", qty=1)])
    sync(gate, a, T0 + 2)  # o1's row was refused: the unit is back
    assert not b.needs_sync(T0 + 50, T0) and b.needs_sync(T0 + SOLD_OUT_SYNC_MS, T0)
    sync(gate, b, T0 + SOLD_OUT_SYNC_MS)
    assert b.admit("o3", "m3", 1, T0 + SOLD_OUT_SYNC_MS) in ("admitted", "queued")


def test_no_more_requests_wait_than_units_are_left():
    """The last unit is leased to a; b's buyers do not all wait for it (they would hold their connections in
    vain): `QUEUE_FLOOR` wait, the others are told to retry (429), none is told sold out."""
    gate = open_gate(quantity=1)
    holder(gate, "a", block=1)
    b = holder(gate, "b", block=1)
    assert [b.admit(f"b{i}", f"m{i}", 1, T0) for i in range(QUEUE_FLOOR)] == ["queued"] * QUEUE_FLOOR
    assert [b.admit(f"c{i}", f"n{i}", 1, T0) for i in range(3)] == ["throttled"] * 3
    assert b.members.get("n1", 0) == 0


def test_a_member_who_bought_through_one_worker_is_refused_by_the_others_without_asking_the_gate():
    gate = open_gate(quantity=10, limit=1)
    a, b = holder(gate, "a", block=2), holder(gate, "b", block=2)
    a.admit("o1", "alice", 1, T0)
    sync(gate, a, T0)
    sync(gate, b, T0 + 1)  # the gate's feed: alice has 1 unit
    assert b.admit("o2", "alice", 1, T0 + 2) == "over_limit" and b.units == 2  # no unit spent on asking
    a.rows_failed([AdmittedSale(order_id="o1", member="alice", qty=1)])
    sync(gate, a, T0 + 3)  # her row failed: the unit is unsold, and she may buy again
    sync(gate, b, T0 + 4)
    assert b.gate_units.get("alice", 0) == 0 and b.admit("o3", "alice", 1, T0 + 5) == "admitted"
    first = gate.apply(LeaseSync(id="late", worker="c", members_seen=1), T0 + 6)
    assert (first["members"], first["members_seen"]) == ([["alice", 0, "o1", -1]], 2)  # read on from where it was


def test_a_same_key_retry_through_another_worker_is_not_refused_as_over_the_limit():
    gate = open_gate(quantity=10, limit=1)
    a, b = holder(gate, "a", block=2), holder(gate, "b", block=2)
    a.admit("o1", "alice", 1, T0)
    sync(gate, a, T0)
    sync(gate, b, T0 + 1)
    assert b.admit("o2", "alice", 1, T0 + 2) == "over_limit"  # another order
    assert b.admit("o1", "alice", 1, T0 + 2) == "admitted"  # the same order again: the gate accepts the duplicate
    assert sync(gate, b, T0 + 3)[0] == {"o1": "accepted"} and gate.sold == 1
