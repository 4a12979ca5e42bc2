"""MemberLedger without Ray: double entry, idempotent transfers, offline floor limit and its flags, points, levels."""
from __future__ import annotations

import copy

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors.base import Expire, Result
from actors.ledger_holds import LIVE_HOLDS_PER_STORE_MEMBER_MAX, STORE_HELD_MAX_FEN, STORE_LIVE_HOLDS_MAX
from actors.member_ledger import (
    MONTH_MS,
    POINTS_ISSUED,
    SALES,
    Capture,
    Hold,
    MemberLedger,
    RecordSpend,
    RedeemPoints,
    Refund,
    Release,
    Spend,
    TopUp,
)
from protocol.codec import pack, unpack
from protocol.errors import ProtocolError

T0 = 1_767_225_600_000


def test_topup_spend_and_points():
    ledger = MemberLedger()
    assert ledger.apply(TopUp(id="t1", member="M1", amount_fen=10_000), T0)["stored_value_fen"] == 10_000
    spent = ledger.apply(Spend(id="s1", member="M1", amount_fen=2_550), T0)
    assert (spent["stored_value_fen"], spent["points"], spent["points_earned"]) == (7_450, 25, 25)
    assert ledger.apply(RedeemPoints(id="p1", member="M1", points=30), T0).reason == "insufficient points"
    assert ledger.apply(RedeemPoints(id="p2", member="M1", points=20), T0)["points"] == 5
    assert ledger.audit() == []


def test_a_spend_result_carries_its_entries_and_the_member_view():
    ledger = MemberLedger()
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=1_000), T0)
    assert ledger.apply(Spend(id="s1", member="M1", amount_fen=350), T0) == Result(status="ok", values={
        "entries": [["m:M1:sv", SALES, 350], [POINTS_ISSUED, "m:M1:pts", 3]], "points_earned": 3,
        "member_id": "M1", "stored_value_fen": 650, "points": 3, "level": "regular"})
    assert ledger.apply(Spend(id="s2", member="M1", amount_fen=651), T0) == Result(
        status="rejected", reason="insufficient stored value",
        values={"member_id": "M1", "stored_value_fen": 650, "points": 3, "level": "regular"})


def test_transfer_ids_exists_and_conflict():
    ledger = MemberLedger()
    first = ledger.apply(TopUp(id="t1", member="M1", amount_fen=500), T0)
    again = ledger.apply(TopUp(id="t1", member="M1", amount_fen=500), T0)
    assert again == Result(status="exists", first=first) and again.settled == first and again.succeeded
    assert ledger.apply(TopUp(id="t1", member="M1", amount_fen=900), T0) == Result(
        status="conflict", reason="id t1 was used for a different topup")
    assert ledger.member_view("M1", T0)["stored_value_fen"] == 500


def test_online_spend_never_overdraws_offline_is_flagged():
    ledger = MemberLedger(floor_limit_fen=5_000)
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=1_000), T0)
    assert ledger.apply(Spend(id="s1", member="M1", amount_fen=1_500), T0).reason == "insufficient stored value"
    offline = ledger.apply(Spend(id="s2", member="M1", amount_fen=4_000, offline=True), T0)
    assert offline == Result(status="ok", values={
        "entries": [["m:M1:sv", SALES, 4_000], [POINTS_ISSUED, "m:M1:pts", 40]], "points_earned": 40,
        "overdraft": True, "over_floor": False,
        "member_id": "M1", "stored_value_fen": -3_000, "points": 40, "level": "regular"})
    beyond = ledger.apply(Spend(id="s3", member="M1", amount_fen=3_000, offline=True), T0 + 1)
    # past the allowance: the sale is recorded in full, the member debited only to the allowance, the store owes the
    # rest, and the audit reports it
    assert beyond["over_floor"] is True and beyond["violation"] is True and beyond["stored_value_fen"] == -5_000
    assert beyond["disputed_fen"] == 1_000 and beyond["entries"][:2] == [["m:M1:sv", SALES, 2_000],
                                                                        ["sys:disputed:?", SALES, 1_000]]
    # one flag per member, the latest overdraft's, while the balance is negative
    assert ledger.flags == {"M1": {"member": "M1", "transfer_id": "s3", "balance_after": -5_000, "at_ms": T0 + 1,
                                   "overdraft": True, "over_floor": True}}
    assert ledger.audit() == [
        "violation: offline stored-value spend s3 of 3000 fen by member M1 at store ? past the offline allowance of "
        "5000 fen (member debited 2000 fen, balance after: -5000 fen)",
        "disputed: store ? owes 1000 fen of stored-value spends it claimed and the ledger did not believe "
        "(sys:disputed:?)"]


def test_attack_a_store_claiming_offline_sales_cannot_take_a_member_past_the_allowance():
    """A hostile store says it sold 1,000,000 yuan to a member offline: the sale stays, the member pays 50 yuan."""
    ledger = MemberLedger(floor_limit_fen=5_000)
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=10_000), T0)
    for i in range(3):
        r = ledger.apply(Spend(id=f"s{i}", member="M1", amount_fen=33_333_333, offline=True, store="EVIL"), T0 + i)
        assert r.status == "ok" and r["violation"] is True
    assert ledger.balance("m:M1:sv") == -5_000 and ledger.balance("sys:disputed:EVIL") == -(99_999_999 - 15_000)
    assert ledger.balance(SALES) == 99_999_999  # every sale recorded in full
    assert ledger.balance("m:M1:pts") == 150  # points only on what the member paid
    assert any("store EVIL owes 99984999 fen" in p for p in ledger.audit())
    assert not any("sum to" in p for p in ledger.audit())  # still double entry


def test_attack_offline_claims_cannot_eat_a_members_held_stored_value_past_the_allowance():
    """The member's stored value is held for a sale at S1; EVIL claims offline sales meanwhile: it gets the
    allowance once (not once per claim while the balance stays >= 0), and S1's capture leaves the member at -50.00."""
    ledger = MemberLedger(floor_limit_fen=5_000)
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=10_000), T0)
    ledger.apply(Hold(id="h1", member="M1", amount_fen=10_000, store="S1"), T0)
    for i in range(3):
        ledger.apply(Spend(id=f"s{i}", member="M1", amount_fen=5_000, offline=True, store="EVIL"), T0)
    assert ledger.balance("m:M1:sv") == 5_000 and ledger.balance("sys:disputed:EVIL") == -10_000
    assert ledger.apply(Capture(id="sv:1", member="M1", hold_id="h1", amount_fen=10_000, store="S1"), T0)["captured"]
    assert ledger.balance("m:M1:sv") == -5_000


def test_attack_an_online_sale_with_a_made_up_hold_debits_only_within_the_allowance():
    ledger = MemberLedger(floor_limit_fen=5_000)
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=10_000), T0)
    forged = ledger.apply(Capture(id="sv:f", member="M1", hold_id="hold:made-up", amount_fen=100_000_000,
                                  store="EVIL"), T0)
    assert forged["captured"] is False and forged["violation"] is True
    assert forged["stored_value_fen"] == -5_000 and forged["disputed_fen"] == 100_000_000 - 15_000
    # another store's valid hold is neither captured nor paid from by EVIL
    ledger.apply(TopUp(id="t2", member="M2", amount_fen=10_000), T0)
    ledger.apply(Hold(id="h2", member="M2", amount_fen=10_000, store="S1"), T0)
    stolen = ledger.apply(Capture(id="sv:g", member="M2", hold_id="h2", amount_fen=10_000, store="EVIL"), T0)
    assert stolen["captured"] is False and stolen["stored_value_fen"] == 5_000 and "h2" in ledger.holds
    assert ledger.apply(Capture(id="sv:h", member="M2", hold_id="h2", amount_fen=10_000, store="S1"), T0)["captured"]


def test_flags_are_dropped_once_the_balance_is_back_at_zero_or_above():
    ledger = MemberLedger(floor_limit_fen=5_000)
    ledger.apply(Spend(id="s1", member="M1", amount_fen=2_000, offline=True), T0)
    ledger.apply(Spend(id="s2", member="M2", amount_fen=2_000, offline=True), T0)
    assert set(ledger.flags) == {"M1", "M2"} and ledger.audit() == []
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=1_999), T0)  # still -1: flagged
    assert set(ledger.flags) == {"M1", "M2"} and ledger.audit() == []
    ledger.apply(TopUp(id="t2", member="M1", amount_fen=1), T0)  # exactly zero: cleared
    assert set(ledger.flags) == {"M2"} and ledger.audit() == []
    ledger.apply(Refund(id="f1", member="M2", amount_fen=2_500), T0)  # above zero: cleared
    assert ledger.flags == {} and ledger.audit() == []
    # bounded: many members overdrawn and paid back leave nothing behind
    for i in range(500):
        ledger.apply(Spend(id=f"o{i}", member=f"X{i}", amount_fen=100 + i, offline=True), T0)
        assert len(ledger.flags) == 1 and ledger.audit() == []
        ledger.apply(TopUp(id=f"p{i}", member=f"X{i}", amount_fen=100 + i + i % 2), T0)
        assert ledger.flags == {} and ledger.audit() == []
    # ... and an overdraft flag is still raised next time
    ledger.apply(Spend(id="again", member="M1", amount_fen=1, offline=True), T0)
    assert set(ledger.flags) == {"M1"} and ledger.audit() == []


def test_a_negative_balance_without_its_flag_is_reported_by_audit():
    ledger = MemberLedger()
    ledger.apply(Spend(id="s1", member="M1", amount_fen=200, offline=True), T0)
    del ledger.flags["M1"]
    assert ledger.audit() == ["m:M1:sv is negative (-200) without an offline overdraft flag"]


def test_level_follows_rolling_spend():
    ledger = MemberLedger()
    ledger.apply(RecordSpend(id="r1", member="M1", amount_fen=600_000), T0)
    assert ledger.level("M1", T0) == "gold"
    assert ledger.level("M1", T0 + 12 * MONTH_MS) == "regular"  # a year later it has rolled off


@pytest.mark.parametrize("wire, message", [
    ({"op": "topup", "id": "t", "member": "M1", "amount_fen": 0}, "topup: amount_fen must be positive"),
    ({"op": "spend", "id": "s", "member": "M1", "amount_fen": -5, "offline": True}, "spend: amount_fen must be positive"),
    ({"op": "record_spend", "id": "r", "member": "M1", "amount_fen": 0}, "record_spend: amount_fen must be positive"),
    ({"op": "refund", "id": "f", "member": "M1", "amount_fen": -1}, "refund: amount_fen must be positive"),
    ({"op": "redeem_points", "id": "p", "member": "M1", "points": 0}, "redeem_points: points must be positive"),
    ({"op": "spend", "id": "s", "member": "", "amount_fen": 5}, "spend: member must not be empty"),
])
def test_a_command_that_fails_validation_is_refused_at_construction_and_by_decode(wire, message):
    kind = {c.OP: c for c in MemberLedger.COMMANDS}[wire["op"]]
    with pytest.raises(ProtocolError, match=message):
        kind(**{k: v for k, v in wire.items() if k != "op"})
    with pytest.raises(ProtocolError, match=message):
        MemberLedger.decode(wire)


def test_decode_refuses_bad_types_and_unknown_ops():
    with pytest.raises(ProtocolError, match=r"spend\.offline: expected bool, got int"):
        MemberLedger.decode({"op": "spend", "id": "s", "member": "M1", "amount_fen": 5, "offline": 1})
    with pytest.raises(ProtocolError, match="MemberLedger: unknown op 'grant'"):
        MemberLedger.decode({"op": "grant", "id": "g", "store": "S1", "sku": "A", "qty": 1})
    assert MemberLedger.decode({"op": "spend", "id": "s", "member": "M1", "amount_fen": 5}) == Spend(
        id="s", member="M1", amount_fen=5, offline=False)


def test_snapshot_round_trip_keeps_state_flags_and_remembered_results():
    ledger = MemberLedger(floor_limit_fen=1_000)
    commands = [TopUp(id="t1", member="M1", amount_fen=500), Spend(id="s1", member="M1", amount_fen=900),
                Spend(id="s2", member="M2", amount_fen=900, offline=True),
                RecordSpend(id="r1", member="M1", amount_fen=120_000), RedeemPoints(id="p1", member="M1", points=99_999),
                Refund(id="f1", member="M1", amount_fen=10)]
    firsts = [ledger.apply(c, T0) for c in commands]
    assert [r.status for r in firsts] == ["ok", "rejected", "ok", "ok", "rejected", "ok"]
    restored = MemberLedger()
    restored.restore(unpack(pack(ledger.snapshot())))  # as the durable host stores it
    assert restored.floor_limit_fen == 1_000 and restored.balances == ledger.balances
    assert restored.flags == ledger.flags and set(restored.flags) == {"M2"}
    assert restored.member_view("M1", T0) == ledger.member_view("M1", T0) and restored.level("M1", T0) == "silver"
    assert [restored.apply(c, T0 + 1) for c in commands] == [Result(status="exists", first=f) for f in firsts]
    assert restored.apply(TopUp(id="t1", member="M1", amount_fen=501), T0 + 1).status == "conflict"
    assert restored.balances == ledger.balances and restored.audit() == []


def test_a_snapshot_with_flags_in_the_old_list_form_keeps_only_the_members_still_overdrawn():
    ledger = MemberLedger()
    ledger.apply(Spend(id="s1", member="M1", amount_fen=300, offline=True), T0)
    ledger.apply(Spend(id="s2", member="M2", amount_fen=300, offline=True), T0)
    ledger.apply(TopUp(id="t1", member="M2", amount_fen=300), T0)  # M2 is back at zero
    data = unpack(pack(ledger.snapshot()))
    m1 = ledger.flags["M1"]
    old_m1 = {**m1, "transfer_id": "s0", "balance_after": -100}
    data["state"]["flags"] = [old_m1, m1, {**m1, "member": "M2", "transfer_id": "s2"}]  # never cleared, then
    restored = MemberLedger()
    restored.restore(data)
    assert restored.flags == {"M1": m1} and restored.audit() == []


def test_expire_forgets_old_ids_only_when_there_are_some():
    ledger = MemberLedger()
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=500), T0)
    assert ledger.apply(Expire(id="e1"), T0 + 1).noop and "e1" not in ledger.seen
    done = ledger.apply(Expire(id="e2"), T0 + 24 * 3600 * 1000 + 1)
    assert done == Result(status="ok") and "t1" not in ledger.seen


def test_the_till_double_spend_is_refused_at_the_fourth_hold_and_never_overdraws():
    """Issue 14: 50.00 yuan, four 18.25 purchases at an online till. Each sale holds first; the fourth hold is
    refused; captures take the holds once; the balance never goes below zero."""
    ledger = MemberLedger()
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=5_000), T0)
    verdicts = []
    for i in range(4):
        held = ledger.apply(Hold(id=f"h{i}", member="M1", amount_fen=1_825, store="S1"), T0 + i)
        verdicts.append(held.status)
        if held.status == "ok":
            ledger.apply(Capture(id=f"sv{i}", member="M1", hold_id=f"h{i}", amount_fen=1_825, store="S1"), T0 + i)
    assert verdicts == ["ok", "ok", "rejected", "rejected"]  # 50.00 - 2 x 18.25 = 13.50 < 18.25
    assert ledger.balance("m:M1:sv") == 5_000 - 2 * 1_825 and ledger.audit() == []


def test_holds_set_value_aside_until_captured_released_or_lapsed():
    ledger = MemberLedger()
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=5_000), T0)
    held = ledger.apply(Hold(id="h1", member="M1", amount_fen=3_000, store="S1", ttl_ms=60_000), T0)
    assert held["available_fen"] == 2_000 and held["expires_ms"] == T0 + 60_000
    assert held["stored_value_fen"] == 5_000  # nothing is spent yet
    # online spends and other holds see only what is available
    assert ledger.apply(Spend(id="s1", member="M1", amount_fen=2_500), T0).reason == "insufficient stored value"
    refused = ledger.apply(Hold(id="h2", member="M1", amount_fen=2_500, store="S2"), T0)
    assert refused.reason == "insufficient stored value" and refused["available_fen"] == 2_000
    # released: available again, and the release is idempotent
    assert ledger.apply(Release(id="r1", member="M1", hold_id="h1"), T0)["released"] is True
    assert ledger.apply(Release(id="r2", member="M1", hold_id="h1"), T0)["released"] is False
    assert ledger.available("M1", T0) == 5_000
    # lapsed: the expiry sweep releases a hold never captured
    ledger.apply(Hold(id="h3", member="M1", amount_fen=4_000, store="S1", ttl_ms=60_000), T0)
    assert ledger.available("M1", T0 + 59_999) == 1_000
    assert not ledger.apply(Expire(id="e1"), T0 + 60_000).noop
    assert ledger.holds == {} and ledger.settled_holds["h3"]["state"] == "lapsed"
    assert ledger.available("M1", T0 + 60_000) == 5_000
    assert ledger.audit() == []


def test_a_capture_takes_its_hold_once_and_a_capture_without_a_valid_hold_is_a_violation():
    ledger = MemberLedger()
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=5_000), T0)
    ledger.apply(Hold(id="h1", member="M1", amount_fen=1_825, store="S1"), T0)
    captured = ledger.apply(Capture(id="sv:1", member="M1", hold_id="h1", amount_fen=1_825, store="S1"), T0)
    assert captured["captured"] is True and captured["stored_value_fen"] == 3_175 and "violation" not in captured.values
    assert ledger.apply(Capture(id="sv:1", member="M1", hold_id="h1", amount_fen=1_825, store="S1"), T0).status == "exists"
    assert ledger.audit() == []
    # the same hold captured by another sale; a hold of another member; no hold at all (a forged "online" sale)
    again = ledger.apply(Capture(id="sv:2", member="M1", hold_id="h1", amount_fen=1_825, store="S1"), T0)
    assert again["violation"] is True and again["captured"] is False
    ledger.apply(TopUp(id="t2", member="M2", amount_fen=100), T0)
    assert ledger.apply(Hold(id="h2", member="M2", amount_fen=100, store="S1"), T0).status == "ok"
    ledger.apply(Capture(id="sv:3", member="M1", hold_id="h2", amount_fen=100, store="S1"), T0)
    forged = ledger.apply(Capture(id="sv:4", member="M1", hold_id="none", amount_fen=5_000, store="S7"), T0)
    # believed only as an offline spend at S7: what M1 had (1,250) and S7's allowance (5,000) cover it
    assert forged["stored_value_fen"] == 3_175 - 1_825 - 100 - 5_000 and forged["overdraft"] is True
    problems = ledger.audit()
    assert len(problems) == 3 and all(p.startswith("violation: online stored-value spend") for p in problems)
    assert "hold h1 was already captured" in problems[0] and "hold h2 is for member M2" in problems[1]
    assert "without a valid hold: no hold none (member debited 5000 fen, balance after: -3750 fen)" in problems[2]


def test_attack_a_store_cannot_freeze_members_stored_value_with_holds():
    ledger = MemberLedger()
    for m in ("M1", "M2"):
        ledger.apply(TopUp(id=f"t{m}", member=m, amount_fen=400_000), T0)
    for i in range(LIVE_HOLDS_PER_STORE_MEMBER_MAX):
        assert ledger.apply(Hold(id=f"h{i}", member="M1", amount_fen=1, store="S1"), T0).status == "ok"
    assert ledger.apply(Hold(id="hx", member="M1", amount_fen=1, store="S1"), T0).reason == (
        "store S1 already holds member M1's stored value: pay or void that sale first")
    assert ledger.apply(Hold(id="hy", member="M1", amount_fen=1, store="S2"), T0).status == "ok"  # another store
    # a store holds at most STORE_HELD_MAX_FEN in all
    assert ledger.apply(Hold(id="h4", member="M2", amount_fen=STORE_HELD_MAX_FEN, store="S1"), T0).reason == (
        "store S1 holds too much stored value at once: pay or void its sales first")
    # another store cannot release (or capture) S1's hold
    assert ledger.apply(Release(id="r0", member="M1", hold_id="h0", store="S2"), T0)["released"] is False
    assert "h0" in ledger.holds
    assert ledger.apply(Release(id="r1", member="M1", hold_id="h0", store="S1"), T0)["released"] is True
    assert ledger.apply(Hold(id="h5", member="M1", amount_fen=1, store="S1"), T0).status == "ok"
    # no holds for a member the ledger has no stored value for
    assert ledger.apply(Hold(id="h6", member="ghost", amount_fen=1, store="S1"), T0).reason == (
        "no stored value for member ghost")
    many = MemberLedger()
    for i in range(STORE_LIVE_HOLDS_MAX + 1):
        many.apply(TopUp(id=f"t{i}", member=f"M{i}", amount_fen=10), T0)
        r = many.apply(Hold(id=f"h{i}", member=f"M{i}", amount_fen=1, store="S1"), T0)
        assert (r.status == "ok") == (i < STORE_LIVE_HOLDS_MAX)


def test_a_capture_after_the_hold_lapsed_counts_as_an_offline_spend_within_the_allowance():
    ledger = MemberLedger(floor_limit_fen=1_000)
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=1_000), T0)
    ledger.apply(Hold(id="h1", member="M1", amount_fen=1_000, store="S1", ttl_ms=1_000), T0)
    ledger.apply(Expire(id="e1"), T0 + 1_000)  # the box was cut off after its sale: the hold lapsed
    ledger.apply(Spend(id="s1", member="M1", amount_fen=800), T0 + 1_001)  # meanwhile spent online
    late = ledger.apply(Capture(id="sv:1", member="M1", hold_id="h1", amount_fen=1_000, store="S1"), T0 + 2_000)
    assert late["late"] == "lapsed" and late["overdraft"] is True and late["stored_value_fen"] == -800
    assert ledger.audit() == []  # within the allowance: flagged as an overdraft, not a violation


def test_offline_overdraft_is_counted_per_store_against_the_allowance():
    ledger = MemberLedger(floor_limit_fen=1_000)
    ledger.apply(Spend(id="a", member="M1", amount_fen=900, offline=True, store="S1"), T0)
    ledger.apply(Spend(id="b", member="M1", amount_fen=900, offline=True, store="S2"), T0)
    assert ledger.balance("m:M1:sv") == -1_800 and ledger.audit() == []  # each store within its allowance
    ledger.apply(Spend(id="c", member="M1", amount_fen=200, offline=True, store="S1"), T0)
    assert ledger.balance("m:M1:sv") == -1_900 and ledger.balance("sys:disputed:S1") == -100
    assert [p.split(" (")[0] for p in ledger.audit()] == [
        "violation: offline stored-value spend c of 200 fen by member M1 at store S1 past the offline allowance of "
        "1000 fen", "disputed: store S1 owes 100 fen of stored-value spends it claimed and the ledger did not believe"]


def test_holds_and_violations_survive_a_snapshot():
    ledger = MemberLedger()
    ledger.apply(TopUp(id="t1", member="M1", amount_fen=1_000), T0)
    ledger.apply(Hold(id="h1", member="M1", amount_fen=600, store="S1"), T0)
    ledger.apply(Capture(id="sv:x", member="M1", hold_id="nope", amount_fen=10, store="S1"), T0)
    restored = MemberLedger()
    restored.restore(unpack(pack(ledger.snapshot())))
    assert restored.holds == ledger.holds and restored.audit() == ledger.audit() != []
    assert restored.available("M1", T0) == 390


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.ledger, self.n, self.now = MemberLedger(floor_limit_fen=3_000), 0, T0

    members = st.sampled_from(["A", "B", "C"])

    def _do(self, kind, cid=None, **fields) -> Result:
        self.n += 1
        return self.ledger.apply(kind(id=cid or f"x{self.n}", **fields), self.now)

    @rule(member=members, amount=st.integers(1, 5_000))
    def topup(self, member, amount):
        assert self._do(TopUp, member=member, amount_fen=amount).status == "ok"

    @rule(member=members, amount=st.integers(1, 5_000), offline=st.booleans())
    def spend(self, member, amount, offline):
        before = self.ledger.balance(f"m:{member}:sv")
        result = self._do(Spend, member=member, amount_fen=amount, offline=offline)
        if not offline:
            assert (result.status == "ok") == (before >= amount)
        else:
            assert result.status == "ok"  # the customer left with the goods: always recorded
            assert result.get("overdraft", False) == (before - amount < 0)
            assert result.get("violation", False) == (result.get("disputed_fen", 0) > 0)

    @rule(member=members, amount=st.integers(1, 5_000), capture=st.booleans())
    def hold(self, member, amount, capture):
        available = self.ledger.available(member, self.now)
        result = self._do(Hold, member=member, amount_fen=amount, store="S1")
        assert (result.status == "ok") == (available >= amount)
        if result.status == "ok":
            hold_id = f"x{self.n}"
            if capture:
                assert self._do(Capture, member=member, hold_id=hold_id, amount_fen=amount, store="S1")["captured"]
            else:
                assert self._do(Release, member=member, hold_id=hold_id, store="S1")["released"]

    @rule(member=members, amount=st.integers(1, 5_000))
    def refund(self, member, amount):
        assert self._do(Refund, member=member, amount_fen=amount).status == "ok"

    @rule(member=members, points=st.integers(1, 50))
    def redeem(self, member, points):
        self._do(RedeemPoints, member=member, points=points)

    @rule(member=members, amount=st.integers(1, 5_000), retry=st.booleans())
    def retried_topup(self, member, amount, retry):
        cid = "fixed-id"
        before = copy.deepcopy((self.ledger.balances, self.ledger.flags))
        result = self._do(TopUp, cid=cid, member=member, amount_fen=amount)
        if result.status in ("exists", "conflict"):
            assert (self.ledger.balances, self.ledger.flags) == before

    @invariant()
    def adds_up(self):  # every problem the audit reports is an offline spend past the allowance, nothing else
        problems = self.ledger.audit()
        assert [p for p in problems if not p.startswith("disputed: ")] == [
            f"violation: {v['reason']} (member debited {v['amount_fen'] - v['disputed_fen']} fen, balance after: "
            f"{v['balance_after']} fen)" for v in self.ledger.violations.values()]
        assert all("past the offline allowance" in v["reason"] for v in self.ledger.violations.values())

    @invariant()
    def no_member_below_the_allowance(self):  # one store's say-so ("?") takes a member at most the allowance below 0
        assert all(v >= -3_000 for a, v in self.ledger.balances.items() if a.endswith(":sv"))

    @invariant()
    def flags_are_exactly_the_overdrawn_members(self):
        overdrawn = {a.split(":")[1] for a, v in self.ledger.balances.items() if a.endswith(":sv") and v < 0}
        assert set(self.ledger.flags) == overdrawn


TestLedgerMachine = LedgerMachine.TestCase
