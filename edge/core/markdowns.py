"""Markdowns at the store (end-of-day clearance 日清, near-expiry), as pure decisions: no I/O, the time passed in.

- `plan_labels`: what a markdown label says and carries. The marked-down price is the promotion book's own answer
  (`protocol.pricing.price_basket`, the till's evaluator) for one package now - one piece, or the `weight_g` of a
  weighed package - with the lot's use-by; the barcode is a GS1 variable-measure EAN-13 (prefix 2x) in the store's
  price-embedded layout carrying that price. Refused, saying why: no markdown applies now, an expired lot (it may
  not be sold at all), a product without a PLU, a price the layout cannot carry, no price layout configured.
- A label's registry row (kept by edge/markdowns_db.py) says what the code stands for: SKU, lot, use-by, rule, was
  and now price, the weight. Scanned at the till, `label_line` turns it into a cart line priced at the label's
  price, which the evaluator does not mark down again (protocol/pricing/rules.py says how markdowns combine).
- `marked_down_now`: per SKU and lot in stock, the markdown in force now, the list and marked-down price per unit.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from edge.core.cart import CartLine
from edge.core.outcome import Refused
from edge.core.state import Books
from edge.devices.escpos import GS, Ticket
from protocol.barcodes import VariableMeasureLayout, gs1_check_digit, left13_check_digit, parse_scan, price_verifier_digit
from protocol.lots import chain_day, is_expired
from protocol.messages import Quantity
from protocol.money import GRAMS_PER_KG, format_fen
from protocol.pricing import BasketLine, PricingContext, price_basket
from protocol.pricing.catalogue import Product
from protocol.pricing.markdown_step import days_to_use_by

LABELS_MAX = 50  # one request prints at most this many labels
LABEL_WEIGHT_MAX_G = 99_999  # what a label scale's weight field holds
NAME_CHARS = 32
EAN13 = 67  # GS k m: EAN-13 with a length byte


@dataclass(frozen=True, slots=True)
class LotInStock:
    sku: str
    lot: str  # "" unlotted
    use_by: str  # "" none known
    on_hand: int


@dataclass(frozen=True, slots=True)
class Label:
    """One printed markdown label: what its code stands for (the registry row) and the ticket that prints it."""
    code: str
    sku: str
    lot: str
    use_by: str
    rule_id: str
    rule_name: str
    was_fen: int
    now_fen: int
    weight_g: int  # 0: one piece

    def as_json(self) -> dict:
        return {"code": self.code, "sku": self.sku, "lot": self.lot, "use_by": self.use_by, "rule_id": self.rule_id,
                "rule_name": self.rule_name, "was_fen": self.was_fen, "now_fen": self.now_fen,
                **({"weight_g": self.weight_g} if self.weight_g else {"qty": 1})}


def price_layout(layouts: Iterable[VariableMeasureLayout]) -> VariableMeasureLayout:
    """The store's price-embedded layout: the first 13-digit layout whose value is an amount (no weight, no count)."""
    for layout in layouts:
        p = layout.pattern
        if len(p) == 13 and "A" in p and "W" not in p and "N" not in p:
            return layout
    raise Refused(409, "no price-embedded barcode layout (13 digits, an amount field) is configured at this store")


def label_code(layout: VariableMeasureLayout, plu: str, amount_fen: int) -> tuple[str, int]:
    """(the code, the amount it carries in fen): an amount the layout's decimals cannot carry is rounded down (in the
    customer's favour). Refused when the PLU or the amount does not fit the layout."""
    p = layout.pattern
    item = plu.lstrip("0")
    scale = 10 ** (2 - layout.amount_decimals)
    carried = amount_fen // scale
    if len(item) > p.count("I"):
        raise Refused(422, f"PLU {plu} does not fit the {p.count('I')}-digit item code of layout {layout.name}")
    if len(str(carried)) > p.count("A"):
        raise Refused(422, f"{format_fen(amount_fen)} does not fit the {p.count('A')}-digit amount of layout "
                           f"{layout.name}")
    fields = {"P": layout.prefixes[0], "I": item.zfill(p.count("I")), "A": str(carried).zfill(p.count("A"))}
    digits = list(p)
    for letter, value in fields.items():
        start = p.index(letter)
        digits[start:start + len(value)] = list(value)
    v = p.find("V")
    if v >= 0:  # the price verifier over the field after it (GS1 7.9.3)
        m = re.match(r"V(A+)", p[v:])
        assert m is not None, f"layout {layout.name}: V before the amount"
        digits[v] = str(price_verifier_digit(fields["A"]))
    body = "".join(digits[:-1])
    check = gs1_check_digit(body) if layout.check == "gs1" else left13_check_digit(body)
    code = body + str(check)
    read = parse_scan(code, (layout,))  # what the till will read back: the same item and amount, or a bug here
    assert getattr(read, "amount_fen", None) == carried * scale and getattr(read, "item_code", "").lstrip("0") == item
    return code, carried * scale


def _priced_unit(books: Books, product: Product, use_by: str, weight_g: int, store_id: str, now_ms: int):
    assert books.catalogue is not None and books.rule_book is not None
    line = BasketLine(sku=product.sku, weight_g=weight_g, use_by=use_by) if product.weighed else \
        BasketLine(sku=product.sku, qty=1, use_by=use_by)
    ctx = PricingContext(channel="offline", store_id=store_id, now_ms=now_ms)
    return price_basket(books.catalogue, books.rule_book, [line], ctx).lines[0]


def _books(books: Books) -> None:
    if books.catalogue is None or books.rule_book is None:
        raise Refused(503, "no catalogue yet: the store has not received one from the cloud")


def plan_labels(books: Books, sku: str, lot: LotInStock | None, lot_asked: str, weight_g: int | None, count: int,
                layouts: Iterable[VariableMeasureLayout], store_id: str, now_ms: int) -> Label:
    """The label to print `count` times for `sku` (and `lot_asked`, found in stock as `lot`, or "" for none)."""
    _books(books)
    product = books.product(sku)
    if product is None:
        raise Refused(404, f"unknown product {sku!r}")
    if not 1 <= count <= LABELS_MAX:
        raise Refused(422, f"count: 1..{LABELS_MAX} labels")
    if lot_asked and lot is None:
        raise Refused(404, f"no lot {lot_asked!r} of {sku} in stock at this store")
    if product.weighed:
        if weight_g is None or not 0 < weight_g <= LABEL_WEIGHT_MAX_G:
            raise Refused(422, f"{product.name} is sold by the kg: give weight_g, the package's weight "
                               f"(1..{LABEL_WEIGHT_MAX_G} g)")
    elif weight_g is not None:
        raise Refused(422, f"{product.name} is sold by the piece: a label is for one piece, give no weight_g")
    if not product.plu:
        raise Refused(422, f"{product.name} has no PLU: a price-embedded barcode cannot name it")
    use_by = lot.use_by if lot is not None else ""
    assert books.rule_book is not None
    left = days_to_use_by(use_by, now_ms, books.rule_book.utc_offset_minutes)
    if left is not None and left < 0:
        raise Refused(409, f"lot {lot_asked} of {sku} expired on {use_by}: it may not be sold; record it as shrinkage")
    pl = _priced_unit(books, product, use_by, weight_g or 0, store_id, now_ms)
    if not pl.markdown_rule:
        what = f" lot {lot_asked} (use by {use_by})" if lot_asked else ""
        raise Refused(409, f"no markdown applies to {product.name}{what} now")
    layout = price_layout(layouts)
    code, now_fen = label_code(layout, product.plu, pl.list_fen - pl.markdown_fen)
    rule = books.rule_book.by_id[pl.markdown_rule]
    return Label(code, sku, lot_asked, use_by, rule.id, rule.name, pl.list_fen, now_fen, weight_g or 0)


def registry_clash(registered: Label | None, printed_day: str, label: Label, day: str) -> str | None:
    """Why `label` may not be registered under its code on `day`, or None. The registry maps a code to one package
    for the chain day it was printed (a row of an earlier day no longer counts: its code may mean something else
    today). A label with the same code the same day for another product, lot or use-by (two lots at one markdown
    price) would sell one lot as the other: it is refused. The same lot again (another weight at the same amount,
    a rule that changed) is a re-print: the latest row stands."""
    if registered is None or printed_day != day:
        return None
    if (registered.sku, registered.lot, registered.use_by) == (label.sku, label.lot, label.use_by):
        return None
    lot = f"lot {registered.lot or '(none)'}, use by {registered.use_by or '(none)'}"
    return (f"code {label.code} was already printed today for {registered.sku} {lot} at "
            f"{format_fen(registered.now_fen)}: this label would scan as that one; print it another day or sell it "
            f"at another price")


def label_ticket(label: Label, name: str, count: int) -> bytes:
    """`count` labels, each cut on its own: name, was/now, weight, use-by, lot, the rule, the barcode."""
    out = bytearray()
    for _ in range(count):
        t = Ticket().text(name[:NAME_CHARS], bold=True).columns("Was", format_fen(label.was_fen))
        t.columns("NOW", format_fen(label.now_fen))
        if label.weight_g:
            t.text(f"{label.weight_g} g")
        if label.use_by:
            t.text(f"Use by {label.use_by}")
        if label.lot:
            t.text(f"Lot {label.lot}")
        t.text(label.rule_name[:NAME_CHARS])
        t.out += GS + b"k" + bytes([EAN13, len(label.code)]) + label.code.encode("ascii") + b"\n"
        out += t.cut()
    return bytes(out)


def label_line(label: Label, now_ms: int) -> CartLine:
    """A scanned markdown label as a cart line: at the label's price, its markdown already applied; refused when its
    lot has expired since it was printed (an expired lot is not sold)."""
    if label.use_by and is_expired(label.use_by, chain_day(now_ms)):
        raise Refused(409, f"this markdown label's lot {label.lot or '(none)'} of {label.sku} expired on "
                           f"{label.use_by}: it may not be sold; take it off the shelf")
    basket = BasketLine(sku=label.sku, amount_fen=label.now_fen, was_fen=label.was_fen, markdown_rule=label.rule_id,
                        use_by=label.use_by)
    quantity = Quantity.grams(label.weight_g) if label.weight_g else Quantity.pieces(1)
    return CartLine(basket, quantity, label.lot, label.use_by)


def marked_down_now(books: Books, stock: Iterable[LotInStock], store_id: str, now_ms: int) -> list[dict]:
    """What is marked down right now, per SKU and lot in stock: the rule, and the price per kg or per piece."""
    _books(books)
    out = []
    for s in stock:
        product = books.product(s.sku)
        if product is None or s.on_hand <= 0 or "offline" not in product.channels:
            continue
        pl = _priced_unit(books, product, s.use_by, GRAMS_PER_KG if product.weighed else 0, store_id, now_ms)
        if pl.markdown_rule:
            assert books.rule_book is not None
            rule = books.rule_book.by_id[pl.markdown_rule]
            out.append({"sku": s.sku, "name": product.name, "lot": s.lot, "use_by": s.use_by, "on_hand": s.on_hand,
                        "unit": "kg" if product.weighed else "piece", "rule_id": rule.id, "rule_name": rule.name,
                        "was_fen": pl.list_fen, "now_fen": pl.list_fen - pl.markdown_fen})
    return out
