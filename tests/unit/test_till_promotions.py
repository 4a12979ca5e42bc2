"""The till's side of gifts and budget shares (pure): a reached gift is a zero-priced sale line that leaves stock; a
capped rule gives at most the store's share left, nothing without a share; a sale's uses are taken and reported."""
from __future__ import annotations

from edge.core.budget_allowance import apply_grant, budgets_left, changes, sale_uses
from edge.core.cart import Cart, CartLine, price
from edge.core.gifts import gift_lines, gift_skus
from edge.core.outcome import GrantAllowance, Outcome, Publish, UseAllowance, UseBooks
from edge.core.state import Books, EventStamp, Moment
from protocol.budget_messages import BudgetAllowanceGranted, BudgetUsed
from protocol.ids import make_id
from protocol.messages import Quantity
from protocol.pricing import BasketLine
from protocol.pricing.catalogue import Catalogue, Product
from protocol.pricing.rules import Gift, ItemDiscount, RuleBook

NOW = 1_700_000_000_000
EGGS = Product(sku="EGG-A-0001", name="Eggs", category="eggs", unit="piece", price_fen=1_000)
TOFU = Product(sku="PAC-TOFU-0001", name="Tofu", category="packed", unit="piece", price_fen=300)
CAPPED = ItemDiscount(id="CAP", name="half price", percent_off_bp=5000, skus=(EGGS.sku,), budget_fen=100_000)
GIFT = Gift(id="GIFT", name="tofu from 20", spend_fen=2_000, gift_sku=TOFU.sku)
BOOK = RuleBook(1, (CAPPED, GIFT))
CATALOGUE = Catalogue((EGGS, TOFU))


def books(allowances: dict[str, tuple[int, int]]) -> Books:
    return Books(CATALOGUE, BOOK, 1, 1, budgets_left(BOOK, allowances))


def cart(qty: int) -> Cart:
    return Cart(lines=[CartLine(BasketLine(sku=EGGS.sku, qty=qty), Quantity.pieces(qty))])


def stamp() -> EventStamp:
    seq = iter(range(1, 100))
    return EventStamp("S001", 0, Moment(NOW, 0), lambda: make_id(NOW, next(seq)))


def test_a_capped_rule_gives_only_the_share_left_and_nothing_without_one():
    assert price(cart(2), books({}), "S001", NOW).discount_fen == 0  # no share: the rule does not apply here
    assert price(cart(2), books({"CAP": (700, 0)}), "S001", NOW).discount_fen == 700
    assert price(cart(2), books({"CAP": (700, 650)}), "S001", NOW).discount_fen == 50
    assert price(cart(2), books({"CAP": (5_000, 0)}), "S001", NOW).discount_fen == 1_000  # the rule's own amount


def test_a_sale_takes_its_use_from_the_share_and_reports_it():
    priced = price(cart(2), books({"CAP": (700, 0)}), "S001", NOW)
    effects = sale_uses(priced, BOOK, "SALE-1", stamp())
    assert effects[0] == UseAllowance("CAP", 700)
    (published,) = [e for e in effects if isinstance(e, Publish)]
    assert isinstance(published.event, BudgetUsed) and published.event.sale_id == "SALE-1"
    assert [(u.rule_id, u.fen) for u in published.event.uses] == [("CAP", 700)]
    assert sale_uses(price(cart(1), books({}), "S001", NOW), BOOK, "SALE-2", stamp()) == []  # nothing given


def test_a_grant_keeps_the_total_and_changes_the_shares():
    grant = BudgetAllowanceGranted(event_id=make_id(NOW, 1), store_id="S001", seq=1, wall_ms=NOW, mono_ms=0,
                                   rule_id="CAP", granted_fen=900)
    outcome = apply_grant(grant)
    assert outcome.effects == (GrantAllowance("CAP", 900),) and changes(outcome)
    assert changes(Outcome(reply=None, after=(UseBooks(Books()),)))
    assert not changes(Outcome(reply=None))


def test_a_reached_gift_is_a_zero_priced_line_in_the_stock_unit():
    priced = price(cart(3), books({"CAP": (0, 0)}), "S001", NOW)  # 30.00, no discount: past the gift's 20.00
    (line,) = gift_lines(priced, books({}))
    assert (line.sku, line.quantity, line.amount_fen) == (TOFU.sku, Quantity.pieces(1), 0)
    assert gift_skus(books({})) == {TOFU.sku}
    assert gift_lines(price(cart(1), books({}), "S001", NOW), books({})) == ()  # below the threshold
