"""Gifts at the till (pure): a Gift rule the sale reached is a zero-priced line of the sale, so its StockMoved takes
the gift out of stock like any line, and the cloud sees it in SaleCommitted (amount 0).

The cart already shows the reached gifts (`cart_json` "gifts"); once paid they are lines of the sale, so the receipt,
the sale row and the cloud's till sales all name them, and the cashier can see what was given.
"""
from __future__ import annotations

from edge.core.state import Books
from protocol.messages import Quantity, SaleLine
from protocol.pricing import PricedBasket
from protocol.pricing.rules import Gift


def gift_skus(books: Books) -> set[str]:
    """Every SKU a gift rule of the book may give: the shell loads their stock levels with the cart's."""
    if books.rule_book is None:
        return set()
    return {r.gift_sku for r in books.rule_book.rules if isinstance(r, Gift)}


def gift_lines(priced: PricedBasket, books: Books) -> tuple[SaleLine, ...]:
    """The sale's gift lines at 0 fen, in the SKU's stock unit (grams for a product sold by the kg)."""
    out = []
    for g in priced.gifts:
        product = books.product(g.sku)
        weighed = product is not None and product.weighed
        out.append(SaleLine(sku=g.sku, quantity=Quantity.grams(g.qty) if weighed else Quantity.pieces(g.qty),
                            amount_fen=0))
    return tuple(out)
