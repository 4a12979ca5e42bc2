"""The promotion book: rules as data, versioned, validated at load, shipped to every edge.

Every rule has an id, a `priority` (higher is applied first), an optional exclusive `group`, channel and store
scopes, an optional validity period (whole minutes) and daily windows in the book's local time, optional member
levels, an optional budget cap (total fen the promotion may give away) and an optional per-member use limit
(`per_member_limit`), both tracked by the caller (the cloud's PromotionBudgets actor, which passes what is left
as `PricingContext.budgets_left`; a till within the offline share the cloud granted its store).

Stages (the evaluator applies them in this order):
  price   markdown, group_buy             a clearance price (see below) or a member group's price replaces the
                                          line's starting amount
  line    item_discount, member_discount  per line: % off, or fen off per piece
  basket  spend_threshold, coupon         on the eligible subtotal after line discounts
  gift    gift                            a free item once the eligible subtotal reaches a threshold

Exclusivity: rules sharing a `group` never combine; where several apply, the one best for the customer wins
(per line for line rules, per basket for basket rules). Rules in different groups, or in none, stack.

Markdowns (end-of-day clearance, near-expiry; `Markdown`): a markdown is conditioned on the time of day (`from_time`,
until midnight in the book's local time) and/or on the days left to the line's lot use-by (`days_to_use_by`: 0 = on
the use-by day, 1 = that day or the day before ...; a line without a use-by never matches). How they combine:
- markdowns never combine with each other: of those that match a line, the deepest (lowest amount) wins;
- a markdown replaces the line's starting amount only when it is lower than the member or group-buy price (the
  customer gets the better of the two, never both);
- a marked-down line takes no further line rules (item/member discounts): a clearance price is final per line;
- basket rules (spend thresholds, coupons) and gifts count and spread over the marked-down amount as over any other.
A line priced from a printed markdown label already carries its markdown (the label's price): it is not marked down
again and takes no line rules either.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from protocol.errors import ProtocolError
from protocol.policy import CHAIN_UTC_OFFSET_MIN
from protocol.pricing.catalogue import CHANNELS, LEVEL_RE, Catalogue, Channel, Product
from protocol.schema import record, record_from_wire, require

HHMM_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DAYS_TO_USE_BY_MAX = 30
DAILY_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
MINUTE_MS = 60_000
RULE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
ACTIVE_CACHE_MAX = 4096  # memo entries: one per (channel, store, minute, member level)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


@record
class Rule:
    TYPE: ClassVar[str] = ""
    STAGE: ClassVar[str] = ""
    id: str
    name: str
    priority: int = 0
    group: str = ""
    channels: tuple[Channel, ...] = CHANNELS
    stores: tuple[str, ...] = ()  # empty: every store
    starts_ms: int = 0  # 0: no start
    ends_ms: int = 0  # 0: no end
    daily: tuple[str, ...] = ()  # "08:00-10:00" in the book's local time; empty: all day
    member_levels: tuple[str, ...] = ()  # empty: everyone, members or not
    budget_fen: int = 0  # 0: no cap
    # at most this many orders/sales of one member may use the rule (0: no limit); held chain-wide by the cloud's
    # PromotionBudgets actor (actors/promotion_budgets.py), which gives a used-up member a budget of 0 for it
    per_member_limit: int = 0
    skus: tuple[str, ...] = ()  # scope; both empty: the whole basket
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"rule {self.id!r}"
        require(bool(RULE_ID_RE.match(self.id)), f"rule id {self.id!r}: letters, digits and _.:- only, 1-64 chars")
        require(len(self.channels) > 0, f"{where}: channels must not be empty")
        for t in (self.starts_ms, self.ends_ms):
            require(t >= 0 and t % MINUTE_MS == 0, f"{where}: starts_ms/ends_ms must be whole minutes, not negative")
        require(not (self.starts_ms and self.ends_ms) or self.ends_ms > self.starts_ms, f"{where}: ends before it starts")
        for window in self.daily:
            m = DAILY_RE.match(window)
            require(bool(m) and _minutes(window[:5]) < _minutes(window[6:]),
                    f"{where}: daily window {window!r} must be HH:MM-HH:MM with start before end")
        for level in self.member_levels:
            require(bool(LEVEL_RE.match(level)), f"{where}: invalid member level {level!r}")
        require(self.budget_fen >= 0, f"{where}: budget_fen must not be negative")
        require(self.per_member_limit >= 0, f"{where}: per_member_limit must not be negative")
        self.check(where)

    def check(self, where: str) -> None:
        """Type-specific invariants."""

    def windows(self) -> tuple[tuple[int, int], ...]:
        return tuple((_minutes(w[:5]), _minutes(w[6:])) for w in self.daily)

    def targets(self, sku: str, category: str) -> bool:
        if not self.skus and not self.categories:
            return True
        return sku in self.skus or category in self.categories


def _percent_or_amount(rule: ItemDiscount | Coupon, where: str, per: str) -> None:
    require((rule.percent_off_bp > 0) != (rule.amount_off_fen > 0),
            f"{where}: give exactly one of percent_off_bp (1..10000) or amount_off_fen (> 0) {per}")
    require(0 <= rule.percent_off_bp <= 10_000, f"{where}: percent_off_bp must be 0..10000")
    require(rule.amount_off_fen >= 0, f"{where}: amount_off_fen must not be negative")


@record
class ItemDiscount(Rule):
    TYPE: ClassVar[str] = "item_discount"
    STAGE: ClassVar[str] = "line"
    percent_off_bp: int = 0  # 1000 = 10% off
    amount_off_fen: int = 0  # per piece

    def check(self, where: str) -> None:
        _percent_or_amount(self, where, "per piece")


@record
class MemberDiscount(ItemDiscount):
    TYPE: ClassVar[str] = "member_discount"

    def check(self, where: str) -> None:
        ItemDiscount.check(self, where)  # zero-argument super() does not work in slotted dataclasses
        require(len(self.member_levels) > 0, f"{where}: a member discount names its member_levels")


@record
class Tier:
    spend_fen: int
    off_fen: int


@record
class SpendThreshold(Rule):
    """'Spend 40 get 8 off': the highest tier reached applies; with `repeat`, per full multiple of it."""
    TYPE: ClassVar[str] = "spend_threshold"
    STAGE: ClassVar[str] = "basket"
    tiers: tuple[Tier, ...] = ()
    repeat: bool = False
    max_repeats: int = 0  # 0: no limit

    def check(self, where: str) -> None:
        require(len(self.tiers) > 0, f"{where}: needs at least one tier")
        last = 0
        for t in self.tiers:
            require(t.spend_fen > last, f"{where}: tiers must have rising spend_fen")
            require(0 < t.off_fen < t.spend_fen, f"{where}: tier off_fen must be positive and below its spend_fen")
            last = t.spend_fen
        require(self.max_repeats >= 0, f"{where}: max_repeats must not be negative")


@record
class Coupon(Rule):
    """A coupon the member holds (single use, tracked by the member ledger; valid in either channel)."""
    TYPE: ClassVar[str] = "coupon"
    STAGE: ClassVar[str] = "basket"
    min_spend_fen: int = 0
    amount_off_fen: int = 0
    percent_off_bp: int = 0
    new_member_only: bool = False

    def check(self, where: str) -> None:
        _percent_or_amount(self, where, "on the eligible subtotal")
        require(self.min_spend_fen >= 0, f"{where}: min_spend_fen must not be negative")


@record
class Gift(Rule):
    """'Spend 60, get eggs': a free item once the eligible subtotal reaches spend_fen."""
    TYPE: ClassVar[str] = "gift"
    STAGE: ClassVar[str] = "gift"
    spend_fen: int = 0
    gift_sku: str = ""
    gift_qty: int = 1

    def check(self, where: str) -> None:
        require(self.spend_fen > 0, f"{where}: spend_fen must be positive")
        require(self.gift_qty > 0, f"{where}: gift_qty must be positive")


@record
class GroupBuy(Rule):
    """N members join within the window: each pays group_price_fen per unit of the SKU."""
    TYPE: ClassVar[str] = "group_buy"
    STAGE: ClassVar[str] = "price"
    group_price_fen: int = 0
    group_size: int = 2
    window_min: int = 0  # a group's time to form, from when it opens (0: the chain's default, protocol/group_buys.py)

    def check(self, where: str) -> None:
        require(self.group_price_fen > 0, f"{where}: group_price_fen must be positive")
        require(self.group_size >= 2, f"{where}: group_size must be at least 2")
        require(0 <= self.window_min <= 7 * 24 * 60, f"{where}: window_min must be 0..10080 (a week)")
        require(len(self.skus) == 1 and not self.categories, f"{where}: a group buy is for exactly one sku")


@record
class Markdown(Rule):
    """End-of-day clearance or near-expiry: `percent_off_bp` off the list amount, or a fixed `price_fen` per unit
    (per kg or per piece, as the product's list price; named SKUs only), from `from_time` ("19:00", local, until
    midnight) and/or when the line's lot has at most `days_to_use_by` days left (-1: no use-by condition)."""
    TYPE: ClassVar[str] = "markdown"
    STAGE: ClassVar[str] = "price"
    from_time: str = ""
    days_to_use_by: int = -1
    percent_off_bp: int = 0
    price_fen: int = 0

    def check(self, where: str) -> None:
        require(self.from_time == "" or bool(HHMM_RE.match(self.from_time)),
                f"{where}: from_time {self.from_time!r} must be HH:MM (00:00-23:59)")
        require(-1 <= self.days_to_use_by <= DAYS_TO_USE_BY_MAX,
                f"{where}: days_to_use_by must be -1 (no condition) or 0..{DAYS_TO_USE_BY_MAX}")
        require(bool(self.from_time) or self.days_to_use_by >= 0,
                f"{where}: a markdown needs a condition: from_time and/or days_to_use_by")
        require(not (self.from_time and self.daily), f"{where}: give from_time or daily windows, not both")
        require((self.percent_off_bp > 0) != (self.price_fen > 0),
                f"{where}: give exactly one of percent_off_bp (1..10000) or price_fen (> 0, per unit)")
        require(0 <= self.percent_off_bp <= 10_000, f"{where}: percent_off_bp must be 0..10000")
        require(self.price_fen >= 0, f"{where}: price_fen must not be negative")
        require(not self.price_fen or (bool(self.skus) and not self.categories),
                f"{where}: a fixed markdown price_fen names its skus (a price is per product)")
        require(not self.group, f"{where}: markdowns never combine (the deepest applies); no exclusive group")
        require(not self.budget_fen, f"{where}: a markdown clears stock; it has no budget_fen")

    def windows(self) -> tuple[tuple[int, int], ...]:
        if self.from_time:
            return ((_minutes(self.from_time), 24 * 60),)
        return Rule.windows(self)

    def matches_use_by(self, days_left: int | None) -> bool:
        """`days_left`: to the line's lot use-by (None: the line has no use-by)."""
        if self.days_to_use_by < 0:
            return True
        return days_left is not None and 0 <= days_left <= self.days_to_use_by


RULE_TYPES: dict[str, type[Rule]] = {cls.TYPE: cls for cls in
                                     (ItemDiscount, MemberDiscount, SpendThreshold, Coupon, Gift, GroupBuy, Markdown)}


class RuleBook:
    """A validated, versioned set of rules, indexed for fast evaluation."""

    def __init__(self, version: int, rules: tuple[Rule, ...], utc_offset_minutes: int = CHAIN_UTC_OFFSET_MIN) -> None:
        self.version = version
        self.utc_offset_minutes = utc_offset_minutes
        # Deterministic application order: higher priority first, then id.
        self.rules = tuple(sorted(rules, key=lambda r: (-r.priority, r.id)))
        self.by_id = {r.id: r for r in self.rules}
        self._active_cache: dict[tuple[str, str, int, str | None], ActiveRules] = {}  # (channel, store, minute, level)
        # Rules in force change only at window edges: minutes with the same rules share one ActiveRules, and with it
        # its per-SKU indexes and what the fast evaluator compiled from it (protocol/pricing/price_plan.py).
        self._active_by_rules: dict[tuple[int, ...], ActiveRules] = {}  # positions in self.rules
        self._windows = tuple(r.windows() for r in self.rules)  # parsed once, not once per rule per minute
        # Only stores that some rule names need their own memo entry; every other store shares one.
        self._scoped_stores = frozenset(store for r in self.rules for store in r.stores)

    def active_rules(self, channel: str, store_id: str, now_ms: int, level: str | None) -> ActiveRules:
        """Rules in force for this channel, store, minute and member level (memoised per minute: rule times
        are whole minutes, so the memo never changes an answer)."""
        minute = now_ms // MINUTE_MS
        key = (channel, store_id if store_id in self._scoped_stores else "", minute, level)
        hit = self._active_cache.get(key)
        if hit is not None:
            return hit
        local_minute = (minute + self.utc_offset_minutes) % (24 * 60)
        now = minute * MINUTE_MS
        picked = tuple(
            i for i, (r, windows) in enumerate(zip(self.rules, self._windows, strict=True))
            if channel in r.channels
            and (not r.stores or store_id in r.stores)
            and (not r.starts_ms or now >= r.starts_ms) and (not r.ends_ms or now < r.ends_ms)
            and (not windows or any(a <= local_minute < b for a, b in windows))
            and (not r.member_levels or (level is not None and level in r.member_levels))
        )
        if len(self._active_cache) >= ACTIVE_CACHE_MAX:
            self._active_cache.clear()
            self._active_by_rules.clear()
        found = self._active_by_rules.get(picked)
        if found is None:
            found = self._active_by_rules[picked] = ActiveRules(self.rules[i] for i in picked)
        self._active_cache[key] = found
        return found


class ActiveRules:
    """The rules in force for one context, split by stage and indexed by SKU and category."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.group_buys: dict[str, list[GroupBuy]] = {}
        self.line: list[ItemDiscount] = []
        self.basket: list[SpendThreshold | Coupon] = []
        self.gifts: list[Gift] = []
        self.markdowns: list[Markdown] = []
        self._markdowns_for: dict[str, list[Markdown]] = {}
        self._by_sku: dict[str, list[ItemDiscount]] = {}
        self._by_category: dict[str, list[ItemDiscount]] = {}
        self._everywhere: list[ItemDiscount] = []
        self._order: dict[str, int] = {}
        self._for_product: dict[str, tuple[list[ItemDiscount], bool]] = {}
        for i, r in enumerate(rules):
            self._order[r.id] = i
            if isinstance(r, GroupBuy):
                self.group_buys.setdefault(r.skus[0], []).append(r)
            elif isinstance(r, ItemDiscount):
                self.line.append(r)
                if not r.skus and not r.categories:
                    self._everywhere.append(r)
                for sku in r.skus:
                    self._by_sku.setdefault(sku, []).append(r)
                for category in r.categories:
                    self._by_category.setdefault(category, []).append(r)
            elif isinstance(r, Gift):
                self.gifts.append(r)
            elif isinstance(r, Markdown):
                self.markdowns.append(r)
            else:  # the basket stage: RULE_TYPES has no other kind of rule
                assert isinstance(r, (SpendThreshold, Coupon)), f"rule {r.id!r}: {type(r).__name__} has no stage"
                self.basket.append(r)

    def line_rules_for(self, product: Product) -> tuple[list[ItemDiscount], bool]:
        """Line rules that target this product, in application order, and whether any is in an exclusive group
        (memoised per SKU)."""
        hit = self._for_product.get(product.sku)
        if hit is None:
            found = {r.id: r for r in (*self._by_sku.get(product.sku, ()), *self._by_category.get(product.category, ()),
                                       *self._everywhere)}
            ordered = sorted(found.values(), key=lambda r: self._order[r.id])
            hit = (ordered, any(r.group for r in ordered))
            self._for_product[product.sku] = hit
        return hit


    def markdowns_for(self, product: Product) -> list[Markdown]:
        """Markdowns in force that target this product, in book order (memoised per SKU)."""
        hit = self._markdowns_for.get(product.sku)
        if hit is None:
            hit = self._markdowns_for[product.sku] = [m for m in self.markdowns if m.targets(product.sku, product.category)]
        return hit


def load_rule_book(data: dict[str, Any], catalogue: Catalogue) -> RuleBook:
    """Parse and validate a rule book. Every refusal names the rule and what is wrong with it."""
    if not isinstance(data, dict):
        raise ProtocolError("rule book: expected a map with 'version' and 'rules'")
    unknown = sorted(set(data) - {"version", "rules", "utc_offset_minutes"})
    if unknown:
        raise ProtocolError(f"rule book: unknown field(s) {unknown}")
    version, items = data.get("version"), data.get("rules")
    if type(version) is not int or version < 1:
        raise ProtocolError("rule book: 'version' must be a positive integer")
    if not isinstance(items, list):
        raise ProtocolError("rule book: 'rules' must be a list")
    offset = data.get("utc_offset_minutes", CHAIN_UTC_OFFSET_MIN)
    if type(offset) is not int or not -720 <= offset <= 840:
        raise ProtocolError("rule book: utc_offset_minutes must be an integer in -720..840")
    rules: list[Rule] = []
    for i, item in enumerate(items):
        label = f"rule {item.get('id', f'#{i}')!r}" if isinstance(item, dict) else f"rule #{i}"
        if not isinstance(item, dict) or item.get("type") not in RULE_TYPES:
            kind = item.get("type") if isinstance(item, dict) else None
            raise ProtocolError(f"{label}: unknown type {kind!r} (one of {sorted(RULE_TYPES)})")
        rules.append(record_from_wire(RULE_TYPES[item["type"]], item, label, skip=frozenset({"type"})))
    _check_references(rules, catalogue)
    return RuleBook(version, tuple(rules), offset)


def _check_references(rules: list[Rule], catalogue: Catalogue) -> None:
    seen: set[str] = set()
    stages: dict[str, tuple[str, str]] = {}
    for r in rules:
        where = f"rule {r.id!r}"
        if r.id in seen:
            raise ProtocolError(f"{where}: id used twice")
        seen.add(r.id)
        for sku in r.skus + ((r.gift_sku,) if isinstance(r, Gift) else ()):
            if sku not in catalogue:
                raise ProtocolError(f"{where}: unknown sku {sku!r}")
        for category in r.categories:
            if category not in catalogue.categories:
                raise ProtocolError(f"{where}: unknown category {category!r}")
        if isinstance(r, ItemDiscount) and r.amount_off_fen:
            weighed = sorted(p.sku for p in catalogue.by_sku.values() if p.weighed and r.targets(p.sku, p.category))
            if weighed:
                raise ProtocolError(f"{where}: amount_off_fen is per piece but the scope includes weighed items "
                                    f"({', '.join(weighed[:3])}); use percent_off_bp")
        if isinstance(r, Markdown) and r.price_fen:
            for sku in r.skus:
                if r.price_fen >= catalogue.get(sku).price_fen:
                    raise ProtocolError(f"{where}: price_fen {r.price_fen} is not below {sku}'s list price "
                                        f"{catalogue.get(sku).price_fen}")
        if r.group:
            first = stages.setdefault(r.group, (r.STAGE, r.id))
            if first[0] != r.STAGE:
                raise ProtocolError(f"{where}: exclusive group {r.group!r} overlaps stages: {first[1]!r} is a {first[0]} "
                                    f"rule, {r.id!r} a {r.STAGE} rule; exclusives must be comparable (same stage)")
