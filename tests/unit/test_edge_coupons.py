"""Coupons at the till, the pure core (edge/core/coupons.py) with the shared evaluator and the sale: online holds,
offline snapshots within the store's daily allowance, and what a sale commits."""
from __future__ import annotations

import pytest

from edge.core import coupons, selling
from edge.core.cart import Cart, cart_json, line_for_code, price
from edge.core.coupons import CartCoupon, OfflineUse, RecordRedemption
from edge.core.outcome import Publish, Refused
from edge.core.state import Books, EventStamp, Member, Moment
from protocol.barcodes import DEFAULT_LAYOUTS
from protocol.coupon_messages import CouponHoldAnswered, CouponRedeemed, KnownCoupon
from protocol.coupons import new_code
from protocol.ids import make_id
from protocol.policy import OFFLINE_COUPON_FEN_PER_DAY, OFFLINE_COUPONS_PER_DAY
from protocol.pricing import Catalogue, Product, load_rule_book

STORE = "S001"
NOW = Moment(wall_ms=1_767_229_200_000, mono_ms=42)
CATALOGUE = Catalogue([Product(sku="MILK", name="Milk 1L", category="dairy", unit="piece", price_fen=1_000,
                               gtin="6901234567892", plu="00201")])
BOOK = load_rule_book({"version": 1, "rules": [
    {"id": "C10", "type": "coupon", "name": "10 off", "amount_off_fen": 1_000, "min_spend_fen": 3_000,
     "group": "coupons"},
    {"id": "C5", "type": "coupon", "name": "5 off", "amount_off_fen": 500, "group": "coupons"}]}, CATALOGUE)
BOOKS = Books(CATALOGUE, BOOK, 1, 1)
MEMBER = Member("m1", "138****0000", "0000000001", None, 0, 0, 0)
CODE, OTHER = new_code(lambda bits: 1), new_code(lambda bits: 2)


def cart(pieces: int, *held: CartCoupon) -> Cart:
    c = Cart(member=MEMBER)
    for _ in range(pieces):
        c.add(line_for_code("6901234567892", CATALOGUE, DEFAULT_LAYOUTS))
    c.coupons.extend(held)
    return c


def answer(granted: bool, reason: str = "") -> CouponHoldAnswered:
    return CouponHoldAnswered(event_id=make_id(NOW.wall_ms, 1), store_id=STORE, seq=0, wall_ms=NOW.wall_ms, mono_ms=0,
                              hold_id="1:h", code=CODE, granted=granted, reason=reason,
                              rule_id="C10" if granted else "", expires_ms=NOW.wall_ms + 1)


def known(rule: str = "C10", until: int = NOW.wall_ms + 1) -> KnownCoupon:
    return KnownCoupon(code=CODE, rule_id=rule, valid_from_ms=0, valid_until_ms=until)


def test_an_online_hold_puts_the_coupon_in_the_cart_and_the_evaluator_applies_it():
    c = cart(4)
    c.coupons.append(coupons.online(c.coupons, CODE, answer(True)))
    priced = price(c, BOOKS, STORE, NOW.wall_ms)
    assert priced.total_fen == 3_000 and priced.coupons_used == ["C10"]
    assert cart_json(c, priced)["coupons"] == [{"code": CODE, "rule_id": "C10", "offline": False, "applied": True}]


def test_a_refused_hold_says_the_cloud_s_reason_and_a_code_goes_in_once():
    with pytest.raises(Refused, match=f"coupon {CODE}: already redeemed"):
        coupons.online([], CODE, answer(False, "already redeemed"))
    with pytest.raises(Refused, match="already in this cart"):
        coupons.online([CartCoupon(CODE, "C10", "1:h")], CODE, answer(True))


@pytest.mark.parametrize("snapshot,here,used,now,why", [
    (None, False, OfflineUse(0, 0), NOW.wall_ms, "not among this member's coupons"),
    (known(), True, OfflineUse(0, 0), NOW.wall_ms, "already redeemed at this store"),
    (known(until=NOW.wall_ms), False, OfflineUse(0, 0), NOW.wall_ms, "expired"),
    (known(), False, OfflineUse(OFFLINE_COUPONS_PER_DAY, 0), NOW.wall_ms, "offline allowance"),
])
def test_offline_a_coupon_is_taken_only_from_the_snapshot_within_the_allowance(snapshot, here, used, now, why):
    with pytest.raises(Refused, match=why):
        coupons.offline([], CODE, snapshot, here, used, now)
    assert coupons.offline([], CODE, known(), False, OfflineUse(OFFLINE_COUPONS_PER_DAY - 1, 0),
                           NOW.wall_ms) == CartCoupon(CODE, "C10", "")


def test_the_offline_fen_allowance_is_checked_before_the_sale():
    c = cart(4, CartCoupon(CODE, "C10", ""))
    priced = price(c, BOOKS, STORE, NOW.wall_ms)
    coupons.check_allowance(c.coupons, priced, OfflineUse(1, OFFLINE_COUPON_FEN_PER_DAY - 1_000))
    with pytest.raises(Refused, match="offline coupon allowance"):
        coupons.check_allowance(c.coupons, priced, OfflineUse(1, OFFLINE_COUPON_FEN_PER_DAY - 999))


def sale(c: Cart, online: bool = True):
    return selling.pay(c, BOOKS, selling.PayRequest("1", "cash", 10**6), selling.Till(STORE, online),
                       make_id(NOW.wall_ms, 999), {}, EventStamp(STORE, 0, NOW, lambda: make_id(NOW.wall_ms, 7)))


def test_a_sale_redeems_the_coupons_its_rules_applied_and_only_those():
    held, other = CartCoupon(CODE, "C10", "1:h"), CartCoupon(OTHER, "C5", "")
    outcome = sale(cart(4, held, other))  # one coupon group: the better one (C10) applies, C5 stays the member's
    redeemed = [e.event for e in outcome.effects if isinstance(e, Publish) and isinstance(e.event, CouponRedeemed)]
    assert [(r.code, r.hold_id, r.offline, r.saving_fen, r.member_id) for r in redeemed] == [
        (CODE, "1:h", False, 1_000, "m1")]
    rows = [e for e in outcome.effects if isinstance(e, RecordRedemption)]
    assert [(r.code, r.offline, r.saving_fen) for r in rows] == [(CODE, False, 1_000)]
    assert outcome.reply["total_fen"] == 3_000


def test_a_coupon_whose_minimum_is_not_reached_is_not_redeemed():
    outcome = sale(cart(2, CartCoupon(CODE, "C10", "1:h")))
    assert not [e for e in outcome.effects if isinstance(e, RecordRedemption)]
    assert outcome.reply["total_fen"] == 2_000


def test_a_new_member_coupon_held_at_the_till_applies():
    """Defect 8: the till's pricing context never said new_member, so a new-member-only coupon never applied there
    (the cloud gives a new-member coupon only to a new member, as orders' `_context` believes online)."""
    book = load_rule_book({"version": 1, "rules": [
        {"id": "NEW", "type": "coupon", "name": "welcome 8 off", "amount_off_fen": 800, "new_member_only": True,
         "group": "coupons"}]}, CATALOGUE)
    books = Books(CATALOGUE, book, 1, 1)
    c = cart(2, CartCoupon(CODE, "NEW", "1:h"))
    priced = price(c, books, STORE, NOW.wall_ms)
    assert priced.coupons_used == ["NEW"] and priced.total_fen == 1_200
    assert price(cart(2), books, STORE, NOW.wall_ms).total_fen == 2_000  # no coupon: no new-member price


def test_the_holds_a_sale_does_not_redeem_are_given_back():
    """Defect 7: a held coupon whose rule did not apply (or a second code of an applied rule) goes back at pay."""
    held, again, offline = CartCoupon(CODE, "C10", "1:h"), CartCoupon(OTHER, "C10", "1:g"), CartCoupon("CPX", "C5", "")
    c = cart(4, held, again, offline)
    assert coupons.unused_holds(c.coupons, price(c, BOOKS, STORE, NOW.wall_ms)) == [(OTHER, "1:g")]
    small = cart(2, held)  # under C10's minimum
    assert coupons.unused_holds(small.coupons, price(small, BOOKS, STORE, NOW.wall_ms)) == [(CODE, "1:h")]
