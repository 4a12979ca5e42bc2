"""Restock over the real stack (issue 16 item 7): a real edge box on real NATS as its own store user, the cloud with
its actors on Ray and PostgreSQL.

- The default reorder point of a SKU comes from what the store really sold over 7 days (its till sales and its
  part of paid online orders).
- HQ sets a reorder point; it reaches the box; sales push the projected stock below it: exactly one alert (also
  when the box was offline at the time: it reaches the cloud once, later); the cloud lists it with a suggested
  order per supplier; receiving above the point closes it.
- An online order for an item no store has, with supply due, is refused with a pre-sale offer, accepted as a
  pre-sale with a later slot, and once the store receives stock it is reserved and sent to the store to pick.
- After each flow: the box's stock audit is empty, the cloud's audit is clean, the cloud's lots equal the box's.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from edge import restock_db
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from edge.store_db import SEQ_FLOOR_KEY, StoreDb
from protocol import restock as rules
from protocol.messages import OrderLine, OrderToFulfil
from protocol.money_saga import refund_id
from protocol.restock_messages import ReorderPoint, ReorderPointsSet, RestockAlerted, RestockCleared
from protocol.transfer_messages import TransferCancelled
from tests.integration.harness import (
    StoreLink,
    customer,
    eventually,
    operator_headers,
    pay_by_wallet,
    running_cloud,
    this_clouds,
)

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S004"
# packed goods of one supplier that no other module sells, one per test
VELOCITY, ALERTED, OFFLINE, PRESOLD = "PAC-NOODLE-0204", "PAC-NOODLE-0205", "PAC-NOODLE-0206", "PAC-NOODLE-0207"
SUPPLIER = "Metro Grocery Wholesale"
CHAIN_TZ = timezone(timedelta(hours=8))


def product(sku: str) -> dict:
    return next(p for p in json.loads(WORLD.read_text())["catalogue"] if p["sku"] == sku)


def _config(stack, data_dir: Path, online: bool = True) -> dict:
    config = {"store_id": STORE, "data_dir": str(data_dir), "world": str(WORLD)}
    if online:
        config |= {"nats_url": stack.nats_url, "nats_password": stack.store_credentials(STORE)[1]}
    return config


class Box:
    """The module's one store box, which a test may take offline (the same data dir, no NATS) and back."""

    def __init__(self, stack, data_dir: Path) -> None:
        self.stack, self.data_dir, self.box = stack, data_dir, None

    async def start(self, online: bool = True) -> EdgeBox:
        self.box = await EdgeBox(_config(self.stack, self.data_dir, online)).start()
        if online:
            assert await eventually(lambda: _online(self.box), timeout_s=10)
        return self.box

    def lane(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(self.box)), base_url="http://lane")

    async def stop(self) -> None:
        if self.box is not None:
            await self.box.stop()
            self.box = None


async def _continue_seq(stack, data_dir: Path) -> None:
    """A store's seqs only grow: this new box goes on from the highest the cloud has of the store."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        seq = await conn.fetchval("select coalesce(max(seq), 0) from edge_events where store_id = $1", STORE) or 0
    finally:
        await conn.close()
    db = await StoreDb(data_dir / f"{STORE}.sqlite").open()
    await db.writer.execute("insert into meta (key, value) values (?, ?)", (SEQ_FLOOR_KEY, str(seq)))
    await db.close()


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"restock{uuid.uuid4().hex[:6]}-") as (services, url):
        data_dir = tmp_path_factory.mktemp("edge")
        await _continue_seq(stack, data_dir)
        box = Box(stack, data_dir)
        await box.start()
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            yield services, http, box
        await box.stop()


async def _online(box) -> bool:
    return box.actor.online


async def _drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


async def sell(lane, sku: str, times: int) -> None:
    for _ in range(times):
        r = await lane.post("/lanes/1/scan", json={"code": product(sku)["gtin"]})
        assert r.status_code == 200, r.text
    r = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**7})
    assert r.status_code == 201, r.text


def _slot(days: int) -> str:
    return (datetime.now(CHAIN_TZ) + timedelta(days=days)).replace(hour=10, minute=0, second=0,
                                                                     microsecond=0).isoformat()


async def _order(http, member, sku: str, qty: int, days: int = 1, **more) -> httpx.Response:
    return await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": _slot(days),
                                            "items": [{"sku": sku, "qty": qty}], **more},
                           headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})


async def _consistent(services, http, box, lane, *skus: str) -> None:
    """The invariant after a flow: the box's audit is empty, the cloud's audit is clean, and the cloud's lots of
    these SKUs equal the box's."""
    assert await eventually(lambda: _drained(box)), "the store's events were not all acked"
    assert (await lane.get("/stock/audit")).json()["violations"] == []
    admin = await operator_headers(services)
    assert this_clouds((await http.get("/audit", headers=admin)).json()["violations"]) == []
    box_stock = {r["sku"]: r for r in (await lane.get("/stock")).json()["stock"]}
    for sku in skus:
        mine = sorted((x["lot"], x["use_by"], x["on_hand"]) for x in box_stock[sku]["lots"])

        async def same(sku=sku, mine=mine):
            rows = (await http.get(f"/stores/{STORE}/stock", params={"sku": sku})).json()["stock"]
            theirs = sorted((x["lot"], x["use_by"], x["on_hand"]) for x in rows[0]["lots"]) if rows else None
            return theirs == mine
        assert await eventually(same), f"the cloud's lots of {sku} never matched the box's {mine}"


async def _set_point(services, http, sku: str, point: int, target: int) -> dict:
    admin = await operator_headers(services)
    r = await http.put(f"/stores/{STORE}/reorder-points", headers=admin,
                       json={"items": [{"sku": sku, "reorder_point": point, "target": target}]})
    assert r.status_code == 200, r.text
    return r.json()


async def _box_point(box, sku: str):
    return next((p for p in await restock_db.points(box.store_db.reader) if p["sku"] == sku), None)


async def _open_alerts(lane, sku: str) -> list[dict]:
    return [a for a in (await lane.get("/restock/alerts", params={"status": "open"})).json()["alerts"]
            if a["sku"] == sku]


async def _cloud_alerts(services, http, sku: str) -> list[dict]:
    admin = await operator_headers(services)
    view = (await http.get("/operator/restock", params={"store": STORE}, headers=admin)).json()
    return [a for a in view["alerts"] if a["sku"] == sku], view


# ---- defaults from velocity ------------------------------------------------------------------------------------
async def test_the_default_point_comes_from_what_the_store_really_sold_at_its_tills_and_online(world):
    services, http, holder = world
    box = holder.box
    async with holder.lane() as lane:
        await box.actor.ask("receive", sku=VELOCITY, qty=40)  # 16 of them online (the default 40%)
        await sell(lane, VELOCITY, 5)
        await sell(lane, VELOCITY, 4)
        assert await eventually(lambda: _online_units(http, VELOCITY, 16)), "the cloud never had the store's escrow"
        member = await customer(services, http)
        r = await _order(http, member, VELOCITY, 5)
        assert r.status_code == 201, r.text
        await pay_by_wallet(services, http, member, r.json()["order_id"])
        unpaid = await _order(http, member, VELOCITY, 2)  # reserved, never paid: not a sale
        assert unpaid.status_code == 201, unpaid.text
        assert await eventually(lambda: _drained(box))
        admin = await operator_headers(services)

        async def shown():
            view = (await http.get(f"/stores/{STORE}/reorder-points", headers=admin)).json()
            item = next((i for i in view["items"] if i["sku"] == VELOCITY), None)
            return item if item and item["sold_7d"] == 14 else None
        item = await eventually(shown)
        assert item, "the cloud never counted the 9 sold at the till and the 5 paid online"
        point, target = rules.default_point(14)  # 2 a day: 2 days' lead, 3 more of cover
        assert (point, target) == (4, 10)
        assert item["source"] == "default" and (item["reorder_point"], item["target"]) == (point, target)
        assert item["velocity_per_day"] == 2.0 and item["supplier"] == SUPPLIER
        # HQ adopts the default (an item naming only its sku): it becomes HQ's point, and the store watches it
        r = await http.put(f"/stores/{STORE}/reorder-points", json={"items": [{"sku": VELOCITY}]}, headers=admin)
        assert r.status_code == 200, r.text
        item = next(i for i in r.json()["items"] if i["sku"] == VELOCITY)
        assert (item["source"], item["reorder_point"], item["target"], item["version"]) == ("hq", 4, 10, 1)
        assert await eventually(lambda: _box_point(box, VELOCITY)) == {
            "sku": VELOCITY, "reorder_point": 4, "target": 10, "version": 1}
        await _consistent(services, http, box, lane, VELOCITY)


# ---- HQ's point, the store's alert, the suggested order, receiving ----------------------------------------------
async def test_hq_sets_a_point_sales_raise_exactly_one_alert_the_cloud_suggests_an_order_and_receiving_closes_it(world):
    services, http, holder = world
    box = holder.box
    async with holder.lane() as lane:
        await box.actor.ask("receive", sku=ALERTED, qty=10)
        told = await _set_point(services, http, ALERTED, 5, 20)
        assert told["store_told"] is True
        assert next(i for i in told["items"] if i["sku"] == ALERTED)["source"] == "hq"
        assert await eventually(lambda: _box_point(box, ALERTED)) == {
            "sku": ALERTED, "reorder_point": 5, "target": 20, "version": 1}

        await sell(lane, ALERTED, 3)  # 7 left: above the point
        assert await _open_alerts(lane, ALERTED) == []
        await sell(lane, ALERTED, 3)  # 4: below
        await sell(lane, ALERTED, 1)  # 3: still below, no second alert
        (alert,) = await _open_alerts(lane, ALERTED)
        assert (alert["on_hand"], alert["owed"], alert["reorder_point"], alert["target"], alert["suggested_qty"]) == (
            4, 0, 5, 20, 16)

        async def listed():  # with the on-hand the store reported last: 3 since the third sale
            found, view = await _cloud_alerts(services, http, ALERTED)
            return (found, view) if found and found[0]["on_hand"] == 3 else None
        found, view = await eventually(listed)
        assert [a["alert_id"] for a in found] == [alert["alert_id"]]
        assert (found[0]["on_hand_at_alert"], found[0]["projected"], found[0]["suggested_qty"]) == (4, 3, 17)
        order = next(o for o in view["suggested_orders"] if o["supplier"] == SUPPLIER)
        line = next(x for x in order["lines"] if x["sku"] == ALERTED)
        assert (line["qty"], line["unit"], line["value_fen"]) == (17, "piece", 17 * product(ALERTED)["cost_fen"])

        await box.actor.ask("receive", sku=ALERTED, qty=20)  # 23: back above the point
        assert await _open_alerts(lane, ALERTED) == []
        assert await eventually(lambda: _closed_in_cloud(services, http, ALERTED)), "the cloud kept the alert open"
        conn = await asyncpg.connect(holder.stack.database_url)
        try:
            rows = await conn.fetch("select * from restock_alerts where store_id = $1 and sku = $2", STORE, ALERTED)
        finally:
            await conn.close()
        assert len(rows) == 1 and rows[0]["cleared_ms"] is not None  # exactly one alert, closed
        admin = await operator_headers(services)
        entries = (await http.get("/operator/audit", headers=admin)).json()["entries"]
        assert any(e["action"] == "restock.points" and e["target"] == f"{STORE}/{ALERTED}" for e in entries)
        await _consistent(services, http, box, lane, ALERTED)


async def _closed_in_cloud(services, http, sku: str) -> bool:
    found, _ = await _cloud_alerts(services, http, sku)
    return found == []


async def test_an_alert_raised_while_the_box_is_offline_reaches_the_cloud_once_later(world):
    services, http, holder = world
    await holder.box.actor.ask("receive", sku=OFFLINE, qty=8)
    await _set_point(services, http, OFFLINE, 6, 12)
    assert await eventually(lambda: _box_point(holder.box, OFFLINE))
    assert await eventually(lambda: _drained(holder.box))
    await holder.stop()
    box = await holder.start(online=False)  # the same store, cut off from the cloud
    async with holder.lane() as lane:
        await sell(lane, OFFLINE, 3)  # 5: below 6
        await sell(lane, OFFLINE, 2)
        (alert,) = await _open_alerts(lane, OFFLINE)
        assert await box.store_db.outbox_depth() > 0
    found, _ = await _cloud_alerts(services, http, OFFLINE)
    assert found == []  # the cloud has not heard of it
    await holder.stop()
    box = await holder.start(online=True)  # back: everything syncs, once
    assert await eventually(lambda: _drained(box), timeout_s=15), "the offline backlog was never acked"

    async def listed():
        found, _ = await _cloud_alerts(services, http, OFFLINE)
        return found or None
    found = await eventually(listed)
    assert [a["alert_id"] for a in found] == [alert["alert_id"]]
    assert (found[0]["on_hand_at_alert"], found[0]["suggested_qty"]) == (5, 9)  # 12 - the 3 left after both sales
    async with holder.lane() as lane:
        await _consistent(services, http, box, lane, OFFLINE)
    conn = await asyncpg.connect(holder.stack.database_url)
    try:
        assert await conn.fetchval("select count(*) from restock_alerts where store_id = $1 and sku = $2",
                                   STORE, OFFLINE) == 1
    finally:
        await conn.close()


async def test_only_hq_sets_points_and_a_bad_item_says_what_is_wrong_and_changes_nothing(world):
    services, http, _ = world
    manager = await operator_headers(services, "store_manager", store_id=STORE)
    r = await http.put(f"/stores/{STORE}/reorder-points", headers=manager,
                       json={"items": [{"sku": ALERTED, "reorder_point": 1, "target": 2}]})
    assert r.status_code == 403 and "restock.change" in r.json()["detail"]
    assert (await http.get(f"/stores/{STORE}/reorder-points", headers=manager)).status_code == 200
    admin = await operator_headers(services)
    for items, says in [([{"sku": "NOPE", "reorder_point": 1, "target": 2}], "unknown product"),
                        ([{"sku": ALERTED, "reorder_point": 5, "target": 2}], "below reorder_point"),
                        ([{"sku": ALERTED, "reorder_point": -1, "target": 2}], "items[0].reorder_point"),
                        ([{"sku": OFFLINE, "reorder_point": 1, "target": 2},
                          {"sku": OFFLINE, "reorder_point": 1, "target": 2}], "named twice")]:
        r = await http.put(f"/stores/{STORE}/reorder-points", headers=admin, json={"items": items})
        assert r.status_code == 422 and says in r.json()["detail"], (items, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await http.put("/stores/S999/reorder-points", headers=admin,
                           json={"items": [{"sku": ALERTED, "reorder_point": 1, "target": 2}]})).status_code == 404


# ---- pre-sale --------------------------------------------------------------------------------------------------
async def test_an_out_of_stock_item_with_supply_due_is_presold_with_a_later_slot_and_sent_to_pick_on_receiving(world):
    services, http, holder = world
    box = holder.box
    await _set_point(services, http, PRESOLD, 5, 10)  # nothing here: the store raises an alert at once
    async with holder.lane() as lane:
        assert await eventually(lambda: _open_alerts(lane, PRESOLD))
    found = await eventually(lambda: _listed(services, http, PRESOLD))
    assert found
    member = await customer(services, http)

    refused = await _order(http, member, PRESOLD, 2)
    assert refused.status_code == 409, refused.text
    offer = refused.json()
    assert offer["presale_store"] == STORE and "presale" in offer["detail"]
    due_ms = datetime.fromisoformat(offer["presale_available_from"])
    too_early = await _order(http, member, PRESOLD, 2, days=1, presale=True)
    assert too_early.status_code == 409 and "must not be earlier" in too_early.json()["detail"], too_early.text

    days = (due_ms.astimezone(CHAIN_TZ).date() - datetime.now(CHAIN_TZ).date()).days
    placed = await _order(http, member, PRESOLD, 5, days=days, presale=True)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "reserved" and order["presale"]["store_id"] == STORE
    assert datetime.fromisoformat(order["slot_start"]) >= due_ms
    await pay_by_wallet(services, http, member, order["order_id"])
    view = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
    assert view["status"] == "paid" and "presale" in [t["event"] for t in view["timeline"]]
    assert await box.store_db.order(order["order_id"]) is None  # nothing to pick yet: no stock

    # a second pre-sale, paid then cancelled before any stock came: refunded, nothing released that it never held
    other = (await _order(http, member, PRESOLD, 1, days=days, presale=True)).json()
    await pay_by_wallet(services, http, member, other["order_id"])
    r = await http.post(f"/orders/{other['order_id']}/cancel", json={"reason": "changed my mind"},
                        headers=member.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text

    # 10 come: 4 of them online, 1 short of the oldest pre-sale's 5: the store lends it from its shelf (it keeps 5)
    await box.actor.ask("receive", sku=PRESOLD, qty=10)

    async def sent():
        found = await box.store_db.order(order["order_id"])
        return found if found and found[0] == "to_pick" else None
    got = await eventually(sent, timeout_s=15)
    assert got, "the pre-sale order was never reserved and sent to the store to pick after it received stock"
    _, payload = got
    assert [(x["sku"], x["qty"]) for x in payload["lines"]] == [(PRESOLD, 5)]
    assert (await box.store_db.stock_level(PRESOLD)).escrow == 5  # 4 granted on receiving, 1 lent
    view = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
    assert "presale_reserved" in [t["event"] for t in view["timeline"]]
    async with holder.lane() as lane:
        r = await lane.post(f"/pickups/{order['pickup_code']}")
        assert r.status_code == 200, r.text

        async def collected():
            v = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
            return v["status"] == "picked_up"
        assert await eventually(collected)
        assert await eventually(lambda: _cloud_on_hand(http, PRESOLD, 5)), "the 5 picked up never left the pool"
        await _consistent(services, http, box, lane, PRESOLD)


async def _listed(services, http, sku: str):
    found, _ = await _cloud_alerts(services, http, sku)
    return found or None


async def _online_units(http, sku: str, expected: int) -> bool:
    rows = (await http.get(f"/stores/{STORE}/stock", params={"sku": sku})).json()["stock"]
    return bool(rows) and rows[0]["available_online"] == expected


async def _cloud_on_hand(http, sku: str, expected: int) -> bool:
    rows = (await http.get(f"/stores/{STORE}/stock", params={"sku": sku})).json()["stock"]
    return bool(rows) and rows[0]["on_hand"] == expected and rows[0]["confirmed"] == 0


# ---- what the store owes online orders (a box alone: no cloud) ----------------------------------------------------
@pytest_asyncio.fixture
async def lone_box(tmp_path):
    box = await EdgeBox({"store_id": "S019", "data_dir": str(tmp_path), "world": str(WORLD)}).start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
        yield box, lane
    await box.stop()


def _envelope(box, seq: int) -> dict:
    now = box.clock.now_ms()
    return {"event_id": box.ids.new(), "store_id": "S019", "seq": seq, "wall_ms": now, "mono_ms": 0}


async def test_online_orders_still_to_pick_count_against_the_projection_and_a_repeat_of_the_points_changes_nothing(
        lone_box):
    box, lane = lone_box
    sku = ALERTED
    await box.actor.ask("receive", sku=sku, qty=8)
    points = ReorderPointsSet(**_envelope(box, 1), points=(ReorderPoint(sku=sku, reorder_point=5, target=12, version=3),))
    assert await box.actor.ask("cloud_message", message=points) == "applied"
    assert await box.actor.ask("cloud_message", message=points) == "duplicate"
    older = ReorderPointsSet(**_envelope(box, 2), points=(ReorderPoint(sku=sku, reorder_point=99, target=99, version=2),))
    assert await box.actor.ask("cloud_message", message=older) == "applied"  # applied once, but version 3 is kept
    assert (await lane.get("/restock/points")).json()["points"] == [
        {"sku": sku, "reorder_point": 5, "target": 12, "version": 3}]
    assert await _open_alerts(lane, sku) == []  # 8 on hand, nothing owed: above 5

    order = OrderToFulfil(**_envelope(box, 3), order_id=box.ids.new(), fulfilment="pickup",
                          lines=(OrderLine(sku=sku, qty=4, amount_fen=400),), total_fen=400, pickup_code="55550001",
                          slot_start_ms=0, slot_end_ms=0, member_id=None)
    assert await box.actor.ask("cloud_message", message=order) == "applied"
    (alert,) = await _open_alerts(lane, sku)  # 8 on hand, 4 owed to the order: 4 projected, below 5
    assert (alert["on_hand"], alert["owed"], alert["suggested_qty"]) == (8, 4, 8)
    r = await lane.post("/pickups/55550001")  # collected: 4 leave the shelf, nothing owed, still 4: no new alert
    assert r.status_code == 200, r.text
    assert [a["alert_id"] for a in await _open_alerts(lane, sku)] == [alert["alert_id"]]
    await box.actor.ask("receive", sku=sku, qty=1)  # 5: at the point: cleared
    assert await _open_alerts(lane, sku) == []
    kinds = [kind for _, _, _, kind in await box.store_db.outbox(0, 1000)]
    assert kinds.count("restock.alerted") == 1 and kinds.count("restock.cleared") == 1
    assert (await lane.get("/stock/audit")).json()["violations"] == []


# ---- trust ------------------------------------------------------------------------------------------------------
async def test_a_store_is_refused_an_alert_of_an_unknown_product_and_clearing_another_stores_alert(world, stack):
    services, _, _ = world
    db = services.cloud.db
    since = await db.fetchval("select coalesce(max(id), 0) from dead_letters")
    alert_id = services.cloud.ids.new()
    async with StoreLink(stack, "S002") as owner:
        # one unit short: too little to ask another store for (protocol.restock_transfers), so this alert leaves no
        # transfer open in the shared database for later modules' clouds to re-send to a store
        await owner.publish(RestockAlerted(**owner.next_envelope(), alert_id=alert_id, sku=VELOCITY, on_hand=1,
                                           owed=0, reorder_point=2, target=2, suggested_qty=1))
        assert await eventually(lambda: _alert_row(db, alert_id)), "the owner's alert was never recorded"
    async with StoreLink(stack, "S001") as hostile:
        clear = RestockCleared(**hostile.next_envelope(), alert_id=alert_id, sku=VELOCITY, on_hand=50, owed=0)
        made_up = RestockAlerted(**hostile.next_envelope(), alert_id=services.cloud.ids.new(), sku="NOPE-0001",
                                 on_hand=0, owed=0, reorder_point=1, target=2, suggested_qty=2)
        for message in (clear, made_up):
            await hostile.publish(message)

        async def refused():
            rows = await db.fetch("select reason from dead_letters where store_id = 'S001' and id > $1", since)
            reasons = " | ".join(r["reason"] for r in rows)
            return reasons if "S002's to clear" in reasons and "unknown product NOPE-0001" in reasons else None
        assert await eventually(refused, timeout_s=15), "the hostile store's restock events were not refused"
    row = await _alert_row(db, alert_id)
    assert row["store_id"] == "S002" and row["cleared_ms"] is None  # still the owner's, still open
    assert await db.fetchval("select count(*) from restock_alerts where sku = 'NOPE-0001'") == 0


async def _alert_row(db, alert_id: str):
    return await db.fetchrow("select * from restock_alerts where alert_id = $1", alert_id)


async def test_a_delivery_presale_waits_at_a_nearby_store_with_supply_due_and_cancelled_unpaid_holds_nothing(world):
    services, http, holder = world
    sku = "PAC-DUMPLI-0211"  # no store has any
    await _set_point(services, http, sku, 3, 6)
    assert await eventually(lambda: _listed(services, http, sku))
    here = services.cloud.world.stores[STORE]
    member = await customer(services, http)
    body = {"fulfilment": "delivery", "location": {"lat": here.lat, "lon": here.lon},
            "items": [{"sku": sku, "qty": 1}]}
    refused = await http.post("/orders", json={**body, "slot_start": _slot(1)},
                              headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert refused.status_code == 409 and refused.json()["presale_store"] == STORE, refused.text
    days = (datetime.fromisoformat(refused.json()["presale_available_from"]).astimezone(CHAIN_TZ).date()
            - datetime.now(CHAIN_TZ).date()).days
    placed = await http.post("/orders", json={**body, "slot_start": _slot(days), "presale": True},
                             headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["presale"]["store_id"] == STORE and order["stores"] == [STORE] and order["fulfilment"] == "delivery"
    r = await http.post(f"/orders/{order['order_id']}/cancel", json={"reason": "no longer needed"},
                        headers=member.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    rows = (await http.get(f"/stores/{STORE}/stock", params={"sku": sku})).json()["stock"]
    assert not rows or (rows[0]["reserved"], rows[0]["confirmed"]) == (0, 0)
    admin = await operator_headers(services)
    assert this_clouds((await http.get("/audit", headers=admin)).json()["violations"]) == []


async def test_a_transfer_in_transit_to_a_store_lets_it_presell_from_the_next_day(world):
    services, http, holder = world
    sku, to_store = "PAC-SOY-0212", "S003"  # S003 has none of it; this module's box (S004) sends some
    await holder.box.actor.ask("receive", sku=sku, qty=6)
    admin = await operator_headers(services)
    r = await http.post("/operator/transfers", headers=admin, json={
        "from_store": STORE, "to_store": to_store, "lines": [{"sku": sku, "qty": 3}], "reason": "pre-sale test"})
    assert r.status_code == 201, r.text
    transfer_id = r.json()["transfer_id"]
    async with holder.lane() as lane:
        async def to_dispatch():
            found = (await lane.get("/transfers", params={"status": "to_dispatch"})).json()["transfers"]
            return any(t["transfer_id"] == transfer_id for t in found)
        assert await eventually(to_dispatch), "the transfer never reached the sending store"
        member = await customer(services, http)
        body = {"fulfilment": "pickup", "store_id": to_store, "items": [{"sku": sku, "qty": 1}]}
        before = await http.post("/orders", json={**body, "slot_start": _slot(3), "presale": True},
                                 headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
        assert before.status_code == 409 and "no supply is due" in before.json()["detail"], before.text  # not sent yet
        r = await lane.post(f"/transfers/{transfer_id}/dispatch",
                            json={"lines": [{"sku": sku, "qty": 3}], "dispatched_by": "clerk-1"})
        assert r.status_code == 200, r.text
        assert await eventually(lambda: _drained(holder.box))

        async def offered():
            r = await http.post("/orders", json={**body, "slot_start": _slot(1)},
                                headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
            return r.json() if r.status_code == 409 and "presale_available_from" in r.json() else None
        offer = await eventually(offered)
        assert offer and offer["presale_store"] == to_store, offer
        tomorrow = datetime.now(CHAIN_TZ).date() + timedelta(days=1)
        assert datetime.fromisoformat(offer["presale_available_from"]).astimezone(CHAIN_TZ).date() == tomorrow
        placed = await http.post("/orders", json={**body, "slot_start": _slot(1), "presale": True},
                                 headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
        assert placed.status_code == 201 and placed.json()["presale"]["store_id"] == to_store, placed.text
        await _consistent(services, http, holder.box, lane, sku)


async def _paid_presale(services, http, sku: str, qty: int) -> tuple[dict, object]:
    """An alert for `sku` (none anywhere), and a pre-sale of `qty` at STORE, placed and paid: waiting for stock."""
    await _set_point(services, http, sku, 3, 6)
    assert await eventually(lambda: _listed(services, http, sku))
    member = await customer(services, http)
    refused = await _order(http, member, sku, qty)
    assert refused.status_code == 409 and refused.json()["presale_store"] == STORE, refused.text
    days = (datetime.fromisoformat(refused.json()["presale_available_from"]).astimezone(CHAIN_TZ).date()
            - datetime.now(CHAIN_TZ).date()).days
    placed = await _order(http, member, sku, qty, days=days, presale=True)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    await pay_by_wallet(services, http, member, order["order_id"])
    return order, member


async def test_two_allocations_of_one_paid_presale_at_once_reserve_it_once_and_release_the_other(world):
    """A bridge's trigger and the sweeper (or two bridges) reserving for the same pre-sale at once, each under its
    own attempt's ids: one keeps its reservation, the other releases its own (no escrow held forever)."""
    services, http, holder = world
    sku, presales = "PAC-SOY-0213", services.presales
    order, member = await _paid_presale(services, http, sku, 2)
    oid = order["order_id"]

    async def held_back() -> int:
        return 0
    # the receiving's trigger and the sweeper held back, so that the two runs below are the ones that race
    services.bridge.restock.presales = None
    presales.allocate_due = held_back
    try:
        await holder.box.actor.ask("receive", sku=sku, qty=10)
        assert await eventually(lambda: _online_units(http, sku, 4)), "the store's online share never came"
        lines = [{"sku": sku, "qty": 2}]
        won = await asyncio.gather(presales._allocate_one(STORE, oid, lines),  # noqa: SLF001 - the race itself
                                   presales._allocate_one(STORE, oid, lines))  # noqa: SLF001
    finally:
        del presales.allocate_due
        services.bridge.restock.presales = presales
    assert sorted(won) == [False, True]
    rows = (await http.get(f"/stores/{STORE}/stock", params={"sku": sku})).json()["stock"]
    assert (rows[0]["reserved"], rows[0]["confirmed"], rows[0]["available_online"]) == (0, 2, 2), rows
    view = (await http.get(f"/orders/{oid}", headers=member.headers)).json()
    assert [t["event"] for t in view["timeline"]].count("presale_reserved") == 1
    row = await services.cloud.db.fetchrow("select allocation from orders where order_id = $1", oid)
    assert [line["qty"] for line in json.loads(row["allocation"])[STORE]] == [2]
    admin = await operator_headers(services)
    assert this_clouds((await http.get("/audit", headers=admin)).json()["violations"]) == []


async def test_a_paid_presale_whose_supply_never_comes_is_cancelled_and_refunded_after_its_grace(world):
    services, http, _ = world
    sku, presales, db = "PAC-SOY-0214", services.presales, services.cloud.db
    order, member = await _paid_presale(services, http, sku, 1)
    oid = order["order_id"]
    end_overdue = presales.end_overdue

    async def held_back(now_ms: int) -> int:
        return 0
    presales.end_overdue = held_back  # the sweeper's round held back: this test's calls are the ones that count
    try:
        assert await end_overdue(services.cloud.now_ms()) == 0  # its due day is still to come
        past = (datetime.now(CHAIN_TZ).date() - timedelta(days=rules.PRESALE_GRACE_DAYS + 1)).isoformat()
        await db.execute("update presale_orders set due_day = $2 where order_id = $1", oid, past)
        assert await end_overdue(services.cloud.now_ms()) == 1
        assert await end_overdue(services.cloud.now_ms()) == 0  # once
    finally:
        del presales.end_overdue
    view = (await http.get(f"/orders/{oid}", headers=member.headers)).json()
    assert view["status"] == "cancelled"
    cancel = next(t for t in view["timeline"] if t["event"] == "cancel")
    assert "supply" in cancel["detail"]["reason"] and past in cancel["detail"]["reason"]
    refund = await services.orders.payments.get(refund_id(oid))
    assert refund is not None and refund["state"] in ("requested", "done"), refund
    assert await db.fetchval("select allocated_ms from presale_orders where order_id = $1", oid) == 0
    rows = (await http.get(f"/stores/{STORE}/stock", params={"sku": sku})).json()["stock"]
    assert not rows or (rows[0]["reserved"], rows[0]["confirmed"]) == (0, 0)
    admin = await operator_headers(services)
    assert this_clouds((await http.get("/audit", headers=admin)).json()["violations"]) == []


async def test_an_alert_asks_the_nearest_store_with_a_surplus_for_a_transfer_once(world):
    """A shortage moves stock between stores: the alert at S004 asks a store that reported a surplus of the SKU
    (S005 here: its last on-hand as its box would report it, 500, and HQ's target there 490, so 10 to spare) for what
    it can give, once; the supplier's suggested order covers only the rest. S005's box does not run in this module:
    HQ takes the request back and the test consumes what S005's stream was told, so no later module's S005 box
    finds a transfer of this module waiting to be dispatched."""
    services, http, holder = world
    box, sku = holder.box, "PAC-BREAD-0222"  # no other module holds it anywhere: S005's is the only surplus
    conn = await asyncpg.connect(holder.stack.database_url)
    try:
        await conn.execute("insert into store_stock (store_id, sku, on_hand, updated_ms, seq) values ('S005', $1, "
                           "500, 0, 0) on conflict (store_id, sku) do update set on_hand = 500", sku)
        await conn.execute("insert into reorder_points (store_id, sku, reorder_point, target, version, updated_ms, "
                           "updated_by) values ('S005', $1, 400, 490, 1, 0, 'test') on conflict (store_id, sku) do "
                           "update set reorder_point = 400, target = 490", sku)
        async with holder.lane() as lane:
            await box.actor.ask("receive", sku=sku, qty=10)
            await _set_point(services, http, sku, 5, 20)
            assert await eventually(lambda: _box_point(box, sku))
            await sell(lane, sku, 6)  # 4 left: below the point, an alert for 16
            await sell(lane, sku, 1)  # still below: no second alert, no second transfer

            async def asked():
                rows = await conn.fetch("select * from transfers where to_store = $1 and origin = 'restock' and "
                                        "lines @> $2::jsonb", STORE, json.dumps([{"sku": sku}]))
                return rows or None
            rows = await eventually(asked)
            assert await eventually(lambda: _drained(box))  # the second sale's batch has been applied too
            rows = await asked()
            assert len(rows) == 1, rows
            # S005 keeps its own target: 10 of the 16, never below its point; the supplier is asked for the rest
            assert rows[0]["from_store"] == "S005" and json.loads(rows[0]["lines"]) == [{"sku": sku, "qty": 10}]
            assert rows[0]["status"] == "requested" and "restock alert" in rows[0]["reason"]
            (alert,), view = await _cloud_alerts(services, http, sku)
            # to the target 20 from the 3 on hand now: 17, of which S005 sends 10
            assert (alert["on_hand"], alert["incoming_transfers"], alert["suggested_qty"]) == (3, 10, 7)
            ordered = [x for o in view["suggested_orders"] for x in o["lines"] if x["sku"] == sku]
            assert [(x["store_id"], x["qty"]) for x in ordered] == [(STORE, 7)]
            await _consistent(services, http, box, lane, sku)
            r = await http.post(f"/operator/transfers/{rows[0]['transfer_id']}/cancel", json={"reason": "test over"},
                                headers=await operator_headers(services))
            assert r.status_code == 200, r.text
        # what S005 was told (dispatch this, then: cancelled) is consumed here, not by a later module's S005 box
        async with StoreLink(holder.stack, "S005") as s005:
            told = await s005.commands(want=1_000, timeout_s=60, until=lambda m: isinstance(m, TransferCancelled)
                                       and m.transfer_id == rows[0]["transfer_id"])
        assert any(isinstance(m, TransferCancelled) and m.transfer_id == rows[0]["transfer_id"] for m in told)
    finally:
        await conn.execute("delete from store_stock where store_id = 'S005' and sku = $1", sku)
        await conn.execute("delete from reorder_points where store_id = 'S005' and sku = $1", sku)
        await conn.close()


async def test_a_suggested_order_is_whole_supplier_packs_at_the_box_and_in_the_cloud(world):
    """PAC-RICE-0201 comes in packs of 10 (the catalogue's pack_size): 16 short of the target is ordered as 2 packs,
    20 pieces, at the box's alert and on HQ's suggested order per supplier; receiving them clears the alert."""
    services, http, holder = world
    box, sku = holder.box, "PAC-RICE-0201"  # no other module sells it
    assert product(sku)["pack_size"] == 10
    async with holder.lane() as lane:
        await box.actor.ask("receive", sku=sku, qty=10)
        await _set_point(services, http, sku, 5, 20)
        assert await eventually(lambda: _box_point(box, sku))
        await sell(lane, sku, 6)  # 4 left: 16 to the target, 2 packs
        (alert,) = await _open_alerts(lane, sku)
        assert alert["suggested_qty"] == 20
        async def listed():
            found, view = await _cloud_alerts(services, http, sku)
            return (found, view) if found else None
        found, view = await eventually(listed)
        assert (found[0]["suggested_qty"], found[0]["pack_size"], found[0]["packs"]) == (20, 10, 2)
        line = next(x for o in view["suggested_orders"] if o["supplier"] == SUPPLIER for x in o["lines"]
                    if x["sku"] == sku)
        assert (line["qty"], line["unit"], line["pack_size"], line["packs"], line["value_fen"]) == (
            20, "piece", 10, 2, 20 * product(sku)["cost_fen"])
        await box.actor.ask("receive", sku=sku, qty=20)
        assert await _open_alerts(lane, sku) == []
        assert await eventually(lambda: _closed_in_cloud(services, http, sku))
        await _consistent(services, http, box, lane, sku)
