"""The cart's price before ordering (cloud/services/cart_preview.py), pure: the same pricing an order gets, savings
explained by rule and line, near misses, the delivery fee and its threshold, the delivering store, the slots."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cloud.mall.view import order_map, project
from cloud.services.cart_preview import CartRequest, checked_items, delivering_store, price_cart, slots
from cloud.services.order_request import Location, OrderItem
from cloud.services.verdicts import Refusal
from cloud.world import World
from protocol.errors import ProtocolError
from protocol.pricing import PricingContext

WORLD = World.load()
CN = timezone(timedelta(hours=8))
NOON = int(datetime(2026, 12, 1, 12, 0, tzinfo=CN).timestamp() * 1000)
SPEND = next(r for r in WORLD.rule_data["rules"] if r["type"] == "spend_threshold" and r.get("categories") == ["dairy"])
SPEND_GROUP = {r["id"] for r in WORLD.rule_data["rules"] if r.get("group") == SPEND["group"]}
PIECE = next(p for p in sorted(WORLD.catalogue.by_sku.values(), key=lambda p: p.sku)
             if p.category in SPEND["categories"] and "online" in p.channels and not p.weighed)


def ctx(store="S001", level=None) -> PricingContext:
    return PricingContext(channel="online", store_id=store, now_ms=NOON, member_level=level)


def test_a_cart_just_under_a_spend_tier_is_told_how_much_more_and_over_it_sees_the_saving():
    tier = SPEND["tiers"][0]
    qty = max(1, (tier["spend_fen"] - 1) // PIECE.price_fen)
    while qty * PIECE.price_fen >= tier["spend_fen"]:
        qty -= 1
    under = price_cart(WORLD, CartRequest(items=(OrderItem(sku=PIECE.sku, qty=qty),), store_id="S001"), "S001", ctx())
    near = under["almost"]  # the next tier of the spend group, or another rule the basket nearly reaches
    assert near and all(n["missing_fen"] > 0 and n["message"] and n["rule_id"] for n in near), near
    over_qty = tier["spend_fen"] // PIECE.price_fen + 1
    over = price_cart(WORLD, CartRequest(items=(OrderItem(sku=PIECE.sku, qty=over_qty),), store_id="S001"), "S001",
                      ctx())
    saving = [a for a in over["applied"] if a["rule_id"] in SPEND_GROUP]
    assert saving and saving[0]["saving_fen"] > 0 and PIECE.sku in saving[0]["skus"], over["applied"]
    assert over["total_fen"] == over["subtotal_fen"] - over["discount_fen"] and over["delivery"] is None


def test_delivery_adds_the_fee_under_the_threshold_and_says_how_much_more_is_free():
    store = WORLD.stores["S001"]
    cheap = next(p for p in sorted(WORLD.catalogue.by_sku.values(), key=lambda p: p.sku)
                 if not p.weighed and "online" in p.channels and p.price_fen < store.free_delivery_from_fen // 4)
    req = CartRequest(items=(OrderItem(sku=cheap.sku, qty=1),), fulfilment="delivery",
                      location=Location(lat=store.lat, lon=store.lon))
    body = price_cart(WORLD, req, "S001", ctx())
    assert body["delivery"]["fee_fen"] == store.delivery_fee_fen
    assert body["total_fen"] == body["goods_fen"] + store.delivery_fee_fen
    assert body["delivery"]["missing_for_free_fen"] == store.free_delivery_from_fen - body["goods_fen"]
    many = CartRequest(items=(OrderItem(sku=cheap.sku, qty=20),), fulfilment="delivery",
                       location=Location(lat=store.lat, lon=store.lon))
    free = price_cart(WORLD, many, "S001", ctx())
    assert free["delivery"]["fee_fen"] == 0 and free["total_fen"] == free["goods_fen"]


def test_weighed_goods_are_priced_by_their_grams():
    kg = next(p for p in WORLD.catalogue.by_sku.values() if p.weighed and "online" in p.channels
              and not p.member_prices)
    body = price_cart(WORLD, CartRequest(items=(OrderItem(sku=kg.sku, qty=500),), store_id="S001"), "S001", ctx())
    (line,) = body["lines"]
    assert line["weighed"] and line["qty"] == 500 and line["list_fen"] == round(kg.price_fen / 2)


def test_the_delivering_store_reaches_the_address_or_the_cart_is_refused():
    s2 = WORLD.stores["S002"]
    req = CartRequest(items=(OrderItem(sku=PIECE.sku, qty=1),), fulfilment="delivery",
                      location=Location(lat=s2.lat, lon=s2.lon))
    assert delivering_store(WORLD, req) == "S002"
    far = CartRequest(items=(OrderItem(sku=PIECE.sku, qty=1),), fulfilment="delivery",
                      location=Location(lat=45.0, lon=90.0))
    with pytest.raises(Refusal) as refused:
        delivering_store(WORLD, far)
    assert refused.value.kind == "no_store" and "delivery radius" in refused.value.detail
    with pytest.raises(Refusal):
        delivering_store(WORLD, CartRequest(items=(OrderItem(sku=PIECE.sku, qty=1),), store_id="S999"))


def test_bad_carts_name_what_is_wrong():
    with pytest.raises(ProtocolError):
        CartRequest(items=(), store_id="S001")
    with pytest.raises(ProtocolError):
        CartRequest(items=(OrderItem(sku=PIECE.sku, qty=1),), fulfilment="delivery")
    with pytest.raises(Refusal) as unknown:
        checked_items(WORLD.catalogue, (OrderItem(sku="NOPE", qty=1),))
    assert "unknown sku 'NOPE'" in unknown.value.detail


def test_slots_start_after_the_cut_off_within_opening_hours():
    store = WORLD.stores["S001"]
    got = slots(store, "pickup", NOON)
    assert got and all(s["start_ms"] >= NOON + store.slot_cutoff_min * 60_000 for s in got)
    assert got[0]["start"].startswith("2026-12-01T13:00")
    late = slots(store, "delivery", int(datetime(2026, 12, 1, 21, 30, tzinfo=CN).timestamp() * 1000))
    assert late[0]["start"].startswith("2026-12-02T07:00")  # closed for today: tomorrow's first


def test_the_map_keeps_the_store_and_the_destination_inside_its_frame():
    store = WORLD.stores["S001"]
    m = order_map(store, {"lat": store.lat + 0.01, "lon": store.lon - 0.01})
    for point in (m["store"], m["home"]):
        assert 0 < point["x"] < m["w"] and 0 < point["y"] < m["h"]
    assert m["home"]["y"] < m["store"]["y"] and m["home"]["x"] < m["store"]["x"]  # north is up, west is left
    assert project(m["bounds"], 89.0, 179.0) == {"x": m["w"], "y": 0}  # far away: clamped to the edge
