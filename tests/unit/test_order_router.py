"""OrderRouter without Ray: the grid finds exactly the stores a full scan finds; single/split/missing plans;
slot bookings as typed commands."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.base import Expire, Result
from actors.order_router import (
    BookSlot,
    NearbyQuery,
    OrderRouter,
    PickupPlanQuery,
    PlanQuery,
    ReleaseSlot,
    UpsertStore,
    distance_m,
)
from protocol.codec import pack, unpack
from protocol.errors import ProtocolError

NINE_AM_LOCAL = 1_767_229_200_000  # 2026-01-01 09:00 UTC+8


def router_with(stores):
    r = OrderRouter()
    for i, (sid, lat, lon) in enumerate(stores):
        assert r.apply(UpsertStore(id=f"u{i}", store=sid, lat=lat, lon=lon, pickup_radius_m=10_000,
                                   delivery_radius_m=3_000, slot_capacity=2), 0) == Result(status="ok",
                                                                                        values={"store": sid})
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
        BookSlot(id=cid, store="S1", slot_start_ms=slot, order_id=order), 0)
    assert book("b1", "O1") == Result(status="ok", values={"store": "S1", "slot_start_ms": NINE_AM_LOCAL, "left": 1})
    assert book("b2", "O2").status == "ok"
    assert book("b3", "O3") == Result(status="rejected", reason="the slot is full")
    assert r.nearby(31.2, 121.4, "delivery", NINE_AM_LOCAL) == []  # full slots are not offered
    assert book("b4", "O4", slot=NINE_AM_LOCAL - 3 * 3_600_000).status == "rejected"  # 06:00: closed
    assert r.apply(ReleaseSlot(id="r1", store="S1", slot_start_ms=NINE_AM_LOCAL, order_id="O1"), 0).status == "ok"
    assert book("b5", "O5").status == "ok"
    assert book("b5", "O5") == Result(status="exists", first=Result(
        status="ok", values={"store": "S1", "slot_start_ms": NINE_AM_LOCAL, "left": 0}))


def test_pickup_offers_nearest_alternatives():
    r = router_with([("S1", 31.20, 121.40), ("S2", 31.21, 121.40), ("S3", 31.25, 121.40)])
    avail = {"S1": {"A": 0}, "S2": {"A": 3}, "S3": {"A": 3}}
    plan = r.plan_pickup("S1", {"A": 1}, NINE_AM_LOCAL, 31.20, 121.40, avail)
    assert plan["kind"] == "unavailable" and plan["alternatives"] == ["S2", "S3"]
    assert r.plan_pickup("S2", {"A": 1}, NINE_AM_LOCAL, 31.2, 121.4, avail)["kind"] == "single"


def test_bad_store_commands_are_errors():
    r = OrderRouter()
    with pytest.raises(ProtocolError, match=r"upsert_store\.lat: expected a number, got str"):
        OrderRouter.decode({"op": "upsert_store", "id": "u", "store": "S", "lat": "x", "lon": 1, "pickup_radius_m": 1,
                            "delivery_radius_m": 1})
    # well-typed but not a place or not a day: error results that change nothing and burn no id
    assert r.apply(UpsertStore(id="u", store="S", lat=91.0, lon=1.0, pickup_radius_m=1, delivery_radius_m=1), 0) == \
        Result(status="error", reason="upsert_store: bad location or opening hours")
    assert r.apply(UpsertStore(id="u", store="S", lat=1.0, lon=1.0, pickup_radius_m=1, delivery_radius_m=1,
                               opens="7am"), 0) == Result(status="error", reason="upsert_store: opens must be HH:MM")
    assert r.apply(BookSlot(id="b", store="S", slot_start_ms=NINE_AM_LOCAL, order_id="O1"), 0) == Result(
        status="error", reason="book_slot: unknown store S")
    assert r.stores == {} and r.bookings == {} and r.seen == {}
    assert r.apply(UpsertStore(id="u", store="S", lat=1.0, lon=1.0, pickup_radius_m=1, delivery_radius_m=1), 0).succeeded


@pytest.mark.parametrize("fields, message, wire_message", [
    # on the wire a non-finite number is refused by the field check already, before the record's own
    ({"lat": float("nan")}, "upsert_store: lat and lon must be numbers", r"upsert_store\.lat: expected a number"),
    ({"lon": float("inf")}, "upsert_store: lat and lon must be numbers", r"upsert_store\.lon: expected a number"),
    ({"slot_minutes": 0}, "upsert_store: bad slot grid", "upsert_store: bad slot grid"),
    ({"slot_capacity": -1}, "upsert_store: bad slot grid", "upsert_store: bad slot grid"),
    ({"store": ""}, "upsert_store: store must not be empty", "upsert_store: store must not be empty"),
])
def test_a_command_that_fails_validation_is_refused_at_construction_and_by_decode(fields, message, wire_message):
    good = {"id": "u", "store": "S", "lat": 31.2, "lon": 121.4, "pickup_radius_m": 1, "delivery_radius_m": 1}
    with pytest.raises(ProtocolError, match=message):
        UpsertStore(**{**good, **fields})
    with pytest.raises(ProtocolError, match=wire_message):
        OrderRouter.decode({"op": "upsert_store", **good, **fields})
    assert OrderRouter.decode({"op": "upsert_store", **good}) == UpsertStore(**good)


def test_queries_ask_the_same_read_methods():
    r = router_with([("S1", 31.20, 121.40), ("S2", 31.21, 121.40)])
    avail = {"S1": {"A": 0}, "S2": {"A": 3}}
    assert NearbyQuery(lat=31.2, lon=121.4, fulfilment="pickup", slot_start_ms=NINE_AM_LOCAL).answer(r) == \
        r.nearby(31.2, 121.4, "pickup", NINE_AM_LOCAL)
    assert PlanQuery(items=(("A", 1),), candidates=("S1", "S2"), availability=avail).answer(r) == \
        {"kind": "single", "allocation": {"S2": {"A": 1}}}
    assert PickupPlanQuery(store="S1", items=(("A", 1),), slot_start_ms=NINE_AM_LOCAL, lat=31.2, lon=121.4,
                           availability=avail).answer(r) == {
        "kind": "unavailable", "reason": "not enough stock at the chosen store", "alternatives": ["S2"]}


def test_snapshot_round_trip_keeps_stores_bookings_and_remembered_results():
    r = router_with([("S1", 31.20, 121.40), ("S2", 31.25, 121.45)])
    commands = [BookSlot(id="b1", store="S1", slot_start_ms=NINE_AM_LOCAL, order_id="O1"),
                BookSlot(id="b2", store="S1", slot_start_ms=NINE_AM_LOCAL, order_id="O2"),
                BookSlot(id="b3", store="S1", slot_start_ms=NINE_AM_LOCAL, order_id="O3"),  # full: rejected
                ReleaseSlot(id="x1", store="S1", slot_start_ms=NINE_AM_LOCAL, order_id="O2"),
                UpsertStore(id="u-moved", store="S2", lat=31.3, lon=121.5, pickup_radius_m=10_000,
                            delivery_radius_m=3_000, slot_capacity=2)]
    firsts = [r.apply(c, 5) for c in commands]
    assert [f.status for f in firsts] == ["ok", "ok", "rejected", "ok", "ok"]
    restored = OrderRouter()
    restored.restore(unpack(pack(r.snapshot())))  # as the durable host stores it
    occupied = lambda grid: {cell: ids for cell, ids in grid.items() if ids}  # noqa: E731 - a moved store leaves []
    assert restored.stores == r.stores and restored.bookings == r.bookings and occupied(restored.grid) == occupied(r.grid)
    assert restored.nearby(31.3, 121.5, "pickup", NINE_AM_LOCAL) == r.nearby(31.3, 121.5, "pickup", NINE_AM_LOCAL)
    assert [restored.apply(c, 6) for c in commands] == [Result(status="exists", first=f) for f in firsts]
    assert restored.apply(BookSlot(id="b1", store="S1", slot_start_ms=NINE_AM_LOCAL, order_id="O9"), 6).status == \
        "conflict"
    assert restored.bookings == r.bookings


def test_expire_drops_day_old_bookings():
    r = OrderRouter()
    r.apply(UpsertStore(id="u1", store="S1", lat=31.2, lon=121.4, pickup_radius_m=1, delivery_radius_m=1),
            NINE_AM_LOCAL - 3_600_000)
    r.apply(BookSlot(id="b1", store="S1", slot_start_ms=NINE_AM_LOCAL, order_id="O1"), NINE_AM_LOCAL - 3_600_000)
    assert r.apply(Expire(id="e1"), NINE_AM_LOCAL + 1).noop and r.bookings and "e1" not in r.seen
    assert not r.apply(Expire(id="e2"), NINE_AM_LOCAL + 24 * 3_600_000 + 1).noop and r.bookings == {}
