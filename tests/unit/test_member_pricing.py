"""MemberPricing (cloud/services/member_pricing.py) against the real PromotionBudgets actor behind a fake cloud:
the coupon preview sees a budget-capped coupon rule's budget (a pre-sale still gets none), the last pricing attempt
can never fail for budgets, and a retry answered `already` is priced with what the actor holds for the order."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.base import Result, rejected
from actors.promotion_budgets import Consume, GiveBack, PromotionBudgets, Use
from cloud.services.member_pricing import MemberPricing
from protocol.pricing import BasketLine, PricingContext, price_basket
from protocol.pricing.catalogue import Catalogue, Product
from protocol.pricing.rules import Coupon, ItemDiscount, RuleBook

NOW = 1_700_000_000_000
SKU = "FRU-A-0001"
CAT = Catalogue((Product(sku=SKU, name="Apple", category="fruit", unit="piece", price_fen=3000),))


class Budgets:
    def __init__(self, actor: PromotionBudgets, refuse: bool = False) -> None:
        self.actor, self.refuse, self.sent = actor, refuse, []

    async def budgets(self, ids: list[str], member: str) -> dict[str, dict]:
        return {i: self.actor.view(i, member) for i in ids}

    async def send(self, c) -> Result:
        self.sent.append(c)
        if self.refuse and isinstance(c, Consume):  # another process always took it meanwhile
            return rejected("budget", short=[c.uses[0].rule_id], left={})
        return self.actor.apply(c, NOW)


class Ledger:
    async def member(self, member: str, now_ms: int) -> dict:
        return {"level": "regular"}


class Db:
    def __init__(self) -> None:
        self.rows: list[tuple] = []

    async def executemany(self, sql: str, rows: list[tuple]) -> None:
        self.rows += rows

    async def execute(self, sql: str, *args: Any) -> None:
        pass


@dataclass
class World:
    rule_book: RuleBook


@dataclass
class Actors:
    budgets: Budgets
    member_ledger: Ledger = field(default_factory=Ledger)


class Cloud:
    def __init__(self, rules: tuple, actor: PromotionBudgets | None = None, refuse: bool = False) -> None:
        self.world = World(RuleBook(1, rules))
        self.actors = Actors(Budgets(actor or PromotionBudgets(), refuse))
        self.db = Db()

    def now_ms(self) -> int:
        return NOW


def pricer(cloud: Cloud, qty: int = 2):
    def price(ctx: PricingContext) -> dict:
        r = price_basket(CAT, cloud.world.rule_book, [BasketLine(sku=SKU, qty=qty)], ctx)
        return {"total_fen": r.total_fen, "coupons_used": r.coupons_used,
                "explain": {"applied": [{"rule_id": a.rule_id, "saving_fen": a.saving_fen} for a in r.applied]}}
    return price


def base(coupons: tuple[str, ...] = ()) -> PricingContext:
    return PricingContext(channel="online", store_id="S001", now_ms=NOW, coupons=coupons)


async def test_the_coupon_preview_sees_a_capped_coupon_rules_budget_and_a_presale_does_not():
    capped_coupon = Coupon(id="CB", name="5 yuan off, budgeted", amount_off_fen=500, budget_fen=10_000)
    cloud = Cloud((capped_coupon,))
    mp, price = MemberPricing(cloud), pricer(cloud)
    preview = await mp.with_level("m1", base(("CB",)), budgets=True)  # what the order's coupon check uses
    assert price(preview)["coupons_used"] == ["CB"]
    assert cloud.actors.budgets.sent == []  # a preview consumes nothing
    presale = await mp.with_level("m1", base(("CB",)))  # a pre-sale: capped rules at 0, as before
    assert price(presale)["coupons_used"] == []
    cloud.actors.budgets.actor.apply(Consume(id="c", order_id="other", member="m2",
                                            uses=(Use(rule_id="CB", fen=10_000, cap_fen=10_000),)), NOW)
    spent = await mp.with_level("m1", base(("CB",)), budgets=True)  # its budget all used: the preview says so
    assert price(spent)["coupons_used"] == []


async def test_the_last_attempt_prices_with_every_capped_rule_at_zero():
    rules = (ItemDiscount(id="B1", name="b1", percent_off_bp=1000, budget_fen=100_000, skus=(SKU,), group="a"),
             ItemDiscount(id="B2", name="b2", percent_off_bp=500, budget_fen=100_000, skus=(SKU,), group="b"))
    cloud = Cloud(rules, refuse=True)
    priced = await MemberPricing(cloud).price("m1", "o1", base(), pricer(cloud))
    assert priced["total_fen"] == 6000 and priced["explain"]["applied"] == []  # no capped rule: nothing to consume
    assert cloud.db.rows == []


async def test_a_retry_answered_already_is_priced_with_what_the_order_holds():
    rule = ItemDiscount(id="B1", name="b1", percent_off_bp=2000, budget_fen=1000, skus=(SKU,))
    actor = PromotionBudgets()
    # the order's first request consumed 300 and died; then others took the rest of the budget but 100
    actor.apply(Consume(id="first", order_id="o1", member="m1", uses=(Use(rule_id="B1", fen=300, cap_fen=1000),)), NOW)
    actor.apply(Consume(id="x", order_id="o2", member="m2", uses=(Use(rule_id="B1", fen=600, cap_fen=1000),)), NOW)
    cloud = Cloud((rule,), actor)
    priced = await MemberPricing(cloud).price("m1", "o1", base(), pricer(cloud))
    assert priced["explain"]["budgets"] == [{"rule_id": "B1", "consumed_fen": 300}]  # what the actor holds for it
    assert priced["total_fen"] == 6000 - 300 and actor.view("B1")["used"] == 900


async def test_a_retry_of_an_order_whose_budget_was_given_back_gets_no_capped_rule():
    rule = ItemDiscount(id="B1", name="b1", percent_off_bp=2000, budget_fen=1000, skus=(SKU,))
    actor = PromotionBudgets()
    actor.apply(Consume(id="first", order_id="o1", member="m1", uses=(Use(rule_id="B1", fen=300, cap_fen=1000),)), NOW)
    actor.apply(GiveBack(id="g", order_id="o1"), NOW)  # the order ended (swept) while its request was still retrying
    cloud = Cloud((rule,), actor)
    priced = await MemberPricing(cloud).price("m1", "o1", base(), pricer(cloud))
    assert priced["total_fen"] == 6000 and "budgets" not in priced["explain"]  # no discount the budget does not hold
    assert actor.view("B1")["used"] == 0 and cloud.db.rows == []
