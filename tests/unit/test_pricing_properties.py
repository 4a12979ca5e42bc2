"""Properties of the evaluator over the reference world's 200-rule book and random baskets and contexts."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.pricing import BasketLine, PricingContext, price_basket
from simulators.world import LEVELS, reference_catalogue, reference_rule_book

CATALOGUE = reference_catalogue()
BOOK = reference_rule_book(CATALOGUE)
SKUS = sorted(CATALOGUE.by_sku)
COUPONS = sorted(r.id for r in BOOK.rules if r.TYPE == "coupon")
GROUPS = sorted(r.id for r in BOOK.rules if r.TYPE == "group_buy")


@st.composite
def lines(draw):
    product = CATALOGUE.get(draw(st.sampled_from(SKUS)))
    if draw(st.integers(0, 9)) == 0:
        return BasketLine(sku=product.sku, amount_fen=draw(st.integers(1, 50_000)))
    if product.weighed:
        return BasketLine(sku=product.sku, weight_g=draw(st.integers(1, 5_000)))
    return BasketLine(sku=product.sku, qty=draw(st.integers(1, 12)))


contexts = st.builds(
    PricingContext,
    channel=st.just("offline"),
    store_id=st.sampled_from(["S001", "S002"]),
    now_ms=st.integers(1_767_225_600_000, 1_767_225_600_000 + 7 * 86_400_000),
    member_level=st.none() | st.sampled_from(LEVELS),
    new_member=st.booleans(),
    coupons=st.lists(st.sampled_from(COUPONS), unique=True, max_size=4).map(tuple),
    formed_groups=st.lists(st.sampled_from(GROUPS), unique=True, max_size=3).map(tuple),
)
baskets = st.lists(lines(), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(baskets, contexts)
def test_totals_are_never_negative_and_lines_add_up(basket, ctx):
    result = price_basket(CATALOGUE, BOOK, basket, ctx)
    assert result.total_fen >= 0
    assert all(line.amount_fen >= 0 for line in result.lines)
    assert result.total_fen == sum(line.amount_fen for line in result.lines) <= result.subtotal_fen
    assert sum(a.saving_fen for a in result.applied if a.type not in ("gift",)) == result.discount_fen


@settings(max_examples=300, deadline=None)
@given(baskets, contexts, st.randoms(use_true_random=False))
def test_the_order_of_lines_does_not_change_the_result(basket, ctx, rnd):
    shuffled = list(basket)
    rnd.shuffle(shuffled)
    a, b = price_basket(CATALOGUE, BOOK, basket, ctx), price_basket(CATALOGUE, BOOK, shuffled, ctx)
    assert (a.total_fen, a.subtotal_fen) == (b.total_fen, b.subtotal_fen)
    assert sorted((x.rule_id, x.saving_fen) for x in a.applied) == sorted((x.rule_id, x.saving_fen) for x in b.applied)


@settings(max_examples=300, deadline=None)
@given(baskets, lines(), contexts)
def test_adding_an_item_never_lowers_the_pre_discount_subtotal(basket, extra, ctx):
    before = price_basket(CATALOGUE, BOOK, basket, ctx).subtotal_fen
    after = price_basket(CATALOGUE, BOOK, basket + [extra], ctx).subtotal_fen
    assert after >= before  # 1 g of a cheap vegetable may round to 0 fen, so not strictly more


@settings(max_examples=100, deadline=None)
@given(baskets, contexts)
def test_same_inputs_same_result(basket, ctx):
    assert price_basket(CATALOGUE, BOOK, basket, ctx) == price_basket(CATALOGUE, BOOK, list(basket), ctx)
