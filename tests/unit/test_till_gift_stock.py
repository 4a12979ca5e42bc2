"""A gift the store has none of is not given at the till (pure): the sale has no gift line and moves no stock of
it, the cart says "gift X out of stock", a capped gift's budget is not spent, and another gift of the same
exclusive group is given instead."""
from __future__ import annotations

from edge.core.cart import Cart, CartLine, cart_json, price
from edge.core.gifts import out_of_stock
from edge.core.outcome import MoveStock, Publish
from edge.core.selling import PayRequest, Till, pay
from edge.core.state import Books, EventStamp, Moment, StockLevel
from protocol.ids import make_id
from protocol.messages import Quantity, SaleCommitted
from protocol.pricing import BasketLine
from protocol.pricing.catalogue import Catalogue, Product
from protocol.pricing.rules import Gift, RuleBook

NOW = 1_700_000_000_000
EGGS = Product(sku="EGG-A-0001", name="Eggs", category="eggs", unit="piece", price_fen=1_000)
TOFU = Product(sku="PAC-TOFU-0001", name="Tofu", category="packed", unit="piece", price_fen=300)
SOY = Product(sku="PAC-SOY-0001", name="Soy milk", category="packed", unit="piece", price_fen=200)
GIFT = Gift(id="GIFT", name="tofu from 20", spend_fen=2_000, gift_sku=TOFU.sku)
CAPPED_GIFT = Gift(id="GIFT-CAP", name="tofu from 20, capped", spend_fen=2_000, gift_sku=TOFU.sku, budget_fen=10_000)
TOFU_OR_SOY = (Gift(id="G-TOFU", name="tofu", spend_fen=2_000, gift_sku=TOFU.sku, group="gift"),
               Gift(id="G-SOY", name="soy", spend_fen=2_000, gift_sku=SOY.sku, group="gift"))
CATALOGUE = Catalogue((EGGS, TOFU, SOY))


def books(*rules) -> Books:
    return Books(CATALOGUE, RuleBook(1, tuple(rules)), 1, 1)


def cart(eggs: int, tofu: int = 0) -> Cart:
    lines = [CartLine(BasketLine(sku=EGGS.sku, qty=eggs), Quantity.pieces(eggs))]
    if tofu:
        lines.append(CartLine(BasketLine(sku=TOFU.sku, qty=tofu), Quantity.pieces(tofu)))
    return Cart(lines=lines)


def stamp() -> EventStamp:
    seq = iter(range(1, 100))
    return EventStamp("S036", 0, Moment(NOW, 0), lambda: make_id(NOW, next(seq)))


def sold(b: Books, c: Cart, levels: dict[str, int]):
    out = pay(c, b, PayRequest("1", "cash", 10**6), Till("S036", online=True), make_id(NOW, 999),
              {sku: StockLevel(sku, qty, 0) for sku, qty in levels.items()}, stamp())
    (sale,) = [e.event for e in out.effects if isinstance(e, Publish) and isinstance(e.event, SaleCommitted)]
    moved = {e.event.sku: e.event.delta for e in out.effects if isinstance(e, MoveStock)}
    return sale, moved


def test_a_gift_with_no_stock_is_not_given_and_leaves_no_stock():
    sale, moved = sold(books(GIFT), cart(3), {EGGS.sku: 10})  # the store has no tofu at all
    assert [line.sku for line in sale.lines] == [EGGS.sku]
    assert TOFU.sku not in moved
    sale, moved = sold(books(GIFT), cart(3), {EGGS.sku: 10, TOFU.sku: 1})
    assert [(line.sku, line.amount_fen) for line in sale.lines] == [(EGGS.sku, 3_000), (TOFU.sku, 0)]
    assert moved[TOFU.sku] == -1


def test_the_cart_says_which_gift_is_out_of_stock():
    b = books(GIFT)
    none_left = Books(b.catalogue, b.rule_book, 1, 1, gift_stock={TOFU.sku: 0})
    view = cart_json(cart(3), price(cart(3), none_left, "S036", NOW))
    assert view["gifts"] == []
    assert view["gifts_out_of_stock"] == [{"rule_id": "GIFT", "sku": TOFU.sku, "name": "Tofu", "qty": 1,
                                           "message": "gift Tofu out of stock"}]
    below = cart_json(cart(1), price(cart(1), none_left, "S036", NOW))  # not reached: nothing to say
    assert below["gifts_out_of_stock"] == []
    stocked = Books(b.catalogue, b.rule_book, 1, 1, gift_stock={TOFU.sku: 5})
    assert cart_json(cart(3), price(cart(3), stocked, "S036", NOW))["gifts_out_of_stock"] == []


def test_what_the_cart_itself_sells_of_the_gift_is_not_there_to_give():
    assert out_of_stock(books(GIFT), {TOFU.sku: 1}, cart(3, tofu=1).lines) == (TOFU.sku,)
    assert out_of_stock(books(GIFT), {TOFU.sku: 2}, cart(3, tofu=1).lines) == ()
    assert out_of_stock(books(GIFT), None, cart(3).lines) == ()  # levels never read: nothing held back
    sale, _ = sold(books(GIFT), cart(3, tofu=1), {EGGS.sku: 10, TOFU.sku: 1})
    assert [line.amount_fen for line in sale.lines if line.sku == TOFU.sku] == [300]  # sold, not given too


def test_a_capped_gift_out_of_stock_spends_no_budget():
    b = books(CAPPED_GIFT)
    priced = price(cart(3), Books(b.catalogue, b.rule_book, 1, 1, gift_stock={}), "S036", NOW)
    assert priced.gifts == [] and [a.rule_id for a in priced.applied] == []


def test_another_gift_of_the_group_is_given_when_the_best_is_out():
    b = books(*TOFU_OR_SOY)  # tofu is worth more: chosen when there is some
    sale, _ = sold(b, cart(3), {EGGS.sku: 10, TOFU.sku: 0, SOY.sku: 4})
    assert [line.sku for line in sale.lines if line.amount_fen == 0] == [SOY.sku]
    view = cart_json(cart(3), price(cart(3), Books(b.catalogue, b.rule_book, 1, 1,
                                                   gift_stock={SOY.sku: 4}), "S036", NOW))
    assert view["gifts_out_of_stock"] == []  # a gift was given: nothing to apologise for
