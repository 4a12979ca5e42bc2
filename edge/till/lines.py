"""What the till page does to one line of a lane's cart: set a packed line's quantity, delete a line. Pure: the
store actor runs these on its own cart (one mailbox, so a serial scan between two keystrokes is never lost), the
price is worked out afterwards by the shared evaluator as for every other change.

A line is named by its index *and* its SKU: the page may show a cart one change behind (a serial scan arrived), and
an edit that no longer names the same line is refused (409) rather than applied to another product."""
from __future__ import annotations

from edge.core.cart import Cart, CartLine
from edge.core.outcome import Refused
from protocol.messages import Quantity
from protocol.pricing import BasketLine

MAX_PIECES = 9_999  # a typo guard: nobody sells ten thousand packs at one lane


def _line(cart: Cart, index: int, sku: str) -> CartLine:
    if not 0 <= index < len(cart.lines):
        raise Refused(409, f"line {index + 1} is not in the cart (it has {len(cart.lines)} lines): the page was behind")
    line = cart.lines[index]
    if line.sku != sku:
        raise Refused(409, f"line {index + 1} is {line.sku}, not {sku}: the cart changed, look again")
    return line


def set_qty(cart: Cart, index: int, sku: str, qty: int) -> None:
    """A packed line's pieces; 0 deletes the line. A weighed or label-priced line keeps what the scale said."""
    line = _line(cart, index, sku)
    if line.quantity.unit != "piece" or not line.basket.qty or line.basket.amount_fen:
        raise Refused(422, f"{sku}: the quantity of a weighed or price-labelled line is what the scale said; "
                           "delete the line and weigh again")
    if not 0 <= qty <= MAX_PIECES:
        raise Refused(422, f"qty: 0..{MAX_PIECES}")
    if qty == 0:
        del cart.lines[index]
        return
    cart.lines[index] = CartLine(BasketLine(sku=sku, qty=qty), Quantity.pieces(qty), line.lot, line.use_by)


def delete(cart: Cart, index: int, sku: str) -> None:
    _line(cart, index, sku)
    del cart.lines[index]
