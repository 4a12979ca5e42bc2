"""Gifts at a till return (pure): a sale that reached a gift rule got its gift as a 0-fen line (`edge.core.gifts`);
a return that leaves the sale no longer reaching the rule's spend takes the gift's reason away.

The rule, as a real chain applies it at the service desk:
- The basket qualifies while what the customer keeps of the rule's eligible lines (what was paid for the sale's lines
  in the rule's scope, less what returns gave back for them) still reaches the rule's `spend_fen`.
- A return that brings it under asks for the gift back: the gift's line is returned with the others (0 fen back
  for it; its stock goes back like any returned line, on hand or to shrinkage by its disposition). A return that
  leaves the gift out is refused (409) saying which gift and the two ways on.
- Or the customer keeps the gift (`keep_gifts`): its regular price (the catalogue's, as the gift's value was
  computed by the evaluator) is deducted from the refund, once per sale and rule (a later return of the same sale
  deducts it no more); a gift returned in part has the rest of it deducted. A refund smaller than the deduction is
  refused: the gift must come back.
- A sale whose gift was already returned or paid for is never asked again. Only till sales carry this rule (an
  online order's gift is refunded through the order, `cloud/services/order_gifts.py`).
The gift rule is the one in the store's book at the return (the sale does not record its rule's threshold): a rule
that has left the book since asks nothing back.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from edge.core.outcome import Refused
from protocol.money import format_fen
from protocol.pricing.rules import Gift
from protocol.returns import Back, Sold


@dataclass(frozen=True, slots=True)
class GiftGiven:
    """A gift a sale got: its rule, the gift line (SKU, quantity in its stock unit), its regular price, the rule's
    spend and the sale's SKUs that counted towards it."""
    rule_id: str
    sku: str
    qty: int
    value_fen: int
    spend_fen: int
    scope: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Deduction:
    """A kept gift's price taken off a return's refund."""
    rule_id: str
    sku: str
    amount_fen: int


def gifts_of_sale(lines: Iterable[tuple[str, int, str, int]], rules: Iterable[Gift],
                  category_of: Callable[[str], str], value_of: Callable[[Gift], int]) -> list[GiftGiven]:
    """The gifts a sale's lines show: a 0-fen line of a gift rule's SKU (at least the rule's quantity). `value_of`:
    the gift's regular price (catalogue price of the rule's quantity)."""
    free: dict[str, int] = {}
    paid: list[str] = []
    for sku, qty, _, fen in lines:
        if fen == 0:
            free[sku] = free.get(sku, 0) + qty
        elif sku not in paid:
            paid.append(sku)
    out = []
    for rule in rules:
        if free.get(rule.gift_sku, 0) >= rule.gift_qty:
            free[rule.gift_sku] -= rule.gift_qty
            scope = tuple(s for s in paid if rule.targets(s, category_of(s)))
            out.append(GiftGiven(rule.id, rule.gift_sku, rule.gift_qty, value_of(rule), rule.spend_fen, scope))
    return out


def deductions(gifts: Sequence[GiftGiven], sold: Mapping[str, Sold], before: Mapping[str, Back],
               lines: Sequence[tuple[str, int, int]], settled: Iterable[str], keep_gifts: bool) -> list[Deduction]:
    """The deductions of a return whose `lines` ((sku, qty, fen back), as `protocol.returns.refund_lines` answered)
    take a gift's reason away; Refused (409) when the gift is neither returned nor kept. `settled`: rules whose
    gift this sale already paid for (deducted by an earlier return)."""
    done = set(settled)
    now: dict[str, tuple[int, int]] = {}
    for sku, qty, fen in lines:
        q, f = now.get(sku, (0, 0))
        now[sku] = (q + qty, f + fen)
    out: list[Deduction] = []
    for g in gifts:
        if g.rule_id in done:
            continue
        kept = sum(sold[s].paid_fen - before.get(s, Back()).fen - now.get(s, (0, 0))[1] for s in g.scope if s in sold)
        if kept >= g.spend_fen:
            continue
        back = before.get(g.sku, Back()).qty + now.get(g.sku, (0, 0))[0]
        left = max(g.qty - back, 0)
        if not left:
            continue  # the gift came back (with this return or before)
        if not keep_gifts:
            raise Refused(409, f"gift {g.sku} (rule {g.rule_id}): what is kept, {format_fen(max(kept, 0))}, no "
                               f"longer reaches the {format_fen(g.spend_fen)} it was given for: return the gift "
                               f"({g.sku}, {left}) with the others, or keep it and have its price "
                               f"{format_fen(g.value_fen * left // g.qty)} taken off the refund (keep_gifts: true)")
        out.append(Deduction(g.rule_id, g.sku, g.value_fen * left // g.qty))
    refund = sum(fen for _, _, fen in lines)
    owed = sum(d.amount_fen for d in out)
    if owed > refund:
        names = ", ".join(d.sku for d in out)
        raise Refused(409, f"the gift(s) kept ({names}) are worth {format_fen(owed)}, more than this return gives "
                           f"back ({format_fen(refund)}): return the gift(s) with the others")
    return out


@dataclass(frozen=True, slots=True)
class UndoPromotions:
    """A return's effect on the sale's promotions at the store, in the return's transaction: the kept gifts' prices
    recorded (so a later return of the sale deducts them no more), and the coupons a whole return let go (marked
    released here: the member may use them again once the cloud's wallet shows them issued - the cloud may keep
    them)."""
    source: str
    return_id: str
    deductions: tuple[Deduction, ...]
    coupons_back: tuple[str, ...]
    points_back: int = 0  # points the return gives back (a sale paid partly with points): counted for the next
    whole: bool = False  # the sale is back whole: its uses of per-member-limited rules no longer count here


def undo(source: str, return_id: str, deducted: Sequence[Deduction], coupons_back: Sequence[str],
         points_back: int = 0, whole: bool = False) -> list:
    """The effect (none when there is nothing to undo)."""
    if not deducted and not coupons_back and not points_back and not whole:
        return []
    return [UndoPromotions(source, return_id, tuple(deducted), tuple(coupons_back), points_back, whole)]
