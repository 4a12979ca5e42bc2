"""The basket and gift stages of the fast evaluator (protocol/pricing/fast_evaluator.py), step for step as the
reference evaluator's _apply_basket_rules and _give_gifts (protocol/pricing/evaluator.py). Pure.

They work on a BasketState: the line amounts as a plain list in canonical order (PricedLines are made once, at the
end, with their final amounts), the lines each scope covers, and each basket rule's spread remembered as (rule,
scope, lines that took a share) so that every line's rules can be listed at the end without a list append per line
per spread.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from operator import attrgetter, sub

from protocol.money import format_fen
from protocol.pricing.evaluator import NEAR_MISS_RATIO_BP, GiftLine, NearMiss, PricingContext
from protocol.pricing.price_plan import GiftPlan, PricingPlan, ThresholdPlan, kept_by_group

_POSITION = attrgetter("position")
_new = object.__new__  # results are made bare with their fields set: see fast_evaluator.py
CANDIDATES_MAX = 1024  # sets of coupons held, per plan


class BasketState:
    """`amounts`: each line's amount, canonical order; `members[k]`: the lines scope k covers (scope 0, the whole
    basket, covers all: its list stays empty); `spreads`: (rule id, scope bit, the lines that took a share or None
    for all the scope covers), in the order applied; `eligible[k]`: scope k's subtotal (-1: not summed since the
    amounts last changed)."""

    __slots__ = ("amounts", "members", "spreads", "eligible")

    def __init__(self, amounts: list[int], members: list[list[int]], eligible: list[int]) -> None:
        self.amounts = amounts
        self.members = members
        self.spreads: list[tuple[str, int, frozenset[int] | None]] = []
        self.eligible = eligible

    def eligible_fen(self, scope: int) -> int:
        """The scope's eligible subtotal: the amounts of the lines it covers."""
        total = self.eligible[scope]
        if total < 0:
            amounts = self.amounts
            total = sum(map(amounts.__getitem__, self.members[scope])) if scope else sum(amounts)
            self.eligible[scope] = total
        return total

    def spread(self, scope: int, saving: int, rule_id: str) -> None:
        """Take `saving` off the scope's lines that still cost something, in proportion to their amounts (largest
        remainder, then canonical line order), as the reference's _spread."""
        amounts = self.amounts
        covered = self.members[scope] if scope else range(len(amounts))
        part = [amounts[i] for i in covered] if scope else amounts[:]
        picked = covered
        if min(part) <= 0:  # a line at zero takes no share (and is not named)
            picked = [i for i in covered if amounts[i] > 0]
            part = [amounts[i] for i in picked]
        total = sum(part)
        shares = [saving * a // total for a in part]
        short = saving - sum(shares)
        if short:
            # largest remainders first; sorted() is stable with reverse=True too, so ties stay in line order
            remainders = [saving * a % total for a in part]
            for j in sorted(range(len(part)), key=remainders.__getitem__, reverse=True)[:short]:
                shares[j] += 1
        if scope or picked is not covered:
            for i, share in zip(picked, shares, strict=True):
                amounts[i] -= share
        else:
            amounts[:] = map(sub, part, shares)
        every = picked is covered and 0 not in shares
        took = None if every else frozenset(i for i, share in zip(picked, shares, strict=True) if share)
        self.spreads.append((rule_id, 1 << scope, took))
        self.eligible = [-1] * len(self.members)

    def spread_rules(self, line: int, scope_mask: int) -> list[str]:
        """The basket rules that took a share off this line, in the order applied."""
        return [rule_id for rule_id, bit, took in self.spreads
                if scope_mask & bit and (took is None or line in took)]


def capped(rule_id: str, budget: int, saving: int, by_rule: dict[str, int], left: dict[str, int]) -> int:
    """The saving within what the rule's budget has left (the reference's _Savings.cap): a rule named in the
    budgets left is held to it even without a fen cap (a per-member limit used up is 0 left)."""
    if budget or rule_id in left:
        return min(saving, max(left.get(rule_id, budget) - by_rule.get(rule_id, 0), 0))
    return saving


def _candidates(plan: PricingPlan, ctx: PricingContext) -> tuple[tuple[ThresholdPlan, ...], tuple[str, ...]]:
    """The spend thresholds, and the coupons the member holds and may use, in book order; and their groups.
    Memoised per plan by the coupons held (members hold few, and the same ones)."""
    key = (ctx.coupons, ctx.new_member)
    found = plan.candidates.get(key)
    if found is None:
        held = {b.id: b for cid in ctx.coupons if (b := plan.coupons.get(cid)) is not None
                and (ctx.new_member or not b.new_member_only)}
        chosen = tuple(sorted((*plan.thresholds, *held.values()), key=_POSITION))
        if len(plan.candidates) >= CANDIDATES_MAX:
            plan.candidates.clear()
        found = plan.candidates[key] = (chosen, tuple(b.group for b in chosen))
    return found


def apply_basket_rules(plan: PricingPlan, ctx: PricingContext, state: BasketState, by_rule: dict[str, int],
                       left: dict[str, int], near: list[NearMiss]) -> list[str]:
    """Spend thresholds and the coupons the member holds. Returns the coupons used."""
    candidates: Sequence[ThresholdPlan]
    candidates, groups = _candidates(plan, ctx)
    if plan.basket_grouped:  # the best of each exclusive group, on the subtotals before any basket rule
        eligible = state.eligible  # no basket rule has spread yet: every scope's subtotal is known
        # ThresholdPlan.saving, inlined for the spend thresholds without repeat (most of them)
        values = [(b.offs[bisect_right(b.spends, eligible[b.scope])] if b.step else b.saving(eligible[b.scope]))
                  if b.group else 0 for b in candidates]
        candidates = [candidates[i] for i in kept_by_group(groups, values)]
    used: list[str] = []
    for b in candidates:
        eligible_fen = state.eligible_fen(b.scope)
        saving, missing, next_off = b.reward(eligible_fen)
        if missing >= 0 and eligible_fen and missing * 10_000 <= (eligible_fen + missing) * NEAR_MISS_RATIO_BP:
            near.append(NearMiss(b.id, b.name, missing,
                                 f"spend {format_fen(missing)} more for {b.reward_text(next_off)} ({b.name})"))
        if b.budget or b.id in left:
            saving = capped(b.id, b.budget, saving, by_rule, left)
        if saving > 0:
            state.spread(b.scope, saving, b.id)
            by_rule[b.id] = by_rule.get(b.id, 0) + saving
            if b.coupon:
                used.append(b.id)
    return used


def gifts_in_stock(gifts: Sequence[GiftPlan], gifts_out: tuple[str, ...]) -> list[GiftPlan]:
    """The gifts to try when some are out: a gift the seller has none of is not a candidate, so another gift of its
    exclusive group may be given instead."""
    in_stock = [g for g in gifts if g.gift_sku not in gifts_out]
    return [in_stock[i] for i in kept_by_group([g.group for g in in_stock], [g.rank for g in in_stock])]


def give_gifts(plan: PricingPlan, ctx: PricingContext, state: BasketState, by_rule: dict[str, int],
               left: dict[str, int], near: list[NearMiss], missing: list[GiftLine]) -> list[GiftLine]:
    out = ctx.gifts_out
    gifts: list[GiftLine] = []
    for g in gifts_in_stock(plan.gifts, out) if out else plan.gifts_kept:
        eligible = state.eligible_fen(g.scope)
        if eligible >= g.spend:
            if not (g.budget or g.id in left) or capped(g.id, g.budget, g.value, by_rule, left) == g.value:
                gift = _new(GiftLine)  # a gift is given whole or not at all
                gift.rule_id, gift.sku, gift.name, gift.qty, gift.value_fen = g.id, g.gift_sku, g.gift_name, g.qty, g.value
                gifts.append(gift)
                by_rule[g.id] = by_rule.get(g.id, 0) + g.value
        elif eligible and (g.spend - eligible) * 10_000 <= g.spend * NEAR_MISS_RATIO_BP:
            short = g.spend - eligible
            near.append(NearMiss(g.id, g.name, short, f"spend {format_fen(short)} more for a free {g.gift_name} "
                                                      f"({g.name})"))
    if out:  # reached but out of stock, and no other gift of its group given: the seller says so
        given = {g.group for g in plan.gifts if g.group and any(x.rule_id == g.id for x in gifts)}
        for g in plan.gifts:
            if g.gift_sku in out and state.eligible_fen(g.scope) >= g.spend and g.group not in given:
                missing.append(GiftLine(g.id, g.gift_sku, g.gift_name, g.qty, 0))
    return gifts
