"""A marketplace's share of a store's online escrow, over the real stack (issue 23, the escrow per channel): HQ gives a
marketplace a quarter of store S077's online escrow of a SKU; the stock view shows the marketplace's part and the
mall's rest; the mall's customers can buy the mall's units and never the marketplace's, even when the cloud borrows
from the store's till share for them; a share that would take the store's marketplaces past 100% of a SKU is refused,
and only HQ sets one.

Store S077 is this module's own: the test stack provisions its NATS user, and HQ adds it to the world here (far from
the world's stores, so no other order is routed to it)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from cloud.services.marketplace_api import HttpMarketplace
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from simulators import marketplace
from tests.integration.harness import WallClock, customer, eventually, operator_headers, running_cloud

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S077"
CN = timezone(timedelta(hours=8))
RUN = uuid.uuid4().hex[:6]
PRODUCTS = [p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and "online" in p["channels"]]
SKU = PRODUCTS[-1]["sku"]
MKT_KEY, MKT_SECRET = "mkt-shares-test", "secret-of-the-simulated-marketplace"


@pytest_asyncio.fixture(scope="module")
async def shop(stack, ray_runtime, tmp_path_factory):
    # the simulated marketplace the cloud pushes the stores' offers to (no order is placed on it here)
    with marketplace.start_in_thread(marketplace.Settings(MKT_KEY, MKT_SECRET, "http://127.0.0.1:9/hook")) as sim:
        adapter = HttpMarketplace("simmkt", sim.url, MKT_KEY, MKT_SECRET, WallClock())
        async with _cloud(stack, tmp_path_factory, adapter) as running:
            yield (*running, sim)


@contextlib.asynccontextmanager
async def _cloud(stack, tmp_path_factory, adapter):
    async with running_cloud(stack, prefix=f"mks{RUN}-", marketplaces=[adapter]) as (services, url):
        admin = await operator_headers(services)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            r = await http.put(f"/stores/{STORE}", headers=admin, json={
                "name": "Marketplace shares", "lat": 30.9, "lon": 121.9, "pickup_radius_m": 3_000,
                "delivery_radius_m": 2_000, "opens": "08:00", "closes": "21:00", "slot_minutes": 60,
                "slot_capacity": 10, "delivery_fee_fen": 600, "free_delivery_from_fen": 5_000})
            assert r.status_code == 200, r.text
            await services.bridge.ensure_store(STORE)
            config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                      "nats_url": stack.nats_url, "nats_password": stack.store_credentials(STORE)[1]}
            box = await EdgeBox(config).start()
            try:
                assert await eventually(lambda: _online(box), timeout_s=20)
                yield services, http, box, admin
            finally:
                await box.stop()


async def _online(box) -> bool:
    return box.actor.online


async def stock_row(http, sku: str) -> dict:
    r = await http.get(f"/stores/{STORE}/stock", params={"sku": sku})
    return next((s for s in r.json()["stock"] if s["sku"] == sku), {})


def pickup(sku: str, qty: int) -> dict:
    slot = (datetime.now(CN) + timedelta(days=2)).replace(hour=11, minute=0, second=0, microsecond=0).isoformat()
    return {"fulfilment": "pickup", "store_id": STORE, "slot_start": slot, "items": [{"sku": sku, "qty": qty}]}


async def test_a_marketplace_gets_its_share_and_the_mall_never_sells_it(shop):
    services, http, box, admin, _ = shop
    await box.actor.ask("receive", sku=SKU, qty=100)  # the store's default ratio escrows 40 online

    async def escrowed():
        return (await stock_row(http, SKU)).get("escrow") == 40
    assert await eventually(escrowed), await stock_row(http, SKU)
    r = await http.put(f"/stores/{STORE}/marketplaces/meituan/share", headers=admin,
                       json={"sku": SKU, "ratio_bp": 2_500})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["channel"], body["sku"], body["ratio_bp"], body["version"], body["escrow"]) == \
        ("mkt:meituan", SKU, 2_500, 1, {SKU: 10})
    row = await stock_row(http, SKU)
    assert (row["escrow"], row["available_online"]) == (40, 30)  # the mall's rest
    assert row["channels"] == {"mkt:meituan": {"escrow": 10, "reserved": 0, "confirmed": 0, "available": 10}}
    listed = (await http.get(f"/stores/{STORE}/marketplaces", headers=admin)).json()["shares"]
    assert [(s["marketplace"], s["scope"], s["sku"], s["ratio_bp"]) for s in listed] == [("meituan", "sku", SKU, 2_500)]

    # a mall customer buys 35: the mall holds 30, the cloud borrows the 5 it lacks from the store's till share, and
    # the marketplace's 10 stay untouched
    member = await customer(services, http)
    order = await http.post("/orders", json=pickup(SKU, 35),
                            headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert order.status_code == 201, order.text
    row = await stock_row(http, SKU)
    assert row["channels"]["mkt:meituan"]["available"] == 10 and row["available_online"] == 0, row
    # nothing is left for the mall: the next customer is refused, though the marketplace still has its 10
    again = await http.post("/orders", json=pickup(SKU, 1),
                            headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    if again.status_code == 201:  # the store lent one more unit from its till share: still the mall's, not the
        row = await stock_row(http, SKU)  # marketplace's
        assert row["channels"]["mkt:meituan"]["available"] == 10, row
    else:
        assert again.status_code == 409, again.text
    audit = (await http.get("/audit", headers=admin)).json()
    assert [v for v in audit["violations"] if STORE in v] == []


async def test_shares_past_the_whole_are_refused_and_only_hq_sets_them(shop):
    services, http, box, admin, _ = shop
    sku = PRODUCTS[-2]["sku"]
    category = PRODUCTS[-2]["category"]
    ok = await http.put(f"/stores/{STORE}/marketplaces/eleme/share", headers=admin, json={"sku": sku, "ratio_bp": 6_000})
    assert ok.status_code == 200, ok.text
    # a category share for another marketplace: the SKU's own 60% plus 50% of its category would pass 100%
    over = await http.put(f"/stores/{STORE}/marketplaces/jddj/share", headers=admin,
                          json={"category": category, "ratio_bp": 5_000})
    assert over.status_code == 422 and over.headers["content-type"] == "application/problem+json", over.text
    assert sku in over.json()["detail"] and "mkt:eleme 60%" in over.json()["detail"], over.text
    assert all(s["marketplace"] != "jddj" for s in
               (await http.get(f"/stores/{STORE}/marketplaces", headers=admin)).json()["shares"])  # nothing written
    # 40% fits
    fits = await http.put(f"/stores/{STORE}/marketplaces/jddj/share", headers=admin,
                          json={"category": category, "ratio_bp": 4_000})
    assert fits.status_code == 200, fits.text
    for path, body, status, words in (
            (f"/stores/{STORE}/marketplaces/Mei%20Tuan/share", {"sku": sku, "ratio_bp": 100}, 422, "marketplace"),
            (f"/stores/{STORE}/marketplaces/meituan/share", {"sku": sku, "ratio_bp": 10_001}, 422, "ratio_bp"),
            (f"/stores/{STORE}/marketplaces/meituan/share", {"sku": "NOPE", "ratio_bp": 100}, 422, "unknown product"),
            ("/stores/S999/marketplaces/meituan/share", {"sku": sku, "ratio_bp": 100}, 404, "S999")):
        r = await http.put(path, headers=admin, json=body)
        assert r.status_code == status and words in r.json()["detail"], (path, r.text)
    manager = await operator_headers(services, role="store_manager", store_id=STORE)
    refused = await http.put(f"/stores/{STORE}/marketplaces/meituan/share", headers=manager,
                             json={"sku": sku, "ratio_bp": 100})
    assert refused.status_code == 403, refused.text
    assert (await http.get(f"/stores/{STORE}/marketplaces", headers=manager)).status_code == 200  # they may look
    entries = (await http.get("/operator/audit", headers=admin)).json()["entries"]  # who set each share, and when
    assert any(e["action"] == "channel_share.set" and e["target"] == f"{STORE}/mkt:eleme/sku:{sku}" for e in entries)


async def test_the_marketplace_is_offered_its_part_and_a_till_sale_lowers_it_within_2_s(shop):
    services, http, box, admin, sim = shop
    # a product of another category than the one the test above gave jddj a share of
    product = [p for p in PRODUCTS if p["category"] != PRODUCTS[-2]["category"] and p.get("gtin")][-1]
    sku = product["sku"]
    await box.actor.ask("receive", sku=sku, qty=20)  # 8 escrowed online (the default 40%)

    async def escrowed():
        return (await stock_row(http, sku)).get("escrow") == 8
    assert await eventually(escrowed), await stock_row(http, sku)
    r = await http.put(f"/stores/{STORE}/marketplaces/simmkt/share", headers=admin, json={"sku": sku, "ratio_bp": 5_000})
    assert r.status_code == 200 and r.json()["escrow"] == {sku: 4}, r.text

    async with httpx.AsyncClient(base_url=sim.url) as market, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
        async def offered(units: int):
            items = {i["sku"]: i for i in (await market.get(f"/sim/shops/{STORE}/items")).json()["items"]}
            return items.get(sku, {}).get("stock") == units and items[sku].get("price_fen") == product["price_fen"]
        assert await eventually(lambda: offered(4), timeout_s=2), (await market.get(f"/sim/shops/{STORE}/items")).text
        # the till sells 14 of the 20: past its 12, so the store takes 2 back from the online escrow (free units
        # only); the marketplace keeps its half of the 6 left online
        for _ in range(14):
            assert (await lane.post("/lanes/1/scan", json={"code": product["gtin"]})).status_code == 200
        sold = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**7})
        assert sold.status_code == 201, sold.text
        assert await eventually(lambda: offered(3), timeout_s=2), (await market.get(f"/sim/shops/{STORE}/items")).text
    row = await stock_row(http, sku)
    assert (row["escrow"], row["channels"]["mkt:simmkt"]["escrow"], row["available_online"]) == (6, 3, 3), json.dumps(row)


async def test_concurrent_changes_of_a_share_leave_the_stock_pool_on_the_newest(shop):
    """Several HQ desks change the same share at once: whichever commits last is the share in force, and the
    StockPool's part follows that one, not an older change that happened to reach it later."""
    services, http, box, admin, _ = shop
    sku = PRODUCTS[-3]["sku"]
    await box.actor.ask("receive", sku=sku, qty=100)  # 40 online

    async def escrowed():
        return (await stock_row(http, sku)).get("escrow") == 40
    assert await eventually(escrowed), await stock_row(http, sku)
    ratios = [1_000, 6_000, 2_500, 4_500, 5_000, 3_000, 5_500, 500]  # with jddj's 40% of the category (above)
    answers = await asyncio.gather(*[http.put(f"/stores/{STORE}/marketplaces/race/share", headers=admin,
                                              json={"sku": sku, "ratio_bp": bp}) for bp in ratios])
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    newest = max(answers, key=lambda a: a.json()["version"]).json()
    assert newest["version"] == len(ratios)
    row = await stock_row(http, sku)
    assert row["channels"]["mkt:race"]["escrow"] == 40 * newest["ratio_bp"] // 10_000, (newest, row)
