"""The reference evaluator: the same basket, rule book version and context give the same result to the fen, offline
or online. Written to be read, not to be fast: tills, the mall, orders and picking run the compiled evaluator
(protocol/pricing/fast_evaluator.py, `protocol.pricing.price_basket`), which gives exactly what this one gives and is
held to it by property tests (tests/unit/test_pricing_fast.py).

price_basket_reference() prices each line (pieces; grams x price per kg with one rounding; or an amount embedded in a
label barcode; or a printed markdown label's price, final for its line), applies the rule stages (see rules.py;
markdowns by time of day and days to the line's use-by first, as its starting amount) and explains itself: each
line with the rules that touched it, each applied rule with its saving, the rules that almost applied ("spend
3.20 more for 8.00 off"), gifts, and the totals. Discounts never take a line below zero; basket-level discounts are
spread over the eligible lines (largest remainder), so line amounts always add up to the total.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from protocol.errors import ProtocolError
from protocol.money import format_fen, portion_fen, weighed_amount_fen
from protocol.pricing.catalogue import Catalogue, Channel, Product
from protocol.pricing.markdown_step import days_to_use_by, marked_down, use_by_day
from protocol.pricing.rules import (
    RULE_ID_RE,
    ActiveRules,
    Coupon,
    GroupBuy,
    ItemDiscount,
    Markdown,
    Rule,
    RuleBook,
    SpendThreshold,
)
from protocol.schema import record, require

NEAR_MISS_RATIO_BP = 2500  # "almost applied": the gap is at most a quarter of the threshold
MAX_LINES = 500
R = TypeVar("R", bound=Rule)


@record
class BasketLine:
    sku: str
    qty: int = 0  # pieces
    weight_g: int = 0  # for items sold by the kg
    amount_fen: int = 0  # an amount embedded in a label barcode: the line's list amount
    use_by: str = ""  # the line's lot use-by ("YYYY-MM-DD"), for markdowns by days to use-by; "": none known
    # A printed markdown label: `amount_fen` is its marked-down price, `was_fen` the list amount it was marked down
    # from, `markdown_rule` the rule that did it. Such a line is not marked down again.
    markdown_rule: str = ""
    was_fen: int = 0

    def __post_init__(self) -> None:
        require(self.qty >= 0 and self.weight_g >= 0 and self.amount_fen >= 0,
                f"line {self.sku}: negative quantity or amount")
        require(self.use_by == "" or use_by_day(self.use_by) is not None, f"line {self.sku}: use_by must be YYYY-MM-DD")
        require(not self.markdown_rule or (bool(RULE_ID_RE.match(self.markdown_rule)) and self.amount_fen > 0
                                           and self.was_fen >= self.amount_fen),
                f"line {self.sku}: a markdown label line carries its rule, its amount and a was_fen not below it")
        require((self.qty > 0) + (self.weight_g > 0) >= 1 or self.amount_fen > 0, f"line {self.sku}: nothing to price")


@record
class BudgetLeft:
    rule_id: str
    fen: int


@record
class PricingContext:
    channel: Channel
    store_id: str
    now_ms: int
    member_level: str | None = None
    new_member: bool = False
    coupons: tuple[str, ...] = ()  # coupon rule ids the member holds (the ledger checked they are unused)
    formed_groups: tuple[str, ...] = ()  # group-buy rule ids whose group formed for this member
    budgets_left: tuple[BudgetLeft, ...] = ()  # for budget-capped rules; absent means the full budget
    gifts_out: tuple[str, ...] = ()  # gift SKUs the seller has none of: their gift rules give nothing


@dataclass(slots=True)
class PricedLine:
    sku: str
    name: str
    qty: int
    weight_g: int
    unit_price_fen: int  # per piece or per kg, after member or group price
    list_fen: int  # at list price
    amount_fen: int  # what the customer pays for this line
    rules: list[str] = field(default_factory=list)
    markdown_rule: str = ""  # the markdown that set this line's starting amount ("" none)
    markdown_fen: int = 0  # what that markdown gave away on this line

    @property
    def discount_fen(self) -> int:
        return self.list_fen - self.amount_fen


@dataclass(slots=True)
class AppliedRule:
    rule_id: str
    type: str
    name: str
    saving_fen: int


@dataclass(slots=True)
class NearMiss:
    rule_id: str
    name: str
    missing_fen: int
    message: str


@dataclass(slots=True)
class GiftLine:
    rule_id: str
    sku: str
    name: str
    qty: int
    value_fen: int


@dataclass(slots=True)
class PricedBasket:
    lines: list[PricedLine]
    applied: list[AppliedRule]
    near_misses: list[NearMiss]
    gifts: list[GiftLine]
    subtotal_fen: int  # at list prices
    total_fen: int
    coupons_used: list[str]
    rule_book_version: int
    gifts_missing: list[GiftLine] = field(default_factory=list)  # reached, but the gift is out of stock

    @property
    def discount_fen(self) -> int:
        return self.subtotal_fen - self.total_fen


class _Savings:
    """Savings per rule, in order of first application, within what each rule's budget has left."""

    def __init__(self, ctx: PricingContext) -> None:
        self.by_rule: dict[str, int] = {}
        self.left = {b.rule_id: b.fen for b in ctx.budgets_left}

    def cap(self, rule: Rule, saving: int) -> int:
        # a rule named in budgets_left is held to it even without a fen cap: a per-member limit used up is 0 left
        if rule.budget_fen or rule.id in self.left:
            left = self.left.get(rule.id, rule.budget_fen) - self.by_rule.get(rule.id, 0)
            saving = min(saving, max(left, 0))
        return saving

    def add(self, rule: Rule, saving: int) -> None:
        self.by_rule[rule.id] = self.by_rule.get(rule.id, 0) + saving


def _line_saving(rule: ItemDiscount, amount: int, pieces: int) -> int:
    if rule.percent_off_bp:
        return portion_fen(amount, rule.percent_off_bp)
    return min(rule.amount_off_fen * pieces, amount)


def _best_per_group(rules: Sequence[R], saving_of: Callable[[R], int]) -> list[R]:
    """Keep ungrouped rules; of each exclusive group keep the one that saves the most (ties: book order)."""
    best: dict[str, tuple[int, int]] = {}
    for i, r in enumerate(rules):
        if r.group:
            s = saving_of(r)
            if r.group not in best or s > best[r.group][0]:
                best[r.group] = (s, i)
    keep = {i for _, i in best.values()}
    return [r for i, r in enumerate(rules) if not r.group or i in keep]


def _list_line(product: Product, line: BasketLine, ctx: PricingContext,
               rules: ActiveRules) -> tuple[int, int, int, GroupBuy | None, int]:
    """(list amount, unit price, amount at the member/group price, group-buy rule used or None, its saving)."""
    if line.amount_fen:
        return line.amount_fen, product.price_fen, line.amount_fen, None, 0
    amount_at: Callable[[int], int]  # a unit price to the line's amount
    if product.weighed:
        require(line.weight_g > 0 and line.qty == 0, f"line {product.sku}: sold by the kg, give weight_g")
        amount_at = lambda unit: weighed_amount_fen(line.weight_g, unit)  # noqa: E731
    else:
        require(line.qty > 0 and line.weight_g == 0, f"line {product.sku}: sold by the piece, give qty")
        amount_at = lambda unit: line.qty * unit  # noqa: E731
    unit = product.price_for(ctx.member_level)
    amount = amount_at(unit)
    used: GroupBuy | None = None
    for r in rules.group_buys.get(product.sku, ()):
        if r.id in ctx.formed_groups and r.group_price_fen < unit:
            unit, used = r.group_price_fen, r
    group_amount = amount_at(unit)
    return amount_at(product.price_fen), unit, group_amount, used, amount - group_amount


def _spread(lines: list[PricedLine], saving: int, rule_id: str) -> None:
    """Take `saving` off these lines in proportion to their amounts (largest remainder, then line order)."""
    total = sum(pl.amount_fen for pl in lines)
    shares = [(saving * pl.amount_fen) // total for pl in lines]
    order = sorted(range(len(lines)), key=lambda i: (-((saving * lines[i].amount_fen) % total), i))
    for i in order[: saving - sum(shares)]:
        shares[i] += 1
    for pl, share in zip(lines, shares, strict=True):
        if share:
            pl.amount_fen -= share
            pl.rules.append(rule_id)


def _threshold_saving(rule: SpendThreshold | Coupon, eligible: int) -> tuple[int, tuple[int, str] | None]:
    """(saving now, (missing fen, reward text) for the next step up, if any)."""
    if isinstance(rule, Coupon):
        if eligible < rule.min_spend_fen:
            reward = (f"{rule.percent_off_bp / 100:g}% off" if rule.percent_off_bp
                      else f"{format_fen(rule.amount_off_fen)} off")
            return 0, (rule.min_spend_fen - eligible, reward)
        s = portion_fen(eligible, rule.percent_off_bp) if rule.percent_off_bp else rule.amount_off_fen
        return min(s, eligible), None
    reached = [t for t in rule.tiers if eligible >= t.spend_fen]
    upcoming = [t for t in rule.tiers if eligible < t.spend_fen]
    nxt = (upcoming[0].spend_fen - eligible, f"{format_fen(upcoming[0].off_fen)} off") if upcoming else None
    if not reached:
        return 0, nxt
    top = reached[-1]
    times = eligible // top.spend_fen if rule.repeat else 1
    if rule.repeat and rule.max_repeats:
        times = min(times, rule.max_repeats)
    if rule.repeat and top is rule.tiers[-1] and (not rule.max_repeats or times < rule.max_repeats):
        nxt = ((times + 1) * top.spend_fen - eligible, f"{format_fen(top.off_fen * (times + 1))} off")
    return min(top.off_fen * times, eligible), nxt


def _near(rule: Rule, missing: int, threshold: int, reward: str, out: list[NearMiss]) -> None:
    if missing * 10_000 <= threshold * NEAR_MISS_RATIO_BP:
        out.append(NearMiss(rule.id, rule.name, missing, f"spend {format_fen(missing)} more for {reward} ({rule.name})"))


class _Basket:
    """Working state of one evaluation: the priced lines and, per rule scope, the lines it covers."""

    def __init__(self) -> None:
        self.lines: list[PricedLine] = []
        self.categories: list[str] = []
        self._scopes: dict[tuple[tuple[str, ...], tuple[str, ...]], list[PricedLine]] = {}  # (skus, categories)

    def in_scope(self, rule: Rule) -> list[PricedLine]:
        key = (rule.skus, rule.categories)  # many rules share a scope (most cover the whole basket)
        hit = self._scopes.get(key)
        if hit is None:
            hit = [pl for pl, cat in zip(self.lines, self.categories, strict=True) if rule.targets(pl.sku, cat)]
            self._scopes[key] = hit
        return hit

    def eligible_fen(self, rule: Rule) -> int:
        total = 0
        for pl in self.in_scope(rule):
            total += pl.amount_fen
        return total


def _price_lines(catalogue: Catalogue, rules: ActiveRules, lines: list[BasketLine], ctx: PricingContext,
                 savings: _Savings, basket: _Basket, utc_offset_minutes: int) -> int:
    """Stage price (markdown, member or group price) + line. Returns the member-price saving."""
    member_saving = 0
    for line in lines:
        product = catalogue.get(line.sku)
        if ctx.channel not in product.channels:
            raise ProtocolError(f"{product.sku} ({product.name}) is not sold {ctx.channel}")
        if line.markdown_rule:  # a printed markdown label: its price stands, and nothing more comes off the line
            pl = PricedLine(product.sku, product.name, line.qty, line.weight_g, product.price_fen, line.was_fen,
                            line.amount_fen, [line.markdown_rule], line.markdown_rule, line.was_fen - line.amount_fen)
            savings.by_rule[line.markdown_rule] = savings.by_rule.get(line.markdown_rule, 0) + pl.markdown_fen
            basket.lines.append(pl)
            basket.categories.append(product.category)
            continue
        list_fen, unit, amount, group_buy, group_saving = _list_line(product, line, ctx, rules)
        markdowns = rules.markdowns_for(product)
        if markdowns:
            days_left = days_to_use_by(line.use_by, ctx.now_ms, utc_offset_minutes)
            markdown, cleared = marked_down(product, line, list_fen, markdowns, days_left)
            if markdown is not None and cleared < amount:  # the better of clearance and member/group price
                pl = PricedLine(product.sku, product.name, line.qty, line.weight_g, unit, list_fen, cleared,
                                [markdown.id], markdown.id, list_fen - cleared)
                savings.add(markdown, list_fen - cleared)
                basket.lines.append(pl)
                basket.categories.append(product.category)
                continue
        pl = PricedLine(product.sku, product.name, line.qty, line.weight_g, unit, list_fen, amount)
        member_saving += list_fen - amount - group_saving
        if group_buy is not None:
            pl.rules.append(group_buy.id)
            savings.add(group_buy, group_saving)
        pieces = line.qty or 1
        candidates, grouped = rules.line_rules_for(product)
        if grouped:
            candidates = _best_per_group(candidates, functools.partial(_line_saving, amount=amount, pieces=pieces))
        for r in candidates:
            s = savings.cap(r, _line_saving(r, pl.amount_fen, pieces))
            if s > 0:
                pl.amount_fen -= s
                pl.rules.append(r.id)
                savings.add(r, s)
        basket.lines.append(pl)
        basket.categories.append(product.category)
    return member_saving


def _apply_basket_rules(rules: ActiveRules, ctx: PricingContext, savings: _Savings, basket: _Basket,
                        near: list[NearMiss]) -> list[str]:
    """Stage basket: spend thresholds and the coupons the member holds. Returns the coupons used."""
    coupons_used: list[str] = []
    candidates = [r for r in rules.basket if not isinstance(r, Coupon)
                  or (r.id in ctx.coupons and (ctx.new_member or not r.new_member_only))]
    for r in _best_per_group(candidates, lambda r: _threshold_saving(r, basket.eligible_fen(r))[0]):
        eligible = basket.eligible_fen(r)
        s, nxt = _threshold_saving(r, eligible)
        if nxt and eligible:
            _near(r, nxt[0], eligible + nxt[0], nxt[1], near)
        s = savings.cap(r, s)
        if s > 0:
            _spread([pl for pl in basket.in_scope(r) if pl.amount_fen > 0], s, r.id)
            savings.add(r, s)
            if isinstance(r, Coupon):
                coupons_used.append(r.id)
    return coupons_used


def _give_gifts(catalogue: Catalogue, rules: ActiveRules, ctx: PricingContext, savings: _Savings, basket: _Basket,
                near: list[NearMiss], missing: list[GiftLine]) -> list[GiftLine]:
    gifts: list[GiftLine] = []
    # a gift the seller has none of is not a candidate: another gift of its exclusive group may be given instead
    in_stock = [r for r in rules.gifts if r.gift_sku not in ctx.gifts_out]
    for r in _best_per_group(in_stock, lambda r: catalogue.get(r.gift_sku).price_fen * r.gift_qty):
        eligible = basket.eligible_fen(r)
        gift = catalogue.get(r.gift_sku)
        if eligible >= r.spend_fen:
            value = weighed_amount_fen(r.gift_qty, gift.price_fen) if gift.weighed else gift.price_fen * r.gift_qty
            if savings.cap(r, value) == value:  # a gift is given whole or not at all
                gifts.append(GiftLine(r.id, gift.sku, gift.name, r.gift_qty, value))
                savings.add(r, value)
        elif eligible:
            _near(r, r.spend_fen - eligible, r.spend_fen, f"a free {gift.name}", near)
    given_groups = {r.group for r in rules.gifts if r.group and any(g.rule_id == r.id for g in gifts)}
    for r in rules.gifts:  # reached but out of stock, and no other gift of its group given: the seller says so
        if r.gift_sku in ctx.gifts_out and basket.eligible_fen(r) >= r.spend_fen and r.group not in given_groups:
            gift = catalogue.get(r.gift_sku)
            missing.append(GiftLine(r.id, gift.sku, gift.name, r.gift_qty, 0))
    return gifts


def price_basket_reference(catalogue: Catalogue, book: RuleBook, lines: list[BasketLine] | tuple[BasketLine, ...],
                           ctx: PricingContext) -> PricedBasket:
    if len(lines) > MAX_LINES:
        raise ProtocolError(f"basket of {len(lines)} lines exceeds {MAX_LINES}")
    catalogue = catalogue.at(ctx.now_ms, ctx.store_id)  # the store's own prices and those in force now (price_book)
    rules = book.active_rules(ctx.channel, ctx.store_id, ctx.now_ms, ctx.member_level)
    savings, basket = _Savings(ctx), _Basket()
    near: list[NearMiss] = []
    # Price in a canonical order (and give the lines back in the caller's order), so that budget caps and the
    # largest-remainder spread cannot make the total depend on the order the items were scanned in.
    order = sorted(range(len(lines)), key=lambda i: (lines[i].sku, lines[i].qty, lines[i].weight_g, lines[i].amount_fen,
                                                     lines[i].use_by, lines[i].markdown_rule, lines[i].was_fen))
    member_saving = _price_lines(catalogue, rules, [lines[i] for i in order], ctx, savings, basket,
                                 book.utc_offset_minutes)
    coupons_used = _apply_basket_rules(rules, ctx, savings, basket, near)
    missing: list[GiftLine] = []
    gifts = _give_gifts(catalogue, rules, ctx, savings, basket, near, missing)

    applied = [AppliedRule(f"member-price:{ctx.member_level}", "member_price", f"{ctx.member_level} member price",
                           member_saving)] if member_saving else []
    # a label's markdown rule may have left the book since it was printed: its price still stands
    applied += [AppliedRule(rid, r.TYPE, r.name, fen) if (r := book.by_id.get(rid)) is not None
                else AppliedRule(rid, Markdown.TYPE, rid, fen) for rid, fen in savings.by_rule.items() if fen > 0]
    in_input_order = [pl for _, pl in sorted(zip(order, basket.lines, strict=True), key=lambda pair: pair[0])]
    return PricedBasket(in_input_order, applied, near, gifts, sum(pl.list_fen for pl in basket.lines),
                        sum(pl.amount_fen for pl in basket.lines), coupons_used, book.version, missing)
