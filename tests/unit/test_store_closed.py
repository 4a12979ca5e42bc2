"""A store HQ closed takes no online order: no slot is booked there, no plan routes to it, a pickup there is
refused with the reason; reopened, it serves again. The flag survives the world's data and the router's snapshot."""
from __future__ import annotations

import pytest

from actors.order_router import BookSlot, OrderRouter, UpsertStore
from cloud.world import Store
from protocol.errors import ProtocolError
from protocol.schema import record_from_wire, to_wire

NINE_AM_LOCAL = 1_767_229_200_000  # 2026-01-01 09:00 UTC+8


def two_stores(b_open: bool) -> OrderRouter:
    r = OrderRouter()
    for sid, lon, is_open in (("SA", 121.40, True), ("SB", 121.401, b_open)):
        assert r.apply(UpsertStore(id=f"u{sid}{is_open}", store=sid, lat=31.2, lon=lon, pickup_radius_m=10_000,
                                   delivery_radius_m=3_000, open=is_open), 0).succeeded
    return r


def test_a_closed_store_is_never_routed_to_nor_booked():
    r = two_stores(b_open=False)
    # SB is the nearer one to this point, but closed: only SA is offered
    assert [s for s, _ in r.nearby(31.2, 121.402, "delivery", NINE_AM_LOCAL)] == ["SA"]
    booked = r.apply(BookSlot(id="b1", store="SB", slot_start_ms=NINE_AM_LOCAL, order_id="o1"), 1)
    assert booked.status == "rejected" and booked.reason == "the store is closed by head office"
    plan = r.plan_pickup("SB", {"X": 1}, NINE_AM_LOCAL, 31.2, 121.402, {"SB": {"X": 5}, "SA": {"X": 5}})
    assert plan["kind"] == "unavailable" and plan["reason"] == "the store is closed by head office"
    assert plan["alternatives"] == ["SA"]


def test_reopened_store_serves_again_and_the_flag_survives_a_snapshot():
    r = two_stores(b_open=False)
    copy = OrderRouter()
    copy.restore_state(r.state_snapshot())
    assert [s for s, _ in copy.nearby(31.2, 121.402, "delivery", NINE_AM_LOCAL)] == ["SA"]
    assert r.apply(UpsertStore(id="reopen", store="SB", lat=31.2, lon=121.401, pickup_radius_m=10_000,
                               delivery_radius_m=3_000, open=True), 2).succeeded
    assert [s for s, _ in r.nearby(31.2, 121.402, "delivery", NINE_AM_LOCAL)] == ["SB", "SA"]
    old = {**r.state_snapshot()}
    old["stores"] = [row[:9] for row in old["stores"]]  # a snapshot from before stores could be closed
    copy.restore_state(old)
    assert all(site.open for site in copy.stores.values())


def test_the_world_keeps_the_flag_and_refuses_a_non_boolean():
    store = Store(store_id="S072", name="x", lat=31.2, lon=121.4, open=False)
    assert to_wire(store)["open"] is False
    assert record_from_wire(Store, to_wire(store), "stores[0]").router_command("c").open is False
    with pytest.raises(ProtocolError):
        record_from_wire(Store, {**to_wire(store), "open": "no"}, "stores[0]")


def test_a_flash_sale_never_takes_a_closed_stores_escrow():
    from types import SimpleNamespace

    from cloud.services.flash_stores import FlashStores
    from cloud.services.verdicts import Refusal
    stores = {s.store_id: s for s in (Store(store_id="S072", name="a", lat=30.0, lon=120.0),
                                      Store(store_id="S073", name="b", lat=30.0, lon=120.1, open=False))}
    flash = FlashStores(SimpleNamespace(world=SimpleNamespace(stores=stores)))
    assert flash.stores_of("chain") == ["S072"]
    assert flash.stores_of(["S072"]) == ["S072"]
    with pytest.raises(Refusal, match="closed by head office, taking no online orders: S073"):
        flash.stores_of(["S072", "S073"])
