"""The promotion evaluator, rule type by rule type, with amounts computed by hand in the comments."""
from __future__ import annotations

import pytest

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
)

# 2026-01-01 09:00 in UTC+8 is 01:00 UTC.
NINE_AM = 1_767_229_200_000
TEN_AM = NINE_AM + 3_600_000

CATALOGUE = Catalogue([
    Product(sku="APPLE", name="Fuji apple", category="fruit", unit="kg", price_fen=1299,
            member_prices=(LevelPrice(level="gold", price_fen=1199),), plu="00101"),
    Product(sku="BANANA", name="Banana", category="fruit", unit="kg", price_fen=599, plu="00102"),
    Product(sku="MILK", name="Milk 1L", category="dairy", unit="piece", price_fen=1250, gtin="6901234567892"),
    Product(sku="EGGS", name="Eggs x10", category="eggs", unit="piece", price_fen=1590),
    Product(sku="BEEF", name="Beef", category="meat", unit="kg", price_fen=8800),
    Product(sku="BREAD", name="Bread", category="bakery", unit="piece", price_fen=800, channels=("offline",)),
])


def book(*rules, version=1):
    return load_rule_book({"version": version, "rules": list(rules)}, CATALOGUE)


def ctx(channel="offline", **kw):
    return PricingContext(channel=channel, store_id=kw.pop("store_id", "S001"), now_ms=kw.pop("now_ms", NINE_AM), **kw)


def price(rules, lines, **kw):
    return price_basket(CATALOGUE, rules if not isinstance(rules, list) else book(*rules), lines, ctx(**kw))


def savings(result):
    return {a.rule_id: a.saving_fen for a in result.applied}


def test_weighed_line_is_rounded_once_half_up():
    r = price([], [BasketLine(sku="APPLE", weight_g=500)])  # 500 g x 12.99/kg = 649.5 fen -> 650
    assert (r.subtotal_fen, r.total_fen, r.applied) == (650, 650, [])


def test_member_level_price():
    r = price([], [BasketLine(sku="APPLE", weight_g=500)], member_level="gold")  # 0.5 x 1199 = 599.5 -> 600
    assert (r.subtotal_fen, r.total_fen, r.lines[0].unit_price_fen) == (650, 600, 1199)
    assert [(a.rule_id, a.saving_fen) for a in r.applied] == [("member-price:gold", 50)]


def test_embedded_price_barcode_line_uses_the_printed_amount():
    r = price([], [BasketLine(sku="BEEF", amount_fen=3456)])
    assert r.total_fen == 3456


def test_category_percent_discount():
    rules = [{"type": "item_discount", "id": "fruit10", "name": "Fruit 10% off", "categories": ["fruit"],
              "percent_off_bp": 1000}]
    # apple 650 -> 65 off -> 585; banana 1000 g x 5.99 = 599 -> 59.9 -> 60 off -> 539; milk untouched 1250
    r = price(rules, [BasketLine(sku="APPLE", weight_g=500), BasketLine(sku="BANANA", weight_g=1000),
                      BasketLine(sku="MILK", qty=1)])
    assert [line.amount_fen for line in r.lines] == [585, 539, 1250]
    assert savings(r) == {"fruit10": 125} and r.total_fen == 2374


def test_item_amount_off_per_piece_never_below_zero():
    rules = [{"type": "item_discount", "id": "milk2", "name": "2 off milk", "skus": ["MILK"], "amount_off_fen": 200},
             {"type": "item_discount", "id": "milkbig", "name": "silly", "skus": ["MILK"], "amount_off_fen": 5000}]
    # equal priority -> id order: milk2 takes 2 x 200 (2500 -> 2100), then milkbig takes the rest, not more
    r = price(rules, [BasketLine(sku="MILK", qty=2)])
    assert r.total_fen == 0 and savings(r) == {"milk2": 400, "milkbig": 2100}


def test_time_window_discount_online_8_to_10():
    rules = [{"type": "item_discount", "id": "morning", "name": "8-10 online 10% off", "channels": ["online"],
              "daily": ["08:00-10:00"], "percent_off_bp": 1000}]
    line = [BasketLine(sku="MILK", qty=2)]  # 2500
    assert price(rules, line, channel="online").total_fen == 2250
    assert price(rules, line, channel="offline").total_fen == 2500
    assert price(rules, line, channel="online", now_ms=TEN_AM).total_fen == 2500  # window is [08:00, 10:00)


def test_spend_threshold_tiers_and_near_miss():
    rules = [{"type": "spend_threshold", "id": "spend40", "name": "Spend 40 get 8 off",
              "tiers": [{"spend_fen": 4000, "off_fen": 800}, {"spend_fen": 8000, "off_fen": 2000}]}]
    r = price(rules, [BasketLine(sku="MILK", qty=3), BasketLine(sku="BEEF", amount_fen=430)])  # 3750 + 430 = 4180
    assert r.total_fen == 3380 and savings(r) == {"spend40": 800}
    assert r.near_misses == []  # 8000 is 3820 away: more than a quarter of it
    r = price(rules, [BasketLine(sku="MILK", qty=2), BasketLine(sku="BEEF", amount_fen=1180)])  # 3680
    assert r.total_fen == 3680
    assert [n.message for n in r.near_misses] == ["spend 3.20 more for 8.00 off (Spend 40 get 8 off)"]
    assert r.near_misses[0].missing_fen == 320


def test_spend_threshold_repeat_every_full_40():
    rules = [{"type": "spend_threshold", "id": "every40", "name": "Every 40 get 8 off", "repeat": True,
              "max_repeats": 3, "tiers": [{"spend_fen": 4000, "off_fen": 800}]}]
    assert savings(price(rules, [BasketLine(sku="BEEF", amount_fen=9000)])) == {"every40": 1600}
    assert savings(price(rules, [BasketLine(sku="BEEF", amount_fen=50000)])) == {"every40": 2400}  # capped at 3


def test_basket_discount_is_spread_over_eligible_lines_and_adds_up():
    rules = [{"type": "spend_threshold", "id": "fruit30", "name": "Fruit: spend 30 get 5 off", "categories": ["fruit"],
              "tiers": [{"spend_fen": 3000, "off_fen": 500}]}]
    # apple 2000 g = 2598, banana 1000 g = 599 -> eligible 3197; milk 1250 not eligible
    r = price(rules, [BasketLine(sku="APPLE", weight_g=2000), BasketLine(sku="BANANA", weight_g=1000),
                      BasketLine(sku="MILK", qty=1)])
    # 500 x 2598/3197 = 406.3 -> 406, 500 x 599/3197 = 93.7 -> 93 + 1 (largest remainder) = 94
    assert [line.amount_fen for line in r.lines] == [2192, 505, 1250]
    assert r.total_fen == sum(line.amount_fen for line in r.lines) == 3947


def test_gift_at_threshold_and_near_miss():
    rules = [{"type": "gift", "id": "eggs60", "name": "Spend 60 get eggs", "spend_fen": 6000, "gift_sku": "EGGS"}]
    r = price(rules, [BasketLine(sku="BEEF", amount_fen=6200)])
    assert [(g.sku, g.qty, g.value_fen) for g in r.gifts] == [("EGGS", 1, 1590)] and r.total_fen == 6200
    r = price(rules, [BasketLine(sku="BEEF", amount_fen=5000)])
    assert r.gifts == [] and r.near_misses[0].message == "spend 10.00 more for a free Eggs x10 (Spend 60 get eggs)"


def test_coupons_held_new_member_and_category():
    rules = [{"type": "coupon", "id": "NEW10", "name": "New member 10 off over 30", "min_spend_fen": 3000,
              "amount_off_fen": 1000, "new_member_only": True},
             {"type": "coupon", "id": "FRUIT20", "name": "20% off fruit", "categories": ["fruit"], "percent_off_bp": 2000}]
    lines = [BasketLine(sku="BEEF", amount_fen=2500), BasketLine(sku="APPLE", weight_g=1000)]  # 2500 + 1299
    r = price(rules, lines, coupons=("NEW10", "FRUIT20"), new_member=True)
    # priority tie -> id order: FRUIT20 first: 20% of 1299 = 259.8 -> 260; then NEW10 on 3539 >= 3000: 1000 off
    assert savings(r) == {"FRUIT20": 260, "NEW10": 1000} and r.total_fen == 2539
    assert r.coupons_used == ["FRUIT20", "NEW10"]
    r = price(rules, lines, coupons=("NEW10",), new_member=False)
    assert r.applied == [] and r.coupons_used == []
    assert price(rules, lines).applied == []  # coupons the member does not hold never apply


def test_group_buy_price_when_the_group_formed():
    rules = [{"type": "group_buy", "id": "beefgroup", "name": "Beef for 3", "skus": ["BEEF"], "group_price_fen": 6800,
              "group_size": 3}]
    line = [BasketLine(sku="BEEF", weight_g=500)]  # 4400 at list, 3400 at group price
    assert price(rules, line).total_fen == 4400
    r = price(rules, line, formed_groups=("beefgroup",))
    assert r.total_fen == 3400 and savings(r) == {"beefgroup": 1000}


def test_member_discount_only_for_its_levels():
    rules = [{"type": "member_discount", "id": "gold5", "name": "Gold 5%", "member_levels": ["gold"], "percent_off_bp": 500}]
    line = [BasketLine(sku="MILK", qty=2)]
    assert price(rules, line, member_level="gold").total_fen == 2375
    assert price(rules, line, member_level="silver").total_fen == 2500
    assert price(rules, line).total_fen == 2500


def test_exclusive_group_takes_the_best_for_the_customer_per_line():
    rules = [{"type": "item_discount", "id": "a15", "name": "15% off", "group": "milk", "skus": ["MILK"],
              "percent_off_bp": 1500},
             {"type": "item_discount", "id": "b3", "name": "3 off each", "group": "milk", "skus": ["MILK"],
              "amount_off_fen": 300}]
    # one milk: 15% = 187.5 -> 188 beats 300? no: 300 > 188 -> b3;  for 1 piece 1250 -> 950
    assert savings(price(rules, [BasketLine(sku="MILK", qty=1)])) == {"b3": 300}
    rules[1]["amount_off_fen"] = 100  # 100 < 188 -> a15
    assert savings(price(rules, [BasketLine(sku="MILK", qty=1)])) == {"a15": 188}


def test_ungrouped_rules_stack_in_priority_order():
    rules = [{"type": "item_discount", "id": "z5", "name": "5%", "priority": 1, "percent_off_bp": 500},
             {"type": "item_discount", "id": "a100", "name": "1 off", "priority": 5, "skus": ["MILK"],
              "amount_off_fen": 100}]
    # a100 first (higher priority): 1250 -> 1150; then 5% of 1150 = 57.5 -> 58 -> 1092
    r = price(rules, [BasketLine(sku="MILK", qty=1)])
    assert r.total_fen == 1092 and r.lines[0].rules == ["a100", "z5"]


def test_budget_cap_limits_the_saving():
    rules = [{"type": "item_discount", "id": "capped", "name": "capped", "percent_off_bp": 5000, "budget_fen": 100000}]
    r = price(rules, [BasketLine(sku="MILK", qty=2)], budgets_left=(BudgetLeft(rule_id="capped", fen=300),))
    assert savings(r) == {"capped": 300} and r.total_fen == 2200


def test_store_and_channel_scopes():
    rules = [{"type": "item_discount", "id": "s2", "name": "S002 only", "stores": ["S002"], "percent_off_bp": 1000}]
    line = [BasketLine(sku="MILK", qty=1)]
    assert price(rules, line, store_id="S001").total_fen == 1250
    assert price(rules, line, store_id="S002").total_fen == 1125
    with pytest.raises(ProtocolError, match="Bread\\) is not sold online"):
        price([], [BasketLine(sku="BREAD", qty=1)], channel="online")


def test_validity_period_in_whole_minutes():
    rules = [{"type": "item_discount", "id": "later", "name": "later", "starts_ms": TEN_AM, "percent_off_bp": 1000}]
    line = [BasketLine(sku="MILK", qty=1)]
    assert price(rules, line).total_fen == 1250 and price(rules, line, now_ms=TEN_AM).total_fen == 1125


def test_result_is_deterministic_and_names_the_book_version():
    rules = book({"type": "item_discount", "id": "x", "name": "x", "percent_off_bp": 1000}, version=7)
    lines = [BasketLine(sku="MILK", qty=3), BasketLine(sku="APPLE", weight_g=777)]
    assert price(rules, lines) == price(rules, lines) and price(rules, lines).rule_book_version == 7


def test_wrong_quantity_kind_is_refused():
    with pytest.raises(ProtocolError, match="sold by the kg"):
        price([], [BasketLine(sku="APPLE", qty=2)])
    with pytest.raises(ProtocolError, match="unknown product 'NOPE'"):
        price([], [BasketLine(sku="NOPE", qty=1)])


@pytest.mark.parametrize("rule, words", [
    ({"type": "item_discount", "id": "neg", "name": "n", "amount_off_fen": -5}, "rule 'neg': give exactly one of"),
    ({"type": "item_discount", "id": "big", "name": "n", "percent_off_bp": 12000},
     "rule 'big': percent_off_bp must be 0..10000"),
    ({"type": "item_discount", "id": "typo", "name": "n", "percent_off_bp": 100, "percnt": 1},
     "rule 'typo': unknown field(s) ['percnt']"),
    ({"type": "coupon", "id": "c1", "name": "n", "categories": ["toys"], "amount_off_fen": 100},
     "rule 'c1': unknown category 'toys'"),
    ({"type": "gift", "id": "g1", "name": "n", "spend_fen": 100, "gift_sku": "CAVIAR"}, "rule 'g1': unknown sku 'CAVIAR'"),
    ({"type": "bogus", "id": "b1", "name": "n"}, "rule 'b1': unknown type 'bogus'"),
    ({"type": "spend_threshold", "id": "t1", "name": "n", "tiers": [{"spend_fen": 100, "off_fen": 200}]},
     "below its spend_fen"),
    ({"type": "item_discount", "id": "w1", "name": "n", "categories": ["fruit"], "amount_off_fen": 100},
     "includes weighed items"),
    ({"type": "item_discount", "id": "d1", "name": "n", "daily": ["10:00-08:00"], "percent_off_bp": 1}, "daily window"),
    ({"type": "item_discount", "id": "m1", "name": "n", "starts_ms": 1, "percent_off_bp": 1}, "whole minutes"),
])
def test_bad_rules_are_refused_naming_the_rule(rule, words):
    with pytest.raises(ProtocolError) as err:
        book(rule)
    assert words in str(err.value)


def test_overlapping_exclusives_and_duplicate_ids_are_refused():
    line_rule = {"type": "item_discount", "id": "l1", "name": "l", "group": "G", "percent_off_bp": 100}
    basket_rule = {"type": "coupon", "id": "c1", "name": "c", "group": "G", "amount_off_fen": 100}
    with pytest.raises(ProtocolError, match="exclusive group 'G' overlaps stages: 'l1' is a line rule, 'c1' a basket rule"):
        book(line_rule, basket_rule)
    with pytest.raises(ProtocolError, match="rule 'l1': id used twice"):
        book(line_rule, dict(line_rule))
    with pytest.raises(ProtocolError, match="'version' must be a positive integer"):
        load_rule_book({"rules": []}, CATALOGUE)
