"""The price and line stages of the fast evaluator (protocol/pricing/fast_evaluator.py), as the reference
evaluator's _price_lines (protocol/pricing/evaluator.py): one line's outcome from its SKU's plan
(protocol/pricing/price_plan.py). Pure.

A line's outcome is memoised in its SKU plan, by the line's shape (all of it but the SKU), when nothing of the
member's context shaped it: no group buy or markdown concerns the SKU. Budgets are checked on the way out instead
(`within_budgets`): where a capped rule's saving fits in what its budget has left, the uncapped outcome is the
capped one, so only the rare line that reaches a cap is priced again.
"""
from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from protocol.pricing.evaluator import BasketLine, PricingContext
from protocol.pricing.markdown_step import days_to_use_by, marked_down
from protocol.pricing.price_plan import LineOutcome, LineRule, LineShape, SkuPlan, remember

_NO_MARKDOWN = ("", 0)
# The reference's canonical order: lines are priced in it, so the result cannot depend on scanning order.
_LINE_KEY = attrgetter("sku", "qty", "weight_g", "amount_fen", "use_by", "markdown_rule", "was_fen")


def canonical_order(lines: Sequence[BasketLine]) -> list[int]:
    """Positions of the lines sorted by the reference's key (ties: input order). The SKU is the key's first part:
    sorting by it alone is cheaper, and only lines of a repeated SKU need the rest of the key."""
    skus = [line.sku for line in lines]
    order = sorted(range(len(skus)), key=skus.__getitem__)
    if len(set(skus)) < len(skus):
        start = 0
        for end in range(1, len(order) + 1):  # runs of one SKU are adjacent, in input order (a stable sort)
            if end == len(order) or skus[order[end]] != skus[order[start]]:
                if end - start > 1:
                    order[start:end] = sorted(order[start:end], key=lambda i: _LINE_KEY(lines[i]))
                start = end
    return order


def _rules_kept(sp: SkuPlan, amount: int, pieces: int) -> tuple[LineRule, ...]:
    """The SKU's line rules less the losers of its contested exclusive groups: of each, the rule that saves most on
    the starting amount stays (ties: the first), as the reference's _best_per_group."""
    rules = sp.line_rules
    winners = []
    for rivals in sp.rivals:
        best, most = -1, -1
        for i in rivals:
            _, bp, off, _ = rules[i]
            saving = (2 * amount * bp + 10_000) // 20_000 if bp else min(off * pieces, amount)
            if saving > most:
                best, most = i, saving
        winners.append(best)
    key = tuple(winners)
    kept = sp.kept_by_winners.get(key)
    if kept is None:  # few combinations: one per set of winners
        losers = {i for rivals in sp.rivals for i in rivals} - set(winners)
        kept = sp.kept_by_winners[key] = tuple(r for i, r in enumerate(rules) if i not in losers)
    return kept


def line_outcome(sp: SkuPlan, line: BasketLine, group_buy: str, group_unit: int, days_left: int | None,
                 by_rule: dict[str, int] | None, left: dict[str, int]) -> LineOutcome:
    """The price and line stages for one line (not a printed markdown label), as the reference's _list_line,
    markdown step and line rules. `by_rule` None: no budget caps this line's rules (the outcome may be memoised)."""
    qty, grams, label = line.qty, line.weight_g, line.amount_fen
    if label:  # an amount from a label barcode: the list amount, at the list unit price, no group price
        unit, list_fen, member_fen, amount = sp.list_fen, label, label, label
    elif sp.weighed:  # grams x price per kg, rounded half up once (protocol.money.weighed_amount_fen)
        unit = group_unit
        list_fen = (2 * grams * sp.list_fen + 1000) // 2000
        member_fen = (2 * grams * sp.unit_fen + 1000) // 2000 if sp.unit_fen != sp.list_fen else list_fen
        amount = (2 * grams * unit + 1000) // 2000 if group_buy else member_fen
    else:
        unit = group_unit
        list_fen, member_fen, amount = qty * sp.list_fen, qty * sp.unit_fen, qty * unit
    head = (sp.sku, sp.name, qty, grams, unit, list_fen)
    if sp.markdowns:
        markdown, cleared = marked_down(sp.product, line, list_fen, sp.markdowns, days_left)
        if markdown is not None and cleared < amount:  # a clearance price is final for its line
            off = list_fen - cleared
            return (head, cleared, (markdown.id,), ((markdown.id, off),), 0, (markdown.id, off), False, sp.scopes,
                    sp.scope_mask)
    rules: list[str] = []
    savings: list[tuple[str, int]] = []
    if group_buy:
        rules.append(group_buy)
        savings.append((group_buy, member_fen - amount))
    pieces = qty or 1
    for rule_id, bp, off, budget in _rules_kept(sp, amount, pieces) if sp.rivals else sp.line_rules:
        saving = (2 * amount * bp + 10_000) // 20_000 if bp else min(off * pieces, amount)  # portion_fen: half up
        if by_rule is not None and (budget or rule_id in left):
            saving = min(saving, max(left.get(rule_id, budget) - by_rule.get(rule_id, 0), 0))
        if saving > 0:
            amount -= saving
            rules.append(rule_id)
            savings.append((rule_id, saving))
    watched = bool(sp.budgets) and not sp.budgets.keys().isdisjoint(rules)
    return head, amount, tuple(rules), tuple(savings), list_fen - member_fen, _NO_MARKDOWN, watched, sp.scopes, \
        sp.scope_mask


def line_in_context(sp: SkuPlan, line: BasketLine, shape: LineShape | None, ctx: PricingContext,
                    utc_offset_minutes: int, by_rule: dict[str, int], left: dict[str, int],
                    capping: bool) -> LineOutcome | None:
    """A line the SKU's memo does not answer, or whose memoised outcome a budget would cap (`capping`). None: the
    reference refuses it (not sold on this channel, or the wrong measure). Only a packed line (`shape` given, its
    qty and no label amount) is memoised, when no budget capped it: by its shape, or, where a group buy or markdown
    concerns the SKU, with the group it takes and its days to use-by. Weighed and label lines rarely repeat: keeping
    them would cost more than it saves."""
    if not sp.sellable:
        return None
    if line.markdown_rule:  # a printed markdown label: its price stands, and nothing more comes off the line
        rule_id, off = line.markdown_rule, line.was_fen - line.amount_fen
        return ((sp.sku, sp.name, line.qty, line.weight_g, sp.list_fen, line.was_fen), line.amount_fen, (rule_id,),
                ((rule_id, off),), 0, (rule_id, off), False, sp.scopes, sp.scope_mask)
    if not line.amount_fen and ((line.weight_g <= 0 or line.qty != 0) if sp.weighed
                                else (line.qty <= 0 or line.weight_g != 0)):
        return None
    group_buy, unit = "", sp.unit_fen
    if sp.group_buys and not line.amount_fen:
        for rule_id, group_price in sp.group_buys:  # the lowest price of the groups formed (ties: book order)
            if rule_id in ctx.formed_groups and group_price < unit:
                group_buy, unit = rule_id, group_price
    days_left = days_to_use_by(line.use_by, ctx.now_ms, utc_offset_minutes) if sp.markdowns else None
    if capping:
        return line_outcome(sp, line, group_buy, unit, days_left, by_rule, left)
    if shape is None or line.amount_fen:
        return line_outcome(sp, line, group_buy, unit, days_left, None, left)
    if sp.group_buys or sp.markdowns:  # the group taken and the days to use-by are part of the key
        key = (shape, group_buy, days_left)
        found = sp.outcomes_in_context.get(key)
        if found is not None:
            return found
        return remember(sp.outcomes_in_context, key, line_outcome(sp, line, group_buy, unit, days_left, None, left))
    return remember(sp.outcomes, shape, line_outcome(sp, line, "", unit, None, None, left))


def within_budgets(sp: SkuPlan, savings: tuple[tuple[str, int], ...], by_rule: dict[str, int],
                   left: dict[str, int]) -> bool:
    """Whether no budget caps these savings (the exclusive choice compares uncapped savings either way, so then the
    uncapped outcome is the capped one). Only line rules are capped: group buys and markdowns never are."""
    for rule_id, saving in savings:
        budget = sp.budgets.get(rule_id, 0)
        if (budget or rule_id in left) and rule_id in sp.rule_ids \
                and saving > max(left.get(rule_id, budget) - by_rule.get(rule_id, 0), 0):
            return False
    return True
