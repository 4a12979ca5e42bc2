"""What returns undo of the promotions a sale carried, as pure rules: coupons (given back by a whole return, kept by
a partial one whose refund is the lines' share of what was paid), till-spend trigger coupons (voided or reported),
gifts (asked back, or paid for out of the refund) and points (given back in the proportion the order was paid).
Sales are priced by the real evaluator and returned by the real till core (`edge.core.returns.take`)."""
from __future__ import annotations

import dataclasses

import pytest

from edge.core import returns
from edge.core.cart import Cart, line_for_code, price
from edge.core.coupons import CartCoupon
from edge.core.gifts import gift_lines
from edge.core.outcome import Publish, Refused
from edge.core.return_gifts import Deduction, UndoPromotions, deductions, gifts_of_sale
from edge.core.state import Books, EventStamp, Member, Moment
from protocol import codec
from protocol import return_promotions as rp
from protocol.barcodes import DEFAULT_LAYOUTS
from protocol.ids import make_id
from protocol.pricing import Catalogue, Product, load_rule_book
from protocol.pricing.rules import Gift
from protocol.return_messages import GoodsReturned
from protocol.returns import Back, refund_lines, returned_so_far, shares

STORE = "S034"
NOW = Moment(wall_ms=1_767_229_200_000, mono_ms=42)
CATALOGUE = Catalogue([
    Product(sku="MILK", name="Milk", category="dairy", unit="piece", price_fen=1_000, gtin="6901234567892"),
    Product(sku="BREAD", name="Bread", category="bakery", unit="piece", price_fen=700, gtin="6901234567885"),
    Product(sku="TOFU", name="Tofu", category="soy", unit="piece", price_fen=450, gtin="6901234567878")])
BOOK = load_rule_book({"version": 1, "rules": [
    {"id": "C10", "type": "coupon", "name": "10 off from 30", "amount_off_fen": 1_000, "min_spend_fen": 3_000,
     "group": "coupons"},
    {"id": "G30", "type": "gift", "name": "Tofu from 30", "spend_fen": 3_000, "gift_sku": "TOFU"}]}, CATALOGUE)
BOOKS = Books(CATALOGUE, BOOK, 1, 1)
MEMBER = Member("m1", "138****0000", "0000000001", None, 0, 0, 0)
CODE = "CP0000000000010"
RET = make_id(NOW.wall_ms, 999)


def stamp() -> EventStamp:
    n = iter(range(1, 10**6))
    return EventStamp(STORE, 7, NOW, lambda: make_id(NOW.wall_ms, next(n)))


def sale(milk: int, bread: int, coupon: bool) -> returns.Source:
    """A member's cash sale priced by the evaluator, as the store records it (lines net of every discount, the
    gift as a 0-fen line) with the promotions it carried."""
    cart = Cart(member=MEMBER)
    for gtin, n in (("6901234567892", milk), ("6901234567885", bread)):
        for _ in range(n):
            cart.add(line_for_code(gtin, CATALOGUE, DEFAULT_LAYOUTS))
    if coupon:
        cart.coupons.append(CartCoupon(CODE, "C10", "1:h"))
    priced = price(cart, BOOKS, STORE, NOW.wall_ms)
    lines = tuple((pl.sku, pl.qty, "piece", pl.amount_fen) for pl in priced.lines)
    lines += tuple((g.sku, g.quantity.amount, "piece", 0) for g in gift_lines(priced, BOOKS))
    gifts = gifts_of_sale(lines, [r for r in BOOK.rules if isinstance(r, Gift)],
                          lambda s: CATALOGUE.get(s).category, lambda r: CATALOGUE.get(r.gift_sku).price_fen)
    used = tuple(c.code for c in cart.coupons if c.rule_id in priced.coupons_used)
    return returns.Source("sale", "01SALE", "sold", lines, priced.total_fen, "cash", MEMBER.member_id,
                          coupons=used, gifts=tuple(gifts))


def take(source, asked, before=None, keep_gifts=False):
    return returns.take(source, "sale 01SALE", before or {}, [returns.Asked(s, q, "piece", "resaleable")
                                                              for s, q in asked],
                        {}, RET, "1", stamp(), keep_gifts)


def event(outcome) -> GoodsReturned:
    return next(e.event for e in outcome.effects if isinstance(e, Publish) and isinstance(e.event, GoodsReturned))


# ---- coupons -------------------------------------------------------------------------------------------------
def test_a_coupon_s_saving_is_spread_over_the_lines_so_a_partial_return_gives_back_only_what_was_paid():
    source = sale(4, 1, coupon=True)  # 4000 + 700 = 4700, 10 off: 3700 paid; a tofu given (3700 >= 3000)
    assert source.total_fen == 3_700 and source.coupons == (CODE,)
    milk = sum(fen for sku, _, _, fen in source.lines if sku == "MILK")
    assert milk == 4_000 - 4_000 * 1_000 // 4_700  # the coupon's saving is on the lines: 851 of it on the milk
    out = take(source, [("MILK", 1), ("TOFU", 1)])
    back = event(out)
    assert back.total_fen == milk // 4 < 1_000  # one milk of four: a quarter of what the milk cost, not its price
    assert out.reply["coupons"] == [{"code": CODE, "back": False, "note": out.reply["coupons"][0]["note"]}]
    assert "keeps the coupon used" in out.reply["coupons"][0]["note"]
    assert not [e for e in out.effects if isinstance(e, UndoPromotions) and e.coupons_back]


def test_every_way_of_returning_the_whole_sale_gives_back_exactly_what_was_paid():
    source = sale(4, 1, coupon=True)
    sold = shares(source.lines, source.total_fen)
    given: list = []
    for asked in ([("MILK", 1)], [("BREAD", 1)], [("MILK", 2), ("TOFU", 1)], [("MILK", 1)]):
        given += refund_lines(sold, returned_so_far(given), asked)
        assert sum(f for *_, f in given) <= source.total_fen
    assert sum(f for *_, f in given) == source.total_fen == 3_700


def test_a_whole_return_lets_the_coupon_go_at_the_store_and_says_the_cloud_gives_it_back():
    source = sale(4, 1, coupon=True)
    out = take(source, [("MILK", 4), ("BREAD", 1), ("TOFU", 1)])
    assert event(out).total_fen == 3_700
    undo = [e for e in out.effects if isinstance(e, UndoPromotions)]
    assert undo == [UndoPromotions("sale:01SALE", RET, (), (CODE,), whole=True)]
    assert out.reply["coupons"][0]["back"] is True and "still valid" in out.reply["coupons"][0]["note"]


def test_the_cloud_gives_a_coupon_back_only_within_its_window():
    assert rp.coupon_back(valid_until_ms=2_000, returned_at_ms=1_999)[0] == rp.COUPON_BACK
    effect, why = rp.coupon_back(valid_until_ms=2_000, returned_at_ms=2_000)
    assert effect == rp.COUPON_KEPT_EXPIRED and "stays redeemed" in why


# ---- the till-spend trigger -----------------------------------------------------------------------------------
def test_a_trigger_coupon_is_voided_unused_or_reported_used_once_the_kept_spend_falls_under_its_minimum():
    assert rp.trigger_outcome("issued", 6_000, 1_000, 5_000) is None  # 50.00 kept: still earned
    effect, why = rp.trigger_outcome("issued", 6_000, 1_001, 5_000)
    assert effect == rp.TRIGGER_VOIDED and "4999 fen kept of 6000 fen" in why
    effect, why = rp.trigger_outcome("redeemed", 6_000, 6_000, 5_000)
    assert effect == rp.TRIGGER_USED and "redeemed already" in why and "reported" in why
    assert rp.trigger_outcome("reserved", 6_000, 6_000, 5_000)[0] == rp.TRIGGER_USED
    assert rp.trigger_outcome("voided", 6_000, 6_000, 5_000) is None  # voided before: nothing more


# ---- gifts ----------------------------------------------------------------------------------------------------
def test_a_return_that_takes_the_gift_s_reason_away_asks_for_the_gift_back():
    source = sale(3, 1, coupon=False)  # 3700 paid, a tofu given (spend 3000)
    assert ("TOFU", 1, "piece", 0) in source.lines and source.gifts[0].value_fen == 450
    take(source, [("BREAD", 1)])  # 3000 kept: still earns the gift
    with pytest.raises(Refused) as refused:
        take(source, [("MILK", 1)])  # 2700 kept: under 3000
    assert refused.value.status == 409
    assert "gift TOFU (rule G30)" in str(refused.value) and "return the gift (TOFU, 1)" in str(refused.value)
    out = take(source, [("MILK", 1), ("TOFU", 1)])  # the gift comes back with it: 0 fen for it, stock back
    assert event(out).total_fen == 1_000 and event(out).deductions == ()
    assert sum(1 for e in out.effects if getattr(getattr(e, "event", None), "sku", "") == "TOFU") == 1


def test_a_gift_kept_has_its_price_taken_off_the_refund_once():
    source = sale(3, 1, coupon=False)
    out = take(source, [("MILK", 1)], keep_gifts=True)
    back = event(out)
    assert [(d.rule_id, d.sku, d.amount_fen) for d in back.deductions] == [("G30", "TOFU", 450)]
    assert back.total_fen == 1_000 - 450 == back.refunds[0].amount_fen
    assert codec.decode(codec.encode(back)) == back  # the deduction travels
    assert out.reply["total_fen"] == 550 and out.reply["deductions"][0]["amount_fen"] == 450
    assert [e for e in out.effects if isinstance(e, UndoPromotions)][0].deductions == (Deduction("G30", "TOFU", 450),)
    # a later return of the same sale: the gift was paid for, nothing more is deducted; the lines' shares stand
    settled = dataclasses.replace(source, gifts_settled=("G30",))
    later = take(settled, [("MILK", 2)], before={"MILK": Back(1, 1_000)}, keep_gifts=False)
    assert event(later).total_fen == 2_000 and event(later).deductions == ()


def test_a_gift_worth_more_than_the_refund_must_come_back():
    source = sale(3, 1, coupon=False)
    sold = shares(source.lines, source.total_fen)
    lines = refund_lines(sold, {}, [("BREAD", 1)])  # 700 back; kept 3000: still earned
    assert deductions(source.gifts, sold, {}, lines, (), keep_gifts=False) == []
    dear = [dataclasses.replace(source.gifts[0], value_fen=900)]  # a gift dearer than this return's refund
    with pytest.raises(Refused, match=r"worth 9\.00, more than this return gives back \(7\.00\)"):
        deductions(dear, sold, {"MILK": Back(1, 1_000)}, lines, (), keep_gifts=True)


def test_a_goods_returned_whose_total_ignores_its_deductions_is_refused_by_the_codec():
    out = take(sale(3, 1, coupon=False), [("MILK", 1)], keep_gifts=True)
    e = event(out)
    with pytest.raises(Exception, match="less the deductions"):
        dataclasses.replace(e, total_fen=1_000)


# ---- points ---------------------------------------------------------------------------------------------------
def test_points_come_back_in_the_proportion_the_order_was_paid_and_never_more_than_either_part():
    paid = rp.PointsPaid(total_fen=10_000, points=3_000)  # 30.00 in points, 70.00 in money
    assert rp.points_split(paid, 0, 0, 5_000) == (3_500, 1_500)
    money, points = rp.points_split(paid, 5_000, 1_500, 3_333)  # 8333 back in all: 2499 points in all
    assert (money, points) == (3_333 - 999, 999)
    last = rp.points_split(paid, 8_333, 2_499, 1_667)  # the rest of it: exactly what is left of each
    assert last == (1_667 - 501, 501)
    assert 3_500 + money + last[0] == 7_000 and 1_500 + points + last[1] == 3_000
    assert rp.points_split(rp.PointsPaid(10_000, 0), 0, 0, 4_000) == (4_000, 0)  # no points: all money


@pytest.mark.parametrize("parts", [[1] * 7, [3, 3, 1], [9_999, 1], [1, 9_999], [5_000, 5_000], [3_333] * 3 + [1]])
def test_points_split_over_any_refunds_adds_up_to_what_was_paid(parts):
    paid = rp.PointsPaid(total_fen=10_000 if sum(parts) > 100 else 7, points=3_000 if sum(parts) > 100 else 3)
    value, pts, money = 0, 0, 0
    for amount in parts:
        m, p = rp.points_split(paid, value, pts, amount)
        assert m >= 0 and p >= 0 and m + p == amount
        value, pts, money = value + amount, pts + p, money + m
        assert pts <= paid.points and money <= paid.total_fen - paid.points_fen
    assert (pts, money) == (paid.points, paid.total_fen - paid.points_fen)



def test_a_till_sale_paid_partly_with_points_gives_back_points_and_cash_in_proportion():
    source = dataclasses.replace(sale(3, 1, coupon=False), payments=(("points", 1_000), ("cash", 2_700)))
    first = event(take(source, [("BREAD", 1)]))  # 700 of the 3700: 700 * 1000 // 3700 = 189 points
    assert [(p.method, p.amount_fen) for p in first.refunds] == [("points", 189), ("cash", 511)]
    rest = dataclasses.replace(source, points_back=189)
    last = event(take(rest, [("MILK", 3), ("TOFU", 1)], before={"BREAD": Back(1, 700)}))
    assert [(p.method, p.amount_fen) for p in last.refunds] == [("points", 811), ("cash", 2_189)]
    assert 189 + 811 == 1_000 and 511 + 2_189 == 2_700  # never more than was paid in either


@pytest.mark.parametrize("gift_first", [True, False])
def test_a_gift_kept_over_a_points_sale_s_returns_loses_no_fen_and_neither_part_passes_what_was_paid(gift_first):
    """Review (issue 17): earlier returns count at their lines' gross fen (`sale_refunds`), the gift's price kept off
    one of them. Each refund is its lines less its deduction, split between points and money; in all the member gets
    back exactly what was paid less the kept gift, never more points or money than the sale took of either."""
    source = dataclasses.replace(sale(3, 1, coupon=False), payments=(("points", 1_000), ("cash", 2_700)))
    first_asked, last_asked = ([("MILK", 1)], [("MILK", 2), ("BREAD", 1)]) if gift_first else \
        ([("BREAD", 1)], [("MILK", 3)])
    first = event(take(source, first_asked, keep_gifts=True))
    gross = {sku: Back(q, sum(fen for s, _, _, fen in source.lines if s == sku) * q // 3 if sku == "MILK" else 700)
             for sku, q in first_asked}
    rest = dataclasses.replace(source, points_back=sum(p.amount_fen for p in first.refunds if p.method == "points"),
                               gifts_settled=("G30",) if gift_first else ())
    last = event(take(rest, last_asked, before=gross, keep_gifts=True))
    refunds = [*first.refunds, *last.refunds]
    points = sum(p.amount_fen for p in refunds if p.method == "points")
    cash = sum(p.amount_fen for p in refunds if p.method == "cash")
    assert points + cash == 3_700 - 450 and points <= 1_000 and cash <= 2_700, (points, cash)
    if gift_first:  # the rest came back whole after the deduction: every point the sale took is back
        assert points == 1_000
