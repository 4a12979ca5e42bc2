"""FlashSaleGate and LeaseHolder without Ray: leases, exact sell-out, member limits, throttling, stateful."""
from __future__ import annotations

import random

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors.flash_sale import LEASE_IDLE_MS, FlashSaleGate, LeaseHolder

T0 = 1_767_225_600_000


def open_gate(quantity=100, limit=1, rate=1_000_000):
    gate = FlashSaleGate()
    gate.apply({"op": "open", "id": "open", "sale_id": "F1", "sku": "EGGS", "quantity": quantity, "price_fen": 990,
                "starts_ms": T0, "ends_ms": T0 + 3_600_000, "per_member_limit": limit, "rate_per_s": rate}, T0)
    return gate


def holder(gate, worker, now=T0, block=20):
    first = gate.apply({"op": "sync", "id": f"{worker}-0", "worker": worker, "want": block}, now)
    return LeaseHolder(worker, first, now, block=block)


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
    gate.apply({"op": "expire", "id": "e1"}, T0 + LEASE_IDLE_MS + 1)
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
    assert gate.apply(command, T0) == {"status": "exists", "first": first}
    assert gate.sold == 1


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
        self.gate.apply({"op": "expire", "id": f"e{self.n}"}, self.now)

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
