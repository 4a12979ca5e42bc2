"""Orders from a marketplace, over the real stack (issue 23, must show): the simulated marketplace runs as its own
service and pushes its orders to the cloud's webhook; each becomes an order of the shop's store, reserved from the
marketplace's own share of the store's online escrow (never the mall's), paid by the platform, picked at the store's
box like a mall order, collected by the platform's rider and delivered; a cancellation on the platform gives the
units back to the marketplace's share; a stale figure on the platform never oversells, as the cloud rejects what its
share cannot serve; a refund the platform asks for becomes an after-sales request the store decides.

Stores S079 and S080 are this module's own: the test stack provisions their NATS users, and HQ adds them to the world
here (far from the world's stores, so no other order is routed to them)."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from cloud.embedded.process import free_port
from cloud.office import i18n
from cloud.services.marketplace_api import HttpMarketplace
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.messages import EscrowGranted, StockMoved
from simulators import marketplace
from tests.integration.harness import (
    OPERATOR_PASSWORD,
    StoreLink,
    WallClock,
    customer,
    eventually,
    operator_headers,
    running_cloud,
)
from tests.integration.office_browser import DESK, PHONE, office_context, office_sign_in, shot
from tests.integration.test_openapi_live import check

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S079"
NEXT_DOOR = "S080"  # this module's too: holds stock a mall order's shortage could be sent for
CN = timezone(timedelta(hours=8))
RUN = uuid.uuid4().hex[:6]
PIECES = [p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and "online" in p["channels"]]
MKT = "simmkt"
CHANNEL = f"mkt:{MKT}"
KEY, SECRET = "mkt-orders-test", "secret-of-the-simulated-marketplace-orders"


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    port = free_port()
    settings = marketplace.Settings(KEY, SECRET, f"http://127.0.0.1:{port}/callbacks/marketplace/{MKT}",
                                    rider_delay_ms=300, step_ms=200, duplicate_rate=0.3, seed=23)
    with marketplace.start_in_thread(settings) as sim:
        adapter = HttpMarketplace(MKT, sim.url, KEY, SECRET, WallClock())
        adapter.sim = sim  # type: ignore[attr-defined]  # the running service: its state, for outages
        async with running_cloud(stack, prefix=f"mko{RUN}-", port=port, marketplaces=[adapter]) as (services, url):
            admin = await operator_headers(services)
            async with httpx.AsyncClient(base_url=url, timeout=30) as http, \
                    httpx.AsyncClient(base_url=sim.url, timeout=30) as market:
                r = await http.put(f"/stores/{STORE}", headers=admin, json={
                    "name": "Marketplace orders", "lat": 31.9, "lon": 120.9, "pickup_radius_m": 3_000,
                    "delivery_radius_m": 2_000, "opens": "00:00", "closes": "23:59", "slot_minutes": 60,
                    "slot_capacity": 50, "delivery_fee_fen": 600, "free_delivery_from_fen": 5_000})
                assert r.status_code == 200, r.text
                await services.bridge.ensure_store(STORE)
                config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                          "nats_url": stack.nats_url, "nats_password": stack.store_credentials(STORE)[1]}
                box = await EdgeBox(config).start()
                try:
                    assert await eventually(lambda: _online(box), timeout_s=20)
                    lane = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                             base_url="http://lane")
                    async with lane:
                        yield services, http, market, box, lane, admin, adapter
                finally:
                    await box.stop()


async def _online(box) -> bool:
    return box.actor.online


async def stock_row(http, sku: str) -> dict:
    r = await http.get(f"/stores/{STORE}/stock", params={"sku": sku})
    return next((s for s in r.json()["stock"] if s["sku"] == sku), {})


async def shared(http, box, admin, sku: str, received: int, ratio_bp: int) -> dict:
    """`received` units of `sku` at the box (the default 40% escrowed online), the marketplace given `ratio_bp` of
    the online escrow: the stock row once the cloud shows the marketplace's part."""
    await box.actor.ask("receive", sku=sku, qty=received)
    escrow = received * 40 // 100

    async def escrowed():
        return (await stock_row(http, sku)).get("escrow") == escrow
    assert await eventually(escrowed), await stock_row(http, sku)
    r = await http.put(f"/stores/{STORE}/marketplaces/{MKT}/share", headers=admin, json={"sku": sku, "ratio_bp": ratio_bp})
    assert r.status_code == 200, r.text
    return await stock_row(http, sku)


async def offered(market, sku: str, units: int) -> bool:
    items = {i["sku"]: i for i in (await market.get(f"/sim/shops/{STORE}/items")).json()["items"]}
    return items.get(sku, {}).get("stock") == units


async def platform_order(market, sku: str, qty: int) -> httpx.Response:
    return await market.post("/sim/orders", json={"shop_id": STORE, "items": [{"sku": sku, "qty": qty}],
                                                  "customer": {"name": "王小姐", "phone": "13912345678"}})


async def ours(services, platform_order_id: str):
    """Our order of the platform's, once taken (None before)."""
    return await services.cloud.db.fetchrow(
        "select o.* from marketplace_orders l join orders o using (order_id) where l.marketplace = $1 "
        "and l.platform_order_id = $2", MKT, platform_order_id)


async def status_of(services, platform_order_id: str) -> str | None:
    row = await ours(services, platform_order_id)
    return row["status"] if row is not None else None


async def pick(box, lane, order_id: str, sku: str, qty: int) -> None:
    async def at_the_box():
        return any(o["order_id"] == order_id for o in (await box.actor.ask("pick_list"))["orders"])
    assert await eventually(at_the_box, timeout_s=15), "the marketplace order never reached the store"
    assert (await lane.post(f"/picking/orders/{order_id}/start")).status_code == 200
    assert (await lane.post(f"/picking/orders/{order_id}/lines/{sku}", json={"qty": qty})).status_code == 200
    done = await lane.post(f"/picking/orders/{order_id}/done")
    assert done.status_code == 200 and done.json()["status"] == "picked", done.text


async def test_a_marketplace_order_is_served_from_its_own_share_picked_and_delivered_by_the_platform(world):
    services, http, market, box, lane, admin, adapter = world
    sku = PIECES[-11]["sku"]
    row = await shared(http, box, admin, sku, 100, 5_000)  # 40 online: 20 the marketplace's, 20 the mall's
    assert row["channels"][CHANNEL]["available"] == 20 and row["available_online"] == 20, row
    assert await eventually(lambda: offered(market, sku, 20), timeout_s=5)

    placed = await platform_order(market, sku, 3)
    assert placed.status_code == 201, placed.text
    oid, total = placed.json()["order_id"], placed.json()["total_fen"]
    assert total == 3 * PIECES[-11]["price_fen"]

    async def paid():
        return await status_of(services, oid) == "paid"
    assert await eventually(paid, timeout_s=10), await status_of(services, oid)
    order = await ours(services, oid)
    assert (order["kind"], order["fulfilment"], order["member_id"], order["total_fen"]) == \
        ("marketplace", "delivery", None, total)
    row = await stock_row(http, sku)  # the marketplace's share served it; the mall's 20 are untouched
    assert row["channels"][CHANNEL]["confirmed"] == 3 and row["channels"][CHANNEL]["available"] == 17, row
    assert row["available_online"] == 20, row
    assert await eventually(lambda: offered(market, sku, 17), timeout_s=5)  # the platform is told its new figure
    charge = await services.cloud.db.fetchrow("select * from money_movements where order_id = $1 and kind = 'charge'",
                                              order["order_id"])
    assert (charge["method"], charge["state"], charge["amount_fen"], charge["provider_txn_id"]) == \
        ("marketplace", "done", total, oid)
    assert (await adapter.order(oid))["status"] == "confirmed"  # the platform was told we take it

    # picked at the box like a mall order; the platform's rider collects and delivers it, not our rider platform
    await pick(box, lane, order["order_id"], sku, 3)

    async def delivered():
        return await status_of(services, oid) == "delivered"
    assert await eventually(delivered, timeout_s=15), await status_of(services, oid)
    events = [r["event"] for r in await services.cloud.db.fetch(
        "select event from order_events where order_id = $1 order by seq", order["order_id"])]
    assert [e for e in events if e in ("reserve", "pay", "start_picking", "picked", "hand_to_rider", "deliver")] == \
        ["reserve", "pay", "start_picking", "picked", "hand_to_rider", "deliver"], events
    assert await services.cloud.db.fetchval("select count(*) from deliveries where order_id = $1",
                                            order["order_id"]) == 0
    assert (await adapter.order(oid))["status"] == "delivered"
    audit = (await http.get("/audit", headers=admin)).json()
    assert [v for v in audit["violations"] if STORE in v] == []


async def test_a_cancellation_on_the_platform_gives_the_units_back_to_the_marketplace(world):
    services, http, market, box, lane, admin, adapter = world
    sku = PIECES[-12]["sku"]
    row = await shared(http, box, admin, sku, 50, 5_000)  # 20 online: 10 the marketplace's
    assert row["channels"][CHANNEL]["available"] == 10, row
    assert await eventually(lambda: offered(market, sku, 10), timeout_s=5)
    oid = (await platform_order(market, sku, 4)).json()["order_id"]

    async def paid():
        return await status_of(services, oid) == "paid"
    assert await eventually(paid, timeout_s=10)
    assert (await stock_row(http, sku))["channels"][CHANNEL]["available"] == 6
    order_id = (await ours(services, oid))["order_id"]

    async def at_the_box():
        return any(o["order_id"] == order_id for o in (await box.actor.ask("pick_list"))["orders"])
    assert await eventually(at_the_box, timeout_s=15)
    cancelled = await market.post(f"/sim/orders/{oid}/cancel")
    assert cancelled.status_code == 200, cancelled.text

    async def back():
        row = await stock_row(http, sku)
        return await status_of(services, oid) == "cancelled" and row["channels"][CHANNEL]["available"] == 10 and \
            row["channels"][CHANNEL]["confirmed"] == 0
    assert await eventually(back, timeout_s=10), (await status_of(services, oid), await stock_row(http, sku))
    refund = await services.cloud.db.fetchrow("select * from money_movements where order_id = $1 and kind = 'refund'",
                                              order_id)
    assert (refund["method"], refund["state"], refund["amount_fen"]) == ("marketplace", "done", 4 * PIECES[-12]["price_fen"])

    async def off_the_list():  # the store was told: nothing to pick any more
        return all(o["order_id"] != order_id for o in (await box.actor.ask("pick_list"))["orders"])
    assert await eventually(off_the_list, timeout_s=15)
    assert await eventually(lambda: offered(market, sku, 10), timeout_s=5)


async def test_two_channels_selling_the_last_units_never_oversell(world):
    """The platform offers more than the marketplace's share (its figure is stale: a push lost, or the platform
    racing our push), and the mall's customers buy at the same time: the cloud takes what the share holds and
    rejects the rest at the platform; the mall never gets the marketplace's units, nor the marketplace the mall's."""
    services, http, market, box, lane, admin, adapter = world
    sku = PIECES[-13]["sku"]
    row = await shared(http, box, admin, sku, 10, 5_000)  # 4 online: 2 the marketplace's, 2 the mall's
    assert row["channels"][CHANNEL]["available"] == 2 and row["available_online"] == 2, row
    assert await eventually(lambda: offered(market, sku, 2), timeout_s=5)
    await adapter.push_stock(STORE, {sku: 6})  # the stale figure: the platform now sells 6
    members = [await customer(services, http) for _ in range(4)]
    slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=11, minute=0, second=0, microsecond=0).isoformat()

    async def mall(member):
        return await http.post("/orders", headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers},
                               json={"fulfilment": "pickup", "store_id": STORE, "slot_start": slot,
                                     "items": [{"sku": sku, "qty": 1}]})
    answers = await asyncio.gather(*[mall(m) for m in members], *[platform_order(market, sku, 1) for _ in range(5)])
    mall_answers, platform_answers = answers[:4], answers[4:]
    assert all(a.status_code == 201 for a in platform_answers), [a.text for a in platform_answers]
    oids = [a.json()["order_id"] for a in platform_answers]

    async def settled():
        return all(s in ("paid", "rejected") for s in [await status_of(services, o) for o in oids])
    assert await eventually(settled, timeout_s=15), [await status_of(services, o) for o in oids]
    statuses = {o: await status_of(services, o) for o in oids}
    taken = [o for o in oids if statuses[o] == "paid"]
    assert len(taken) == 2  # the share's 2, no more

    async def rejected_at_the_platform():
        seen = [await adapter.order(o) for o in oids if o not in taken]
        return all((o["status"], o["reason"]) == ("cancelled", "merchant_rejected") for o in seen)
    assert await eventually(rejected_at_the_platform, timeout_s=10)
    mall_units = sum(1 for a in mall_answers if a.status_code == 201)
    assert mall_units >= 2, [a.text for a in mall_answers]  # the mall's 2 (and what the store lends it)
    row = await stock_row(http, sku)
    assert row["channels"][CHANNEL]["confirmed"] + row["channels"][CHANNEL]["reserved"] == 2, row
    assert row["channels"][CHANNEL]["available"] == 0, row
    audit = (await http.get("/audit", headers=admin)).json()
    assert [v for v in audit["violations"] if STORE in v] == []


async def test_a_refund_the_platform_asks_for_is_decided_by_the_store_and_told_back(world):
    services, http, market, box, lane, admin, adapter = world
    sku = PIECES[-14]["sku"]
    await shared(http, box, admin, sku, 50, 5_000)
    assert await eventually(lambda: offered(market, sku, 10), timeout_s=5)
    oid = (await platform_order(market, sku, 2)).json()["order_id"]

    async def paid():
        return await status_of(services, oid) == "paid"
    assert await eventually(paid, timeout_s=10)
    order_id = (await ours(services, oid))["order_id"]
    await pick(box, lane, order_id, sku, 2)

    async def delivered():
        return await status_of(services, oid) == "delivered"
    assert await eventually(delivered, timeout_s=15)
    asked = await market.post(f"/sim/orders/{oid}/refund", json={"items": [{"sku": sku, "qty": 1}],
                                                                 "reason": "bruised"})
    assert asked.status_code == 201, asked.text
    refund_id = asked.json()["refund_id"]

    async def requested():
        return await services.cloud.db.fetchrow("select * from after_sales where order_id = $1", order_id)
    request = await eventually(requested, timeout_s=10)
    assert request and request["amount_fen"] == PIECES[-14]["price_fen"] and request["member_id"] is None
    manager = await operator_headers(services, role="store_manager", store_id=STORE)
    r = await http.post(f"/operator/after-sales/{request['request_id']}/approve", headers=manager, json={})
    assert r.status_code == 200, r.text

    async def agreed():
        sent = (await market.get("/sim/webhooks", params={"order_id": oid})).json()["webhooks"]
        return any(w["event"] == "refund.decided" and w.get("status") == "agreed" and w.get("refund_id") == refund_id
                   for w in sent)
    assert await eventually(agreed, timeout_s=10)
    assert await status_of(services, oid) == "partially_refunded"
    part = await services.cloud.db.fetchrow("select * from money_movements where order_id = $1 and kind = 'refund'",
                                            order_id)
    assert (part["method"], part["state"], part["amount_fen"]) == ("marketplace", "done", PIECES[-14]["price_fen"])


async def test_a_line_the_store_cannot_pack_is_given_back_at_the_platform_never_sent_for_elsewhere(world, stack):
    services, http, market, box, lane, admin, adapter = world
    sku = PIECES[-15]["sku"]
    # a store next door holds the SKU online: a mall order short here would be sent for there, a marketplace's not
    r = await http.put(f"/stores/{NEXT_DOOR}", headers=admin, json={
        "name": "Next door", "lat": 31.901, "lon": 120.901, "pickup_radius_m": 3_000, "delivery_radius_m": 2_000,
        "opens": "00:00", "closes": "23:59", "slot_minutes": 60, "slot_capacity": 50, "delivery_fee_fen": 600,
        "free_delivery_from_fen": 5_000})
    assert r.status_code == 200, r.text
    await services.bridge.ensure_store(NEXT_DOOR)
    async with StoreLink(stack, NEXT_DOOR) as link:
        await link.publish(StockMoved(**link.next_envelope(), sku=sku, delta=100, reason="receiving",
                                      shrinkage_reason="", on_hand_after=100, reference=""))
        await link.publish(EscrowGranted(**link.next_envelope(), sku=sku, qty=40, escrow_after=40))

    async def next_door_holds():
        r = await http.get(f"/stores/{NEXT_DOOR}/stock", params={"sku": sku})
        return any(x["sku"] == sku and x["escrow"] == 40 for x in r.json()["stock"])
    assert await eventually(next_door_holds, timeout_s=15)
    await shared(http, box, admin, sku, 50, 5_000)
    assert await eventually(lambda: offered(market, sku, 10), timeout_s=5)
    oid = (await platform_order(market, sku, 3)).json()["order_id"]

    async def paid():
        return await status_of(services, oid) == "paid"
    assert await eventually(paid, timeout_s=10)
    order_id = (await ours(services, oid))["order_id"]
    await pick(box, lane, order_id, sku, 2)  # one unit short

    async def given_back():
        seen = await adapter.order(oid)
        return seen if seen["refunded_fen"] else None
    seen = await eventually(given_back, timeout_s=10)
    assert seen and seen["refunded_fen"] == PIECES[-15]["price_fen"], seen
    assert [r["by"] for r in seen["refunds"]] == ["merchant"]

    async def delivered():
        return await status_of(services, oid) == "delivered"
    assert await eventually(delivered, timeout_s=15), await status_of(services, oid)
    row = await ours(services, oid)
    assert list(json.loads(row["allocation"])) == [STORE]  # the short unit was not sent for at another store
    part = await services.cloud.db.fetchrow("select * from money_movements where order_id = $1 and kind = 'refund'",
                                            order_id)
    assert (part["method"], part["state"], part["amount_fen"]) == ("marketplace", "done", PIECES[-15]["price_fen"])
    await asyncio.sleep(1.5)  # the sweeper's next rounds ask nothing twice
    assert len((await adapter.order(oid))["refunds"]) == 1


async def test_forged_unknown_and_repeated_webhooks_change_nothing(world):
    services, http, market, box, lane, admin, adapter = world
    url = str(http.base_url)
    body = {"event_id": "e-forged", "event": "order.created", "at_ms": int(time.time() * 1000),
            "order": {"order_id": "MKFORGED1", "shop_id": STORE, "total_fen": 100,
                      "items": [{"sku": PIECES[-11]["sku"], "qty": 1, "price_fen": 100}]}}
    raw = json.dumps(body).encode()
    forged = marketplace.SIGNING.signed_headers(KEY, "not-the-secret", int(time.time()), "n-forged", raw)
    r = await http.post(f"{url}/callbacks/marketplace/{MKT}", content=raw, headers=forged)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json", r.text
    signed = marketplace.SIGNING.signed_headers(KEY, SECRET, int(time.time()), "n-other", raw)
    r = await http.post(f"{url}/callbacks/marketplace/nosuch", content=raw, headers=signed)
    assert r.status_code == 404, r.text
    assert await ours(services, "MKFORGED1") is None
    # a signed webhook the platform never sent an order for (our test plays the platform): unknown price, one order
    # however often it comes; its total does not match its lines, so it is rejected, and nothing is reserved
    body["order"]["total_fen"] = 99
    raw = json.dumps(body).encode()
    doc = (await http.get("/openapi.json")).json()
    for nonce in ("n1", "n2", "n3"):
        headers = marketplace.SIGNING.signed_headers(KEY, SECRET, int(time.time()), nonce, raw)
        r = await http.post(f"{url}/callbacks/marketplace/{MKT}", content=raw, headers=headers)
        assert r.status_code == 200, r.text
        check(doc, "/callbacks/marketplace/{marketplace}", "post", r)  # the answer is what the document says
    assert await services.cloud.db.fetchval("select count(*) from marketplace_events where event_id = 'e-forged'") == 1
    assert await services.cloud.db.fetchval("select count(*) from orders where idempotency_key like $1",
                                            "%/MKFORGED1") == 0  # refused before anything was held
    hostile = {**body, "event_id": "e-hostile", "order": {**body["order"], "order_id": "MK\x00../x"}}
    raw = json.dumps(hostile).encode()
    headers = marketplace.SIGNING.signed_headers(KEY, SECRET, int(time.time()), "n-hostile", raw)
    r = await http.post(f"{url}/callbacks/marketplace/{MKT}", content=raw, headers=headers)
    assert r.status_code == 400 and "order_id" in r.json()["detail"], r.text


def signed(body: dict, nonce: str) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    return raw, marketplace.SIGNING.signed_headers(KEY, SECRET, int(time.time()), nonce, raw)


async def test_one_order_however_often_and_however_concurrently_it_comes_and_a_cancel_first_wins(world):
    """The platform's pushes cross each other (resends after a timeout, two deliveries at once): an order delivered
    three times at once is taken once, its units reserved once; a cancel that overtakes its order.created means the
    order is never taken; a cancel racing it ends it cancelled with its units back."""
    services, http, market, box, lane, admin, adapter = world
    url, sku, price = str(http.base_url), PIECES[-16]["sku"], PIECES[-16]["price_fen"]
    await shared(http, box, admin, sku, 50, 5_000)  # the marketplace's 10

    def created(oid: str, qty: int, event_id: str) -> dict:
        return {"event_id": event_id, "event": "order.created", "at_ms": int(time.time() * 1000),
                "order": {"order_id": oid, "shop_id": STORE, "total_fen": qty * price,
                          "items": [{"sku": sku, "qty": qty, "price_fen": price}]}}

    async def post(body: dict, nonce: str):
        raw, headers = signed(body, nonce)
        return await http.post(f"{url}/callbacks/marketplace/{MKT}", content=raw, headers=headers)

    thrice = await asyncio.gather(*[post(created("MKRACE1", 3, f"e-race1-{i}"), f"nr1{i}") for i in range(3)])
    assert all(r.status_code in (200, 503) for r in thrice), [r.text for r in thrice]
    if any(r.status_code == 503 for r in thrice):  # one was taking it while another came: it is resent
        assert (await post(created("MKRACE1", 3, "e-race1-again"), "nr1x")).status_code == 200

    async def taken():
        return await status_of(services, "MKRACE1") == "paid"
    assert await eventually(taken, timeout_s=10)
    assert await services.cloud.db.fetchval("select count(*) from orders where idempotency_key = $1",
                                            f"mkt:{MKT}/MKRACE1") == 1
    row = await stock_row(http, sku)
    assert row["channels"][CHANNEL]["confirmed"] == 3 and row["channels"][CHANNEL]["available"] == 7, row

    # a cancel that overtakes its order.created: the order is never taken, nothing is reserved
    gone = {"event_id": "e-race2-cancel", "event": "order.cancelled", "at_ms": int(time.time() * 1000),
            "order_id": "MKRACE2", "shop_id": STORE, "reason": "customer_cancelled"}
    assert (await post(gone, "nr2c")).status_code == 200
    assert (await post(created("MKRACE2", 2, "e-race2"), "nr2")).status_code == 200
    assert await services.cloud.db.fetchval("select count(*) from orders where idempotency_key = $1",
                                            f"mkt:{MKT}/MKRACE2") == 0
    # a cancel racing its order.created: whichever comes first, the order ends cancelled and its units come back
    both = await asyncio.gather(post(created("MKRACE3", 2, "e-race3"), "nr3"),
                                post({**gone, "event_id": "e-race3-cancel", "order_id": "MKRACE3"}, "nr3c"))
    for r, body in zip(both, (created("MKRACE3", 2, "e-race3-again"),
                               {**gone, "event_id": "e-race3-cancel-again", "order_id": "MKRACE3"}), strict=True):
        if r.status_code == 503:  # resent, as the platform does
            assert (await post(body, uuid.uuid4().hex)).status_code == 200

    async def settled():
        row = await stock_row(http, sku)
        return await status_of(services, "MKRACE3") in (None, "cancelled") and \
            row["channels"][CHANNEL]["available"] == 7 and row["channels"][CHANNEL]["reserved"] == 0
    assert await eventually(settled, timeout_s=10), (await status_of(services, "MKRACE3"), await stock_row(http, sku))


async def test_a_platform_outage_is_caught_up_by_the_sweeper(world):
    """The platform answers nothing for a while (a simulated outage: every merchant request 503): the order is taken
    and picked all the same; once the platform is back the cloud confirms it and tells it is packed, and the
    platform's rider delivers it."""
    services, http, market, box, lane, admin, adapter = world
    sku = PIECES[-17]["sku"]
    await shared(http, box, admin, sku, 50, 5_000)
    assert await eventually(lambda: offered(market, sku, 10), timeout_s=5)
    partner = adapter.sim.app.state.market.partner
    partner.fail_rate = 1.0
    try:
        oid = (await platform_order(market, sku, 1)).json()["order_id"]

        async def paid():
            return await status_of(services, oid) == "paid"
        assert await eventually(paid, timeout_s=10)
        order_id = (await ours(services, oid))["order_id"]
        await pick(box, lane, order_id, sku, 1)

        async def ready():
            return await status_of(services, oid) == "ready"
        assert await eventually(ready, timeout_s=15)
        link = await services.cloud.db.fetchrow("select * from marketplace_orders where order_id = $1", order_id)
        assert link["confirmed_ms"] is None and link["ready_ms"] is None  # nothing could be told
    finally:
        partner.fail_rate = 0.0

    async def delivered():
        return await status_of(services, oid) == "delivered"
    assert await eventually(delivered, timeout_s=30), await status_of(services, oid)


async def test_the_back_office_shows_the_shares_parts_and_orders_and_hq_sets_a_share(world, tmp_path):
    """HQ's marketplaces page in headless Chromium: the store's shares, what the marketplace holds now and its orders
    as taken here (each as the cloud has it); HQ sets a share through the
    page's form (the public API) and the page shows it and the part that follows; a share past 100% is said as a
    sentence; a store manager sees their store without the form."""
    services, http, market, box, lane, admin, adapter = world
    url = str(http.base_url).rstrip("/")
    hq = f"hq-mkt-{RUN}"
    await services.operators.create(hq, OPERATOR_PASSWORD, "hq_admin", None, by_name="tests")
    sku = PIECES[-18]["sku"]
    await box.actor.ask("receive", sku=sku, qty=50)  # 20 online

    async def escrowed():
        return (await stock_row(http, sku)).get("escrow") == 20
    assert await eventually(escrowed)
    shown = (await platform_order(market, PIECES[-11]["sku"], 1)).json()["order_id"]  # one to show at least

    async def taken():
        return await status_of(services, shown) == "paid"
    assert await eventually(taken, timeout_s=10)
    zh = i18n.words("zh")

    async def all_taken():  # every order of the store settled into a status the page shows
        rows = await services.cloud.db.fetch("select o.status from marketplace_orders l left join orders o "
                                             "using (order_id) where l.store_id = $1", STORE)
        return None if any(r["status"] == "pending" for r in rows) or not rows else rows
    rows = await eventually(all_taken, timeout_s=10)
    expected = [zh[f"marketplaces.status_{r['status'] or 'not_taken'}"] for r in rows]
    for size in (DESK, PHONE):
        async with office_context(size) as (_context, page):
            await office_sign_in(page, url, hq, OPERATOR_PASSWORD, then=f"/office/marketplaces?store={STORE}")
            assert await page.text_content("h1") == "第三方平台"
            shares = await services.cloud.db.fetchval("select count(*) from channel_shares where store_id = $1", STORE)
            assert await page.locator("#shares-table tr[data-marketplace]").count() == shares
            badges = page.locator("#orders-table [data-field=status] .badge")
            statuses = [s.strip() for s in await badges.all_text_contents()]
            assert sorted(statuses) == sorted(expected), (statuses, expected)  # one row per order, as the cloud has it
            await shot(page, tmp_path, "marketplaces", size)
            await page.locator("#orders-table").scroll_into_view_if_needed()
            await shot(page, tmp_path, "marketplaces-orders", size)
            if size is PHONE:
                break
            await page.fill("#s-key", sku)
            await page.fill("#s-pct", "25")
            async with page.expect_navigation():
                await page.click("#share-save")
            assert (await page.text_content(f"#shares-table tr[data-key='{sku}'] [data-field=share]")).strip() == "25.0%"
            part = page.locator(f"#parts-table tr[data-sku='{sku}'] [data-channel='{CHANNEL}']")
            assert (await part.text_content()).strip() == f"{CHANNEL}: 可售 5 · 已占 0 / 5"  # a quarter of the 20
            await page.fill("#s-key", sku)
            await page.fill("#s-market", "other")
            await page.fill("#s-pct", "90")
            await page.click("#share-save")
            await page.wait_for_function("document.getElementById('share-msg').textContent.length > 0")
            said = await page.text_content("#share-msg")
            assert sku in said and "{" not in said, said
            await shot(page, tmp_path, "marketplaces-refused", size)
            await page.goto(f"{url}/office/marketplaces?store={STORE}&lang=en")
            assert await page.text_content("h1") == "Marketplaces"
    assert (await stock_row(http, sku))["channels"][CHANNEL]["escrow"] == 5
    manager = f"mgr-mkt-{RUN}"
    await services.operators.create(manager, OPERATOR_PASSWORD, "store_manager", STORE, by_name="tests")
    async with office_context(DESK) as (_context, page):
        await office_sign_in(page, url, manager, OPERATOR_PASSWORD, then="/office/marketplaces")
        assert await page.locator("#share-form").count() == 0
        assert await page.locator("#orders-table tr[data-platform-order]").count() > 0
        answer = await page.goto(f"{url}/office/marketplaces?store=S001")  # another store: refused, said why
        assert answer.status == 403 and await page.locator("#orders-table").count() == 0
        assert "may not act on store S001" in await page.text_content("main")


async def test_a_cancel_that_did_not_go_through_is_finished_by_the_sweeper_and_early_refunds_wait(world):
    """Two faults: the platform's cancel came while our database failed (answered 503, and the platform gave up
    resending it: only the remembered cancel is left), and a refund request overtakes the order's delivered
    webhook. The sweeper cancels the order and gives its units back; the early refund is answered 503 (resend)."""
    services, http, market, box, lane, admin, adapter = world
    url, sku = str(http.base_url), PIECES[-19]["sku"]
    await shared(http, box, admin, sku, 50, 5_000)
    assert await eventually(lambda: offered(market, sku, 10), timeout_s=5)
    oid = (await platform_order(market, sku, 2)).json()["order_id"]

    async def paid():
        return await status_of(services, oid) == "paid"
    assert await eventually(paid, timeout_s=10)
    # the state a failed cancel leaves: remembered, not applied (as `cancelled` records it before it cancels)
    await services.cloud.db.execute("update marketplace_orders set cancelled_ms = $3, cancel_reason = 'customer' "
                                    "where marketplace = $1 and platform_order_id = $2", MKT, oid,
                                    int(time.time() * 1000))

    async def swept():
        row = await stock_row(http, sku)
        return await status_of(services, oid) == "cancelled" and row["channels"][CHANNEL]["available"] == 10
    assert await eventually(swept, timeout_s=15), (await status_of(services, oid), await stock_row(http, sku))

    early = (await platform_order(market, sku, 1)).json()["order_id"]
    assert await eventually(lambda: _is(services, early, "paid"), timeout_s=10)
    order_id = (await ours(services, early))["order_id"]
    partner = adapter.sim.app.state.market.partner
    partner.fail_rate = 1.0  # the platform is not told it is packed: the order stays ready here, its rider away
    try:
        await pick(box, lane, order_id, sku, 1)
        assert await eventually(lambda: _is(services, early, "ready"), timeout_s=15)
        body = {"event_id": f"e-early-{RUN}", "event": "refund.requested", "at_ms": int(time.time() * 1000),
                "shop_id": STORE, "refund": {"refund_id": f"RFEARLY{RUN}", "order_id": early, "amount_fen": 1,
                                             "items": [{"sku": sku, "qty": 1, "price_fen": 1}], "reason": "early"}}
        raw, headers = signed(body, "n-early")
        r = await http.post(f"{url}/callbacks/marketplace/{MKT}", content=raw, headers=headers)
        assert r.status_code == 503 and "resend" in r.json()["detail"], r.text
        assert await services.cloud.db.fetchval("select count(*) from after_sales where order_id = $1",
                                                order_id) == 0
        assert await services.cloud.db.fetchval("select count(*) from marketplace_events where event_id = $1",
                                                f"e-early-{RUN}") == 0  # not recorded: its resend is applied
    finally:
        partner.fail_rate = 0.0
    assert await eventually(lambda: _is(services, early, "delivered"), timeout_s=30)  # the sweeper catches up


async def _is(services, platform_order_id: str, status: str) -> bool:
    return await status_of(services, platform_order_id) == status
