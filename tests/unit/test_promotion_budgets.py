"""PromotionBudgets (pure): caps never overspent, one consume per order, give-back once, per-member limits, store
shares carved out of the budget and a store's claim past its share kept off the chain's budget."""
from __future__ import annotations

import asyncio

from actors.base import command_to_wire
from actors.promotion_budgets import BudgetsQuery, Consume, GiveBack, GrantShare, PromotionBudgets, StoreUsed, Use
from cloud.services.member_pricing import budgets_left, capped_rules, uses_of
from protocol.pricing import BasketLine, PricingContext, price_basket
from protocol.pricing.catalogue import Catalogue
from protocol.pricing.rules import ItemDiscount, MemberDiscount, RuleBook

NOW = 1_700_000_000_000


def use(fen: int, cap: int = 1000, limit: int = 0, rule: str = "B1") -> Use:
    return Use(rule_id=rule, fen=fen, cap_fen=cap, per_member_limit=limit)


def test_consume_never_passes_the_cap_and_refuses_whole():
    a = PromotionBudgets()
    assert a.apply(Consume(id="c1", order_id="o1", member="m1", uses=(use(600),)), NOW).status == "ok"
    short = a.apply(Consume(id="c2", order_id="o2", member="m2", uses=(use(500), use(10, rule="B2"))), NOW)
    assert short.status == "rejected" and short["short"] == ["B1"] and short["left"]["B1"] == 400
    assert a.view("B2")["used"] == 0  # all or nothing: B2 was not taken either
    assert a.apply(Consume(id="c3", order_id="o2", member="m2", uses=(use(400),)), NOW).status == "ok"
    assert a.left("B1") == 0 and a.audit() == []


def test_one_consume_per_order_and_give_back_once():
    a = PromotionBudgets()
    a.apply(Consume(id="c1", order_id="o1", member="m1", uses=(use(300),)), NOW)
    again = a.apply(Consume(id="c1b", order_id="o1", member="m1", uses=(use(300),)), NOW)
    assert again.status == "rejected" and again.reason == "already"
    assert a.view("B1")["used"] == 300
    assert a.apply(GiveBack(id="g1", order_id="o1"), NOW)["given_back"] == {"B1": 300}
    assert a.apply(GiveBack(id="g2", order_id="o1"), NOW)["given_back"] == {}  # a second give-back gives nothing
    assert a.view("B1")["used"] == 0
    # an ended order cannot consume again (a late retry of its pricing)
    assert a.apply(Consume(id="c1c", order_id="o1", member="m1", uses=(use(300),)), NOW).reason == "already"
    assert a.audit() == []


def test_per_member_limit():
    a = PromotionBudgets()
    one = (use(100, cap=0, limit=1, rule="PM"),)
    assert a.apply(Consume(id="c1", order_id="o1", member="m1", uses=one), NOW).status == "ok"
    assert a.apply(Consume(id="c2", order_id="o2", member="m1", uses=one), NOW)["short"] == ["PM"]
    assert a.apply(Consume(id="c3", order_id="o3", member="m2", uses=one), NOW).status == "ok"
    assert BudgetsQuery(rule_ids=("PM",), member="m1").answer(a)["PM"]["member_uses"] == 1


def test_store_shares_come_out_of_the_budget_and_excess_is_the_stores():
    a = PromotionBudgets()
    assert a.apply(GrantShare(id="s1", store="S001", rule_id="B1", fen=300, cap_fen=1000), NOW)["granted_fen"] == 300
    assert a.left("B1") == 700
    assert a.apply(Consume(id="c1", order_id="o1", member="m1", uses=(use(800),)), NOW).status == "rejected"
    assert a.apply(StoreUsed(id="u1", store="S001", rule_id="B1", fen=250), NOW)["over_fen"] == 0
    past = a.apply(StoreUsed(id="u2", store="S001", rule_id="B1", fen=100), NOW)
    assert past["over_fen"] == 50 and a.left("B1") == 700  # the store's excess never touches the chain's budget
    assert a.apply(GrantShare(id="s2", store="S002", rule_id="B1", fen=5000, cap_fen=1000), NOW)["granted_fen"] == 700
    assert a.left("B1") == 0 and a.audit() == []


def test_replay_from_the_journal_gives_the_same_state():
    a, b = PromotionBudgets(), PromotionBudgets()
    commands = [Consume(id="c1", order_id="o1", member="m1", uses=(use(600),)),
                GrantShare(id="s1", store="S001", rule_id="B1", fen=300, cap_fen=1000),
                GiveBack(id="g1", order_id="o1"), StoreUsed(id="u1", store="S001", rule_id="B1", fen=20)]
    for c in commands:
        a.apply(c, NOW)
        b.apply(PromotionBudgets.decode(command_to_wire(c)), NOW)
    assert a.state_snapshot() == b.state_snapshot()
    c = PromotionBudgets()
    c.restore(a.snapshot())
    assert c.view("B1") == a.view("B1")


def test_budgets_left_and_uses_follow_the_rules():
    capped = capped_rules((ItemDiscount(id="B1", name="b", percent_off_bp=1000, budget_fen=500),
                           MemberDiscount(id="M1", name="m", percent_off_bp=1000, member_levels=("gold",),
                                          per_member_limit=2),
                           ItemDiscount(id="FREE", name="f", percent_off_bp=100)))
    assert [r.id for r in capped] == ["B1", "M1"]
    left = budgets_left(capped, {"B1": {"used": 450}, "M1": {"member_uses": 2}})
    assert {b.rule_id: b.fen for b in left} == {"B1": 50, "M1": 0}
    assert {b.rule_id: b.fen for b in budgets_left(capped, {}, frozenset({"B1"}))} == {"B1": 0}
    uses = uses_of(capped, [{"rule_id": "B1", "saving_fen": 50}, {"rule_id": "FREE", "saving_fen": 9},
                            {"rule_id": "M1", "saving_fen": 0}])
    assert [(u.rule_id, u.fen, u.cap_fen) for u in uses] == [("B1", 50, 500)]


def test_evaluator_gives_a_capped_rule_only_what_is_left():
    from protocol.pricing.catalogue import Product
    cat = Catalogue((Product(sku="FRU-A-0001", name="Apple", category="fruit", unit="piece", price_fen=1000),))
    book = RuleBook(1, (ItemDiscount(id="B1", name="b", percent_off_bp=5000, budget_fen=10_000),))
    ctx = PricingContext(channel="online", store_id="S001", now_ms=NOW, budgets_left=())
    from protocol.pricing import BudgetLeft
    full = price_basket(cat, book, [BasketLine(sku="FRU-A-0001", qty=2)], ctx)
    assert full.discount_fen == 1000
    capped = price_basket(cat, book, [BasketLine(sku="FRU-A-0001", qty=2)],
                          PricingContext(channel="online", store_id="S001", now_ms=NOW,
                                         budgets_left=(BudgetLeft(rule_id="B1", fen=300),)))
    assert capped.discount_fen == 300


class _InProcessBudgets:
    """The cloud's PromotionBudgets client over an in-process actor; `fail` makes the next sends raise."""

    def __init__(self) -> None:
        self.actor, self.fail, self.sent = PromotionBudgets(), 0, []

    async def send(self, command):
        if self.fail:
            self.fail -= 1
            from cloud.runtime.calls import ActorsUnavailable
            raise ActorsUnavailable("promotion_budgets: down for the test")
        self.sent.append(command)
        return self.actor.apply(command, NOW)

    async def budgets(self, rule_ids, member=""):
        return BudgetsQuery(rule_ids=tuple(rule_ids), member=member).answer(self.actor)


def _cloud(budget_fen: int = 1000):
    from types import SimpleNamespace
    book = RuleBook(1, (ItemDiscount(id="B1", name="b", percent_off_bp=5000, budget_fen=budget_fen),))
    return SimpleNamespace(actors=SimpleNamespace(budgets=_InProcessBudgets()), now_ms=lambda: NOW,
                           world=SimpleNamespace(rule_book=book, stores={"S001": object()}))


async def test_a_refused_share_is_granted_once_budget_comes_back(monkeypatch):
    """Online orders used the budget up; the store was refused its share; the orders were cancelled: the next
    top-up grants the share (a refusal is not remembered under the same command id for a day)."""
    from cloud.messaging import budgets as store_budgets
    told = []

    async def tell(cloud, store, make, event_id=None):
        told.append((store, make.keywords["granted_fen"]))
    monkeypatch.setattr(store_budgets.to_stores, "send", tell)
    cloud = _cloud()
    actor = cloud.actors.budgets.actor
    assert actor.apply(Consume(id="c1", order_id="o1", member="m1", uses=(use(1000),)), NOW).status == "ok"
    sb = store_budgets.StoreBudgets(cloud)
    assert await sb.top_up("S001", "B1") == 0 and told == []  # nothing left: refused
    assert actor.apply(GiveBack(id="g1", order_id="o1"), NOW)["given_back"] == {"B1": 1000}
    assert await sb.top_up("S001", "B1") == 100  # a step: a tenth of the budget
    assert told == [("S001", 100)] and actor.view("B1")["shares"] == {"S001": 100}
    assert await sb.top_up("S001", "B1") == 100  # holds more than half its step: nothing more
    assert actor.audit() == []


async def test_two_processes_topping_up_at_once_grant_one_step():
    from cloud.messaging.budgets import StoreBudgets
    cloud = _cloud()
    a, b = StoreBudgets(cloud), StoreBudgets(cloud)
    view = await cloud.actors.budgets.budgets(["B1"])
    ids = [a._grant_id("S001", "B1", view["B1"], 1000), b._grant_id("S001", "B1", view["B1"], 1000)]
    assert ids[0] == ids[1]  # the same view gives the same command id: the actor grants once


async def test_a_till_use_is_applied_before_the_ack_and_raises_when_the_actor_is_down():
    """The store's uses are debited in the bridge's actor-effects step (before its commit and ack): a failure
    raises, so the batch is retried, never acked without them; a re-send is applied once (derived id)."""
    from cloud.messaging.budgets import StoreBudgets
    from protocol.budget_messages import BudgetUse, BudgetUsed
    cloud = _cloud()
    client = cloud.actors.budgets
    client.actor.apply(GrantShare(id="s1", store="S001", rule_id="B1", fen=100, cap_fen=1000), NOW)
    event = BudgetUsed(event_id="01J00000000000000000000001", store_id="S001", seq=7, wall_ms=NOW, mono_ms=1,
                       sale_id="sale-1", uses=(BudgetUse(rule_id="B1", fen=40),))
    sb = StoreBudgets(cloud)
    client.fail = 1
    try:
        await sb.apply(event)
        raise AssertionError("a failed debit must raise (the batch is not acked)")
    except Exception as exc:  # noqa: BLE001
        assert "down for the test" in str(exc)
    await sb.apply(event)
    await sb.apply(event)  # the batch applied again after a crash before its commit
    assert client.actor.view("B1")["store_used"] == {"S001": 40}
    assert StoreBudgets.rows([event]) == [("store:S001:sale-1", "B1", 40, "S001", NOW)]


async def test_stopping_waits_for_a_share_being_granted_to_be_told_to_its_store(monkeypatch):
    """A share granted just before the cloud stops reaches its store: stopping waits for the checker in flight,
    and queues nothing after (a late heartbeat starts no checker on a stopping bridge)."""
    from cloud.messaging import budgets as store_budgets
    told, telling = [], asyncio.Event()

    async def tell(cloud, store, make, event_id=None):
        telling.set()
        await asyncio.sleep(0.05)  # the store's subject is slow to answer
        told.append((store, make.keywords["granted_fen"]))
    monkeypatch.setattr(store_budgets.to_stores, "send", tell)
    cloud = _cloud()
    sb = store_budgets.StoreBudgets(cloud)
    sb._check({("S001", "B1")})  # a batch used the rule: the background checker starts
    await asyncio.wait_for(telling.wait(), 5)
    await sb.stop()
    assert told == [("S001", 100)]
    sb._check({("S001", "B1")})  # stopping: nothing more is started
    assert sb._task is not None and sb._task.done() and not sb._pending


async def test_stopping_cancels_a_checker_that_does_not_finish(monkeypatch):
    from cloud.messaging import budgets as store_budgets
    started = asyncio.Event()

    async def never(cloud, store, make, event_id=None):
        started.set()
        await asyncio.Event().wait()
    monkeypatch.setattr(store_budgets.to_stores, "send", never)
    sb = store_budgets.StoreBudgets(_cloud())
    sb._check({("S001", "B1")})
    await asyncio.wait_for(started.wait(), 5)
    await sb.stop(timeout_s=0.05)
    assert sb._task is not None and sb._task.cancelled()
