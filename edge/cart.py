"""A lane's cart: what was scanned and weighed, who the member is, priced by the shared evaluator (offline)."""
from __future__ import annotations

from dataclasses import dataclass, field

from protocol.barcodes import GtinScan, VariableMeasureLayout, parse_scan
from protocol.errors import ProtocolError
from protocol.pricing import BasketLine, Catalogue, PricedBasket, PricingContext, RuleBook, price_basket

MAX_LINES = 200


class UnknownProduct(LookupError):
    """A valid code that names no product in the catalogue (the lane answers 404)."""


@dataclass
class Cart:
    lines: list[BasketLine] = field(default_factory=list)
    member: dict | None = None

    def add(self, line: BasketLine) -> None:
        if len(self.lines) >= MAX_LINES:
            raise ProtocolError(f"a cart holds at most {MAX_LINES} lines")
        for i, existing in enumerate(self.lines):  # repeated scans of a packed item add up
            if existing.sku == line.sku and line.qty and existing.qty and not existing.amount_fen:
                self.lines[i] = BasketLine(sku=line.sku, qty=existing.qty + line.qty)
                return
        self.lines.append(line)


def line_for_code(code: str, catalogue: Catalogue, layouts: tuple[VariableMeasureLayout, ...]) -> BasketLine:
    """Scanner text -> a basket line; ProtocolError (bad check digit, unknown layout) or UnknownProduct."""
    scan = parse_scan(code, layouts)
    if isinstance(scan, GtinScan):
        product = catalogue.by_gtin.get(scan.gtin) or catalogue.by_gtin.get(scan.gtin.lstrip("0"))
        if product is None:
            raise UnknownProduct(f"no product with barcode {scan.gtin}")
        if product.weighed:
            raise ProtocolError(f"{product.name} is sold by weight: weigh it or scan its label")
        return BasketLine(sku=product.sku, qty=1)
    product = catalogue.by_item_code(scan.item_code)
    if product is None:
        raise UnknownProduct(f"no product with item code {scan.item_code} (label layout {scan.layout})")
    if scan.amount_fen is not None:
        return BasketLine(sku=product.sku, amount_fen=scan.amount_fen)
    if scan.weight_g is not None:
        if not product.weighed:
            raise ProtocolError(f"{product.name} is sold by the piece, but the label carries a weight")
        return BasketLine(sku=product.sku, weight_g=scan.weight_g)
    return BasketLine(sku=product.sku, qty=scan.count or 1)


def price(cart: Cart, catalogue: Catalogue, book: RuleBook, store_id: str, now_ms: int) -> PricedBasket:
    level = cart.member["level"] if cart.member else None
    ctx = PricingContext(channel="offline", store_id=store_id, now_ms=now_ms,
                         member_level=level if level and level != "regular" else None)
    return price_basket(catalogue, book, cart.lines, ctx)


def cart_json(cart: Cart, priced: PricedBasket) -> dict:
    return {"lines": [{"sku": l.sku, "name": l.name, **({"weight_g": l.weight_g} if l.weight_g else {"qty": l.qty or 1}),
                       "list_fen": l.list_fen, "amount_fen": l.amount_fen, "rules": l.rules} for l in priced.lines],
            "applied_rules": [{"rule_id": a.rule_id, "name": a.name, "saving_fen": a.saving_fen} for a in priced.applied],
            "almost": [n.message for n in priced.near_misses],
            "gifts": [{"sku": g.sku, "name": g.name, "qty": g.qty} for g in priced.gifts],
            "subtotal_fen": priced.subtotal_fen, "discount_fen": priced.discount_fen, "total_fen": priced.total_fen,
            "member": cart.member}
