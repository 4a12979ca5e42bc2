"""A lane's cart: what was scanned and weighed, who the member is, priced by the shared evaluator (offline).

Each line carries two things with one meaning each: the `BasketLine` the evaluator prices (pieces, grams, or an
amount a label barcode carries) and the `Quantity` that leaves the shelf when it is sold (pieces or grams, with
the unit). A label with an embedded *price* on a product sold by the kg stands for the grams the label scale
priced: amount / list price per kg, rounded by the one rule in protocol.money.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from edge.core import gifts, member_limits
from edge.core.member_limits import MemberLimits
from edge.core.outcome import Refused
from edge.core.state import Books, Member
from protocol.barcodes import GtinScan, VariableMeasureLayout, parse_scan
from protocol.errors import ProtocolError
from protocol.messages import Quantity
from protocol.money import GRAMS_PER_KG, div_round
from protocol.pricing import BasketLine, Catalogue, PricedBasket, PricingContext, price_basket
from protocol.pricing.catalogue import Product

MAX_LINES = 200
MAX_SCAN_KEYS = 1_000  # scans remembered per cart by Idempotency-Key
IDEMPOTENCY_KEY_MAX = 128  # characters


class UnknownProduct(LookupError):
    """A valid code that names no product in the catalogue (the lane answers 404)."""


@dataclass(frozen=True, slots=True)
class CartLine:
    basket: BasketLine  # what the evaluator prices
    quantity: Quantity  # what leaves the shelf when it is sold
    lot: str = ""  # the lot the goods come from, when the code named it ("" the box takes them first-expiry-first-out)
    use_by: str = ""  # that lot's use-by, when known (markdowns by days to use-by need it)

    @property
    def sku(self) -> str:
        return self.basket.sku


@dataclass
class Cart:
    lines: list[CartLine] = field(default_factory=list)
    member: Member | None = None
    coupons: list = field(default_factory=list)  # edge.core.coupons.CartCoupon: scanned coupons (issue 17)
    # Idempotency-Key of each scan added -> its SKU: a till that retries a scan whose answer it lost (a timeout, a
    # 503) adds nothing the second time; a pay never adds lines, so a scan-and-pay retry loop cannot grow the cart
    keys: dict[str, str] = field(default_factory=dict)
    limits: MemberLimits | None = None  # the member's uses of per-member-limited rules (edge/core/member_limits.py)
    limit_notes: list[dict] = field(default_factory=list)  # why a limited rule did not apply (set by `price`)

    def member_limits(self) -> MemberLimits | None:
        """The limits known for the cart's member (None: no member, or none loaded for this member)."""
        if self.member is None or self.limits is None or self.limits.member_id != self.member.member_id:
            return None
        return self.limits

    def scanned(self, key: str | None) -> str | None:
        """The SKU a scan with this Idempotency-Key added to this cart (None: not seen, or no key)."""
        return self.keys.get(key) if key else None

    def add(self, line: CartLine, key: str | None = None) -> None:
        if len(self.lines) >= MAX_LINES:
            raise ProtocolError(f"a cart holds at most {MAX_LINES} lines")
        if key:
            if len(self.keys) >= MAX_SCAN_KEYS:  # bounded: the oldest key goes (its retry is long over)
                self.keys.pop(next(iter(self.keys)))
            self.keys[key] = line.sku
        new = line.basket
        for i, existing in enumerate(self.lines):  # repeated scans of a packed item add up
            old = existing.basket
            if (old.sku == new.sku and old.qty and new.qty and not old.amount_fen and not new.amount_fen
                    and existing.lot == line.lot):
                pieces = old.qty + new.qty
                self.lines[i] = CartLine(BasketLine(sku=new.sku, qty=pieces), Quantity.pieces(pieces), line.lot,
                                         line.use_by or existing.use_by)
                return
        self.lines.append(line)

    @property
    def basket(self) -> list[BasketLine]:
        # the lot's use-by goes to the evaluator: markdowns by days to use-by (protocol/pricing/rules.py)
        return [replace(line.basket, use_by=line.use_by) if line.use_by != line.basket.use_by else line.basket
                for line in self.lines]


def label_quantity(product: Product, amount_fen: int) -> Quantity:
    """The stock a price-embedded label stands for. The label scale priced the goods at the list price, so: grams =
    amount x 1000 / fen per kg for a product sold by the kg, pieces = amount / fen per piece otherwise; one rounding
    (half away from zero, protocol.money.div_round), and at least one unit (the goods did leave the shelf)."""
    if product.weighed:
        return Quantity.grams(max(div_round(amount_fen * GRAMS_PER_KG, product.price_fen), 1))
    return Quantity.pieces(max(div_round(amount_fen, product.price_fen), 1))


def line_for_code(code: str, catalogue: Catalogue, layouts: tuple[VariableMeasureLayout, ...]) -> CartLine:
    """Scanner text -> a cart line; ProtocolError (bad check digit, unknown layout, wrong kind of label) or
    UnknownProduct."""
    scan = parse_scan(code, layouts)
    if isinstance(scan, GtinScan):
        product = catalogue.by_gtin.get(scan.gtin) or catalogue.by_gtin.get(scan.gtin.lstrip("0"))
        if product is None:
            raise UnknownProduct(f"no product with barcode {scan.gtin}")
        if product.weighed:
            raise ProtocolError(f"{product.name} is sold by weight: weigh it or scan its label")
        return CartLine(BasketLine(sku=product.sku, qty=1), Quantity.pieces(1))
    product = catalogue.by_item_code(scan.item_code)
    if product is None:
        raise UnknownProduct(f"no product with item code {scan.item_code} (label layout {scan.layout})")
    if scan.weight_g is not None and not product.weighed:
        raise ProtocolError(f"{product.name} is sold by the piece, but the label carries a weight")
    if scan.amount_fen is not None:
        # a weight on the label too (18-digit layouts) says exactly what left the shelf; else derive it
        quantity = Quantity.grams(scan.weight_g) if scan.weight_g else label_quantity(product, scan.amount_fen)
        return CartLine(BasketLine(sku=product.sku, amount_fen=scan.amount_fen), quantity)
    if scan.weight_g is not None:
        return CartLine(BasketLine(sku=product.sku, weight_g=scan.weight_g), Quantity.grams(scan.weight_g))
    if product.weighed:
        raise ProtocolError(f"{product.name} is sold by the kg, but the label carries a count")
    pieces = scan.count or 1
    return CartLine(BasketLine(sku=product.sku, qty=pieces), Quantity.pieces(pieces))


def weighed_line(catalogue: Catalogue, sku: str, grams: int) -> CartLine:
    """A stable reading from the lane's scale for a product sold by the kg."""
    product = catalogue.by_sku.get(sku)
    if product is None:
        raise Refused(404, f"unknown product {sku!r}")
    if not product.weighed:
        raise Refused(422, f"{product.name} is sold by the piece; scan it")
    if grams <= 0:
        raise Refused(409, "the scale reads zero: put the item on the scale")
    return CartLine(BasketLine(sku=sku, weight_g=grams), Quantity.grams(grams))


def price(cart: Cart, books: Books, store_id: str, now_ms: int) -> PricedBasket:
    if books.catalogue is None or books.rule_book is None:
        raise Refused(503, "no catalogue yet: the store has not received one from the cloud")
    level = cart.member.level if cart.member else None
    rules = [books.rule_book.by_id.get(c.rule_id) for c in cart.coupons]
    ctx = PricingContext(channel="offline", store_id=store_id, now_ms=now_ms,
                         member_level=level if level and level != "regular" else None,
                         coupons=tuple(c.rule_id for c in cart.coupons),  # held for the cart, or known offline
                         # a new-member coupon is issued to new members only (as orders' `_context` online)
                         new_member=any(getattr(r, "new_member_only", False) for r in rules),
                         budgets_left=books.budgets_left,  # capped rules: within this store's offline share
                         gifts_out=gifts.out_of_stock(books, books.gift_stock, cart.lines))  # not given: none here
    why = member_limits.blocked(books.rule_book, cart.member_limits())  # limited rules the member may not use
    priced = price_basket(books.catalogue, books.rule_book, cart.basket,
                          replace(ctx, budgets_left=member_limits.with_blocked(ctx.budgets_left, why)))
    # the cart says which limited rule would have applied, and why it did not (priced again without the blocks)
    cart.limit_notes = member_limits.notes(why, price_basket(books.catalogue, books.rule_book, cart.basket, ctx)
                                           ) if why else []
    return priced


def cart_json(cart: Cart, priced: PricedBasket) -> dict:
    lines = []
    for line, pl in zip(cart.lines, priced.lines, strict=True):  # the evaluator keeps the cart's order
        q = line.quantity
        lines.append({"sku": pl.sku, "name": pl.name, **({"weight_g": q.amount} if q.unit == "g" else {"qty": q.amount}),
                      "unit": q.unit, "list_fen": pl.list_fen, "amount_fen": pl.amount_fen, "rules": pl.rules,
                      **({"lot": line.lot, "use_by": line.use_by} if line.lot else {}),  # a GS1 code named it
                      **({"markdown": {"rule_id": pl.markdown_rule, "saving_fen": pl.markdown_fen}}
                         if pl.markdown_rule else {})})
    return {"lines": lines,
            "applied_rules": [{"rule_id": a.rule_id, "name": a.name, "saving_fen": a.saving_fen} for a in priced.applied],
            "almost": [n.message for n in priced.near_misses],
            "gifts": [{"sku": g.sku, "name": g.name, "qty": g.qty} for g in priced.gifts],
            "gifts_out_of_stock": gifts.missing_json(priced),
            "limits": cart.limit_notes,  # limited rules that did not apply, and why
            "subtotal_fen": priced.subtotal_fen, "discount_fen": priced.discount_fen, "total_fen": priced.total_fen,
            "member": cart.member.as_json() if cart.member else None,
            "coupons": [{"code": c.code, "rule_id": c.rule_id, "offline": not c.hold_id,
                         "applied": c.rule_id in priced.coupons_used} for c in cart.coupons]}
