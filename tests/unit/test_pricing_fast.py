"""The fast evaluator (protocol/pricing/fast_evaluator.py, `price_basket`) against the reference one
(`price_basket_reference`): on generated books of every rule type, catalogues with store price overrides and member
prices, baskets and member contexts, both give the same PricedBasket, field for field, or refuse the basket with the
same ProtocolError. Pure: no servers, no event loop.

Each example prices its basket under several contexts, and again, so the fast evaluator's memos (plans per context,
line outcomes per SKU) are hit as well as filled; the tests over the reference world's book share memos across
examples the same way.
"""
from __future__ import annotations

import dataclasses
import datetime

import pytest
from hypothesis import Phase, assume, find, given, settings
from hypothesis import strategies as st

from protocol import ProtocolError
from protocol.pricing import (
    BasketLine,
    BudgetLeft,
    Catalogue,
    LevelPrice,
    PricingContext,
    Product,
    load_rule_book,
    price_basket,
    price_basket_reference,
)
from protocol.pricing.price_book import PriceEntry
from tests.unit.test_pricing_properties import BOOK, CATALOGUE, COUPONS, GROUPS, contexts
from tests.unit.test_pricing_properties import lines as world_lines

DAY_MS = 86_400_000
DAY0 = 1_767_196_800_000  # 2026-01-01 00:00 in UTC+8, the books' local time
STORES = ("S001", "S002", "S003")
LEVELS = ("silver", "gold", "platinum")
CATEGORIES = ("veg", "fruit", "dairy")
NAMES = ("Deal", "Spend more", "Weekend")  # rules share names: messages must still match


def outcome(price, catalogue, book, basket, ctx):
    """The PricedBasket, or the text of the ProtocolError that refused the basket."""
    try:
        return price(catalogue, book, basket, ctx)
    except ProtocolError as err:
        return f"refused: {err}"


@st.composite
def catalogues(draw):
    products = []
    for i in range(draw(st.integers(2, 7))):
        price = draw(st.integers(1, 4000))
        levels = draw(st.lists(st.sampled_from(LEVELS[:2]), unique=True, max_size=2))
        products.append(Product(
            sku=f"P{i}", name=f"Product {i}", category=draw(st.sampled_from(CATEGORIES)),
            unit=draw(st.sampled_from(("kg", "piece"))), price_fen=price,
            member_prices=tuple(LevelPrice(level=lv, price_fen=draw(st.integers(1, price))) for lv in levels),
            channels=draw(st.sampled_from((("offline", "online"),) * 4 + (("offline",), ("online",))))))
    entries = draw(st.lists(st.builds(
        lambda sku, store, at, price, gold: PriceEntry(
            change_id=f"c-{sku}-{store}-{at}", sku=sku, price_fen=price, store_id=store, effective_ms=at,
            member_prices=(LevelPrice(level="gold", price_fen=min(gold, price)),) if gold else ()),
        st.sampled_from([p.sku for p in products]), st.sampled_from(("", "S001", "S002")),
        st.sampled_from((0, DAY0 + DAY_MS // 2, DAY0 + DAY_MS)), st.integers(1, 4000), st.integers(0, 3000)),
        max_size=4, unique_by=lambda e: (e.sku, e.store_id, e.effective_ms)))
    return Catalogue(products, tuple(entries))


def _scope(draw, catalogue: Catalogue, pieces_only: bool = False) -> dict:
    skus = sorted(catalogue.by_sku)
    if pieces_only:
        skus = [s for s in skus if not catalogue.get(s).weighed]
        return {"skus": draw(st.lists(st.sampled_from(skus), min_size=1, max_size=3, unique=True))}
    kind = draw(st.sampled_from(("all", "skus", "categories", "both")))
    scope: dict = {}
    if kind in ("skus", "both"):
        scope["skus"] = draw(st.lists(st.sampled_from(skus), min_size=1, max_size=3, unique=True))
    if kind in ("categories", "both"):
        scope["categories"] = draw(st.lists(st.sampled_from(sorted(catalogue.categories)), min_size=1, max_size=2,
                                            unique=True))
    return scope


def _when(draw) -> dict:
    """Channels, stores, validity, daily windows and member levels, each mostly absent."""
    out: dict = {}
    if draw(st.integers(0, 4)) == 0:
        out["channels"] = [draw(st.sampled_from(("offline", "online")))]
    if draw(st.integers(0, 4)) == 0:
        out["stores"] = draw(st.lists(st.sampled_from(STORES), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 5)) == 0:
        out["starts_ms"] = DAY0 + draw(st.integers(0, 47)) * 3_600_000
    if draw(st.integers(0, 5)) == 0:
        out["ends_ms"] = DAY0 + draw(st.integers(48, 96)) * 3_600_000
    if draw(st.integers(0, 4)) == 0:
        start = draw(st.integers(0, 22))
        out["daily"] = [f"{start:02d}:00-{draw(st.integers(start + 1, 24)):02d}:00"]
    if draw(st.integers(0, 5)) == 0:
        out["member_levels"] = draw(st.lists(st.sampled_from(LEVELS), min_size=1, max_size=2, unique=True))
    return out


@st.composite
def rule_books(draw, catalogue: Catalogue):
    has_pieces = any(not p.weighed for p in catalogue.by_sku.values())
    rules = []
    for i in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(("item", "member", "threshold", "coupon", "gift", "group_buy", "markdown")))
        rule: dict = {"id": f"R{i}", "name": draw(st.sampled_from(NAMES)), "priority": draw(st.integers(0, 2)),
                      **_when(draw)}
        if kind != "markdown" and draw(st.integers(0, 3)) == 0:
            rule["budget_fen"] = draw(st.integers(1, 3000))
        if kind in ("item", "member"):
            amount_off = has_pieces and draw(st.booleans())
            rule |= _scope(draw, catalogue, pieces_only=amount_off)
            rule["type"] = "item_discount" if kind == "item" else "member_discount"
            if amount_off:
                rule["amount_off_fen"] = draw(st.integers(1, 600))
            else:
                rule["percent_off_bp"] = draw(st.integers(1, 10_000))
            if kind == "member":
                rule["member_levels"] = draw(st.lists(st.sampled_from(LEVELS), min_size=1, max_size=2, unique=True))
            rule["group"] = draw(st.sampled_from(("", "", "L1", "L2")))
        elif kind == "threshold":
            spends = sorted(draw(st.lists(st.integers(2, 9000), min_size=1, max_size=3, unique=True)))
            rule |= _scope(draw, catalogue) | {
                "type": "spend_threshold", "tiers": [{"spend_fen": s, "off_fen": draw(st.integers(1, s - 1))}
                                                     for s in spends],
                "repeat": draw(st.booleans()), "max_repeats": draw(st.integers(0, 3)),
                "group": draw(st.sampled_from(("", "B1", "B2")))}
        elif kind == "coupon":
            rule |= _scope(draw, catalogue) | {
                "type": "coupon", "min_spend_fen": draw(st.sampled_from((0, 500, 3000))),
                "new_member_only": draw(st.booleans()), "group": draw(st.sampled_from(("", "B1", "C1")))}
            if draw(st.booleans()):
                rule["amount_off_fen"] = draw(st.integers(1, 3000))
            else:
                rule["percent_off_bp"] = draw(st.integers(1, 10_000))
        elif kind == "gift":
            rule |= _scope(draw, catalogue) | {
                "type": "gift", "spend_fen": draw(st.integers(1, 8000)),
                "gift_sku": draw(st.sampled_from(sorted(catalogue.by_sku))), "gift_qty": draw(st.integers(1, 3)),
                "group": draw(st.sampled_from(("", "G1", "G1")))}
        elif kind == "group_buy":
            sku = draw(st.sampled_from(sorted(catalogue.by_sku)))
            price = catalogue.get(sku).price_fen  # a group price equal to the list price saves nothing
            rule |= {"type": "group_buy", "skus": [sku], "group_price_fen": draw(st.integers(1, 5000) | st.just(price)),
                     "group_size": 2}
        else:
            rule.pop("daily", None)
            rule |= _markdown(draw, catalogue)
        rules.append(rule)
    try:
        return load_rule_book({"version": draw(st.integers(1, 9)), "rules": rules}, catalogue)
    except ProtocolError:  # e.g. an amount off a scope that has weighed items: a book the office refuses
        assume(False)
        raise


def _markdown(draw, catalogue: Catalogue) -> dict:
    rule: dict = {"type": "markdown"}
    if draw(st.booleans()):
        rule["from_time"] = f"{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from((0, 30))):02d}"
    if "from_time" not in rule or draw(st.booleans()):
        rule["days_to_use_by"] = draw(st.integers(0, 3))
    skus = draw(st.lists(st.sampled_from(sorted(catalogue.by_sku)), min_size=1, max_size=3, unique=True))
    lowest = min(catalogue.get(s).price_fen for s in skus)
    if lowest > 1 and draw(st.booleans()):
        return rule | {"skus": skus, "price_fen": draw(st.integers(1, lowest - 1))}
    return rule | _scope(draw, catalogue) | {"percent_off_bp": draw(st.integers(1, 10_000))}


def _use_by(draw) -> str:
    if draw(st.booleans()):
        return ""
    return (datetime.date(2026, 1, 1) + datetime.timedelta(days=draw(st.integers(-2, 4)))).isoformat()


def _edges(book) -> list[int]:
    """Subtotals where a threshold is just reached or just missed, or a near miss begins: a label line of such an
    amount lands a basket on an edge."""
    spends = [t.spend_fen for r in book.rules if r.TYPE == "spend_threshold" for t in r.tiers]
    spends += [r.min_spend_fen for r in book.rules if r.TYPE == "coupon"] + \
        [r.spend_fen for r in book.rules if r.TYPE == "gift"]
    return sorted({e for s in spends for e in (s - 1, s, s + 1, s * 3 // 4, (s * 3 + 3) // 4) if e > 0}) or [1]


@st.composite
def baskets(draw, catalogue: Catalogue, book):
    markdowns = [r.id for r in book.rules if r.TYPE == "markdown"] + ["MD-GONE"]
    amounts = st.integers(1, 6000) | st.sampled_from(_edges(book))
    if draw(st.integers(0, 4)) == 0:  # one label line of an edge amount: its subtotal sits right on the edge
        return [BasketLine(sku=draw(st.sampled_from(sorted(catalogue.by_sku))), amount_fen=draw(amounts))]
    out = []
    for _ in range(draw(st.integers(1, 12))):
        sku = draw(st.sampled_from([*sorted(catalogue.by_sku)] * 8 + ["NOPE"]))  # rarely, an unknown product
        weighed = sku in catalogue and catalogue.get(sku).weighed
        kind = draw(st.sampled_from(("measure",) * 6 + ("label", "markdown_label", "wrong_measure")))
        use_by = _use_by(draw)
        if kind == "label":
            out.append(BasketLine(sku=sku, amount_fen=draw(amounts), use_by=use_by,
                                  qty=draw(st.sampled_from((0, 0, 2)))))
        elif kind == "markdown_label":
            amount = draw(amounts)
            out.append(BasketLine(sku=sku, amount_fen=amount, was_fen=amount + draw(st.integers(0, 900)),
                                  markdown_rule=draw(st.sampled_from(markdowns)), weight_g=draw(st.integers(0, 900))))
        elif weighed == (kind == "measure"):
            out.append(BasketLine(sku=sku, weight_g=draw(st.integers(1, 3000)), use_by=use_by))
        else:
            out.append(BasketLine(sku=sku, qty=draw(st.integers(1, 6)), use_by=use_by))
        if draw(st.integers(0, 5)) == 0:
            out.append(out[-1])  # the same line twice: memo hits within a basket, ties in the canonical order
    return out


@st.composite
def member_contexts(draw, catalogue: Catalogue, book):
    ids = [r.id for r in book.rules]
    coupons = [r.id for r in book.rules if r.TYPE == "coupon"] + ["C-UNKNOWN"]
    groups = [r.id for r in book.rules if r.TYPE == "group_buy"]
    gifts = sorted({r.gift_sku for r in book.rules if r.TYPE == "gift"}) * 3 + sorted(catalogue.by_sku)
    return PricingContext(
        channel=draw(st.sampled_from(("offline", "online"))), store_id=draw(st.sampled_from(STORES)),
        now_ms=DAY0 + draw(st.integers(0, 2 * DAY_MS)), member_level=draw(st.sampled_from((None, *LEVELS))),
        new_member=draw(st.booleans()),
        coupons=tuple(draw(st.lists(st.sampled_from(coupons), max_size=3))),
        formed_groups=tuple(draw(st.lists(st.sampled_from(groups), unique=True))) if groups else (),
        budgets_left=tuple(BudgetLeft(rule_id=draw(st.sampled_from(ids)), fen=draw(st.integers(0, 2500)))
                           for _ in range(draw(st.integers(0, 3)))) if ids else (),
        gifts_out=tuple(draw(st.lists(st.sampled_from(gifts), unique=True, max_size=2))))


@st.composite
def cases(draw):
    catalogue = draw(catalogues())
    book = draw(rule_books(catalogue))
    return (catalogue, book, draw(baskets(catalogue, book)),
            draw(st.lists(member_contexts(catalogue, book), min_size=1, max_size=3)))


@settings(max_examples=600)
@given(cases())
def test_the_fast_evaluator_gives_what_the_reference_gives(case):
    catalogue, book, basket, ctxs = case
    for ctx in [*ctxs, ctxs[0]]:  # the first context again: its memoised plan and line outcomes
        assert outcome(price_basket, catalogue, book, basket, ctx) == \
            outcome(price_basket_reference, catalogue, book, basket, ctx)


@settings(max_examples=300)
@given(cases(), st.randoms(use_true_random=False))
def test_it_gives_the_same_in_any_scanning_order(case, rnd):
    catalogue, book, basket, ctxs = case
    shuffled = list(basket)
    rnd.shuffle(shuffled)
    assert outcome(price_basket, catalogue, book, shuffled, ctxs[0]) == \
        outcome(price_basket_reference, catalogue, book, shuffled, ctxs[0])


world_contexts = st.builds(
    lambda ctx, channel, budgets, out: dataclasses.replace(ctx, channel=channel, budgets_left=budgets, gifts_out=out),
    contexts, st.sampled_from(("offline", "online")),
    st.lists(st.builds(BudgetLeft, rule_id=st.sampled_from(sorted(BOOK.by_id)), fen=st.integers(0, 5000)),
             max_size=4).map(tuple),
    st.lists(st.sampled_from(sorted({r.gift_sku for r in BOOK.rules if r.TYPE == "gift"})), max_size=2).map(tuple))


@settings(max_examples=300)
@given(st.lists(world_lines(), min_size=1, max_size=30), world_contexts)
def test_on_the_reference_worlds_200_rule_book(basket, ctx):
    assert outcome(price_basket, CATALOGUE, BOOK, basket, ctx) == \
        outcome(price_basket_reference, CATALOGUE, BOOK, basket, ctx)


def test_the_generators_reach_every_rule_type_and_both_answers():
    """The properties above only mean something if books of every rule type are generated, and both refused and
    discounted baskets occur (find() fails when it cannot find one; no shrinking: any example will do)."""
    # derandomized: the same examples every run (a random 500 once missed the rarest case, failing a correct run)
    quick = settings(max_examples=500, phases=[Phase.generate], database=None, derandomize=True)

    def priced(case):
        return outcome(price_basket, case[0], case[1], case[2], case[3][0])

    for kind in ("item_discount", "member_discount", "spend_threshold", "coupon", "gift", "group_buy", "markdown"):
        find(cases(), lambda c, kind=kind: any(kind == r.TYPE for r in c[1].rules), settings=quick)
    find(cases(), lambda c: isinstance(priced(c), str), settings=quick)
    find(cases(), lambda c: not isinstance(priced(c), str) and len(priced(c).applied) >= 3, settings=quick)
    find(cases(), lambda c: not isinstance(priced(c), str) and any(g for g in priced(c).gifts_missing),
         settings=quick)


@pytest.mark.parametrize("coupons", [(), tuple(COUPONS[:2])])
def test_a_repeated_packed_line_is_memoised_and_still_exact(coupons):
    sku = next(s for s in sorted(CATALOGUE.by_sku) if not CATALOGUE.get(s).weighed)
    ctx = PricingContext(channel="offline", store_id="S001", now_ms=DAY0 + 10 * 3_600_000, member_level="gold",
                         coupons=coupons, formed_groups=tuple(GROUPS[:1]))
    basket = [BasketLine(sku=sku, qty=2)] * 3
    for _ in range(3):
        assert price_basket(CATALOGUE, BOOK, basket, ctx) == price_basket_reference(CATALOGUE, BOOK, basket, ctx)


EDGE_CATALOGUE = Catalogue([
    Product(sku="MILK", name="Milk", category="dairy", unit="piece", price_fen=1250),
    Product(sku="EGGS", name="Eggs", category="eggs", unit="piece", price_fen=1590),
    Product(sku="BEEF", name="Beef", category="meat", unit="kg", price_fen=8800),
])
EDGE_BOOK = load_rule_book({"version": 3, "rules": [
    {"type": "spend_threshold", "id": "T-A", "name": "Spend 10", "group": "B", "priority": 2,
     "tiers": [{"spend_fen": 1000, "off_fen": 100}]},
    {"type": "spend_threshold", "id": "T-B", "name": "Spend 5", "group": "B", "priority": 1,
     "tiers": [{"spend_fen": 500, "off_fen": 50}, {"spend_fen": 2000, "off_fen": 300}]},
    {"type": "spend_threshold", "id": "T-R", "name": "Every 8", "group": "B", "repeat": True, "max_repeats": 2,
     "tiers": [{"spend_fen": 800, "off_fen": 90}]},
    {"type": "spend_threshold", "id": "T-M", "name": "Meat 15", "categories": ["meat"],
     "tiers": [{"spend_fen": 1500, "off_fen": 150}]},
    {"type": "coupon", "id": "C-12", "name": "12 off 30", "group": "B", "min_spend_fen": 3000, "amount_off_fen": 1200},
    {"type": "gift", "id": "G-EGGS", "name": "Eggs at 20", "group": "G", "spend_fen": 2000, "gift_sku": "EGGS"},
    {"type": "gift", "id": "G-MILK", "name": "Milk at 20", "group": "G", "spend_fen": 2000, "gift_sku": "MILK"},
    {"type": "gift", "id": "G-MEAT", "name": "Milk for meat", "categories": ["meat"], "spend_fen": 1200,
     "gift_sku": "MILK"},
]}, EDGE_CATALOGUE)


@pytest.mark.parametrize("amount", sorted({e for s in (500, 800, 1000, 1200, 1500, 1600, 2000, 2400, 3000)
                                           for e in (s - 1, s, s + 1, s * 3 // 4, (s * 3 + 3) // 4)}))
@pytest.mark.parametrize("sku", ["MILK", "BEEF"])
@pytest.mark.parametrize("gifts_out", [(), ("EGGS",), ("MILK",), ("EGGS", "MILK")])
def test_at_every_threshold_edge(amount, sku, gifts_out):
    """A subtotal right on, or one fen either side of, a tier, a coupon's minimum or a gift's spend, or where a near
    miss begins: exclusive choices, near misses and gifts (given, or missing when out) as the reference has them."""
    ctx = PricingContext(channel="offline", store_id="S001", now_ms=DAY0, coupons=("C-12",), gifts_out=gifts_out)
    basket = [BasketLine(sku=sku, amount_fen=amount)]
    assert price_basket(EDGE_CATALOGUE, EDGE_BOOK, basket, ctx) == \
        price_basket_reference(EDGE_CATALOGUE, EDGE_BOOK, basket, ctx)
