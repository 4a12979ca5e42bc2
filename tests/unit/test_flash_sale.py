"""FlashSaleGate and LeaseHolder without Ray: leases, exact sell-out, member limits, throttling, typed commands,
stateful."""
from __future__ import annotations

import random

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors.base import Expire, Result
from actors.flash_sale import LEASE_IDLE_MS, AdmittedSale, FlashSaleGate, LeaseHolder, LeaseSync, OpenSale
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
                verdicts = holder_.take_results(gate.apply(holder_.sync_command(Counter.next()), now))
                accepted.update({o: v for o, v in verdicts.items() if v == "accepted"})
            now += 5
    for holder_ in workers:
        verdicts = holder_.take_results(gate.apply(holder_.sync_command(Counter.next()), now))
        accepted.update({o: v for o, v in verdicts.items() if v == "accepted"})
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
    assert a.take_results(gate.apply(a.sync_command("s1"), T0)) == {"o1": "accepted"}
    assert b.take_results(gate.apply(b.sync_command("s2"), T0)) == {"o3": "over_limit"}  # ...the gate does
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
    verdicts = w1.take_results(gate.apply(w1.sync_command("s1"), T0 + LEASE_IDLE_MS + 2))
    assert verdicts == {"o1": "accepted"} and gate.sold == 1 and gate.audit() == []


def test_sync_retry_is_idempotent():
    gate = open_gate(quantity=5)
    w = holder(gate, "w")
    w.admit("o1", "m1", 1, T0)
    command = w.sync_command("s1")
    first = gate.apply(command, T0)
    assert gate.apply(command, T0) == Result(status="exists", first=first)
    assert gate.sold == 1


def test_a_sync_answer_lost_and_resent_gives_the_first_verdicts():
    gate = open_gate(quantity=5)
    w = holder(gate, "w", block=4)
    assert w.admit("o1", "m1", 1, T0) == "admitted"
    command = w.sync_command("s1")
    assert command == LeaseSync(id="s1", worker="w", sales=(AdmittedSale(order_id="o1", member="m1", qty=1),), want=0)
    first = gate.apply(command, T0)  # the answer is lost on the way back
    retried = gate.apply(command, T0)
    assert retried.status == "exists" and retried.settled == first and retried.succeeded
    assert w.take_results(retried) == {"o1": "accepted"}
    assert w.status == first.values and w.units == first["lease"]
    assert gate.sold == 1 and gate.audit() == []


def test_a_sync_result_reports_verdicts_and_the_workers_status():
    gate = open_gate(quantity=3, limit=1, rate=10)
    result = gate.apply(LeaseSync(id="s1", worker="w", sales=(AdmittedSale(order_id="o1", member="m1", qty=1),
                                                         AdmittedSale(order_id="o2", member="m1", qty=1),
                                                         AdmittedSale(order_id="o3", member="m2", qty=0)), want=1), T0)
    assert result == Result(status="ok", values={
        "results": [["o1", "accepted"], ["o2", "over_limit"], ["o3", "invalid"]], "lease": 1, "unleased": 1,
        "sold": 1, "sold_out": False, "rate_per_s": 10.0, "starts_ms": T0, "ends_ms": T0 + 3_600_000,
        "per_member_limit": 1, "price_fen": 990, "sku": "EGGS"})


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
    command = w.sync_command("s1")
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
    @initialize(quantity=st.integers(1, 30), limit=st.integers(1, 3))
    def setup(self, quantity, limit):
        self.gate = open_gate(quantity=quantity, limit=limit)
        self.workers = [holder(self.gate, f"w{i}", block=4) for i in range(3)]
        self.now, self.n = T0, 0

    @rule(w=st.integers(0, 2), member=st.integers(0, 8), qty=st.integers(1, 2))
    def admit(self, w, member, qty):
        self.n += 1
        self.workers[w].admit(f"o{self.n}", f"m{member}", qty, self.now)

    @rule(w=st.integers(0, 2))
    def sync(self, w):
        self.n += 1
        self.workers[w].take_results(self.gate.apply(self.workers[w].sync_command(f"s{self.n}"), self.now))

    @rule(ms=st.integers(0, 2 * LEASE_IDLE_MS))
    def tick(self, ms):
        self.now += ms
        self.n += 1
        assert self.gate.apply(Expire(id=f"e{self.n}"), self.now).status == "ok"

    @invariant()
    def never_over(self):
        assert self.gate.audit() == []
        assert self.gate.sold <= self.gate.quantity


TestGateMachine = GateMachine.TestCase


def test_a_failed_sync_forgets_its_sales_so_a_retry_is_not_refused_locally():
    gate = open_gate(quantity=10, limit=1)
    w = holder(gate, "w", block=5)
    assert w.admit("o1", "alice", 1, T0) == "admitted"
    w.sync_command("s1")  # sent, but the answer is lost
    assert w.abandon_in_flight() == ["o1"]
    assert w.admit("o1", "alice", 1, T0) == "admitted"  # the retry reaches the gate, which decides
    assert w.take_results(gate.apply(w.sync_command("s2"), T0)) == {"o1": "accepted"}
