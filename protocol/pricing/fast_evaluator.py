"""The evaluator tills, the mall, orders and picking run: `price_basket`, compiled and memoised.

Guarantee: for every input, `price_basket` returns a PricedBasket equal, field by field, to the reference
evaluator's (`protocol.pricing.evaluator.price_basket_reference`): the lines in input order with their rules, the
applied rules in the same order with the same savings, the near misses and their messages, gifts, gifts missing,
coupons used, the totals and the book version. Where the reference refuses a basket (an unknown product, one not
sold on the channel, the wrong measure, too many lines), the reference itself is asked, so the ProtocolError is the
same; so is a book whose gift the catalogue lacks. tests/unit/test_pricing_fast.py holds the two equal on generated
books, catalogues and baskets. Pure like the reference: no I/O, no clock; its memos only ever hold answers.

How it is fast:
- the rules in force for a context and the store's resolved catalogue are compiled once into a plan
  (protocol/pricing/price_plan.py): per SKU its prices, line rules, group buys, markdowns and basket scopes;
- a line is a few integer operations on its SKU's plan; a packed line's outcome is memoised per SKU by the line's
  shape, and a budget is only checked, not recomputed, unless it bites (protocol/pricing/fast_lines.py);
- the basket stage works on a plain list of amounts and spreads whole scopes at once; each line's PricedLine is made
  once, at the end, with its final amount and rules (protocol/pricing/fast_basket.py).
"""
from __future__ import annotations

from collections.abc import Sequence

from protocol.pricing import fast_basket
from protocol.pricing.catalogue import Catalogue
from protocol.pricing.evaluator import (
    MAX_LINES,
    AppliedRule,
    BasketLine,
    GiftLine,
    NearMiss,
    PricedBasket,
    PricedLine,
    PricingContext,
    price_basket_reference,
)
from protocol.pricing.fast_lines import canonical_order, line_in_context, within_budgets
from protocol.pricing.price_plan import LineOutcome, LineShape, plan_for
from protocol.pricing.rules import Markdown, RuleBook

_NO_BUDGETS: dict[str, int] = {}  # shared, never written
# Results are made as bare instances with their fields set: a dataclass __init__, called through type.__call__,
# costs more than pricing a memoised line. The fields and values are the same (the tests compare with ==).
_new = object.__new__


def price_basket(catalogue: Catalogue, book: RuleBook, lines: list[BasketLine] | tuple[BasketLine, ...],
                 ctx: PricingContext) -> PricedBasket:
    """Price a basket: the same PricedBasket as the reference evaluator, faster (see the module docstring)."""
    if len(lines) > MAX_LINES:
        return price_basket_reference(catalogue, book, lines, ctx)
    plan = plan_for(book.active_rules(ctx.channel, ctx.store_id, ctx.now_ms, ctx.member_level),
                    catalogue.at(ctx.now_ms, ctx.store_id), ctx.channel, ctx.member_level)
    if plan.exotic:
        return price_basket_reference(catalogue, book, lines, ctx)
    left = {b.rule_id: b.fen for b in ctx.budgets_left} if ctx.budgets_left else _NO_BUDGETS
    order = canonical_order(lines)
    by_rule: dict[str, int] = {}  # savings per rule, in order of first application (the order `applied` lists)
    outcomes: list[LineOutcome] = []  # canonical order
    amounts: list[int] = []  # theirs, after the line stage
    members: list[list[int]] = [[] for _ in plan.scope_keys]  # the lines each scope covers
    totals = [0] * len(members)  # and the sum of their amounts
    skus, sku_plan, offset = plan.skus, plan.sku_plan, book.utc_offset_minutes
    for position, i in enumerate(order):
        line = lines[i]
        sp = skus.get(line.sku) or sku_plan(line.sku)
        if sp is None:  # an unknown product: the reference refuses it
            return price_basket_reference(catalogue, book, lines, ctx)
        if sp.weighed:  # priced afresh: weights rarely repeat
            shape: LineShape | None = None
            outcome = line_in_context(sp, line, shape, ctx, offset, by_rule, left, False)
        else:  # the line's shape, all of it but the SKU, is the key of the SKU's memo
            shape = (line.qty, line.weight_g, line.amount_fen, line.use_by, line.markdown_rule, line.was_fen)
            outcome = sp.outcomes.get(shape) or line_in_context(sp, line, shape, ctx, offset, by_rule, left, False)
        if outcome is None:  # not sold on this channel, or the wrong measure: the reference refuses it
            return price_basket_reference(catalogue, book, lines, ctx)
        _, amount, _, savings, _, _, watched, scopes, _ = outcome
        if (watched or left) and not within_budgets(sp, savings, by_rule, left):
            capped = line_in_context(sp, line, shape, ctx, offset, by_rule, left, True)
            assert capped is not None  # a refused line was refused above
            outcome = capped
            _, amount, _, savings, _, _, watched, scopes, _ = outcome
        outcomes.append(outcome)
        amounts.append(amount)
        for rule_id, saving in savings:
            by_rule[rule_id] = by_rule.get(rule_id, 0) + saving
        for k in scopes:
            members[k].append(position)
            totals[k] += amount

    totals[0] = sum(amounts)
    state = fast_basket.BasketState(amounts, members, totals)
    near: list[NearMiss] = []
    coupons_used = fast_basket.apply_basket_rules(plan, ctx, state, by_rule, left, near)
    missing: list[GiftLine] = []
    gifts = fast_basket.give_gifts(plan, ctx, state, by_rule, left, near, missing)
    subtotal = sum([outcome[0][5] for outcome in outcomes])  # the list amounts
    return PricedBasket(_priced_lines(order, outcomes, state), _applied(book, ctx, outcomes, by_rule), near, gifts,
                        subtotal, sum(state.amounts), coupons_used, book.version, missing)


def _priced_lines(order: list[int], outcomes: list[LineOutcome], state: fast_basket.BasketState) -> list[PricedLine]:
    """The PricedLines in the caller's order, each made once with its final amount and rules."""
    amounts, spreads = state.amounts, state.spreads
    by_mask: dict[int, list[str]] = {}  # the spread rules of a scope mask, when every line covered took a share
    regular = all(took is None for _, _, took in spreads)
    priced: list[PricedLine] = []
    for position in sorted(range(len(order)), key=order.__getitem__):  # canonical position of each input line
        head, _, rules, _, _, markdown, _, _, scope_mask = outcomes[position]
        if not spreads:
            named = list(rules)
        elif regular:
            extra = by_mask.get(scope_mask)
            if extra is None:
                extra = by_mask[scope_mask] = state.spread_rules(position, scope_mask)
            named = [*rules, *extra]
        else:
            named = [*rules, *state.spread_rules(position, scope_mask)]
        pl = _new(PricedLine)
        pl.sku, pl.name, pl.qty, pl.weight_g, pl.unit_price_fen, pl.list_fen = head
        pl.amount_fen = amounts[position]
        pl.rules = named
        pl.markdown_rule, pl.markdown_fen = markdown
        priced.append(pl)
    return priced


def _applied(book: RuleBook, ctx: PricingContext, outcomes: Sequence[LineOutcome],
             by_rule: dict[str, int]) -> list[AppliedRule]:
    """The member price's saving, then each rule's, in order of first application."""
    member_saving = sum([outcome[4] for outcome in outcomes])
    applied = [AppliedRule(f"member-price:{ctx.member_level}", "member_price", f"{ctx.member_level} member price",
                           member_saving)] if member_saving else []
    by_id = book.by_id
    for rule_id, fen in by_rule.items():
        if fen > 0:
            a = _new(AppliedRule)
            a.rule_id, a.saving_fen = rule_id, fen
            r = by_id.get(rule_id)
            if r is not None:
                a.type, a.name = r.TYPE, r.name
            else:  # a label's markdown rule may have left the book since it was printed
                a.type, a.name = Markdown.TYPE, rule_id
            applied.append(a)
    return applied
