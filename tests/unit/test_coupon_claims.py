"""What the cloud believes of a till's coupon redemption (protocol/coupon_claims.py): the saving a coupon's rule can
give, a hostile claim refused with its reason, an honest till's claims (priced by the real evaluator, edge/core)
always believed, and the words of a store past its daily fen allowance."""
from __future__ import annotations

from datetime import date

import pytest

from edge.core import selling
from edge.core.cart import Cart, line_for_code
from edge.core.coupons import CartCoupon
from edge.core.outcome import Publish
from edge.core.state import Books, EventStamp, Member, Moment
from protocol.barcodes import DEFAULT_LAYOUTS
from protocol.coupon_claims import allowance_breach, basket_list_fen, judge_saving, saving_max
from protocol.coupon_messages import CouponRedeemed
from protocol.coupons import new_code
from protocol.ids import make_id
from protocol.messages import SaleCommitted
from protocol.policy import OFFLINE_COUPON_FEN_PER_DAY
from protocol.pricing import Catalogue, Product, load_rule_book
from protocol.promotion_uses import RuleUse

NOW = Moment(wall_ms=1_767_229_200_000, mono_ms=42)
CATALOGUE = Catalogue([
    Product(sku="MILK", name="Milk 1L", category="dairy", unit="piece", price_fen=1_000, gtin="6901234567892",
            plu="00201"),
    Product(sku="BREAD", name="Bread", category="bakery", unit="piece", price_fen=1_500, gtin="6901234567908",
            plu="00202")])
BOOK = load_rule_book({"version": 1, "rules": [
    {"id": "C10", "type": "coupon", "name": "10 off", "amount_off_fen": 1_000, "min_spend_fen": 3_000,
     "group": "coupons"},
    {"id": "P20", "type": "coupon", "name": "20% off dairy", "percent_off_bp": 2_000, "categories": ["dairy"],
     "group": "pct"}]}, CATALOGUE)
BOOKS = Books(CATALOGUE, BOOK, 1, 1)
C10, P20 = BOOK.by_id["C10"], BOOK.by_id["P20"]
CODE, OTHER = new_code(lambda bits: 11), new_code(lambda bits: 12)


def test_an_amount_off_rule_gives_at_most_its_amount_and_never_more_than_the_basket():
    assert saving_max(C10, None) == 1_000
    assert saving_max(C10, 50_000) == 1_000
    assert saving_max(C10, 600) == 600


def test_a_percent_rule_is_bounded_by_its_share_of_the_basket_at_list_prices_or_not_at_all_without_it():
    assert saving_max(P20, 12_345) == 2_469  # 20%, one rounding
    assert saving_max(P20, None) is None
    assert basket_list_fen(9_000, (RuleUse(rule_id="C10", saving_fen=1_000), RuleUse(rule_id="P20", saving_fen=0))) == 10_000


@pytest.mark.parametrize("claimed_rule, saving, list_fen, why", [
    ("C10", 10**9, None, "claims a saving of 1000000000 fen; its promotion C10 gives at most 1000 fen"),
    ("C10", 1_001, 50_000, "gives at most 1000 fen on a basket of 50000 fen at list prices"),
    ("P20", 500, 50_000, "grants promotion C10, not P20"),
])
def test_a_claim_the_coupon_cannot_have_given_is_refused_with_the_reason(claimed_rule, saving, list_fen, why):
    reason = judge_saving(CODE, claimed_rule, saving, "C10", C10, list_fen)
    assert reason is not None and why in reason and CODE in reason


def test_a_percent_claim_past_its_share_of_the_sale_is_refused_and_within_it_believed():
    assert "gives at most 2000 fen" in (judge_saving(CODE, "P20", 2_001, "P20", P20, 10_000) or "")
    assert judge_saving(CODE, "P20", 2_000, "P20", P20, 10_000) is None
    assert judge_saving(CODE, "P20", 2_000, "P20", P20, None) is None  # no sale seen, held: nothing bounds it
    assert judge_saving(CODE, "P20", 10**9, "P20", P20, None) is None


def test_a_percent_claim_taken_offline_on_a_sale_never_seen_gives_at_most_the_whole_daily_allowance():
    assert saving_max(P20, None, offline=True) == OFFLINE_COUPON_FEN_PER_DAY
    assert judge_saving(CODE, "P20", OFFLINE_COUPON_FEN_PER_DAY, "P20", P20, None, offline=True) is None
    reason = judge_saving(CODE, "P20", OFFLINE_COUPON_FEN_PER_DAY + 1, "P20", P20, None, offline=True)
    assert reason == (f"coupon {CODE} claims a saving of {OFFLINE_COUPON_FEN_PER_DAY + 1} fen; its promotion P20 "
                      f"gives at most {OFFLINE_COUPON_FEN_PER_DAY} fen taken offline, on a sale the cloud has not seen")
    assert saving_max(P20, 10_000, offline=True) == 2_000  # a sale seen: its share of it


def test_a_rule_no_longer_in_the_book_is_judged_by_its_id_only():
    assert judge_saving(CODE, "C10", 5_000, "C10", None, None) is None
    assert judge_saving(CODE, "X1", 5, "C10", None, None) is not None


def _honest_sale(*coupons: CartCoupon):
    c = Cart(member=Member("m1", "138****0000", "0000000001", None, 0, 0, 0))
    for code in ("6901234567892",) * 4 + ("6901234567908",) * 2:
        c.add(line_for_code(code, CATALOGUE, DEFAULT_LAYOUTS))
    c.coupons.extend(coupons)
    outcome = selling.pay(c, BOOKS, selling.PayRequest("1", "cash", 10**6), selling.Till("S001", False),
                          make_id(NOW.wall_ms, 999), {}, EventStamp("S001", 0, NOW, lambda: make_id(NOW.wall_ms, 7)))
    events = [e.event for e in outcome.effects if isinstance(e, Publish)]
    return (next(e for e in events if isinstance(e, SaleCommitted)),
            [e for e in events if isinstance(e, CouponRedeemed)])


def test_an_honest_till_s_claims_are_believed_with_the_basket_it_sent():
    sale, redeemed = _honest_sale(CartCoupon(CODE, "C10", ""), CartCoupon(OTHER, "P20", ""))
    savings = dict(sorted((r.rule_id, r.saving_fen) for r in redeemed))
    assert savings["C10"] == 1_000 and 0 < savings["P20"] <= 800  # 20% of the dairy, after C10's share of it
    list_fen = basket_list_fen(sale.total_fen, sale.promotions)
    assert list_fen == 7_000  # 4 milk and 2 bread at list prices
    for r in redeemed:
        assert judge_saving(r.code, r.rule_id, r.saving_fen, r.rule_id, BOOK.by_id[r.rule_id], list_fen) is None


def test_a_store_past_its_fen_allowance_is_reported_in_words_and_within_it_not():
    day = date(2026, 12, 1)
    assert allowance_breach("S032", day, OFFLINE_COUPON_FEN_PER_DAY) is None
    assert allowance_breach("S032", day, OFFLINE_COUPON_FEN_PER_DAY + 1) == (
        f"store S032 took {OFFLINE_COUPON_FEN_PER_DAY + 1} fen of coupons offline on 2026-12-01, past its allowance "
        f"of {OFFLINE_COUPON_FEN_PER_DAY}")


def test_a_redemption_s_saving_is_bounded_on_the_wire_so_no_store_can_overflow_the_column():
    from protocol.promotion_uses import SAVING_FEN_MAX
    from protocol.schema import ProtocolError

    def claim(saving_fen: int) -> CouponRedeemed:
        return CouponRedeemed(event_id=make_id(1, 1), store_id="S033", seq=1, wall_ms=1, mono_ms=1,
                              code=new_code(lambda bits: 12345), sale_id="s1", member_id="M1", lane="1", hold_id="",
                              offline=True, rule_id="C10",
                              saving_fen=saving_fen)
    assert claim(SAVING_FEN_MAX).saving_fen == SAVING_FEN_MAX
    for absurd in (SAVING_FEN_MAX + 1, 2**63 - 1, -1):
        with pytest.raises(ProtocolError, match="coupon.redeemed.saving_fen"):
            claim(absurd)
