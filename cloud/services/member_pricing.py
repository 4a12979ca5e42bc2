"""Online pricing with the member's level and the chain's promotion budgets (issue 17, items 3 and 4).

Guarantees:
- An online order is priced with the signed-in member's level as the MemberLedger answers it now (the same level
  the till gets in MemberUpdated), so a gold member gets the gold price and the gold member rules online exactly
  as at the till (one evaluator, one book); the order's explanation names the member rule.
- Budget-capped rules (`budget_fen`) and per-member limits (`per_member_limit`) are held chain-wide by the one
  PromotionBudgets actor, never per API process: the order is priced with what the actor says is left
  (`PricingContext.budgets_left`; a member who used a rule up gets 0 of it), then CONSUMES what the rules gave it,
  idempotently by order id. When another process took the budget meanwhile the actor refuses the whole consume and
  the order is priced again with what is left now (at most `ATTEMPTS` times, then with the short rules at 0), so
  the sum of what the orders were given never exceeds the cap.
- A cancelled or expired order gives back what it consumed (`give_back`, idempotent by order id).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from actors.promotion_budgets import Consume, GiveBack, Use
from protocol.pricing import BudgetLeft, PricingContext
from protocol.pricing.rules import Rule

ATTEMPTS = 4  # pricings before an order gives up on the short rules (each retry follows another order's consume)
log = logging.getLogger("freshmesh.member_pricing")


def capped_rules(rules: tuple[Rule, ...]) -> list[Rule]:
    """Rules whose use the PromotionBudgets actor must count: a fen cap or a per-member limit."""
    return [r for r in rules if r.budget_fen or r.per_member_limit]


def budgets_left(capped: list[Rule], views: dict[str, dict], zero: frozenset[str] = frozenset()) -> tuple[BudgetLeft, ...]:
    """What each capped rule has left for this member: the actor's figure (the book's cap when the actor never saw
    the rule), 0 when the member used it up or when it is in `zero`."""
    out = []
    for r in capped:
        v = views.get(r.id, {})
        if r.id in zero or (r.per_member_limit and v.get("member_uses", 0) >= r.per_member_limit):
            fen = 0
        elif r.budget_fen:
            fen = max(r.budget_fen - v.get("used", 0), 0)
        else:
            continue  # a per-member limit only, not used up: no fen cap to pass
        out.append(BudgetLeft(rule_id=r.id, fen=fen))
    return tuple(out)


def held_budgets(capped: list[Rule], held: dict[str, int]) -> tuple[BudgetLeft, ...]:
    """Budgets for re-pricing an order the actor already holds uses for: each rule at what the order holds, every
    other capped rule at 0 (an order whose uses were given back holds nothing: it gets no capped rule at all)."""
    return tuple(BudgetLeft(rule_id=r.id, fen=held.get(r.id, 0)) for r in capped)


def uses_of(capped: list[Rule], applied: list[dict]) -> tuple[Use, ...]:
    """The capped rules this pricing applied, with what each gave (discount or gift value)."""
    by_id = {r.id: r for r in capped}
    return tuple(Use(rule_id=a["rule_id"], fen=a["saving_fen"], cap_fen=by_id[a["rule_id"]].budget_fen,
                     per_member_limit=by_id[a["rule_id"]].per_member_limit)
                 for a in applied if a["rule_id"] in by_id and a["saving_fen"] > 0)


class MemberPricing:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def level(self, member: str) -> str | None:
        """The member's level for pricing (None for a regular member or no member: list prices)."""
        if not member:
            return None
        view = await self.cloud.actors.member_ledger.member(member, self.cloud.now_ms())
        level: str = view["level"]
        return level if level and level != "regular" else None

    async def with_level(self, member: str, base: PricingContext, budgets: bool = False) -> PricingContext:
        """`base` with the member's level. `budgets=False`: every capped rule at 0, since only `price` (orders and
        pre-sales) consumes budgets and only it may give what they cap.
        `budgets=True` (an order's coupon preview): the capped rules with what the actor says is left now (its
        read-only view, nothing consumed), so a coupon on a budget-capped rule can be seen to apply."""
        capped = capped_rules(self.cloud.world.rule_book.rules)
        if budgets and capped:
            views = await self.cloud.actors.budgets.budgets([r.id for r in capped], member)
            left = budgets_left(capped, views)
        else:
            left = tuple(BudgetLeft(rule_id=r.id, fen=0) for r in capped)
        return replace(base, member_level=await self.level(member), budgets_left=left)

    async def price(self, member: str, order_id: str, base: PricingContext,
                    price: Callable[[PricingContext], dict]) -> dict:
        """`price(ctx)`: the order's pricing (Orders._price) in `base` (the order's store, coupons, groups) with the
        member's level and the budgets left. Returns it with the capped rules' uses consumed.

        The last attempt prices with EVERY capped rule at 0 (it consumes nothing, so it cannot fail for budgets).
        A consume answered `already` (a retry of this order after a crash, or an order whose budget was given
        back) is priced again with exactly what the actor holds for the order: the rules it holds at what it
        holds, every other capped rule at 0 (nothing re-read: the budgets seen now include this order's own use)."""
        cloud = self.cloud
        level, store = await self.level(member), base.store_id
        capped = capped_rules(cloud.world.rule_book.rules)
        zero: set[str] = set()
        held: dict[str, int] | None = None  # what the actor already holds for this order (an `already` answer)
        for attempt in range(ATTEMPTS + 1):
            if held is not None:
                left = held_budgets(capped, held)
            elif attempt == ATTEMPTS:
                left = tuple(BudgetLeft(rule_id=r.id, fen=0) for r in capped)
            else:
                views = await cloud.actors.budgets.budgets([r.id for r in capped], member) if capped else {}
                left = budgets_left(capped, views, frozenset(zero))
            ctx = replace(base, now_ms=cloud.now_ms(), member_level=level, budgets_left=left)
            priced = price(ctx)
            uses = uses_of(capped, priced["explain"]["applied"])
            if held is not None:  # the order's own consume stands: priced within what it holds, nothing more taken
                return await self._record(priced, uses, order_id, member, store)
            if not uses:
                return priced
            result = (await cloud.actors.budgets.send(Consume(id=f"budget:{order_id}:{attempt}", order_id=order_id,
                                                              member=member or "-", uses=uses))).settled
            if result.status == "ok":
                return await self._record(priced, uses, order_id, member, store)
            if result.reason == "already":  # a retry of this order: price again with what it holds
                held = dict(result.get("uses", {}) or {})
                if {u.rule_id: u.fen for u in uses} == held:
                    return await self._record(priced, uses, order_id, member, store)
                log.info("order %s: the budgets already hold %s for it: pricing with that", order_id, held)
                continue
            if attempt == ATTEMPTS - 1:  # others keep taking it: price without the short rules at all
                zero.update(result.get("short", []))
            log.info("order %s: budgets short %s (attempt %d), pricing again", order_id, result.get("short"), attempt)
        raise RuntimeError(f"order {order_id}: budgets kept changing while pricing")  # not reached: last one at 0

    async def _record(self, priced: dict, uses: tuple[Use, ...], order_id: str, member: str, store: str) -> dict:
        cloud = self.cloud
        if uses:
            priced["explain"]["budgets"] = [{"rule_id": u.rule_id, "consumed_fen": u.fen} for u in uses]
            await cloud.db.executemany(
                "insert into budget_uses (order_id, rule_id, fen, member_id, store_id, used_ms) "
                "values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
                [(order_id, u.rule_id, u.fen, member or "-", store, cloud.now_ms()) for u in uses])
        return priced

    async def give_back(self, order_id: str) -> None:
        """The order ended unserved (cancelled, expired): its budget uses go back (nothing happens if it had none)."""
        result = (await self.cloud.actors.budgets.send(GiveBack(id=f"giveback:{order_id}", order_id=order_id))).settled
        # the actor answered (an order it holds nothing for answers {}): the uses are settled either way, so the
        # budget sweep does not ask again and again for an order the actor never held
        if result.get("given_back") is not None:
            await self.cloud.db.execute("update budget_uses set given_back_ms = $2 where order_id = $1 "
                                        "and given_back_ms is null", order_id, self.cloud.now_ms())
