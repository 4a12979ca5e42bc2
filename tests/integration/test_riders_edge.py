"""A store box's part in deliveries, over the real stack: goods no rider could deliver come back to the store
(DeliveryReturned over NATS) and staff book them on hand or to shrinkage (StockMoved through the outbox, exactly once);
the store's own staff deliver instead of a rider (StaffDelivery events move the cloud's order)."""
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
from tests.integration.harness import (
    customer,
    eventually,
    operator_headers,
    running_cloud,
    this_clouds,
    top_up,
)

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
CN = timezone(timedelta(hours=8))
STORE = "S005"
OP: dict[str, str] = {}


def piece() -> str:
    return [p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and "online" in p["channels"]
            ][7]["sku"]


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"ride{uuid.uuid4().hex[:6]}-") as (services, url):
        OP.update(await operator_headers(services))
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": stack.nats_address, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        # other modules spoke as this store before (the test database is shared): a store's seqs only grow
        conn = await asyncpg.connect(stack.database_url)
        try:
            box.actor.last_seq = max(box.actor.last_seq, await conn.fetchval(
                "select coalesce(max(seq), 0) from edge_events where store_id = $1", STORE))
        finally:
            await conn.close()
        async with httpx.AsyncClient(base_url=url, timeout=30) as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://box") as lane:
            assert await eventually(lambda: _online(box), timeout_s=15)
            await box.actor.ask("receive", sku=piece(), qty=50)  # 40% of it granted to the cloud for online orders

            async def granted():
                stock = (await http.get(f"/stores/{STORE}/stock")).json()["stock"]
                return any(r["sku"] == piece() and r["escrow"] == 20 for r in stock)
            assert await eventually(granted, timeout_s=15)
            yield services, http, box, lane
        await box.stop()


async def _online(box):
    return box.actor.online


async def ready_order(world, outcomes: list[str]) -> tuple[dict, object]:
    """A paid delivery order, picked at the store box (so its stock left the shelf) and so ready for a rider."""
    services, http, box, lane = world
    member = await customer(services, http)
    await top_up(services, http, member, 20_000)
    store = next(s for s in (await http.get("/stores")).json()["stores"] if s["store_id"] == STORE)
    slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=15, minute=0, second=0, microsecond=0).isoformat()
    r = await http.post("/orders", json={"fulfilment": "delivery", "slot_start": slot,
                                         "location": {"lat": store["lat"] + 0.005, "lon": store["lon"]},
                                         "items": [{"sku": piece(), "qty": 2}]},
                        headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert r.status_code == 201, r.text
    order = r.json()
    oid = order["order_id"]
    async with httpx.AsyncClient(base_url=services.deliveries.platform.sim.url) as platform:
        await platform.post("/sim/script", json={"origin_id": oid, "outcomes": outcomes})
    paid = await http.post(f"/orders/{oid}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.status_code == 200, paid.text
    # picked at the box: the goods leave its shelf (what a failed delivery brings back) and the cloud makes the
    # order ready, which dispatches the rider
    assert await eventually(lambda: box_order(box, oid, "to_pick"), timeout_s=15), "the order never reached the store"
    assert (await lane.post(f"/picking/orders/{oid}/start")).status_code == 200
    assert (await lane.post(f"/picking/orders/{oid}/lines/{piece()}", json={"qty": 2})).status_code == 200
    done = await lane.post(f"/picking/orders/{oid}/done")
    assert done.status_code == 200 and done.json()["status"] == "picked", done.text
    return order, member


async def status_at(http, member, order_id: str, status: str) -> bool:
    return (await http.get(f"/orders/{order_id}", headers=member.headers)).json()["status"] == status


async def box_order(box, order_id: str, status: str):
    found = await box.store_db.order(order_id)
    return found if found and found[0] == status else None


async def cloud_agrees(http, box) -> dict | None:
    """The cloud's on-hand of the SKU equals the box's, once the outbox drained."""
    level = await box.store_db.stock_level(piece())
    if await box.store_db.outbox_depth():
        return None
    stock = {r["sku"]: r for r in (await http.get(f"/stores/{STORE}/stock")).json()["stock"]}
    row = stock.get(piece())
    return row if row and row["on_hand"] == level.on_hand else None


async def own_violations(http, order_ids: list[str]) -> list[str]:
    found = this_clouds((await http.get("/audit", headers=OP)).json()["violations"])
    return [v for v in found if not v.startswith("money:") or any(o in v for o in order_ids)]


@pytest.mark.parametrize(("to", "reason"), [("stock", ""), ("shrinkage", "damaged")])
async def test_goods_no_rider_could_deliver_are_booked_back_once(world, stack, to, reason):
    services, http, box, lane = world
    order, member = await ready_order(world, ["no_rider", "no_rider"])
    oid = order["order_id"]
    assert await eventually(lambda: status_at(http, member, oid, "refunded"), timeout_s=20)
    assert await eventually(lambda: box_order(box, oid, "returned"), timeout_s=15), "the store was never told"
    # staff find the goods to book on the box's own list, with the order's lines
    back = (await lane.get("/deliveries", params={"status": "returned"})).json()["deliveries"]
    mine = [d for d in back if d["order_id"] == oid]
    assert mine and mine[0]["lines"] == [{"sku": piece(), "qty": 2, "unit": "piece"}], back
    before = (await box.store_db.stock_level(piece())).on_hand
    booked = await lane.post(f"/deliveries/{oid}/returned", json={"to": to, "reason": reason})
    assert booked.status_code == 200, booked.text
    expected = before + 2 if to == "stock" else before  # shrinkage: back on hand, then out again with its reason
    assert booked.json() == {"order_id": oid, "status": f"returned_to_{to}", "on_hand": {piece(): expected}}
    again = await lane.post(f"/deliveries/{oid}/returned", json={"to": to, "reason": reason})
    assert again.status_code == 200 and again.json()["status"] == f"returned_to_{to}"
    assert (await box.store_db.stock_level(piece())).on_hand == expected  # nothing moved twice
    assert oid not in [d["order_id"] for d in (await lane.get("/deliveries")).json()["deliveries"]]  # booked: gone
    booked_list = (await lane.get("/deliveries", params={"status": f"returned_to_{to}"})).json()["deliveries"]
    assert oid in [d["order_id"] for d in booked_list]
    assert await eventually(lambda: cloud_agrees(http, box), timeout_s=15)
    conn = await asyncpg.connect(stack.database_url)
    try:
        moves = await conn.fetch("select reason, delta, shrinkage_reason from stock_movements where store_id = $1 and "
                                 "reference = $2 order by wall_ms, delta desc", STORE, oid)
    finally:
        await conn.close()
    want = [("pick", -2, ""), ("return", 2, "")] + ([("shrinkage", -2, reason)] if to == "shrinkage" else [])
    assert [(m["reason"], m["delta"], m["shrinkage_reason"]) for m in moves] == want
    assert await own_violations(http, [oid]) == []


async def test_booking_goods_that_did_not_come_back_is_refused(world):
    services, http, box, lane = world
    r = await lane.post("/deliveries/no-such-order/returned", json={"to": "stock"})
    assert r.status_code == 404 and "no order" in r.json()["detail"]
    bad = await lane.post("/deliveries/no-such-order/returned", json={"to": "the-bin"})
    assert bad.status_code == 422 and "to: stock or shrinkage" in bad.json()["detail"]
    listed = await lane.get("/deliveries", params={"status": "lost"})
    assert listed.status_code == 422 and "status: one of returned" in listed.json()["detail"]


async def test_the_stores_own_staff_deliver_instead_of_a_rider(world):
    services, http, box, lane = world
    order, member = await ready_order(world, ["silent"])  # the platform is still looking for a rider
    oid = order["order_id"]
    early = await lane.post(f"/deliveries/{oid}/delivered", json={"staff_id": "li-lei"})
    assert early.status_code == 409 and "own-staff" in early.json()["detail"]
    out = await lane.post(f"/deliveries/{oid}/own-staff", json={"staff_id": "li-lei"})
    assert out.status_code == 200 and out.json()["status"] == "out_with_staff", out.text
    assert (await lane.post(f"/deliveries/{oid}/own-staff", json={"staff_id": "li-lei"})).json()["status"] == \
        "out_with_staff"
    assert await eventually(lambda: status_at(http, member, oid, "out_for_delivery"), timeout_s=15)
    rider_try = await services.cloud.db.fetchrow("select * from deliveries where order_id = $1 and attempt = 1", oid)
    assert rider_try["status"] == "cancelled" and rider_try["reason"] == "own_staff"
    withdrawn = await services.deliveries.platform.query(rider_try["platform_order_id"])
    assert withdrawn["status"] == "cancelled"  # no rider comes for goods that left with staff
    done = await lane.post(f"/deliveries/{oid}/delivered", json={"staff_id": "li-lei"})
    assert done.status_code == 200 and done.json()["status"] == "delivered_by_staff"
    assert await eventually(lambda: status_at(http, member, oid, "delivered"), timeout_s=15)
    timeline = (await http.get(f"/orders/{oid}", headers=member.headers)).json()["timeline"]
    staff = [e for e in timeline if e.get("detail", {}).get("by") == "own_staff"]
    assert [e["event"] for e in staff] == ["hand_to_rider", "deliver"]
    assert all(e["detail"]["staff_id"] == "li-lei" and e["store_id"] == STORE for e in staff)
    assert await eventually(lambda: _drained(box))
    assert await own_violations(http, [oid]) == []


async def _drained(box):
    return await box.store_db.outbox_depth() == 0
