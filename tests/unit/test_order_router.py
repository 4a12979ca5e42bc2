"""OrderRouter without Ray: the grid finds exactly the stores a full scan finds; single/split/missing plans."""
from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from actors.order_router import OrderRouter, distance_m

NINE_AM_LOCAL = 1_767_229_200_000  # 2026-01-01 09:00 UTC+8


def router_with(stores):
    r = OrderRouter()
    for i, (sid, lat, lon) in enumerate(stores):
        assert r.apply({"op": "upsert_store", "id": f"u{i}", "store": sid, "lat": lat, "lon": lon,
                        "pickup_radius_m": 10_000, "delivery_radius_m": 3_000, "slot_capacity": 2}, 0)["status"] == "ok"
    return r


CITY = [(f"S{i:04d}", 31.2 + random.Random(i).uniform(-0.3, 0.3), 121.45 + random.Random(-i).uniform(-0.3, 0.3))
        for i in range(400)]
ROUTER = router_with(CITY)


@settings(max_examples=200, deadline=None)
@given(st.floats(30.8, 31.6), st.floats(121.0, 121.9))
def test_grid_finds_the_same_stores_as_a_full_scan(lat, lon):
    found = ROUTER.nearby(lat, lon, "delivery", NINE_AM_LOCAL)
    brute = sorted(((sid, distance_m(lat, lon, a, b)) for sid, a, b in CITY if distance_m(lat, lon, a, b) <= 3_000),
                   key=lambda x: (x[1], x[0]))
    assert found == brute


def test_plan_prefers_the_nearest_single_store_then_fewest_split_then_missing():
    r = ROUTER
    items = {"A": 2, "B": 1}
    avail = {"S1": {"A": 2}, "S2": {"A": 2, "B": 1}, "S3": {"B": 5}}
    assert r.plan(items, ["S1", "S2", "S3"], avail) == {"kind": "single", "allocation": {"S2": {"A": 2, "B": 1}}}
    avail = {"S1": {"A": 1}, "S2": {"A": 2}, "S3": {"B": 5}}
    assert r.plan(items, ["S1", "S2", "S3"], avail) == {"kind": "split", "allocation": {"S2": {"A": 2}, "S3": {"B": 1}}}
    avail = {"S1": {"A": 1}}
    assert r.plan(items, ["S1"], avail) == {"kind": "missing", "missing": {"A": 1, "B": 1}, "allocation": {"S1": {"A": 1}}}


def test_slots_capacity_and_opening_hours():
    r = router_with([("S1", 31.2, 121.4)])
    book = lambda cid, order, slot=NINE_AM_LOCAL: r.apply(  # noqa: E731
        {"op": "book_slot", "id": cid, "store": "S1", "slot_start_ms": slot, "order_id": order}, 0)
    assert book("b1", "O1")["status"] == "ok" and book("b2", "O2")["status"] == "ok"
    assert book("b3", "O3")["reason"] == "the slot is full"
    assert r.nearby(31.2, 121.4, "delivery", NINE_AM_LOCAL) == []  # full slots are not offered
    assert book("b4", "O4", slot=NINE_AM_LOCAL - 3 * 3_600_000)["status"] == "rejected"  # 06:00: closed
    r.apply({"op": "release_slot", "id": "r1", "store": "S1", "slot_start_ms": NINE_AM_LOCAL, "order_id": "O1"}, 0)
    assert book("b5", "O5")["status"] == "ok"


def test_pickup_offers_nearest_alternatives():
    r = router_with([("S1", 31.20, 121.40), ("S2", 31.21, 121.40), ("S3", 31.25, 121.40)])
    avail = {"S1": {"A": 0}, "S2": {"A": 3}, "S3": {"A": 3}}
    plan = r.plan_pickup("S1", {"A": 1}, NINE_AM_LOCAL, 31.20, 121.40, avail)
    assert plan["kind"] == "unavailable" and plan["alternatives"] == ["S2", "S3"]
    assert r.plan_pickup("S2", {"A": 1}, NINE_AM_LOCAL, 31.2, 121.4, avail)["kind"] == "single"


def test_bad_store_commands_are_errors():
    r = OrderRouter()
    assert r.apply({"op": "upsert_store", "id": "u", "store": "S", "lat": "x", "lon": 1, "pickup_radius_m": 1,
                    "delivery_radius_m": 1}, 0)["status"] == "error"
