"""Cart lines from GS1 codes that carry a lot and a use-by (GS1-128, DataBar Expanded, Digital Link), and the rule
that an expired lot is never sold. Pure: the day and the box's lots are passed in.

Guarantees:
- The line is for the GTIN's product (the catalogue's EAN-13; an in-store 2x code names its PLU), with the weight
  (AI 310n) and the price (AI 392n/393n) the code carries: a weighed product needs one of them, as at a label
  scale; a price on the code is what the customer pays (the packer priced it), as with price-embedded labels.
- The line carries the lot and use-by (CartLine.lot / use_by), so the sale consumes that lot; a GS1 lot with
  characters a lot name does not use is sold under its canonical name (protocol.lots.lot_name).
- A use-by (or best-before) before the chain's business day is refused with 409 and a sentence the cashier can
  act on; so is a lot the box knows as expired even when the code carries only the lot. Selling on the use-by
  day itself is allowed (protocol.lots.is_expired).
"""
from __future__ import annotations

import dataclasses

from edge.core.cart import CartLine, UnknownProduct, label_quantity
from edge.core.outcome import Refused
from protocol.barcodes import VARIABLE_PREFIXES
from protocol.errors import ProtocolError
from protocol.gs1 import Gs1Scan
from protocol.lots import LotLevel, is_expired, lot_name
from protocol.messages import Quantity
from protocol.pricing import BasketLine, Catalogue
from protocol.pricing.catalogue import Product

IN_STORE_ITEM = slice(2, 7)  # an in-store GTIN-13 "2x IIIII VVVVV C": the PLU, its value zeroed (GS1 GenSpecs 2.1.14)


def product_of(scan: Gs1Scan, catalogue: Catalogue) -> Product:
    gtin13 = scan.gtin13
    product = catalogue.by_gtin.get(gtin13) or catalogue.by_gtin.get(gtin13.lstrip("0"))
    if product is None and len(gtin13) == 13 and gtin13[:2] in VARIABLE_PREFIXES:
        product = catalogue.by_item_code(gtin13[IN_STORE_ITEM])
    if product is None:
        raise UnknownProduct(f"no product with GTIN {scan.gtin}")
    return product


def gs1_line(scan: Gs1Scan, catalogue: Catalogue) -> tuple[CartLine, Product]:
    """The cart line a GS1 code stands for (without its lot yet: see `with_lot`)."""
    product = product_of(scan, catalogue)
    grams, amount = scan.net_weight_g, scan.amount_fen
    if product.weighed:
        if not grams and not amount:
            raise ProtocolError(f"{product.name} is sold by the kg, but the code carries no weight (AI 310n) "
                                f"or price (AI 392n): weigh it or scan its label")
        if amount:
            quantity = Quantity.grams(grams) if grams else label_quantity(product, amount)
            return CartLine(BasketLine(sku=product.sku, amount_fen=amount), quantity), product
        assert grams is not None
        return CartLine(BasketLine(sku=product.sku, weight_g=grams), Quantity.grams(grams)), product
    if grams:
        raise ProtocolError(f"{product.name} is sold by the piece, but the code carries a weight (AI 310n)")
    pieces = scan.count or 1
    if amount:
        return CartLine(BasketLine(sku=product.sku, amount_fen=amount), Quantity.pieces(pieces)), product
    return CartLine(BasketLine(sku=product.sku, qty=pieces), Quantity.pieces(pieces)), product


def expired_refusal(product: Product, lot: str, use_by: str) -> Refused:
    which = f"lot {lot} of {product.name}" if lot else product.name
    return Refused(409, f"{which} passed its use-by {use_by}: it cannot be sold; write it off as expired")


def checked_line(scan: Gs1Scan, catalogue: Catalogue, known: list[LotLevel], day: str) -> CartLine:
    """The line for a GS1 code, refused when the goods are past their date (the code's, or the box's for the lot)."""
    line, product = gs1_line(scan, catalogue)
    lot = lot_name(scan.lot)  # a GS1 lot with characters outside a lot name's set: its canonical name
    use_by = scan.expiry
    if use_by and is_expired(use_by, day):
        raise expired_refusal(product, lot, use_by)
    if lot:
        for level in known:
            if level.lot == lot and level.use_by and is_expired(level.use_by, day):
                raise expired_refusal(product, lot, level.use_by)
            if level.lot == lot and not use_by:
                use_by = level.use_by  # the code carries only the lot: the box knows its date
    return with_lot(line, lot, use_by)


def with_lot(line: CartLine, lot: str, use_by: str) -> CartLine:
    """The line, selling from `lot` (the lots core's `lot` / `use_by` fields of a cart line)."""
    if not lot:
        return line
    return dataclasses.replace(line, lot=lot, use_by=use_by)
