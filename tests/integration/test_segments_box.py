"""A real store box's till sale carries the rules its basket used to the cloud, which records them for the
promotion-effect report: what the till showed the customer (the lane's cart) is what the report counts."""
from __future__ import annotations

import time
import uuid

import httpx
import pytest
import pytest_asyncio

from edge.lanes import build_lane_app
from protocol.policy import chain_day
from tests.integration.harness import eventually, operator_headers, running_cloud
from tests.integration.test_markdowns import drained, start_box

pytestmark = pytest.mark.integration
STORE = "S028"  # provisioned by the test stack, sold from by no other module
MILK, MILK_GTIN = "DAI-MILK-0179", "6900000001790"  # dairy: the default book's dairy deals apply to it


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    folder = tmp_path_factory.mktemp("segments-box")
    async with running_cloud(stack, prefix=f"segb{uuid.uuid4().hex[:6]}-") as (services, url):
        box = await start_box(stack, STORE, folder / "edge", None, None, online=True)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _online(box), timeout_s=15), "the box never came online"
            yield services, http, box, lane
        await box.stop()


async def _online(box):
    return box.actor.online


async def test_the_tills_promotions_reach_the_report(world):
    services, http, box, lane = world
    await box.actor.ask("receive", sku=MILK, qty=10)
    for _ in range(3):
        r = await lane.post("/lanes/1/scan", json={"code": MILK_GTIN})
        assert r.status_code == 200, r.text
    cart = (await lane.get("/lanes/1/cart")).json()
    shown = {a["rule_id"]: a["saving_fen"] for a in cart["applied_rules"]}
    assert shown, f"the default book's dairy deals should apply to {MILK}: {cart}"
    r = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**6})
    assert r.status_code == 201, r.text
    sale = r.json()
    assert sale["total_fen"] == cart["total_fen"]
    assert await eventually(lambda: drained(box), timeout_s=20), "the store's outbox did not drain"

    db = services.cloud.db
    basket = await db.fetchrow("select * from promotion_baskets where basket_id = $1", f"till:{sale['sale_id']}")
    assert (basket["channel"], basket["store_id"], basket["goods_fen"]) == ("till", STORE, cart["total_fen"])
    today = str(chain_day(time.time_ns() // 1_000_000))
    answer = (await http.get("/operator/reports/promotions", headers=await operator_headers(services, "viewer"),
                             params={"from": today, "to": today, "store": STORE, "channel": "till"})).json()
    rows = {row["rule_id"]: row for row in answer["rows"]}
    assert {rid: (row["uses"], row["discount_fen"]) for rid, row in rows.items()} == \
        {rid: (1, fen) for rid, fen in shown.items()}  # this store's only sale
    assert all(row["sales_with_fen"] == cart["total_fen"] and row["baskets_without"] == 0 for row in rows.values())
