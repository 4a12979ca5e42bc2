"""The promotion book's preview (protocol/pricing/preview.py): the evaluator's prices, and one verdict per rule
saying what it did or why it gave nothing. Amounts by hand in the comments."""
from __future__ import annotations

import pytest

from protocol import ProtocolError
from protocol.pricing import BasketLine, BudgetLeft, Catalogue, LevelPrice, PricingContext, Product, price_basket
from protocol.pricing.preview import draft_book, explain, schedule_status
from protocol.pricing.rules import load_rule_book

NINE_AM = 1_767_229_200_000  # 2026-01-01 09:00 in UTC+8
HOUR = 3_600_000
CATALOGUE = Catalogue([
    Product(sku="APPLE", name="Fuji apple", category="fruit", unit="kg", price_fen=1299,
            member_prices=(LevelPrice(level="gold", price_fen=1199),)),
    Product(sku="MILK", name="Milk 1L", category="dairy", unit="piece", price_fen=1250),
    Product(sku="EGGS", name="Eggs x10", category="eggs", unit="piece", price_fen=1590),
    Product(sku="BREAD", name="Bread", category="bakery", unit="piece", price_fen=800, channels=("offline",)),
])
MILK_OFF = {"type": "item_discount", "id": "milk-off", "name": "Milk 2 off", "skus": ["MILK"], "amount_off_fen": 200}


def book(*rules):
    return load_rule_book({"version": 3, "rules": list(rules)}, CATALOGUE)


def ctx(**kw):
    return PricingContext(channel=kw.pop("channel", "offline"), store_id=kw.pop("store_id", "S001"),
                          now_ms=kw.pop("now_ms", NINE_AM), **kw)


def verdicts(answer):
    return {v["rule_id"]: (v["effect"], v["saving_fen"]) for v in answer["rules"]}


def test_prices_are_the_evaluators_and_applied_rules_carry_their_saving():
    b = book(MILK_OFF)
    lines = [BasketLine(sku="MILK", qty=2), BasketLine(sku="APPLE", weight_g=500)]
    answer = explain(CATALOGUE, b, lines, ctx())
    priced = price_basket(CATALOGUE, b, lines, ctx())
    assert answer["total_fen"] == priced.total_fen == 2 * 1050 + 650
    assert [(line["sku"], line["amount_fen"], line["rules"]) for line in answer["lines"]] == [
        ("MILK", 2100, ["milk-off"]), ("APPLE", 650, [])]
    assert verdicts(answer) == {"milk-off": ("applied", 400)}


def test_every_rule_not_in_force_says_which_test_it_failed():
    rules = [
        {**MILK_OFF, "id": "later", "starts_ms": NINE_AM + HOUR},
        {**MILK_OFF, "id": "over", "ends_ms": NINE_AM},
        {**MILK_OFF, "id": "online-only", "channels": ["online"]},
        {**MILK_OFF, "id": "other-store", "stores": ["S002"]},
        {**MILK_OFF, "id": "evenings", "daily": ["18:00-21:00"]},
        {**MILK_OFF, "id": "gold-only", "member_levels": ["gold"]},
    ]
    answer = explain(CATALOGUE, book(*rules), [BasketLine(sku="MILK", qty=1)], ctx())
    assert {v["rule_id"]: v["effect"] for v in answer["rules"]} == {
        "later": "scheduled", "over": "ended", "online-only": "channel", "other-store": "store",
        "evenings": "out_of_window", "gold-only": "member_level"}
    assert answer["total_fen"] == 1250
    statuses = {v["rule_id"]: v["status"] for v in answer["rules"]}
    assert (statuses["later"], statuses["over"], statuses["online-only"]) == ("scheduled", "ended", "live")


def test_a_gold_member_at_the_gold_hour_gets_the_gold_rule():
    rule = {**MILK_OFF, "id": "gold-only", "member_levels": ["gold"], "daily": ["08:00-10:00"]}
    answer = explain(CATALOGUE, book(rule), [BasketLine(sku="MILK", qty=1)], ctx(member_level="gold"))
    assert verdicts(answer) == {"gold-only": ("applied", 200)}


def test_near_miss_threshold_budget_and_scope_are_told_apart():
    rules = [
        {"type": "spend_threshold", "id": "near", "name": "40 get 8", "tiers": [{"spend_fen": 4000, "off_fen": 800}]},
        {"type": "spend_threshold", "id": "far", "name": "200 get 50", "tiers": [{"spend_fen": 20000, "off_fen": 5000}]},
        {"type": "item_discount", "id": "eggs-off", "name": "Eggs 10%", "skus": ["EGGS"], "percent_off_bp": 1000},
        {**MILK_OFF, "id": "capped", "budget_fen": 10_000},
    ]
    lines = [BasketLine(sku="MILK", qty=3)]  # 3 x 12.50 = 37.50, 2.50 short of 40: within a quarter
    answer = explain(CATALOGUE, book(*rules), lines, ctx(budgets_left=(BudgetLeft(rule_id="capped", fen=0),)))
    effects = {v["rule_id"]: v["effect"] for v in answer["rules"]}
    assert effects == {"near": "near_miss", "far": "below_threshold", "eggs-off": "not_in_basket", "capped": "budget"}
    assert {v["rule_id"] for v in answer["rules"] if not v["in_scope"]} == {"eggs-off"}
    assert "2.50" in next(v["why"] for v in answer["rules"] if v["rule_id"] == "near")


def test_an_exclusive_rule_that_lost_names_the_winner():
    rules = [{**MILK_OFF, "id": "small", "group": "milk", "amount_off_fen": 100},
             {**MILK_OFF, "id": "big", "group": "milk", "amount_off_fen": 300}]
    answer = explain(CATALOGUE, book(*rules), [BasketLine(sku="MILK", qty=1)], ctx())
    assert verdicts(answer) == {"big": ("applied", 300), "small": ("exclusive", 0)}
    assert "big" in next(v["why"] for v in answer["rules"] if v["rule_id"] == "small")


def test_coupons_group_buys_and_markdowns_say_why_not():
    rules = [
        {"type": "coupon", "id": "cpn", "name": "5 off", "amount_off_fen": 500},
        {"type": "group_buy", "id": "grp", "name": "Milk x3 group", "skus": ["MILK"], "group_price_fen": 900},
        {"type": "markdown", "id": "near-expiry", "name": "Use-by today", "skus": ["MILK"], "days_to_use_by": 0,
         "percent_off_bp": 5000},
    ]
    answer = explain(CATALOGUE, book(*rules), [BasketLine(sku="MILK", qty=1, use_by="2026-01-05")], ctx())
    assert {v["rule_id"]: v["effect"] for v in answer["rules"]} == {
        "cpn": "coupon_not_held", "grp": "group_not_formed", "near-expiry": "use_by"}
    held = explain(CATALOGUE, book(*rules), [BasketLine(sku="MILK", qty=1, use_by="2026-01-01")],
                   ctx(coupons=("cpn",), formed_groups=("grp",)))
    # the markdown (6.25) beats the group price (9.00); the coupon then takes 5.00 of the 6.25 left
    assert verdicts(held) == {"near-expiry": ("applied", 625), "cpn": ("applied", 500), "grp": ("marked_down", 0)}


def test_a_product_not_sold_in_the_channel_is_refused_by_name():
    with pytest.raises(ProtocolError, match="BREAD"):
        explain(CATALOGUE, book(), [BasketLine(sku="BREAD", qty=1)], ctx(channel="online"))


def test_an_empty_basket_is_refused():
    with pytest.raises(ProtocolError, match="lines"):
        explain(CATALOGUE, book(), [], ctx())


def test_a_draft_with_an_invalid_rule_is_refused_naming_the_rule_and_field():
    draft = {"rules": [MILK_OFF, {**MILK_OFF, "id": "broken", "amount_off_fen": 0}]}
    with pytest.raises(ProtocolError, match=r"rule 'broken'.*amount_off_fen"):
        draft_book(draft, CATALOGUE, version=4)
    with pytest.raises(ProtocolError, match=r"rule 'ghost': unknown sku 'NOPE'"):
        draft_book({"rules": [{**MILK_OFF, "id": "ghost", "skus": ["NOPE"]}]}, CATALOGUE, version=4)


def test_a_draft_without_a_version_gets_the_one_publishing_makes_it():
    rule_book, data = draft_book({"rules": [MILK_OFF]}, CATALOGUE, version=4)
    assert (rule_book.version, data["version"]) == (4, 4)
    answer = explain(CATALOGUE, rule_book, [BasketLine(sku="MILK", qty=1)], ctx())
    assert answer["rule_book_version"] == 4


def test_schedule_status_at_the_edges():
    rule = book({**MILK_OFF, "starts_ms": NINE_AM, "ends_ms": NINE_AM + HOUR}).rules[0]
    assert [schedule_status(rule, t) for t in (NINE_AM - 1, NINE_AM, NINE_AM + HOUR - 1, NINE_AM + HOUR)] == [
        "scheduled", "live", "live", "ended"]


def test_every_effect_the_preview_can_say_is_one_of_its_named_effects():
    import re
    from pathlib import Path

    from protocol.pricing import preview
    source = Path(preview.__file__).read_text(encoding="utf-8")
    said = set(re.findall(r'return "([a-z_]+)", ', source)) | {"applied", "scheduled", "ended"}
    assert said <= set(preview.EFFECTS)


def test_the_promotions_pages_have_words_for_every_type_field_status_and_effect():
    from cloud.office import i18n
    from cloud.office.promotions import RULE_FORMS
    from protocol.pricing.preview import EFFECTS
    keys = {f"promotions.type.{t}" for t in RULE_FORMS} | {f"promotions.f.{f}" for fs in RULE_FORMS.values()
                                                            for f, _ in fs}
    keys |= {f"promotions.effect.{e}" for e in EFFECTS} | {f"promotions.status.{s}" for s in
                                                           ("live", "scheduled", "ended")}
    keys |= {"promotions.channel.offline", "promotions.channel.online"}
    for lang in i18n.LANGS:
        assert not sorted(keys - set(i18n.words(lang))), lang


def test_a_preview_basket_line_that_cannot_be_priced_is_refused_alone():
    from cloud.services.rule_book_drafts import preview_lines
    from cloud.services.verdicts import Refusal
    items = [{"sku": "MILK", "qty": 2}, {"sku": "NOPE", "qty": 1}, {"sku": "APPLE", "qty": 500},
             {"sku": "BREAD", "qty": 1}, {"sku": "MILK", "weight_g": 100}, "junk", {"sku": "EGGS", "qty": "2"},
             {"sku": ["MILK"], "qty": 1}]  # a hostile sku (a list): refused alone, never a 500
    lines, refused = preview_lines(CATALOGUE, items, "online")
    assert [(line.sku, line.qty, line.weight_g) for line in lines] == [("MILK", 2, 0), ("APPLE", 0, 500)]
    assert [r["index"] for r in refused] == [1, 3, 4, 5, 6, 7]
    assert refused[-1]["sku"] is None and "its sku a text" in refused[-1]["reason"]
    assert "NOPE" in refused[0]["reason"] and "not sold online" in refused[1]["reason"]
    assert "by the piece" in refused[2]["reason"]
    with pytest.raises(Refusal, match="no line could be priced"):
        preview_lines(CATALOGUE, [{"sku": "NOPE", "qty": 1}], "offline")
    with pytest.raises(Refusal, match="lines"):
        preview_lines(CATALOGUE, [], "offline")


def test_the_rules_list_shows_each_rules_window_status_and_budget_used():
    from cloud.services.rule_book_drafts import rules_view
    b = book({**MILK_OFF, "starts_ms": NINE_AM + HOUR, "budget_fen": 5000, "daily": ["08:00-10:00"]},
             {**MILK_OFF, "id": "old", "ends_ms": NINE_AM})
    shown = {r["rule_id"]: r for r in rules_view(b, NINE_AM, {"milk-off": {"used": 1200}})}
    assert (shown["milk-off"]["status"], shown["old"]["status"]) == ("scheduled", "ended")
    assert (shown["milk-off"]["budget_used_fen"], shown["milk-off"]["budget_fen"]) == (1200, 5000)
    assert shown["milk-off"]["starts_at"] == "2026-01-01T02:00:00.000Z" and shown["milk-off"]["daily"] == ["08:00-10:00"]
