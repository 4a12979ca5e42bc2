"""Picking an online order, as pure decisions both sides compute identically: what a picked line may say (the store's
picking API refuses it before it is recorded; the cloud refuses an `OrderPicked` that breaks it) and what the picked
goods do to the order's money (catch weight, substitutes, shortages).

A picked line of `ordered` units is split three ways: `picked` (left the shelf for it), `short` (neither picked nor
replaced) and, for the rest, a substitute. For a product sold by the kg `picked` is the actual weight, which must lie
within the product's tolerance (`catch_weight_tolerance_bp`) of what was ordered, or be 0 (the whole line short or
substituted): a weight outside is re-weighed or split by the picker, never guessed.

Money (`part_money`), for one store's part:
- catch weight: the order is re-priced with the promotion book on the picked weights; the difference is refunded,
  or charged up to the margin the customer pre-authorised (the tolerance's share of those lines' amounts);
- a substitute is charged at its own price but never more than the original units' share of the line (the
  customer does not pay more for a substitute); less is refunded;
- short units' share of the line is refunded (unless another store takes them over: the caller decides).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from protocol.money import portion_fen, weighed_amount_fen
from protocol.money_saga import charge_id, part_refund_id
from protocol.picking_messages import OrderPicked, PickedLine
from protocol.pricing import BasketLine, Catalogue, PricingContext, RuleBook, price_basket

BP = 10_000
MOVEMENT_ID_MAX_CHARS = 64  # a money movement's id is also an actor command's and the ledger's transfer id
SUBSTITUTE_QTY_MAX = 100_000  # pieces, or grams: an order line's own bound (order_request.MAX_QTY)


def weight_bounds(ordered_g: int, tolerance_bp: int) -> tuple[int, int]:
    """The picked weights (grams) accepted for `ordered_g` ordered: within the tolerance either way."""
    slack = ordered_g * tolerance_bp // BP
    return ordered_g - slack, ordered_g + slack


def money_part(kind: str, order_id: str, *names: str) -> str:
    """A money part of a store's picking (`weight:<store>`, `short:<store>:<sku>`, `sub:<store>:<sku>`), short enough
    that both its refund id (`refund:<order>:<part>`) and its extra charge id (`charge:<order>:<part>`) fit
    `MOVEMENT_ID_MAX_CHARS`: a longer one (a long store id or sku) hashes everything after its kind, so the ledger
    never refuses the id and leaves the refund requested forever. The same names always give the same part."""
    part = ":".join((kind, *names))
    longest = max(len(part_refund_id(order_id, part)), len(f"{charge_id(order_id)}:{part}"))
    if longest <= MOVEMENT_ID_MAX_CHARS:
        return part
    return f"{kind}:{hashlib.blake2b(':'.join(names).encode(), digest_size=8).hexdigest()}"


def check_line(line: PickedLine, weighed: bool, tolerance_bp: int, allow_substitutions: bool) -> str:
    """Why this picked line cannot be believed ("" when it can). `weighed`: the product is sold by the kg."""
    sku = line.sku
    if line.short > line.ordered:
        return f"line {sku}: short {line.short}, more than the {line.ordered} ordered"
    if line.substitute_sku:
        if not allow_substitutions:
            return f"line {sku}: the customer did not allow substitutions"
        if line.substitute_sku == sku:
            return f"line {sku}: a substitute is another product, not {sku} itself"
        if line.substitute_qty > SUBSTITUTE_QTY_MAX:
            return f"line {sku}: substitute_qty {line.substitute_qty} exceeds {SUBSTITUTE_QTY_MAX}"
    if weighed:
        if line.picked == 0:
            rest = line.ordered - line.short
            if rest and not line.substitute_sku:
                return f"line {sku}: nothing picked, so all {line.ordered} g are short or substituted"
            if line.substitute_sku and line.short:
                return f"line {sku}: a weighed line is substituted whole or not at all"
            return ""
        lo, hi = weight_bounds(line.ordered, tolerance_bp)
        if not lo <= line.picked <= hi:
            return (f"line {sku}: picked weight {line.picked} g is outside {lo}..{hi} g (±{tolerance_bp / 100:g}% of "
                    f"the {line.ordered} g ordered): re-weigh, or split the line")
        if line.short or line.substitute_sku:
            return f"line {sku}: a line picked by weight has no short part or substitute"
        return ""
    if line.picked > line.ordered:
        return f"line {sku}: picked {line.picked}, more than the {line.ordered} ordered"
    if line.picked + line.short > line.ordered:
        return f"line {sku}: picked {line.picked} and short {line.short} exceed the {line.ordered} ordered"
    replaced = line.ordered - line.picked - line.short
    if replaced and not line.substitute_sku:
        return f"line {sku}: {replaced} of {line.ordered} neither picked nor short"
    if line.substitute_sku and not replaced:
        return f"line {sku}: a substitute replaces units that were not picked, and none are left"
    return ""


def judge_picked(e: OrderPicked, ordered: dict[str, int], tolerances: dict[str, int], allow_substitutions: bool) -> str:
    """Why the cloud does not believe this store's `OrderPicked` ("" if it does). `ordered`: the store's part of the
    order (sku -> qty); `tolerances`: sku -> tolerance (bp) of the products sold by the kg."""
    named = {line.sku for line in e.lines}
    if named - ordered.keys():
        return f"order {e.order_id}: lines {sorted(named - ordered.keys())} are not in this store's part"
    if ordered.keys() - named:
        return f"order {e.order_id}: lines {sorted(ordered.keys() - named)} of this store's part are missing"
    for line in e.lines:
        if line.ordered != ordered[line.sku]:
            return f"order {e.order_id}: line {line.sku} says {line.ordered} ordered, the order says {ordered[line.sku]}"
        weighed = line.sku in tolerances
        why = check_line(line, weighed, tolerances.get(line.sku, 0), allow_substitutions)
        if why:
            return f"order {e.order_id}: {why}"
    return ""


def consumed(line: PickedLine) -> int:
    """Units of the line's reservation the picked goods take (a heavier weight takes no more than was reserved: the
    rest came from the store's own share)."""
    return min(line.picked, line.ordered)


@dataclass(frozen=True)
class PartMoney:
    weight_diff_fen: int = 0  # re-priced on the picked weights minus as ordered: <0 refund, >0 charge
    margin_fen: int = 0  # the most that may be charged for weight (pre-authorised)
    substitute_refunds: dict[str, int] = field(default_factory=dict)  # sku -> fen
    short_refunds: dict[str, int] = field(default_factory=dict)  # sku -> fen (if nobody else serves them)
    weighed: dict[str, tuple[int, int]] = field(default_factory=dict)  # sku -> (ordered g, picked g), for the notes


def share_fen(amount_fen: int, units: int, of: int) -> int:
    """`units` of a line of `of` units costing `amount_fen`: its share, rounded down (shares never sum past it)."""
    return amount_fen * units // of if of else 0


def substitute_fen(catalogue: Catalogue, sku: str, qty: int) -> int:
    product = catalogue.get(sku)
    return weighed_amount_fen(qty, product.price_fen) if product.weighed else product.price_fen * qty


def part_amount_fen(order_lines: list[dict[str, Any]], sku: str, qty: int) -> int:
    """What `qty` (stock units) of the order's line `sku` cost: its share of the line's amount. A line can be split
    across stores (the router's plan, a shortage re-routed), so one store's part is never the whole line."""
    for ol in order_lines:
        if ol["sku"] == sku:
            return share_fen(ol["amount_fen"], min(qty, ol["qty"]), ol["qty"])
    return 0


def part_money(order_lines: list[dict[str, Any]], picked: tuple[PickedLine, ...], catalogue: Catalogue, book: RuleBook,
               ctx: PricingContext) -> PartMoney:
    """What one store's picked part does to the order's money. `order_lines`: the whole order's priced lines
    (`{"sku", "qty", "amount_fen"}`, qty in stock units); `ctx`: the context the order was priced in. Only this
    store's part is re-priced and refunded: each line's `ordered` is this store's quantity, its money this store's
    share of the line's amount (`part_amount_fen`), never the whole line's."""
    amounts = {line.sku: part_amount_fen(order_lines, line.sku, line.ordered) for line in picked}
    weights = {line.sku: line for line in picked
               if line.picked and catalogue.get(line.sku).weighed and line.picked != line.ordered}
    diff = margin = 0
    if weights:
        def basket(with_picked: bool) -> int:
            lines = []
            for ol in order_lines:
                amount = ol["qty"]
                if with_picked and ol["sku"] in weights:  # this store's part weighed: the other parts as ordered
                    w = weights[ol["sku"]]
                    amount = max(amount - w.ordered, 0) + w.picked
                lines.append(BasketLine(sku=ol["sku"], weight_g=amount) if catalogue.get(ol["sku"]).weighed
                             else BasketLine(sku=ol["sku"], qty=amount))
            return price_basket(catalogue, book, lines, ctx).total_fen
        diff = basket(True) - basket(False)
        margin = sum(portion_fen(amounts.get(sku, 0), catalogue.get(sku).catch_weight_tolerance_bp) for sku in weights)
    subs: dict[str, int] = {}
    shorts: dict[str, int] = {}
    for line in picked:
        amount = amounts.get(line.sku, 0)
        if line.substitute_sku:
            replaced = line.ordered - line.picked - line.short
            share = share_fen(amount, replaced, line.ordered)
            back = share - min(share, substitute_fen(catalogue, line.substitute_sku, line.substitute_qty))
            if back > 0:
                subs[line.sku] = back
        if line.short:
            share = share_fen(amount, line.short, line.ordered)
            if share > 0:
                shorts[line.sku] = share
    return PartMoney(diff, margin, subs, shorts, {s: (line.ordered, line.picked) for s, line in weights.items()})


def extra_to_charge(weight_diff_fen: int, margin_fen: int, can_charge: bool) -> tuple[int, int]:
    """(charged, absorbed by the store) for a heavier pick: never past the margin; a payment that cannot be charged
    again without the customer (a wallet payment) takes nothing and the store absorbs it all."""
    if weight_diff_fen <= 0:
        return 0, 0
    charged = min(weight_diff_fen, margin_fen) if can_charge else 0
    return charged, weight_diff_fen - charged
