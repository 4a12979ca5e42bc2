"""PromotionBudgets (pure): a store's unused share taken back (ReclaimShare), once, with the budget adding up; a
store's late offline use after a reclaim still counted; till member uses on the one chain-wide count, past the
limit believed and recorded as a conflict."""
from __future__ import annotations

from actors.base import command_to_wire
from actors.promotion_budgets import (
    Consume,
    GrantShare,
    LimitConflictsQuery,
    MemberUse,
    PromotionBudgets,
    ReclaimShare,
    StoreUsed,
    TillMemberUses,
    Use,
)

NOW = 1_700_000_000_000


def granted(cap: int = 10_000, fen: int = 1_000, store: str = "S036") -> PromotionBudgets:
    a = PromotionBudgets()
    assert a.apply(GrantShare(id=f"g-{store}", store=store, rule_id="R", fen=fen, cap_fen=cap), NOW).status == "ok"
    return a


def test_reclaim_returns_the_unused_part_once_and_the_budget_adds_up():
    a = granted()
    a.apply(StoreUsed(id="u1", store="S036", rule_id="R", fen=300), NOW)
    assert a.left("R") == 9_000
    r = a.apply(ReclaimShare(id="rc1", store="S036", rule_id="R", reason="ended"), NOW + 1)
    assert r.status == "ok" and r["returned_fen"] == 700 and r["share_fen"] == 300
    assert a.left("R") == 9_700 and a.view("R")["shares"]["S036"] == 300  # what it used stays counted
    assert a.audit() == []
    assert a.apply(ReclaimShare(id="rc1", store="S036", rule_id="R", reason="ended"), NOW + 2).status == "exists"
    again = a.apply(ReclaimShare(id="rc2", store="S036", rule_id="R", reason="ended"), NOW + 3)
    assert again["returned_fen"] == 0 and a.left("R") == 9_700  # nothing unused left to take twice
    assert a.view("R")["reclaimed"]["S036"]["reason"] == "ended"


def test_a_use_reported_after_the_reclaim_is_counted_from_what_is_left():
    a = granted()
    a.apply(ReclaimShare(id="rc", store="S036", rule_id="R", reason="idle"), NOW)
    assert a.left("R") == 10_000 and a.view("R")["shares"]["S036"] == 0
    r = a.apply(StoreUsed(id="late", store="S036", rule_id="R", fen=400), NOW + 1)  # sold offline before it heard
    assert r["over_fen"] == 0 and a.left("R") == 9_600 and a.view("R")["shares"]["S036"] == 400
    assert a.audit() == []


def test_a_late_use_past_an_exhausted_budget_is_the_stores_over():
    a = granted(cap=1_000, fen=1_000)
    a.apply(ReclaimShare(id="rc", store="S036", rule_id="R", reason="changed"), NOW)
    a.apply(Consume(id="c", order_id="o1", member="m1", uses=(Use(rule_id="R", fen=900, cap_fen=1_000),)), NOW)
    r = a.apply(StoreUsed(id="late", store="S036", rule_id="R", fen=300), NOW + 1)
    assert r["over_fen"] == 200 and a.left("R") == 0 and a.view("R")["used"] == 1_000
    assert a.audit() == []


def test_only_that_stores_share_is_taken_back():
    a = granted()
    a.apply(GrantShare(id="g2", store="S037", rule_id="R", fen=1_000, cap_fen=10_000), NOW)
    a.apply(ReclaimShare(id="rc", store="S036", rule_id="R", reason="idle"), NOW)
    assert a.view("R")["shares"] == {"S036": 0, "S037": 1_000} and a.left("R") == 9_000 and a.audit() == []


def test_reclaim_survives_the_wire_and_a_snapshot():
    c = ReclaimShare(id="rc", store="S036", rule_id="R", reason="withdrawn")
    assert command_to_wire(c)["op"] == "reclaim_share"
    a = granted()
    a.apply(c, NOW)
    b = PromotionBudgets()
    b.restore_state(a.state_snapshot())
    assert b.left("R") == 10_000 and b.view("R")["reclaimed"]["S036"]["fen"] == 1_000


def test_till_member_uses_count_with_online_orders_and_past_the_limit_is_a_conflict():
    a = PromotionBudgets()
    limited = Use(rule_id="L", fen=100, cap_fen=0, per_member_limit=1)
    till = TillMemberUses(id="t1", store="S036", sale_id="SALE-1", member="m1", offline=False,
                          uses=(MemberUse(rule_id="L", per_member_limit=1),))
    assert a.apply(till, NOW)["conflicts"] == []
    assert a.view("L", "m1")["member_uses"] == 1
    online = a.apply(Consume(id="c1", order_id="o1", member="m1", uses=(limited,)), NOW)
    assert online.status == "rejected" and online["short"] == ["L"]  # the till's use counts online
    offline = TillMemberUses(id="t2", store="S037", sale_id="SALE-2", member="m1", offline=True,
                             uses=(MemberUse(rule_id="L", per_member_limit=1),))
    (conflict,) = a.apply(offline, NOW + 1)["conflicts"]  # believed: the sale stands, and the operator sees it
    assert conflict | {"at_ms": 0} == {"rule_id": "L", "member": "m1", "store": "S037", "sale_id": "SALE-2",
                                       "offline": True, "uses": 2, "limit": 1, "at_ms": 0}
    assert a.apply(offline, NOW + 2).status == "exists" and len(a.limit_conflicts) == 1  # a re-send counts once
    assert LimitConflictsQuery(store="S037").answer(a) == [conflict]
    assert LimitConflictsQuery(store="S036").answer(a) == []
    # the other way round: an online order's use counts at the till
    b = PromotionBudgets()
    b.apply(Consume(id="c1", order_id="o1", member="m2", uses=(Use(rule_id="L", fen=100, cap_fen=0,
                                                                     per_member_limit=1),)), NOW)
    assert b.view("L", "m2")["member_uses"] == 1


def test_when_a_share_is_due_taken_back():
    from actors.promotion_budgets import StoreSharesQuery, reclaim_reason
    from cloud.messaging.budget_reclaims import SHARE_IDLE_MS, regrant_blocked
    from protocol.pricing.rules import ItemDiscount

    a = granted()
    a.apply(StoreUsed(id="u1", store="S036", rule_id="R", fen=100), NOW)
    held = StoreSharesQuery(store="S036").answer(a)["R"]
    assert (held["unused"], held["share_cap"], held["active_ms"]) == (900, 10_000, NOW)
    rule = ItemDiscount(id="R", name="r", percent_off_bp=1000, skus=("X",), budget_fen=10_000)
    assert reclaim_reason(rule, held, NOW + 1, SHARE_IDLE_MS) is None  # in force, in use: it stays
    assert reclaim_reason(None, held, NOW + 1, SHARE_IDLE_MS) == "withdrawn"
    raised = ItemDiscount(id="R", name="r", percent_off_bp=1000, skus=("X",), budget_fen=20_000)
    assert reclaim_reason(raised, held, NOW + 1, SHARE_IDLE_MS) == "changed"
    ending = ItemDiscount(id="R", name="r", percent_off_bp=1000, skus=("X",), budget_fen=10_000,
                          ends_ms=(NOW // 60_000 + 1) * 60_000)
    assert reclaim_reason(ending, held, ending.ends_ms, SHARE_IDLE_MS) == "ended"
    assert reclaim_reason(rule, held, NOW + SHARE_IDLE_MS, SHARE_IDLE_MS) == "idle"
    assert reclaim_reason(None, held | {"unused": 0}, NOW, SHARE_IDLE_MS) is None  # nothing unused to take
    assert StoreSharesQuery(store="S037").answer(a) == {}
    a.apply(ReclaimShare(id="rc", store="S036", rule_id="R", reason="idle"), NOW + SHARE_IDLE_MS)
    after = StoreSharesQuery(store="S036").answer(a)["R"]
    assert regrant_blocked(rule, after, NOW + SHARE_IDLE_MS + 1)  # taken back as idle: not granted again at once
    assert not regrant_blocked(rule, after, NOW + 2 * SHARE_IDLE_MS)
    assert regrant_blocked(ending, None, ending.ends_ms) and not regrant_blocked(rule, None, NOW)


def test_each_take_back_is_numbered_and_a_grant_carries_the_number_before_it():
    """The store orders grants and take-backs by it (edge/budget_db.py): a grant from before a take-back is stale."""
    from actors.promotion_budgets import GrantShare
    a = granted()
    assert a.apply(GrantShare(id="g0", store="S036", rule_id="R", fen=1_000, cap_fen=10_000), NOW)["generation"] == 0
    assert a.apply(ReclaimShare(id="rc1", store="S036", rule_id="R", reason="idle"), NOW)["generation"] == 1
    assert a.apply(GrantShare(id="g1", store="S036", rule_id="R", fen=1_000, cap_fen=10_000), NOW)["generation"] == 1
    assert a.apply(ReclaimShare(id="rc2", store="S036", rule_id="R", reason="idle"), NOW)["generation"] == 2
    assert a.generation("R", "S037") == 0  # another store's count is its own


def test_a_whole_till_return_gives_the_sales_member_uses_back_once():
    from actors.promotion_budgets import MemberUse, TillMemberUses, TillSaleReturned
    a = PromotionBudgets()
    a.apply(TillMemberUses(id="t1", store="S036", sale_id="sale-1", member="m1", offline=False,
                           uses=(MemberUse(rule_id="ONCE", per_member_limit=1),)), NOW)
    assert a.view("ONCE", "m1")["member_uses"] == 1
    r = a.apply(TillSaleReturned(id="back-1", store="S036", sale_id="sale-1"), NOW + 1)
    assert r.status == "ok" and r["given_back"] == ["ONCE"] and a.view("ONCE", "m1")["member_uses"] == 0
    # another return of the same sale (a new id): nothing more to give; an unknown sale: nothing
    assert a.apply(TillSaleReturned(id="back-2", store="S036", sale_id="sale-1"), NOW + 2)["given_back"] == []
    assert a.apply(TillSaleReturned(id="back-3", store="S037", sale_id="sale-1"), NOW + 2)["given_back"] == []
    b = PromotionBudgets()
    b.restore_state(a.state_snapshot())  # survives a snapshot
    assert b.apply(TillSaleReturned(id="back-4", store="S036", sale_id="sale-1"), NOW + 3)["given_back"] == []
    assert command_to_wire(TillSaleReturned(id="x", store="S036", sale_id="s"))["op"] == "till_sale_returned"


def test_limit_conflicts_keep_the_newest():
    from actors.promotion_budgets import LIMIT_CONFLICTS_KEPT, MemberUse, TillMemberUses
    a = PromotionBudgets()
    for n in range(LIMIT_CONFLICTS_KEPT + 5):
        a.apply(TillMemberUses(id=f"t{n}", store="S036", sale_id=f"s{n}", member="m1", offline=True,
                               uses=(MemberUse(rule_id="ONCE", per_member_limit=1),)), NOW + n)
    assert len(a.limit_conflicts) == LIMIT_CONFLICTS_KEPT and a.limit_conflicts[-1]["sale_id"] == \
        f"s{LIMIT_CONFLICTS_KEPT + 4}"
