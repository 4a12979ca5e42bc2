"""The promotion book's preview: what a basket costs under a book (the one in force or an edited draft) at a till
or online, for a member level and a moment, and what EACH rule of the book did to it.

Guarantees:
- One pricing engine: the prices come from `price_basket` (the evaluator tills and the mall run), never from a
  second calculation here; this module only explains, per rule, why the evaluator did or did not use it.
- Every rule of the book gets exactly one verdict: `applied` (with its saving), or one reason it gave nothing:
  not in force (`scheduled`, `ended`, `out_of_window`, `channel`, `store`, `member_level`), or in force but
  `near_miss` (how much more to spend), `below_threshold`, `not_in_basket`, `coupon_not_held`, `new_members_only`,
  `group_not_formed`, `gift_out_of_stock`, `budget` (nothing left of its cap, or the member used it up),
  `exclusive` (another rule of its group saved more), `marked_down` (its lines took a clearance price),
  `use_by` (no line's lot near enough its use-by), `member_price_better`, or `no_saving`.
- Each verdict says whether the rule's scope (skus, categories; none: the whole basket) covers a line of this
  basket (`in_scope`), so a page can show the rules that concern the basket first.
- Pure: time, budgets and the member's context come in `PricingContext`; no clock, no I/O.
- A scheduled rule's status (`scheduled` / `live` / `ended`) at a moment is `schedule_status`, the same test the
  evaluator's `active_rules` makes of `starts_ms` / `ends_ms`.
"""
from __future__ import annotations

from typing import Any

from protocol.errors import ProtocolError
from protocol.money import format_fen
from protocol.pricing.catalogue import Catalogue
from protocol.pricing.evaluator import BasketLine, PricedBasket, PricingContext
from protocol.pricing.fast_evaluator import price_basket
from protocol.pricing.markdown_step import days_to_use_by
from protocol.pricing.rules import (
    MINUTE_MS,
    Coupon,
    Gift,
    GroupBuy,
    ItemDiscount,
    Markdown,
    Rule,
    RuleBook,
    SpendThreshold,
    load_rule_book,
)

EFFECTS = ("applied", "scheduled", "ended", "channel", "store", "out_of_window", "member_level", "near_miss",
           "below_threshold", "not_in_basket", "coupon_not_held", "new_members_only", "group_not_formed",
           "gift_out_of_stock", "budget", "exclusive", "marked_down", "use_by", "member_price_better", "no_saving")
PREVIEW_LINES_MAX = 100  # a preview basket is typed in by hand: a page of lines at most


def schedule_status(rule: Rule, now_ms: int) -> str:
    """`scheduled` (its start is still to come), `ended` (its end has passed) or `live`."""
    if rule.starts_ms and now_ms < rule.starts_ms:
        return "scheduled"
    if rule.ends_ms and now_ms >= rule.ends_ms:
        return "ended"
    return "live"


def not_in_force(rule: Rule, book: RuleBook, ctx: PricingContext) -> tuple[str, str] | None:
    """Why the rule is not in force for this context (the tests `RuleBook.active_rules` makes), or None."""
    status = schedule_status(rule, ctx.now_ms // MINUTE_MS * MINUTE_MS)
    if status != "live":
        return status, "starts later" if status == "scheduled" else "has ended"
    if ctx.channel not in rule.channels:
        return "channel", f"not for {ctx.channel} (only {', '.join(rule.channels)})"
    if rule.stores and ctx.store_id not in rule.stores:
        return "store", f"not at store {ctx.store_id} (only {', '.join(rule.stores)})"
    local_minute = (ctx.now_ms // MINUTE_MS + book.utc_offset_minutes) % (24 * 60)
    windows = rule.windows()
    if windows and not any(a <= local_minute < b for a, b in windows):
        shown = f"from {rule.from_time}" if isinstance(rule, Markdown) and rule.from_time else ", ".join(rule.daily)
        return "out_of_window", f"outside its hours ({shown})"
    if rule.member_levels and (ctx.member_level is None or ctx.member_level not in rule.member_levels):
        return "member_level", f"for members of level {', '.join(rule.member_levels)} only"
    return None


def _in_scope(rule: Rule, catalogue: Catalogue, skus: list[str]) -> list[str]:
    return [sku for sku in skus if rule.targets(sku, catalogue.get(sku).category)]


def _threshold_fen(rule: SpendThreshold | Coupon | Gift) -> int:
    if isinstance(rule, SpendThreshold):
        return rule.tiers[0].spend_fen
    return rule.min_spend_fen if isinstance(rule, Coupon) else rule.spend_fen


def _why_idle(rule: Rule, book: RuleBook, catalogue: Catalogue, lines: list[BasketLine], ctx: PricingContext,
              result: PricedBasket) -> tuple[str, str]:
    """Why a rule in force gave nothing to this basket."""
    near = next((n for n in result.near_misses if n.rule_id == rule.id), None)
    if near is not None:
        return "near_miss", near.message
    if isinstance(rule, Coupon) and rule.id not in ctx.coupons:
        return "coupon_not_held", "the member does not hold this coupon"
    if isinstance(rule, Coupon) and rule.new_member_only and not ctx.new_member:
        return "new_members_only", "for new members only"
    if isinstance(rule, GroupBuy) and rule.id not in ctx.formed_groups:
        return "group_not_formed", "no group of this member has formed"
    if isinstance(rule, Gift) and rule.gift_sku in ctx.gifts_out:
        return "gift_out_of_stock", f"the gift {rule.gift_sku} is out of stock"
    if any(b.rule_id == rule.id and b.fen <= 0 for b in ctx.budgets_left):
        return "budget", "its budget is used up (or this member used it up)"
    scope = _in_scope(rule, catalogue, [line.sku for line in lines])
    if not scope:
        return "not_in_basket", "no line of the basket is in its scope"
    if rule.group:
        winner = next((a for a in result.applied if a.rule_id != rule.id
                       and (other := book.by_id.get(a.rule_id)) is not None and other.group == rule.group), None)
        if winner is not None:
            return "exclusive", f"{winner.rule_id} of the exclusive group {rule.group!r} saved more"
    if isinstance(rule, Markdown):
        days: list[int | None] = [days_to_use_by(line.use_by, ctx.now_ms, book.utc_offset_minutes)
                                  for line in lines if line.sku in scope]
        if not any(rule.matches_use_by(d) for d in days):
            return "use_by", f"no line's lot is within {rule.days_to_use_by} day(s) of its use-by"
        return "member_price_better", "the member's price is already lower than the markdown"
    if isinstance(rule, (ItemDiscount, GroupBuy)):
        if all(pl.markdown_rule for pl in result.lines if pl.sku in scope):
            return "marked_down", "its lines are marked down (a clearance price takes no further line discount)"
        return "no_saving", "it took nothing off its lines"
    if isinstance(rule, (SpendThreshold, Coupon, Gift)):
        return "below_threshold", f"the eligible spend is below its threshold {format_fen(_threshold_fen(rule))}"
    return "no_saving", "it took nothing off the basket"


def explain(catalogue: Catalogue, book: RuleBook, lines: list[BasketLine], ctx: PricingContext) -> dict[str, Any]:
    """The basket priced by the evaluator, each line with its price and rules, and a verdict for every rule."""
    if not lines:
        raise ProtocolError("lines: add at least one line to preview")
    if len(lines) > PREVIEW_LINES_MAX:
        raise ProtocolError(f"lines: at most {PREVIEW_LINES_MAX} lines in a preview")
    result = price_basket(catalogue, book, lines, ctx)
    savings = {a.rule_id: a.saving_fen for a in result.applied}
    skus = [line.sku for line in lines]
    verdicts = []
    for rule in book.rules:
        base = {"rule_id": rule.id, "type": rule.TYPE, "name": rule.name,
                "status": schedule_status(rule, ctx.now_ms), "in_scope": bool(_in_scope(rule, catalogue, skus))}
        off = not_in_force(rule, book, ctx)
        if rule.id in savings:
            verdicts.append({**base, "effect": "applied", "saving_fen": savings[rule.id],
                             "why": f"saved {format_fen(savings[rule.id])}"})
            continue
        reason, why = off if off is not None else _why_idle(rule, book, catalogue, lines, ctx, result)
        verdicts.append({**base, "effect": reason, "saving_fen": 0, "why": why})
    member = [{"rule_id": a.rule_id, "type": a.type, "name": a.name, "saving_fen": a.saving_fen}
              for a in result.applied if a.type == "member_price"]
    return {
        "rule_book_version": result.rule_book_version, "channel": ctx.channel, "store_id": ctx.store_id,
        "member_level": ctx.member_level,
        "lines": [{"sku": pl.sku, "name": pl.name, "qty": pl.qty, "weight_g": pl.weight_g,
                   "unit_price_fen": pl.unit_price_fen, "list_fen": pl.list_fen, "amount_fen": pl.amount_fen,
                   "saving_fen": pl.list_fen - pl.amount_fen, "rules": list(pl.rules)} for pl in result.lines],
        "rules": verdicts, "member_price": member,
        "gifts": [{"rule_id": g.rule_id, "sku": g.sku, "name": g.name, "qty": g.qty, "value_fen": g.value_fen}
                  for g in result.gifts],
        "near_misses": [{"rule_id": n.rule_id, "missing_fen": n.missing_fen, "message": n.message}
                        for n in result.near_misses],
        "subtotal_fen": result.subtotal_fen, "total_fen": result.total_fen, "discount_fen": result.discount_fen,
    }


def draft_book(data: Any, catalogue: Catalogue, version: int) -> tuple[RuleBook, dict[str, Any]]:
    """A draft rule book validated as `PUT /rule-book` validates one (every refusal names the rule and field).
    `version`: the version the draft gets when it gives none (the book in force's + 1: what publishing makes it)."""
    if not isinstance(data, dict):
        raise ProtocolError("rule_book: expected a map with 'rules'")
    data = {**data, "version": data.get("version", version)}
    return load_rule_book(data, catalogue), data
