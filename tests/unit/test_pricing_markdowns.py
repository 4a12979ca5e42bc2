"""Markdowns in the promotion book (end-of-day clearance, near-expiry), against the pure evaluator: time of day from
the pricing time passed in, days to use-by from the line's lot, how they combine with member prices and other rules,
printed markdown labels, and validation that names the rule."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import ProtocolError
from protocol.pricing import BasketLine, Catalogue, LevelPrice, PricingContext, Product, load_rule_book, price_basket
from protocol.pricing.markdown_step import days_to_use_by

# 2026-01-01 in UTC+8: 18:59 local is 10:59 UTC, 19:00 local is 11:00 UTC.
DAY_UTC_MS = 1_767_225_600_000 - 8 * 3_600_000  # 2026-01-01 00:00 local
AT_1859 = DAY_UTC_MS + (18 * 60 + 59) * 60_000
AT_1900 = DAY_UTC_MS + 19 * 3_600_000
AT_2359 = DAY_UTC_MS + (23 * 60 + 59) * 60_000
NEXT_0000 = DAY_UTC_MS + 24 * 3_600_000
TODAY, TOMORROW, YESTERDAY = "2026-01-01", "2026-01-02", "2025-12-31"

CATALOGUE = Catalogue([
    Product(sku="BOK", name="Bok choy", category="vegetables", unit="kg", price_fen=1000, plu="00101",
            member_prices=(LevelPrice(level="gold", price_fen=900),)),
    Product(sku="SPIN", name="Spinach", category="vegetables", unit="kg", price_fen=800, plu="00102"),
    Product(sku="BREAD", name="Bread", category="packed", unit="piece", price_fen=1200, plu="00103"),
    Product(sku="MILK", name="Milk", category="dairy", unit="piece", price_fen=1250),
])
GREENS = {"id": "MD-GREENS", "type": "markdown", "name": "Greens after 19:00", "skus": ["BOK", "SPIN"],
          "from_time": "19:00", "percent_off_bp": 3000, "channels": ["offline"]}
USE_BY_DAY = {"id": "MD-USEBY", "type": "markdown", "name": "Use-by day", "days_to_use_by": 0, "percent_off_bp": 5000}


def book(*rules):
    return load_rule_book({"version": 1, "rules": list(rules)}, CATALOGUE)


def priced(rules, lines, now_ms=AT_1900, **kw):
    return price_basket(CATALOGUE, book(*rules), lines, PricingContext(channel=kw.pop("channel", "offline"),
                                                                       store_id="S001", now_ms=now_ms, **kw))


def test_greens_are_30_percent_off_from_19_00_and_show_the_rule():
    r = priced([GREENS], [BasketLine(sku="BOK", weight_g=500)])  # 500 g x 10.00/kg = 500; 30% off = 350
    assert (r.subtotal_fen, r.total_fen) == (500, 350)
    assert r.lines[0].rules == ["MD-GREENS"] and (r.lines[0].markdown_rule, r.lines[0].markdown_fen) == ("MD-GREENS", 150)
    assert [(a.rule_id, a.type, a.saving_fen) for a in r.applied] == [("MD-GREENS", "markdown", 150)]


@pytest.mark.parametrize("now_ms, marked", [(AT_1859, False), (AT_1900, True), (AT_2359, True), (NEXT_0000, False)])
def test_time_of_day_runs_from_from_time_until_midnight(now_ms, marked):
    r = priced([GREENS], [BasketLine(sku="BOK", weight_g=500)], now_ms=now_ms)
    assert r.total_fen == (350 if marked else 500)
    assert r.lines[0].markdown_rule == ("MD-GREENS" if marked else "")


def test_out_of_scope_products_and_other_channels_are_not_marked_down():
    r = priced([GREENS], [BasketLine(sku="BREAD", qty=1)])
    assert r.total_fen == 1200 and r.applied == []
    r = priced([GREENS], [BasketLine(sku="BOK", weight_g=500)], channel="online")
    assert r.total_fen == 500


@pytest.mark.parametrize("use_by, marked", [(TODAY, True), (TOMORROW, False), (YESTERDAY, False), ("", False)])
def test_use_by_day_markdown_needs_the_lines_use_by(use_by, marked):
    r = priced([USE_BY_DAY], [BasketLine(sku="BREAD", qty=2, use_by=use_by)], now_ms=AT_1859)
    assert r.total_fen == (1200 if marked else 2400)  # 2 x 12.00, half off on the use-by day


def test_days_to_use_by_counts_the_book_local_day():
    assert days_to_use_by(TODAY, DAY_UTC_MS, 480) == 0  # local midnight: already the 1st
    assert days_to_use_by(TODAY, DAY_UTC_MS - 60_000, 480) == 1  # 23:59 on the 31st
    assert days_to_use_by("", DAY_UTC_MS, 480) is None
    rule = dict(USE_BY_DAY, id="MD-2DAYS", days_to_use_by=1)
    assert priced([rule], [BasketLine(sku="BREAD", qty=1, use_by=TOMORROW)]).total_fen == 600


def test_the_deepest_markdown_wins_and_they_never_stack():
    r = priced([GREENS, USE_BY_DAY], [BasketLine(sku="BOK", weight_g=1000, use_by=TODAY)])
    assert r.total_fen == 500 and [a.rule_id for a in r.applied] == ["MD-USEBY"]  # 50% beats 30%, not 65%


def test_both_conditions_must_hold_when_a_rule_has_both():
    rule = dict(GREENS, id="MD-BOTH", days_to_use_by=0)
    assert priced([rule], [BasketLine(sku="BOK", weight_g=1000, use_by=TODAY)]).total_fen == 700
    assert priced([rule], [BasketLine(sku="BOK", weight_g=1000, use_by=TOMORROW)]).total_fen == 1000
    assert priced([rule], [BasketLine(sku="BOK", weight_g=1000, use_by=TODAY)], now_ms=AT_1859).total_fen == 1000


def test_fixed_markdown_price_per_kg_and_per_piece():
    rule = {"id": "MD-FIX", "type": "markdown", "name": "Fixed", "skus": ["BOK", "BREAD"], "from_time": "20:00",
            "price_fen": 600}
    r = priced([rule], [BasketLine(sku="BOK", weight_g=1500), BasketLine(sku="BREAD", qty=2)], now_ms=AT_2359)
    assert [pl.amount_fen for pl in r.lines] == [900, 1200]  # 1.5 kg x 6.00; 2 x 6.00
    assert r.total_fen == 2100


def test_member_price_and_markdown_give_the_better_one_only():
    small = dict(GREENS, id="MD-SMALL", percent_off_bp=500)  # 5% off 1000 = 950 > gold price 900
    r = priced([small], [BasketLine(sku="BOK", weight_g=1000)], member_level="gold")
    assert r.total_fen == 900 and [a.rule_id for a in r.applied] == ["member-price:gold"]
    r = priced([GREENS], [BasketLine(sku="BOK", weight_g=1000)], member_level="gold")  # 700 < 900
    assert r.total_fen == 700 and [a.rule_id for a in r.applied] == ["MD-GREENS"]


def test_no_line_rules_after_a_markdown_but_basket_rules_count_it():
    item = {"id": "ITEM", "type": "item_discount", "name": "10% greens", "categories": ["vegetables"],
            "percent_off_bp": 1000}
    spend = {"id": "SPEND", "type": "spend_threshold", "name": "Spend 10 get 1", "tiers": [{"spend_fen": 1000,
                                                                                        "off_fen": 100}]}
    r = priced([GREENS, item, spend], [BasketLine(sku="BOK", weight_g=1000), BasketLine(sku="SPIN", weight_g=500)])
    # BOK 1000 -> 700 and SPIN 400 -> 280 by the markdown, no 10% on top; 980 < 1000: no spend reward
    assert r.total_fen == 980 and {a.rule_id for a in r.applied} == {"MD-GREENS"}
    r = priced([GREENS, item, spend], [BasketLine(sku="BOK", weight_g=1000), BasketLine(sku="MILK", qty=1)],
               now_ms=AT_1900)
    assert r.total_fen == 700 + 1250 - 100 and {a.rule_id for a in r.applied} == {"MD-GREENS", "SPEND"}


def test_a_printed_markdown_label_prices_at_its_label_and_is_not_marked_down_again():
    label = BasketLine(sku="BOK", amount_fen=350, was_fen=500, markdown_rule="MD-GREENS")
    item = {"id": "ITEM", "type": "item_discount", "name": "10% greens", "skus": ["BOK"], "percent_off_bp": 1000}
    r = priced([GREENS, USE_BY_DAY, item], [label], now_ms=AT_2359)
    assert (r.subtotal_fen, r.total_fen) == (500, 350)
    assert (r.lines[0].markdown_rule, r.lines[0].markdown_fen, r.lines[0].rules) == ("MD-GREENS", 150, ["MD-GREENS"])
    assert [(a.rule_id, a.type, a.saving_fen) for a in r.applied] == [("MD-GREENS", "markdown", 150)]
    gone = priced([], [label], now_ms=AT_1859)  # the rule left the book since: the label's price stands
    assert gone.total_fen == 350 and [(a.rule_id, a.type) for a in gone.applied] == [("MD-GREENS", "markdown")]


def test_a_list_price_scale_label_is_marked_down_by_percent():
    r = priced([GREENS], [BasketLine(sku="BOK", amount_fen=500)])
    assert r.total_fen == 350


@pytest.mark.parametrize("change, words", [
    ({"from_time": "", "days_to_use_by": -1}, "needs a condition"),
    ({"from_time": "25:00"}, "from_time"),
    ({"percent_off_bp": 0}, "exactly one of percent_off_bp"),
    ({"price_fen": 500}, "exactly one of percent_off_bp"),
    ({"days_to_use_by": 99}, "days_to_use_by"),
    ({"group": "g"}, "never combine"),
    ({"daily": ["19:00-20:00"]}, "not both"),
    ({"budget_fen": 100}, "budget"),
    ({"skus": ["NOPE"]}, "unknown sku"),
    ({"percent_off_bp": 0, "price_fen": 1000}, "not below"),
    ({"percent_off_bp": 0, "price_fen": 100, "skus": [], "categories": ["vegetables"]}, "names its skus"),
])
def test_invalid_markdowns_are_refused_naming_the_rule(change, words):
    with pytest.raises(ProtocolError, match="MD-GREENS") as err:
        book(dict(GREENS, **change))
    assert words in str(err.value)


def test_a_label_line_must_carry_a_sane_was_price():
    with pytest.raises(ProtocolError, match="was_fen"):
        BasketLine(sku="BOK", amount_fen=500, was_fen=400, markdown_rule="MD-GREENS")


@settings(max_examples=200, deadline=None)
@given(grams=st.integers(1, 50_000), bp=st.integers(1, 10_000), minute=st.integers(0, 24 * 60 - 1),
       days=st.integers(-2, 5), level=st.sampled_from([None, "gold"]))
def test_a_markdown_never_raises_a_price_and_applies_exactly_when_its_conditions_hold(grams, bp, minute, days, level):
    rule = dict(GREENS, percent_off_bp=bp, days_to_use_by=1)
    use_by = days_to_use_by_inverse(days)
    now = DAY_UTC_MS + minute * 60_000
    plain = priced([], [BasketLine(sku="BOK", weight_g=grams, use_by=use_by)], now_ms=now, member_level=level)
    r = priced([rule], [BasketLine(sku="BOK", weight_g=grams, use_by=use_by)], now_ms=now, member_level=level)
    assert 0 <= r.total_fen <= plain.total_fen
    assert r.total_fen == sum(pl.amount_fen for pl in r.lines)
    holds = minute >= 19 * 60 and 0 <= days <= 1
    if not holds:
        assert r.total_fen == plain.total_fen and r.lines[0].markdown_rule == ""
    elif r.lines[0].markdown_rule:
        assert r.lines[0].markdown_fen == r.subtotal_fen - r.total_fen == sum(a.saving_fen for a in r.applied)


def days_to_use_by_inverse(days: int) -> str:
    import datetime
    return (datetime.date(2026, 1, 1) + datetime.timedelta(days=days)).isoformat()
