"""Flash-sale orders as real orders of real stores, over the real stack: a store box (its own SQLite, NATS user and
lane API) grants escrow, the sale takes its units from there, an accepted order is assigned to the store, paid, sent
to the box and picked up at its till; an unpaid one expires and its unit goes back on sale; a sale the escrow cannot
cover is refused."""
from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn

from cloud.embedded.process import free_port
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.messages import EscrowGranted, StockMoved
from tests.integration.harness import (
    StoreLink,
    customer,
    eventually,
    operator_headers,
    running_cloud,
    this_clouds,
    top_up,
)

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE, OTHER = "S005", "S004"  # stores of the default world; products no other module moves there
PAY_WINDOW_MS = 6_000  # the cloud's reservation TTL here: a flash order's payment deadline after its assignment


def pieces() -> list[str]:
    return [p["sku"] for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece"
            and "online" in p["channels"]]


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"fso{uuid.uuid4().hex[:6]}-", reservation_ttl_ms=PAY_WINDOW_MS) as (
            services, url):
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": stack.nats_address,
                  "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        async with httpx.AsyncClient(base_url=url, timeout=20) as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _online(box), timeout_s=10)
            yield services, http, box, lane, await operator_headers(services)
        await box.stop()


async def _online(box):
    return box.actor.online


async def escrow_at_box(services, http, box, sku: str, receive: int) -> int:
    """The box receives `receive` units; it grants the cloud its online share; returns the escrow the cloud shows."""
    await box.actor.ask("receive", sku=sku, qty=receive)
    expected = (await box.store_db.stock_level(sku)).escrow

    async def cloud_escrow():
        return await cloud_stock(http, STORE, sku, "escrow") == expected
    assert await eventually(cloud_escrow), "the box's grant did not reach the cloud"
    return expected


async def cloud_stock(http, store: str, sku: str, field: str) -> int | None:
    rows = {r["sku"]: r for r in (await http.get(f"/stores/{store}/stock")).json()["stock"]}
    return rows.get(sku, {}).get(field)


async def open_sale(http, op, sku: str, quantity: int, stores, limit: int = 1) -> httpx.Response:
    now = datetime.now(UTC)
    return await http.post("/flash-sales", headers=op, json={
        "sku": sku, "quantity": quantity, "price_fen": 300, "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(), "per_member_limit": limit, "rate_per_s": 10_000,
        "stores": stores})


def buy(services, http, sale_id: str, member_id: str, key: str | None = None):
    pass_token = services.passes.issue(member_id)[0]
    return http.post(f"/flash-sales/{sale_id}/orders", json={"qty": 1},
                     headers={"Authorization": f"Bearer {pass_token}", "Idempotency-Key": key or uuid.uuid4().hex})


async def assigned(http, member, order_id: str) -> dict | None:
    async def check():
        body = (await http.get(f"/orders/{order_id}", headers=member.headers)).json()
        return body if body.get("pickup_code") else None
    return await eventually(check)


async def sale_violations(http, op, sale_id: str) -> list[str]:
    report = (await http.get("/audit", headers=op)).json()
    return [v for v in this_clouds(report["violations"], (sale_id,)) if sale_id in v or not v.startswith("flash")]


async def test_a_sale_the_stores_escrow_cannot_cover_is_refused_naming_each_stores_units(world, stack):
    services, http, box, _, op = world
    sku = pieces()[-1]
    at_box = await escrow_at_box(services, http, box, sku, 20)
    async with StoreLink(stack, OTHER) as other:  # a second store grants 2 of the same product
        await other.publish(StockMoved(**other.next_envelope(), sku=sku, delta=10, reason="receiving",
                                       shrinkage_reason="", on_hand_after=10, reference=""))
        await other.publish(EscrowGranted(**other.next_envelope(), sku=sku, qty=2, escrow_after=2))

    async def granted():
        return await cloud_stock(http, OTHER, sku, "escrow") == 2
    assert await eventually(granted)
    short = await open_sale(http, op, sku, at_box + 3, [STORE, OTHER])
    assert short.status_code == 409 and short.headers["content-type"] == "application/problem+json"
    detail = short.json()["detail"]
    assert f"{OTHER} 2" in detail and f"{STORE} {at_box}" in detail and str(at_box + 3) in detail, detail
    assert short.json()["available"] == {STORE: at_box, OTHER: 2}
    # nothing was held by the refused sale
    assert await cloud_stock(http, STORE, sku, "available_online") == at_box and await cloud_stock(http, OTHER, sku,
                                                                                            "available_online") == 2
    unknown = await open_sale(http, op, sku, 1, ["S999"])
    assert unknown.status_code == 422 and "S999" in unknown.json()["detail"]
    bad = await open_sale(http, op, sku, 1, "all of them")
    assert bad.status_code == 422 and "stores" in bad.json()["detail"]
    # the whole chain covers it: the fullest store first, the rest from the other
    chain = await open_sale(http, op, sku, at_box + 1, "chain")
    assert chain.status_code == 201, chain.text
    assert chain.json()["stores"] == {STORE: at_box, OTHER: 1}
    assert await cloud_stock(http, STORE, sku, "available_online") == 0 and await cloud_stock(http, OTHER, sku,
                                                                                       "available_online") == 1


async def test_a_flash_order_is_assigned_paid_sent_to_its_store_and_picked_up_at_the_till(world):
    services, http, box, lane, op = world
    sku = pieces()[-2]
    await escrow_at_box(services, http, box, sku, 20)
    created = await open_sale(http, op, sku, 2, [STORE])
    assert created.status_code == 201, created.text
    sale_id = created.json()["sale_id"]
    member = await customer(services, http)
    assert (await top_up(services, http, member, 10_000))["stored_value_fen"] == 10_000
    accepted = await buy(services, http, sale_id, member.member_id)
    assert accepted.status_code == 201, accepted.text
    order_id = accepted.json()["order_id"]

    order = await assigned(http, member, order_id)
    assert order, "the flash order was never assigned to a store"
    assert order["stores"] == [STORE] and len(order["pickup_code"]) == 8 and order["status"] == "reserved"
    assert order["expires_at"] is not None and order["fulfilment"] == "pickup"
    created_steps = [s for s in order["timeline"] if s["event"] == "created"]
    assert created_steps and created_steps[0]["store_id"] == STORE and created_steps[0]["detail"]["sale_id"] == sale_id

    paid = await http.post(f"/orders/{order_id}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
    assert await cloud_stock(http, STORE, sku, "confirmed") == 1

    async def at_the_box():
        async with box.store_db.reader.execute("select status from orders where order_id = ?", (order_id,)) as cur:
            return await cur.fetchone()
    assert await eventually(at_the_box), "the order to fulfil did not reach the store"
    picked = await lane.post(f"/pickups/{order['pickup_code']}")
    assert picked.status_code == 200 and picked.json() == {"order_id": order_id, "status": "picked_up"}

    async def picked_up():
        return (await http.get(f"/orders/{order_id}", headers=member.headers)).json()["status"] == "picked_up"
    assert await eventually(picked_up)
    level = await box.store_db.stock_level(sku)

    async def agree():  # the box's stock and the cloud's view of it, after the pickup's events arrived
        return (await cloud_stock(http, STORE, sku, "on_hand"), await cloud_stock(http, STORE, sku, "escrow")) == (
            level.on_hand, level.escrow)
    assert await eventually(agree), (level, (await http.get(f"/stores/{STORE}/stock")).json())
    assert level.on_hand == 19
    assert await cloud_stock(http, STORE, sku, "confirmed") == 0 and await cloud_stock(http, STORE, sku, "reserved") == 1
    status = (await http.get(f"/flash-sales/{sale_id}")).json()
    assert (status["sold"], status["remaining"]) == (1, 1)
    assert await sale_violations(http, op, sale_id) == []


async def test_an_unpaid_flash_order_expires_and_its_unit_goes_back_on_sale(world):
    services, http, box, _, op = world
    sku = pieces()[-3]
    await escrow_at_box(services, http, box, sku, 20)
    sale_id = (await open_sale(http, op, sku, 2, [STORE])).json()["sale_id"]
    late, other, third = await customer(services, http), await customer(services, http), await customer(services, http)
    first = await buy(services, http, sale_id, late.member_id)
    assert first.status_code == 201
    order_id = first.json()["order_id"]
    again = await buy(services, http, sale_id, late.member_id)
    assert again.status_code == 403  # one per member
    kept = await buy(services, http, sale_id, other.member_id)
    assert kept.status_code == 201
    assert (await buy(services, http, sale_id, third.member_id)).status_code == 409  # sold out
    assert await assigned(http, late, order_id)
    assert await cloud_stock(http, STORE, sku, "reserved") == 2  # the block: both units carved out to the orders
    # the other member pays, so theirs is the one unit that stays sold: an unpaid second order would expire a moment
    # after the first and put a second unit back on sale (a slow run saw the third member buy it)
    assert await assigned(http, other, kept.json()["order_id"])
    await top_up(services, http, other, 1_000)
    paid = await http.post(f"/orders/{kept.json()['order_id']}/pay", json={"method": "stored_value"},
                           headers=other.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text

    async def expired():
        return (await http.get(f"/orders/{order_id}", headers=late.headers)).json()["status"] == "expired"
    assert await eventually(expired, timeout_s=PAY_WINDOW_MS / 1000 + 10)

    async def back_on_sale():
        return (await http.get(f"/flash-sales/{sale_id}")).json()["remaining"] == 1
    assert await eventually(back_on_sale), (await http.get(f"/flash-sales/{sale_id}")).json()
    status = (await http.get(f"/flash-sales/{sale_id}")).json()
    assert (status["sold"], status["returned"]) == (1, 1)
    assert await sale_violations(http, op, sale_id) == []
    # the unit is sold again: to the member who let it expire (their limit released), then nobody else. The API
    # worker hears of the return at its next sync with the gate (within IDLE_SYNC_MS): until then it still answers
    # from what it knew, so the member retries, with the same key, as a client does
    retry_key = uuid.uuid4().hex

    async def bought_again():
        answer = await buy(services, http, sale_id, late.member_id, key=retry_key)
        return answer if answer.status_code == 201 else None
    rebuy = await eventually(bought_again, timeout_s=5)
    assert rebuy, "the member could not buy the returned unit"
    assert rebuy.json()["order_id"] != order_id
    assert (await buy(services, http, sale_id, third.member_id)).status_code == 409
    assert await assigned(http, late, rebuy.json()["order_id"])
    # the store's escrow never moved: the units went from the block to the orders and back, one of them paid
    assert (await cloud_stock(http, STORE, sku, "reserved"), await cloud_stock(http, STORE, sku, "confirmed")) == (1, 1)
    assert await sale_violations(http, op, sale_id) == []


async def test_cancelling_a_paid_flash_order_refunds_it_and_puts_the_unit_back_on_sale(world):
    services, http, box, _, op = world
    sku = pieces()[-4]
    await escrow_at_box(services, http, box, sku, 20)
    sale_id = (await open_sale(http, op, sku, 1, [STORE])).json()["sale_id"]
    member = await customer(services, http)
    await top_up(services, http, member, 1_000)
    order_id = (await buy(services, http, sale_id, member.member_id)).json()["order_id"]
    assert await assigned(http, member, order_id)
    paid = await http.post(f"/orders/{order_id}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.json()["status"] == "paid"
    cancelled = await http.post(f"/orders/{order_id}/cancel", json={"reason": "changed my mind"}, headers=member.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    me = (await http.get(f"/members/{member.member_id}", headers=member.headers)).json()
    assert me["stored_value_fen"] == 1_000

    async def back_on_sale():
        return (await http.get(f"/flash-sales/{sale_id}")).json()["remaining"] == 1
    assert await eventually(back_on_sale)
    assert await cloud_stock(http, STORE, sku, "confirmed") == 0 and await cloud_stock(http, STORE, sku, "reserved") == 1
    assert await sale_violations(http, op, sale_id) == []


async def test_an_order_no_single_store_can_serve_ends_and_its_units_go_back_on_sale(world, stack):
    """Blocks of 8 (the box's store) and 1 (another store): after 7 go to one buyer, 2 units are left, one in each
    store's block; an order for 2 cannot be served by one store, so it ends (expired, saying why) instead of waiting
    forever, and its units sell again."""
    services, http, box, _, op = world
    sku = pieces()[-5]
    at_box = await escrow_at_box(services, http, box, sku, 20)
    async with StoreLink(stack, OTHER) as other:
        await other.publish(StockMoved(**other.next_envelope(), sku=sku, delta=10, reason="receiving",
                                       shrinkage_reason="", on_hand_after=10, reference=""))
        await other.publish(EscrowGranted(**other.next_envelope(), sku=sku, qty=1, escrow_after=1))

    async def granted():
        return await cloud_stock(http, OTHER, sku, "escrow") == 1
    assert await eventually(granted)
    created = await open_sale(http, op, sku, at_box + 1, [STORE, OTHER], limit=at_box + 1)
    assert created.status_code == 201 and created.json()["stores"] == {STORE: at_box, OTHER: 1}, created.text
    sale_id = created.json()["sale_id"]
    big, pair, single = await customer(services, http), await customer(services, http), await customer(services, http)

    def order_of(member, qty):
        return http.post(f"/flash-sales/{sale_id}/orders", json={"qty": qty}, headers={
            "Authorization": f"Bearer {services.passes.issue(member.member_id)[0]}", "Idempotency-Key": uuid.uuid4().hex})
    first = await order_of(big, at_box - 1)
    assert first.status_code == 201 and (await assigned(http, big, first.json()["order_id"]))["stores"] == [STORE]
    two = await order_of(pair, 2)
    assert two.status_code == 201, two.text

    async def ended():
        body = (await http.get(f"/orders/{two.json()['order_id']}", headers=pair.headers)).json()
        return body if body["status"] == "expired" else None
    body = await eventually(ended)
    assert body, "the order that no store could serve never ended"
    reason = body["timeline"][-1]["detail"]["reason"]
    assert "no store of the sale has 2 units left together" in reason and f"{STORE} 1" in reason and f"{OTHER} 1" in reason

    async def back_on_sale():
        return (await http.get(f"/flash-sales/{sale_id}")).json()["remaining"] == 2
    assert await eventually(back_on_sale)

    async def bought_one():
        answer = await order_of(single, 1)
        return answer if answer.status_code == 201 else None
    one = await eventually(bought_one, timeout_s=5)
    assert one and (await assigned(http, single, one.json()["order_id"]))["stores"] in ([STORE], [OTHER])
    assert await sale_violations(http, op, sale_id) == []


async def test_a_flash_order_assigned_to_a_store_is_picked_there_like_any_order(world):
    """The box gets an assigned flash order as an ordinary pick ticket: its picking is believed (before, every flash
    order's OrderPicked was refused: the order stayed paid and the two escrows could disagree)."""
    services, http, box, lane, op = world
    sku = pieces()[-6]
    await escrow_at_box(services, http, box, sku, 20)
    created = await open_sale(http, op, sku, 1, [STORE])
    assert created.status_code == 201, created.text
    sale_id = created.json()["sale_id"]
    member = await customer(services, http)
    await top_up(services, http, member, 10_000)
    accepted = await buy(services, http, sale_id, member.member_id)
    assert accepted.status_code == 201, accepted.text
    order_id = accepted.json()["order_id"]
    order = await assigned(http, member, order_id)
    assert order, "the flash order was never assigned to a store"
    paid = await http.post(f"/orders/{order_id}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.status_code == 200, paid.text

    async def at_the_box():
        return any(o["order_id"] == order_id for o in (await box.actor.ask("pick_list"))["orders"])
    assert await eventually(at_the_box), "the order to fulfil did not reach the store"
    assert (await lane.post(f"/picking/orders/{order_id}/start")).status_code == 200
    assert (await lane.post(f"/picking/orders/{order_id}/lines/{sku}", json={"qty": 1})).status_code == 200
    assert (await lane.post(f"/picking/orders/{order_id}/done")).json()["status"] == "picked"

    async def ready():
        return (await http.get(f"/orders/{order_id}", headers=member.headers)).json()["status"] == "ready"
    assert await eventually(ready, timeout_s=15), (await http.get(f"/orders/{order_id}", headers=member.headers)).json()
    assert (await lane.post(f"/pickups/{order['pickup_code']}")).json()["status"] == "picked_up"

    async def picked_up():
        return (await http.get(f"/orders/{order_id}", headers=member.headers)).json()["status"] == "picked_up"
    assert await eventually(picked_up)
    level = await box.store_db.stock_level(sku)

    async def agree():
        return (await cloud_stock(http, STORE, sku, "on_hand"), await cloud_stock(http, STORE, sku, "escrow")) == (
            level.on_hand, level.escrow)
    assert await eventually(agree), (level, (await http.get(f"/stores/{STORE}/stock")).json())
    assert level.on_hand == 19 and await cloud_stock(http, STORE, sku, "confirmed") == 0


async def test_a_flash_order_collected_right_after_its_picking_ends_picked_up_in_the_cloud(world):
    """The fan reaches the till as the back room finishes: the box's PickingStarted, OrderPicked and PickupCompleted
    reach the cloud close together (often in one bridge batch). The cloud ends the order picked_up, as the box did,
    and believes every one of them (no dead letter): the pickup is judged and applied after the picking before it."""
    services, http, box, lane, op = world
    sku = pieces()[-7]
    await escrow_at_box(services, http, box, sku, 20)
    created = await open_sale(http, op, sku, 1, [STORE])
    assert created.status_code == 201, created.text
    sale_id = created.json()["sale_id"]
    member = await customer(services, http)
    await top_up(services, http, member, 10_000)
    accepted = await buy(services, http, sale_id, member.member_id)
    assert accepted.status_code == 201, accepted.text
    order_id = accepted.json()["order_id"]
    order = await assigned(http, member, order_id)
    assert order, "the flash order was never assigned to a store"
    paid = await http.post(f"/orders/{order_id}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.status_code == 200, paid.text

    async def at_the_box():
        return any(o["order_id"] == order_id for o in (await box.actor.ask("pick_list"))["orders"])
    assert await eventually(at_the_box), "the order to fulfil did not reach the store"
    assert (await lane.post(f"/picking/orders/{order_id}/start")).status_code == 200
    assert (await lane.post(f"/picking/orders/{order_id}/lines/{sku}", json={"qty": 1})).status_code == 200
    assert (await lane.post(f"/picking/orders/{order_id}/done")).json()["status"] == "picked"
    assert (await lane.post(f"/pickups/{order['pickup_code']}")).json()["status"] == "picked_up"

    async def settled():
        return (await http.get(f"/orders/{order_id}", headers=member.headers)).json()["status"] not in (
            "paid", "picking")
    assert await eventually(settled, timeout_s=15)

    async def picked_up():
        return (await http.get(f"/orders/{order_id}", headers=member.headers)).json()["status"] == "picked_up"
    assert await eventually(picked_up, timeout_s=10), (
        (await http.get(f"/orders/{order_id}", headers=member.headers)).json(),
        [dict(r) for r in await services.cloud.db.fetch(
            "select store_id, reason from dead_letters where reason like $1", f"%{order_id}%")])


async def test_a_flash_fan_collects_the_unit_a_short_store_rerouted_and_the_order_ends_picked_up(world, stack,
                                                                                                 tmp_path):
    """The demo's flash orders left `ready` although their fans' till pickups answered 200: the back room picked the
    unit short, the cloud re-routed it to another store with escrow (a second part of the order, same pickup code),
    and the fan handed over the empty first part and went home, so the re-routed part waited at the other store for
    ever. A fan (`simulators.flash_fans`) now collects at every store the order names, and the order ends
    picked_up - both stores' parts handed over, both boxes' stock and the cloud agreeing."""
    from loadtest.http import LeanClients
    from simulators.flash_fans import FlashFans

    services, http, box, lane, op = world
    sku = pieces()[-8]
    await escrow_at_box(services, http, box, sku, 20)
    config = {"store_id": OTHER, "data_dir": str(tmp_path / "other"), "world": str(WORLD),
              "nats_url": stack.nats_address, "nats_password": stack.store_credentials(OTHER)[1]}
    other = await EdgeBox(config).start()
    servers = []
    try:
        assert await eventually(lambda: _online(other), timeout_s=10)
        await other.actor.ask("receive", sku=sku, qty=20)
        other_escrow = (await other.store_db.stock_level(sku)).escrow

        async def granted():
            return await cloud_stock(http, OTHER, sku, "escrow") == other_escrow
        assert await eventually(granted), "the other box's grant did not reach the cloud"
        urls = {}
        for store, b in ((STORE, box), (OTHER, other)):
            port = free_port()
            server = uvicorn.Server(uvicorn.Config(build_lane_app(b), host="127.0.0.1", port=port,
                                                   log_level="warning", lifespan="off"))
            servers.append((server, asyncio.create_task(server.serve())))
            urls[store] = f"http://127.0.0.1:{port}"
        while not all(s.started for s, _ in servers):
            await asyncio.sleep(0.02)
        created = await open_sale(http, op, sku, 1, [STORE])
        assert created.status_code == 201, created.text
        fan = await customer(services, http)
        await top_up(services, http, fan, 10_000)
        accepted = await buy(services, http, created.json()["sale_id"], fan.member_id)
        assert accepted.status_code == 201, accepted.text
        order_id = accepted.json()["order_id"]
        order = await assigned(http, fan, order_id)
        assert order and order["stores"] == [STORE], order
        paid = await http.post(f"/orders/{order_id}/pay", json={"method": "stored_value"}, headers=fan.headers)
        assert paid.status_code == 200, paid.text

        async def at(b):
            return any(o["order_id"] == order_id for o in (await b.actor.ask("pick_list"))["orders"])
        assert await eventually(lambda: at(box)), "the order to fulfil did not reach the store"
        assert (await lane.post(f"/picking/orders/{order_id}/start")).status_code == 200
        assert (await lane.post(f"/picking/orders/{order_id}/lines/{sku}", json={"qty": 0})).status_code == 200
        assert (await lane.post(f"/picking/orders/{order_id}/done")).json()["status"] == "picked"
        assert await eventually(lambda: at(other), timeout_s=15), "the short unit was not re-routed to the other store"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(other)),
                                     base_url="http://lane") as other_lane:
            assert (await other_lane.post(f"/picking/orders/{order_id}/start")).status_code == 200
            assert (await other_lane.post(f"/picking/orders/{order_id}/lines/{sku}", json={"qty": 1})).status_code == 200
            assert (await other_lane.post(f"/picking/orders/{order_id}/done")).json()["status"] == "picked"

        async def ready():
            body = (await http.get(f"/orders/{order_id}", headers=fan.headers)).json()
            return body["status"] == "ready" and sorted(body["stores"]) == sorted([STORE, OTHER])
        assert await eventually(ready, timeout_s=15), (await http.get(f"/orders/{order_id}", headers=fan.headers)).json()

        done, counts = asyncio.Event(), Counter()
        fans = FlashFans(str(http.base_url).rstrip("/"), urls, "http://127.0.0.1:1", services.identity.sms.inbox,
                         random.Random(1), counts, done)
        collecting = asyncio.create_task(fans.collect(LeanClients(), fan, order_id, STORE, order["pickup_code"]))

        async def picked_up():
            return (await http.get(f"/orders/{order_id}", headers=fan.headers)).json()["status"] == "picked_up"
        try:
            assert await eventually(picked_up, timeout_s=20), (
                dict(counts), (await http.get(f"/orders/{order_id}", headers=fan.headers)).json())
        finally:
            done.set()
            await asyncio.wait_for(collecting, 10)
        assert counts["flash_picked_up"] == 1 and counts["flash_collected_at_stores"] == 2, dict(counts)
        for store, b in ((STORE, box), (OTHER, other)):
            level = await b.store_db.stock_level(sku)

            async def agree(store=store, level=level):
                return (await cloud_stock(http, store, sku, "on_hand"),
                        await cloud_stock(http, store, sku, "escrow")) == (level.on_hand, level.escrow)
            assert await eventually(agree), (store, level, (await http.get(f"/stores/{store}/stock")).json())
    finally:
        for server, task in servers:
            server.should_exit = True
            await task
        await other.stop()


async def test_an_assignment_round_writes_each_order_once_and_gives_a_cancelled_orders_carve_back(world, monkeypatch):
    """The assigner carves a round's orders one by one and writes them in one transaction: an order cancelled
    between its carve and that write is not made an order of the store and its carve goes back to the block; rounds
    running side by side write each order once."""
    services, http, box, _, op = world
    flash = services.orders.flash
    assign_due = type(flash).assign_due
    monkeypatch.setattr(flash, "assign_due", _no_round)  # the background rounds wait: this test runs them
    sku = pieces()[-9]
    await escrow_at_box(services, http, box, sku, 40)
    sale_id = (await open_sale(http, op, sku, 6, [STORE])).json()["sale_id"]
    members = [await customer(services, http) for _ in range(6)]
    orders = []
    for member in members:
        bought = await buy(services, http, sale_id, member.member_id)
        assert bought.status_code == 201, bought.text
        orders.append(bought.json()["order_id"])
    victim, victim_member = orders[0], members[0]
    row = await services.cloud.db.fetchrow("select order_id, member_id, sale_id, lines from orders where order_id = $1",
                                           victim)
    carved = await flash._carve(row, None)
    assert carved is not None and carved.store == STORE
    assert await cloud_stock(http, STORE, sku, "reserved") == 6  # the block still holds all six, one carved out
    cancelled = await http.post(f"/orders/{victim}/cancel", json={"reason": "changed my mind"},
                                headers=victim_member.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    assert await flash._record([carved]) == 0  # cancelled meanwhile: not written
    # three rounds side by side: the five others are written once each (the round that finds them already assigned
    # writes nothing); the cancelled one never
    written = await asyncio.gather(*(assign_due(flash) for _ in range(3)))
    assert sum(written) == 5, written
    notes = await services.cloud.db.fetch(
        "select order_id, count(*) as n from order_events where order_id = any($1::text[]) and event_key = "
        "'flash-assigned' group by order_id", orders)
    assert {r["order_id"]: r["n"] for r in notes} == {o: 1 for o in orders[1:]}
    for member, order_id in zip(members[1:], orders[1:], strict=True):
        body = (await http.get(f"/orders/{order_id}", headers=member.headers)).json()
        assert body["status"] == "reserved" and body["pickup_code"] and body["stores"] == [STORE], body
    gone = (await http.get(f"/orders/{victim}", headers=victim_member.headers)).json()
    assert gone["status"] == "cancelled" and not gone.get("pickup_code"), gone

    async def back_on_sale():  # the cancelled order's unit: back in the block and on sale
        return (await http.get(f"/flash-sales/{sale_id}")).json()["remaining"] == 1
    monkeypatch.setattr(flash, "assign_due", lambda: assign_due(flash))  # the background rounds (and returns) again
    assert await eventually(back_on_sale), (await http.get(f"/flash-sales/{sale_id}")).json()
    assert await cloud_stock(http, STORE, sku, "reserved") == 6  # five orders' carves and the block's one unit
    assert await sale_violations(http, op, sale_id) == []
    # the five leave too (before this module's cloud stops: an order ending later would be given back by another
    # module's cloud, which has other actors), and every unit is back on sale
    for member, order_id in zip(members[1:], orders[1:], strict=True):
        left = await http.post(f"/orders/{order_id}/cancel", json={"reason": "test over"}, headers=member.headers)
        assert left.status_code == 200, left.text

    async def all_back():
        return (await http.get(f"/flash-sales/{sale_id}")).json()["remaining"] == 6
    assert await eventually(all_back), (await http.get(f"/flash-sales/{sale_id}")).json()


async def _no_round() -> int:
    return 0
