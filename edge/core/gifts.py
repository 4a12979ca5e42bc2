"""Gifts at the till (pure): a Gift rule the sale reached is a zero-priced line of the sale, so its StockMoved takes
the gift out of stock like any line, and the cloud sees it in SaleCommitted (amount 0).

A gift the store has none of is not given: the pricing context names the gift SKUs out of stock (`out_of_stock`:
on hand, less what the cart itself sells of that SKU, below the gift's quantity), the evaluator skips their rules
(another gift of the same exclusive group may be given instead, and the rule's budget is not spent) and the cart
says "gift X out of stock" (`PricedBasket.gifts_missing`). The shell passes the levels it read: at pay time the
levels of the sale's own transaction's moment, for the cart view the store's levels as last refreshed.

The cart already shows the reached gifts (`cart_json` "gifts"); once paid they are lines of the sale, so the receipt,
the sale row and the cloud's till sales all name them, and the cashier can see what was given.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

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


def out_of_stock(books: Books, on_hand: Mapping[str, int] | None, lines: Iterable) -> tuple[str, ...]:
    """The gift SKUs of the book this store cannot give now: on hand (missing: none) less what the cart's `lines`
    (`CartLine`s) sell of the SKU is below the gift's quantity. `on_hand` None: the levels were never read (nothing
    is held back)."""
    if on_hand is None or books.rule_book is None:
        return ()
    selling: dict[str, int] = {}
    for line in lines:
        selling[line.sku] = selling.get(line.sku, 0) + line.quantity.amount
    return tuple(sorted({r.gift_sku for r in books.rule_book.rules if isinstance(r, Gift)
                         and on_hand.get(r.gift_sku, 0) - selling.get(r.gift_sku, 0) < r.gift_qty}))


def missing_json(priced: PricedBasket) -> list[dict]:
    """The cart's word on each reached gift it cannot give."""
    return [{"rule_id": g.rule_id, "sku": g.sku, "name": g.name, "qty": g.qty, "message": f"gift {g.name} out of stock"}
            for g in priced.gifts_missing]
