"""The promotion book compiled for the fast evaluator (protocol/pricing/fast_evaluator.py).

A PricingPlan is what the rules in force for one context (`RuleBook.active_rules`: channel, store, minute, member
level) do over one store's resolved catalogue (`Catalogue.at`), laid out so that pricing a basket is mostly
arithmetic:
- per SKU, compiled on first sight (`SkuPlan`): list and member unit price, whether the channel sells it, its group
  buys, markdowns and line rules in application order (less those an exclusive group can never choose), the basket
  scopes it belongs to, and a memo of its packed lines' outcomes;
- the basket rules (`ThresholdPlan`) and gifts (`GiftPlan`) in book order, each with the index of its scope (its
  skus and categories; 0 is the whole basket), so every scope's eligible subtotal is summed line by line, once.

A plan knows nothing of one basket or one member: coupons held, groups formed, budgets left, gifts out and the day
(for markdowns by use-by) come with each basket. It reads the same memoised indexes the reference evaluator reads
(`ActiveRules.line_rules_for`, `markdowns_for`, `group_buys`), so both see the same rules in the same order.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import TypeVar

from protocol.money import format_fen, weighed_amount_fen
from protocol.pricing.catalogue import Catalogue, Product
from protocol.pricing.rules import ActiveRules, Coupon, Gift, ItemDiscount, Markdown, Rule, SpendThreshold

PLANS_MAX = 64  # plans kept: one per (rules in force, resolved catalogue, channel, level) in use
# Line outcomes kept, over all plans (a few hundred bytes each): enough for the packed lines a chain sells over and
# over and for carts priced again at every scan; bounded, because a box prices for months.
OUTCOMES_MAX = 30_000

# A line rule as the line stage applies it: (rule id, percent_off_bp, amount_off_fen per piece, budget_fen). Plain
# tuples: the line stage unpacks them in its innermost loop.
LineRule = tuple[str, int, int, int]
LineHead = tuple[str, str, int, int, int, int]  # a PricedLine's sku, name, qty, weight_g, unit_price_fen, list_fen
# A line as the price and line stages leave it (a packed line's is memoised whole):
#   (head, amount after the line stage, rules that touched it, (rule id, saving) in the order they are counted,
#    member-price saving, (markdown rule, markdown saving) or ("", 0), watched: some saving is of a rule with a
#    budget, the SKU's basket scopes (SkuPlan.scopes), its scope mask)
# A plain tuple: the hot loops unpack it, and the interpreter's fast paths are for exact tuples, not NamedTuples.
LineOutcome = tuple[LineHead, int, tuple[str, ...], tuple[tuple[str, int], ...], int, tuple[str, int], bool,
                    tuple[int, ...], int]
LineShape = tuple[int, int, int, str, str, int]  # qty, weight_g, amount_fen, use_by, markdown_rule, was_fen
ScopeKey = tuple[tuple[str, ...], tuple[str, ...]]  # (skus, categories); both empty: the whole basket


def kept_by_group(groups: Sequence[str], values: Sequence[int]) -> list[int]:
    """Positions to keep: every ungrouped one, and of each exclusive group the one of highest value (ties: the
    first), as the reference evaluator's _best_per_group chooses."""
    best: dict[str, tuple[int, int]] = {}
    for i, (group, value) in enumerate(zip(groups, values, strict=True)):
        if group and (group not in best or value > best[group][0]):
            best[group] = (value, i)
    keep = {i for _, i in best.values()}
    return [i for i, group in enumerate(groups) if not group or i in keep]


def _exclusive_choices(found: Sequence[ItemDiscount]) -> tuple[list[ItemDiscount], tuple[tuple[int, ...], ...]]:
    """The line rules that can still apply to some line of a SKU, and, of each exclusive group whose best depends on
    the line, the positions of its rules among them.

    Of an exclusive group the rule saving most on the line wins, the first of equals. Where the group's rules are all
    percentages (or all fen off per piece), a saving never falls as the percentage (or the fen) rises: a rule after
    the first one of the highest percentage can never win, and when that one is the group's first, it always wins;
    the choice is left to each line only between the rules before it."""
    dropped: set[int] = set()
    for group in {r.group for r in found if r.group}:
        positions = [i for i, r in enumerate(found) if r.group == group]
        if {bool(found[i].percent_off_bp) for i in positions} == {True}:
            top = max(positions, key=lambda i: found[i].percent_off_bp)  # max() keeps the first of equals
        elif {bool(found[i].percent_off_bp) for i in positions} == {False}:
            top = max(positions, key=lambda i: found[i].amount_off_fen)
        else:
            continue  # a percentage against fen off: only the line's amount can tell
        dropped.update(i for i in positions if i > top)
    contenders = [r for i, r in enumerate(found) if i not in dropped]
    by_group: dict[str, list[int]] = {}
    for i, r in enumerate(contenders):
        if r.group:
            by_group.setdefault(r.group, []).append(i)
    return contenders, tuple(tuple(positions) for positions in by_group.values() if len(positions) > 1)


class SkuPlan:
    """One SKU under one plan: all a line of it needs that does not depend on the line or the member's context."""

    __slots__ = ("product", "sku", "name", "weighed", "list_fen", "unit_fen", "sellable", "group_buys", "markdowns",
                 "line_rules", "rivals", "kept_by_winners", "budgets", "rule_ids", "scopes", "scope_mask", "outcomes",
                 "outcomes_in_context")

    def __init__(self, product: Product, rules: ActiveRules, channel: str, level: str | None,
                 scope_keys: Sequence[ScopeKey]) -> None:
        self.product = product
        self.sku, self.name, self.weighed = product.sku, product.name, product.weighed
        self.list_fen = product.price_fen
        self.unit_fen = product.price_for(level)
        self.sellable = channel in product.channels
        self.group_buys = tuple((r.id, r.group_price_fen) for r in rules.group_buys.get(product.sku, ()))
        self.markdowns: list[Markdown] = rules.markdowns_for(product)
        found, _ = rules.line_rules_for(product)
        contenders, rivals = _exclusive_choices(found)
        self.line_rules: tuple[LineRule, ...] = tuple((r.id, r.percent_off_bp, r.amount_off_fen, r.budget_fen)
                                                      for r in contenders)
        self.rivals = rivals  # positions in line_rules of each exclusive group still to choose from, per line
        self.kept_by_winners: dict[tuple[int, ...], tuple[LineRule, ...]] = {}  # line_rules less the losers
        self.budgets = {r.id: r.budget_fen for r in contenders if r.budget_fen}
        self.rule_ids = frozenset(r.id for r in contenders)
        self.scopes = tuple(k for k, (skus, categories) in enumerate(scope_keys)
                            if k and (product.sku in skus or product.category in categories))
        self.scope_mask = sum(1 << k for k in (0, *self.scopes))
        self.outcomes: dict[LineShape, LineOutcome] = {}  # by the line's shape: all of it but the SKU
        # where a group buy or markdown concerns the SKU: by shape, the group buy taken and the days to use-by
        self.outcomes_in_context: dict[tuple[LineShape, str, int | None], LineOutcome] = {}


class ThresholdPlan:
    """A basket rule (spend threshold, or a coupon the member may hold) with its scope's index."""

    __slots__ = ("id", "name", "group", "scope", "budget", "coupon", "new_member_only", "tiers", "repeat",
                 "max_repeats", "min_spend", "percent_bp", "amount_off", "coupon_reward", "spends", "offs", "step",
                 "position")

    def __init__(self, rule: SpendThreshold | Coupon, scope: int, position: int) -> None:
        self.id, self.name, self.group, self.scope, self.budget = rule.id, rule.name, rule.group, scope, rule.budget_fen
        self.position = position  # in the book's order of basket rules
        self.coupon = isinstance(rule, Coupon)
        self.tiers: tuple[tuple[int, int], ...] = ()
        self.spends: tuple[int, ...] = ()
        self.offs: tuple[int, ...] = ()
        self.repeat, self.max_repeats, self.new_member_only = False, 0, False
        self.min_spend = self.percent_bp = self.amount_off = 0
        self.coupon_reward = ""
        if isinstance(rule, Coupon):
            self.new_member_only = rule.new_member_only
            self.min_spend, self.percent_bp, self.amount_off = rule.min_spend_fen, rule.percent_off_bp, rule.amount_off_fen
            self.coupon_reward = (f"{rule.percent_off_bp / 100:g}% off" if rule.percent_off_bp
                                  else f"{format_fen(rule.amount_off_fen)} off")
        else:
            self.tiers = tuple((t.spend_fen, t.off_fen) for t in rule.tiers)
            self.spends = tuple(t.spend_fen for t in rule.tiers)
            self.offs = (0, *(t.off_fen for t in rule.tiers))  # by the number of tiers reached
            self.repeat, self.max_repeats = rule.repeat, rule.max_repeats
        self.step = not self.coupon and not self.repeat  # its saving is a step function of the subtotal

    def saving(self, eligible: int) -> int:
        """The saving alone (what an exclusive group's choice compares): the first of reward()."""
        if self.step:  # the top tier reached gives its off_fen (below its spend_fen, so below the subtotal)
            return self.offs[bisect_right(self.spends, eligible)]
        return self.reward(eligible)[0]

    def reward(self, eligible: int) -> tuple[int, int, int]:
        """(saving on this eligible subtotal, fen missing to the next step up or -1, what that step gives off), as
        the reference's _threshold_saving (whose reward text is reward_text() of the last)."""
        if self.coupon:
            if eligible < self.min_spend:
                return 0, self.min_spend - eligible, 0
            s = (2 * eligible * self.percent_bp + 10_000) // 20_000 if self.percent_bp else self.amount_off
            return min(s, eligible), -1, 0
        top = bisect_right(self.spends, eligible) - 1  # tiers rise: the reached ones are a prefix
        last = len(self.tiers) - 1
        missing = next_off = -1
        if top < last:
            spend, next_off = self.tiers[top + 1]
            missing = spend - eligible
        if top < 0:
            return 0, missing, next_off
        spend, off = self.tiers[top]
        times = 1
        if self.repeat:
            times = eligible // spend
            if self.max_repeats:
                times = min(times, self.max_repeats)
            if top == last and (not self.max_repeats or times < self.max_repeats):
                missing, next_off = (times + 1) * spend - eligible, off * (times + 1)
        return min(off * times, eligible), missing, next_off

    def reward_text(self, next_off: int) -> str:
        return self.coupon_reward if self.coupon else f"{format_fen(next_off)} off"


class GiftPlan:
    """A gift rule with its scope's index and the gift as the store sells it (`known` False: the catalogue lacks
    it)."""

    __slots__ = ("id", "name", "group", "scope", "budget", "spend", "gift_sku", "gift_name", "qty", "value", "rank",
                 "known")

    def __init__(self, rule: Gift, scope: int, catalogue: Catalogue) -> None:
        self.id, self.name, self.group, self.scope, self.budget = rule.id, rule.name, rule.group, scope, rule.budget_fen
        self.spend, self.gift_sku, self.qty = rule.spend_fen, rule.gift_sku, rule.gift_qty
        gift = catalogue.by_sku.get(rule.gift_sku)
        self.known = gift is not None
        self.gift_name = gift.name if gift is not None else ""
        price = gift.price_fen if gift is not None else 0
        weighed = gift is not None and gift.weighed
        self.value = weighed_amount_fen(rule.gift_qty, price) if weighed else price * rule.gift_qty
        self.rank = price * rule.gift_qty  # what the exclusive choice compares (the reference's, for weighed too)


class PricingPlan:
    """The rules in force for one context over one resolved catalogue (see the module docstring)."""

    def __init__(self, rules: ActiveRules, catalogue: Catalogue, channel: str, level: str | None) -> None:
        self.rules, self.catalogue, self.channel, self.level = rules, catalogue, channel, level
        scopes: dict[ScopeKey, int] = {((), ()): 0}

        def scope_of(rule: Rule) -> int:
            return scopes.setdefault((rule.skus, rule.categories), len(scopes))

        self.basket = tuple(ThresholdPlan(r, scope_of(r), i) for i, r in enumerate(rules.basket))
        self.coupons = {b.id: b for b in self.basket if b.coupon}
        self.thresholds = tuple(b for b in self.basket if not b.coupon)  # the basket rules when no coupon is held
        self.basket_grouped = any(b.group for b in self.basket)
        self.gifts = tuple(GiftPlan(r, scope_of(r), catalogue) for r in rules.gifts)
        # The gifts to try when none is out of stock; with some out, the choice is made again per basket.
        self.gifts_kept = tuple(self.gifts[i] for i in kept_by_group([g.group for g in self.gifts],
                                                                      [g.rank for g in self.gifts]))
        self.scope_keys = tuple(scopes)
        # A gift of a SKU the catalogue lacks is an error, or not, depending on the basket: the reference says which.
        self.exotic = not all(g.known for g in self.gifts)
        self.skus: dict[str, SkuPlan] = {}
        # per (coupons held, new member): the basket rules to try, and their exclusive groups (fast_basket.py)
        self.candidates: dict[tuple[tuple[str, ...], bool], tuple[tuple[ThresholdPlan, ...], tuple[str, ...]]] = {}

    def sku_plan(self, sku: str) -> SkuPlan | None:
        """The SKU's plan, compiled on first sight; None for a SKU the catalogue lacks."""
        plan = self.skus.get(sku)
        if plan is None:
            product = self.catalogue.by_sku.get(sku)
            if product is None:
                return None
            plan = self.skus[sku] = SkuPlan(product, self.rules, self.channel, self.level, self.scope_keys)
        return plan


_plans: dict[tuple[int, int, str, str | None], PricingPlan] = {}
_outcomes_kept = [0]  # line outcomes in the memos of the plans kept (a list: one mutable count, no `global`)
K = TypeVar("K")


def remember(memo: dict[K, LineOutcome], key: K, outcome: LineOutcome) -> LineOutcome:
    """Keep a line outcome in a SKU plan's memo; past OUTCOMES_MAX in all, every memo starts again."""
    if _outcomes_kept[0] >= OUTCOMES_MAX:
        for plan in list(_plans.values()):  # snapshots: another thread may be adding plans or SKUs meanwhile
            for sku_plan in list(plan.skus.values()):
                sku_plan.outcomes.clear()
                sku_plan.outcomes_in_context.clear()
        _outcomes_kept[0] = 0
    memo[key] = outcome
    _outcomes_kept[0] += 1
    return outcome


def plan_for(rules: ActiveRules, catalogue: Catalogue, channel: str, level: str | None) -> PricingPlan:
    """The memoised plan. Keyed by object identity: a plan holds its rules and catalogue, so neither id can be
    reused by another object while the plan is kept (and the hit is checked against them all the same)."""
    key = (id(rules), id(catalogue), channel, level)
    plan = _plans.get(key)
    if plan is None or plan.rules is not rules or plan.catalogue is not catalogue:
        if len(_plans) >= PLANS_MAX:
            _plans.clear()
            _outcomes_kept[0] = 0
        plan = _plans[key] = PricingPlan(rules, catalogue, channel, level)
    return plan
