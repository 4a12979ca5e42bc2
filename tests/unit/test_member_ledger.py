"""MemberLedger without Ray: double entry, idempotent transfers, offline floor limit, points, levels."""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors.member_ledger import MONTH_MS, MemberLedger

T0 = 1_767_225_600_000


def run(ledger, op, cid, now=T0, **fields):
    return ledger.apply({"op": op, "id": cid, **fields}, now)


def test_topup_spend_and_points():
    ledger = MemberLedger()
    assert run(ledger, "topup", "t1", member="M1", amount_fen=10_000)["stored_value_fen"] == 10_000
    spent = run(ledger, "spend", "s1", member="M1", amount_fen=2_550)
    assert (spent["stored_value_fen"], spent["points"], spent["points_earned"]) == (7_450, 25, 25)
    assert run(ledger, "redeem_points", "p1", member="M1", points=30)["reason"] == "insufficient points"
    assert run(ledger, "redeem_points", "p2", member="M1", points=20)["points"] == 5
    assert ledger.audit() == []


def test_transfer_ids_exists_and_conflict():
    ledger = MemberLedger()
    first = run(ledger, "topup", "t1", member="M1", amount_fen=500)
    assert run(ledger, "topup", "t1", member="M1", amount_fen=500) == {"status": "exists", "first": first}
    assert run(ledger, "topup", "t1", member="M1", amount_fen=900)["status"] == "conflict"
    assert ledger.member_view("M1", T0)["stored_value_fen"] == 500


def test_online_spend_never_overdraws_offline_is_flagged():
    ledger = MemberLedger(floor_limit_fen=5_000)
    run(ledger, "topup", "t1", member="M1", amount_fen=1_000)
    assert run(ledger, "spend", "s1", member="M1", amount_fen=1_500)["reason"] == "insufficient stored value"
    offline = run(ledger, "spend", "s2", member="M1", amount_fen=4_000, offline=True)
    assert (offline["stored_value_fen"], offline["overdraft"], offline["over_floor"]) == (-3_000, True, False)
    beyond = run(ledger, "spend", "s3", member="M1", amount_fen=3_000, offline=True)
    assert beyond["over_floor"] is True and beyond["stored_value_fen"] == -6_000
    assert len(ledger.flags) == 2 and ledger.audit() == []


def test_level_follows_rolling_spend():
    ledger = MemberLedger()
    run(ledger, "record_spend", "r1", member="M1", amount_fen=600_000)
    assert ledger.level("M1", T0) == "gold"
    assert ledger.level("M1", T0 + 12 * MONTH_MS) == "regular"  # a year later it has rolled off


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.ledger, self.n, self.now = MemberLedger(), 0, T0
        self.used: dict[str, dict] = {}

    members = st.sampled_from(["A", "B", "C"])

    def _do(self, op, cid=None, **fields):
        self.n += 1
        return run(self.ledger, op, cid or f"x{self.n}", now=self.now, **fields)

    @rule(member=members, amount=st.integers(1, 5_000))
    def topup(self, member, amount):
        self._do("topup", member=member, amount_fen=amount)

    @rule(member=members, amount=st.integers(1, 5_000), offline=st.booleans())
    def spend(self, member, amount, offline):
        before = self.ledger.balance(f"m:{member}:sv")
        result = self._do("spend", member=member, amount_fen=amount, offline=offline)
        if not offline:
            assert (result["status"] == "ok") == (before >= amount)

    @rule(member=members, points=st.integers(1, 50))
    def redeem(self, member, points):
        self._do("redeem_points", member=member, points=points)

    @rule(member=members, amount=st.integers(1, 5_000), retry=st.booleans())
    def retried_topup(self, member, amount, retry):
        cid = "fixed-id"
        before = dict(self.ledger.balances)
        result = self._do("topup", cid=cid, member=member, amount_fen=amount)
        if result["status"] in ("exists", "conflict"):
            assert self.ledger.balances == before

    @invariant()
    def adds_up(self):
        assert self.ledger.audit() == []


TestLedgerMachine = LedgerMachine.TestCase
