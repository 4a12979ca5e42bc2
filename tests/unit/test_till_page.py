"""The till page's pure parts: formats, the near-miss text in both languages, line edits that name the line they
mean, the scale and connection views, the produce keys and the receipt QR."""
from __future__ import annotations

import pytest

from edge.core.cart import Cart, CartLine
from edge.core.outcome import Refused
from edge.devices.events import ScaleStatus, Weight
from edge.till import i18n, lines
from edge.till.view import produce_keys, qr_svg, scale_view, status_view
from protocol.messages import Quantity
from protocol.pricing import BasketLine
from protocol.pricing.catalogue import Product


def test_amounts_in_yuan_with_two_decimals_and_weights_in_kg_with_three():
    assert [i18n.yuan(f) for f in (0, 5, 2350, -5)] == ["0.00", "0.05", "23.50", "-0.05"]
    assert [i18n.kg(g) for g in (0, 5, 1234, 12000, -5)] == ["0.000", "0.005", "1.234", "12.000", "-0.005"]


def test_a_near_miss_reads_in_chinese_by_default_and_in_english():
    text = "spend 3.20 more for 8.00 off (Spend 40)"
    assert i18n.near_miss(text, "zh") == "再买 3.20 元减 8.00（Spend 40）"
    assert i18n.near_miss(text, "en") == "spend 3.20 more for 8.00 off (Spend 40)"
    assert i18n.near_miss("spend 1.00 more for a gift (Gift)", "zh") == "再买 1.00 元a gift（Gift）"
    assert i18n.near_miss("something else", "zh") == "something else"  # never dropped
    assert i18n.lang_of(None) == "zh" and i18n.lang_of("fr") == "zh" and i18n.lang_of("en") == "en"


def cart() -> Cart:
    return Cart(lines=[CartLine(BasketLine(sku="A", qty=2), Quantity.pieces(2)),
                       CartLine(BasketLine(sku="V", weight_g=800), Quantity.grams(800))])


def test_a_packed_line_changes_quantity_and_zero_deletes_it():
    c = cart()
    lines.set_qty(c, 0, "A", 5)
    assert (c.lines[0].basket.qty, c.lines[0].quantity) == (5, Quantity.pieces(5))
    lines.set_qty(c, 0, "A", 0)
    assert [line.sku for line in c.lines] == ["V"]


def test_a_weighed_line_keeps_its_weight_and_an_edit_of_a_line_that_moved_is_refused():
    c = cart()
    with pytest.raises(Refused) as weighed:
        lines.set_qty(c, 1, "V", 3)
    assert weighed.value.status == 422 and "what the scale said" in str(weighed.value)
    with pytest.raises(Refused) as moved:
        lines.delete(c, 1, "A")  # the page saw A at line 2; the cart changed since
    assert moved.value.status == 409 and "the cart changed" in str(moved.value)
    with pytest.raises(Refused):
        lines.delete(c, 7, "A")
    assert [line.sku for line in c.lines] == ["A", "V"]
    lines.delete(c, 1, "V")
    assert [line.sku for line in c.lines] == ["A"]


def test_the_scale_view_shows_weight_stability_tare_and_overload():
    assert scale_view("absent", None, 15000) == {"present": False}
    view = scale_view("ok", Weight(grams=1234, stable=True, net=True), 15000)
    assert (view["kg"], view["stable"], view["tare"], view["overload"]) == ("1.234", True, True, False)
    assert scale_view("ok", Weight(grams=500, stable=False), 15000)["stable"] is False
    assert scale_view("ok", Weight(grams=16000, stable=True), 15000)["overload"] is True
    over = scale_view("ok", ScaleStatus(over_capacity=True), 15000)
    assert over["overload"] is True and over["kg"] is None
    assert scale_view("down", None, 15000)["connected"] is False


def test_the_banner_says_how_long_the_oldest_unsynced_sale_has_waited():
    assert status_view(True, 0, None, 10_000) == {"online": True, "outbox_depth": 0, "oldest_age_s": None}
    assert status_view(False, 4, 1_000, 62_500) == {"online": False, "outbox_depth": 4, "oldest_age_s": 61}


def test_produce_keys_are_the_weighed_products_with_a_plu_by_category():
    products = [Product(sku="VEG-B", name="B", category="veg", unit="kg", price_fen=300, plu="00102"),
                Product(sku="VEG-A", name="A", category="veg", unit="kg", price_fen=300, plu="00101"),
                Product(sku="FRU-A", name="F", category="fruit", unit="kg", price_fen=300, plu="00201"),
                Product(sku="EGG-A", name="E", category="eggs", unit="piece", price_fen=300, gtin="6901234567892"),
                Product(sku="VEG-N", name="N", category="veg", unit="kg", price_fen=300)]
    keys = produce_keys(products)
    assert list(keys) == ["fruit", "veg"]
    assert [k["sku"] for k in keys["veg"]] == ["VEG-A", "VEG-B"]


def test_the_receipt_qr_is_an_inline_svg_element():
    svg = qr_svg("SALE:01ABC")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>") and "<?xml" not in svg
