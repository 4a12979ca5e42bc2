"""Picking at the seams, over the real stack (a real store box behind a proxy that can cut its network, the cloud,
a second store speaking NATS by hand): what happens when a store's picking meets a cancel, a replay or a re-route
racing a cancel. After each, the store's and the cloud's escrow agree and nothing stays reserved for a cancelled
order."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.ids import make_id
from protocol.messages import (
    EscrowGranted,
    OrderPicked,
    PickedLine,
    PickingStarted,
    PickupCompleted,
    StockMoved,
)
from simulators.netcut import NetCut
from tests.integration.harness import StoreLink, customer, eventually, running_cloud, top_up

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE, OTHER = "S003", "S005"
CN = timezone(timedelta(hours=8))


def pieces() -> list[dict]:
    return sorted((p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece"
                   and "online" in p["channels"]), key=lambda p: p["sku"])


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"seam{uuid.uuid4().hex[:6]}-") as (services, url):
        proxy = await NetCut("127.0.0.1", int(stack.nats_address.rsplit(":", 1)[1])).start()
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": proxy.url, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        conn = await asyncpg.connect(stack.database_url)  # the test database is shared: a store's seqs only grow
        try:
            box.actor.last_seq = max(box.actor.last_seq, await conn.fetchval(
                "select coalesce(max(seq), 0) from edge_events where store_id = $1", STORE) or 0)
        finally:
            await conn.close()
        async with httpx.AsyncClient(base_url=url, timeout=30) as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _online(box), timeout_s=15)
            yield services, http, box, lane, proxy
        await box.stop()
        await proxy.stop()


async def _online(box) -> bool:
    return box.actor.online


async def _offline(box) -> bool:
    return not box.actor.online


async def drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


async def cloud_stock(http, store: str, sku: str) -> dict:
    found = (await http.get(f"/stores/{store}/stock", params={"sku": sku})).json()["stock"]
    return found[0] if found else {}


async def order_at(services, http, store: str, sku: str, qty: int) -> tuple:
    member = await customer(services, http)
    await top_up(services, http, member, 50_000)
    slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=16, minute=0, second=0, microsecond=0).isoformat()
    r = await http.post("/orders", json={"fulfilment": "pickup", "store_id": store, "slot_start": slot,
                                         "items": [{"sku": sku, "qty": qty}]},
                        headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert r.status_code == 201, r.text
    paid = await http.post(f"/orders/{r.json()['order_id']}/pay", json={"method": "stored_value"},
                           headers=member.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
    return member, paid.json()


async def dead_letter(services, store: str, text: str) -> str | None:
    return await services.cloud.db.fetchval("select reason from dead_letters where store_id = $1 and reason like $2 "
                                            "order by at_ms desc limit 1", store, f"%{text}%")


async def test_a_picking_that_arrives_after_the_cancel_leaves_the_store_and_cloud_escrow_agreeing(world):
    """The box picks while cut off; the order is cancelled in the cloud meanwhile (its reservation back in the
    escrow). When the box is back, its OrderPicked applies the stock side only and its cancel puts the goods back
    on the shelf: on hand and escrow agree (before the fix the cloud refused it and kept 2 escrow the box had not)."""
    services, http, box, lane, proxy = world
    sku = pieces()[20]["sku"]
    await box.actor.ask("receive", sku=sku, qty=20)  # 40% online: 8 escrowed
    assert await eventually(lambda: drained(box), timeout_s=15)
    member, order = await order_at(services, http, STORE, sku, 2)
    oid = order["order_id"]

    async def arrived():
        return any(o["order_id"] == oid for o in (await box.actor.ask("pick_list"))["orders"])
    assert await eventually(arrived, timeout_s=15)
    proxy.cut()
    try:
        assert await eventually(lambda: _offline(box), timeout_s=15)
        assert (await lane.post(f"/picking/orders/{oid}/start")).status_code == 200
        assert (await lane.post(f"/picking/orders/{oid}/lines/{sku}", json={"qty": 2})).status_code == 200
        assert (await lane.post(f"/picking/orders/{oid}/done")).json()["status"] == "picked"
        cancelled = await services.orders.cancel(oid, None, "the store is late and the customer gave up")
        assert cancelled["status"] == "cancelled"
    finally:
        proxy.heal()
    assert await eventually(lambda: _online(box), timeout_s=20)

    async def agreed():
        level = await box.store_db.stock_level(sku)
        row = await cloud_stock(http, STORE, sku)
        if not await drained(box) or level.on_hand != 20:  # restocked: the goods are back on the shelf
            return None
        return row if (row.get("on_hand"), row.get("escrow")) == (level.on_hand, level.escrow) else None
    row = await eventually(agreed, timeout_s=20)
    level = await box.store_db.stock_level(sku)
    assert row, f"cloud {await cloud_stock(http, STORE, sku)} vs store {level}"
    assert row["confirmed"] == 0
    timeline = (await http.get(f"/orders/{oid}", headers=member.headers)).json()
    assert timeline["status"] == "cancelled"
    assert await services.cloud.db.fetchval("select count(*) from money_movements where order_id = $1 "
                                            "and movement_id like 'refund:%:%'", oid) == 0  # no money from picking


async def test_a_second_picked_report_for_a_part_handed_over_is_refused_and_moves_nothing(world, stack):
    """A store replays 'all short' (a new event id) for an order it handed over: before the fix the cloud refunded
    the customer the whole part again and re-routed it; now it is refused for the part's status, dead-lettered."""
    services, http, _, _, _ = world
    sku = pieces()[21]["sku"]
    async with StoreLink(stack, OTHER) as other:
        await other.publish(StockMoved(**other.next_envelope(), sku=sku, delta=25, reason="receiving",
                                       shrinkage_reason="", on_hand_after=25, reference=""))
        await other.publish(EscrowGranted(**other.next_envelope(), sku=sku, qty=10, escrow_after=10))

        async def escrowed():
            return (await cloud_stock(http, OTHER, sku)).get("escrow") == 10
        assert await eventually(escrowed)
        member, order = await order_at(services, http, OTHER, sku, 2)
        oid = order["order_id"]
        for event in (PickingStarted(**other.next_envelope(), order_id=oid),
                      OrderPicked(**other.next_envelope(), order_id=oid,
                                  lines=(PickedLine(sku=sku, ordered=2, picked=2, short=0),)),
                      PickupCompleted(**other.next_envelope(), order_id=oid, pickup_code=order["pickup_code"],
                                      lane="1")):
            await other.publish(event)

        async def picked_up():
            body = (await http.get(f"/orders/{oid}", headers=member.headers)).json()
            return body if body["status"] == "picked_up" else None
        assert await eventually(picked_up, timeout_s=15)
        before = (await cloud_stock(http, OTHER, sku))
        replay = OrderPicked(**other.next_envelope(), order_id=oid,
                             lines=(PickedLine(sku=sku, ordered=2, picked=0, short=2),))
        await other.publish(replay)
        assert await eventually(lambda: dead_letter(services, OTHER, oid), timeout_s=15)
    reason = await dead_letter(services, OTHER, oid)
    assert reason and "part was picked already" in reason, reason
    assert await services.cloud.db.fetchval("select count(*) from money_movements where order_id = $1 "
                                            "and movement_id like 'refund:%'", oid) == 0
    after = await cloud_stock(http, OTHER, sku)
    assert (after["escrow"], after["confirmed"]) == (before["escrow"], before["confirmed"])
    assert (await http.get(f"/orders/{oid}", headers=member.headers)).json()["status"] == "picked_up"


async def test_a_reroute_that_loses_the_race_to_a_cancel_gives_its_reservation_back(world, stack):
    """The store's shortage is re-routed while the order is being cancelled: the re-route read the order before the
    cancel, the cancel flipped it first. The new store's part is refused under the order's lock and its reservation
    released (before the fix it joined the cancelled order, confirmed forever, and the store was told to pick)."""
    services, http, box, _, _ = world
    sku = pieces()[22]["sku"]
    await box.actor.ask("receive", sku=sku, qty=10)
    assert await eventually(lambda: drained(box), timeout_s=15)
    async with StoreLink(stack, OTHER) as other:
        await other.publish(StockMoved(**other.next_envelope(), sku=sku, delta=30, reason="receiving",
                                       shrinkage_reason="", on_hand_after=30, reference=""))
        await other.publish(EscrowGranted(**other.next_envelope(), sku=sku, qty=10, escrow_after=10))

        async def escrowed():
            return (await cloud_stock(http, OTHER, sku)).get("escrow") == 10
        assert await eventually(escrowed)
        _, order = await order_at(services, http, STORE, sku, 3)
        oid = order["order_id"]
        stale = await services.cloud.db.fetchrow("select * from orders where order_id = $1", oid)  # read before
        assert (await services.orders.cancel(oid, None, "operator: the customer called"))["status"] == "cancelled"
        short = OrderPicked(event_id=make_id(stale["created_ms"], 1), store_id=STORE, seq=1,
                            wall_ms=stale["created_ms"], mono_ms=0, order_id=oid,
                            lines=(PickedLine(sku=sku, ordered=3, picked=1, short=2),))
        assert await services.bridge.picking._reroute(short, stale, sku, 2, set()) is None
    allocation = json.loads(await services.cloud.db.fetchval("select allocation from orders where order_id = $1",
                                                             oid))
    assert OTHER not in allocation
    row = await cloud_stock(http, OTHER, sku)
    assert (row["escrow"], row["confirmed"]) == (10, 0), row


async def test_a_cancel_that_read_the_order_before_a_reroute_still_releases_the_new_stores_reservation(world, stack):
    """The other order of the race: the cancel read the order, a shortage re-routed 2 units to another store (a
    confirmed reservation there), then the cancel flipped the status. It reads the allocation again after the flip,
    so the new store's reservation is released too (before the fix it stayed confirmed forever)."""
    services, http, box, _, _ = world
    sku = pieces()[23]["sku"]
    await box.actor.ask("receive", sku=sku, qty=10)
    assert await eventually(lambda: drained(box), timeout_s=15)
    async with StoreLink(stack, OTHER) as other:
        await other.publish(StockMoved(**other.next_envelope(), sku=sku, delta=30, reason="receiving",
                                       shrinkage_reason="", on_hand_after=30, reference=""))
        await other.publish(EscrowGranted(**other.next_envelope(), sku=sku, qty=10, escrow_after=10))

        async def escrowed():
            return (await cloud_stock(http, OTHER, sku)).get("escrow") == 10
        assert await eventually(escrowed)
        _, order = await order_at(services, http, STORE, sku, 3)
        oid = order["order_id"]
        read_first = await services.cloud.db.fetchrow("select * from orders where order_id = $1", oid)
        short = OrderPicked(event_id=make_id(read_first["created_ms"], 2), store_id=STORE, seq=1,
                            wall_ms=read_first["created_ms"], mono_ms=0, order_id=oid,
                            lines=(PickedLine(sku=sku, ordered=3, picked=1, short=2),))
        assert await services.bridge.picking._reroute(short, read_first, sku, 2, set()) == OTHER
        assert (await cloud_stock(http, OTHER, sku))["confirmed"] == 2
        orders = services.orders
        get = orders.get

        async def as_read_before(order_id, member):  # the cancel's first read happened before the re-route
            orders.get = get
            return read_first
        orders.get = as_read_before
        try:
            assert (await orders.cancel(oid, None, "operator: the customer called"))["status"] == "cancelled"
        finally:
            orders.get = get
    row = await cloud_stock(http, OTHER, sku)
    assert (row["escrow"], row["confirmed"], row["reserved"]) == (10, 0, 0), row
