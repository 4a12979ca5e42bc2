"""Stock per lot at the store box and in the cloud: lots received with their use-by, sold first-expiry-first-out,
an expired lot never taken, Σ movements = on_hand per SKU and per lot, and the cloud's lots equal to the box's."""
from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.core.outcome import Refused
from edge.lanes import build_lane_app
from protocol import codec
from protocol.lots import chain_day
from tests.integration.harness import eventually, operator_headers, running_cloud, this_clouds

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S002"  # the cloud shows stock of the world's stores; this module's SKU is one nobody else sells


def packed() -> dict:
    return [p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"]
            and "online" in p["channels"]][-3]


def day(offset: int, today: str) -> str:
    return (date.fromisoformat(today) + timedelta(days=offset)).isoformat()


@pytest_asyncio.fixture
async def lone_box(tmp_path):
    box = await EdgeBox({"store_id": "S009", "data_dir": str(tmp_path), "world": str(WORLD)}).start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
        yield box, lane
    await box.stop()


async def sell(lane, code: str, times: int) -> dict:
    for _ in range(times):
        assert (await lane.post("/lanes/1/scan", json={"code": code})).status_code == 200
    return (await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**7})).json()


def lots_of(stock: list[dict], sku: str) -> dict[str, tuple[str, int]]:
    row = next(r for r in stock if r["sku"] == sku)
    return {lot["lot"]: (lot["use_by"], lot["on_hand"]) for lot in row["lots"]}


async def test_sales_take_the_earliest_use_by_first_and_never_an_expired_lot(lone_box):
    box, lane = lone_box
    sku, today = packed()["sku"], chain_day(box.clock.now_ms())
    await box.actor.ask("receive", sku=sku, qty=5, lot="LATE", use_by=day(6, today))
    await box.actor.ask("receive", sku=sku, qty=3, lot="SOON", use_by=day(1, today))
    await box.actor.ask("receive", sku=sku, qty=2)  # unlotted: goes last
    # an expired lot on record (it came in before it expired: the receiving refuses it now)
    with pytest.raises(Refused, match="passed its use-by"):
        await box.actor.ask("receive", sku=sku, qty=4, lot="OLD", use_by=day(-1, today))
    await sell(lane, packed()["gtin"], 4)  # 3 from SOON, 1 from LATE
    stock = (await lane.get("/stock")).json()["stock"]
    assert lots_of(stock, sku) == {"LATE": (day(6, today), 4), "": ("", 2)}
    await sell(lane, packed()["gtin"], 8)  # LATE's 4, the unlotted 2, and 2 beyond: unlotted goes below zero
    assert lots_of((await lane.get("/stock")).json()["stock"], sku) == {"": ("", -2)}
    moved = [codec.decode(f) for _, _, f, kind in await box.store_db.outbox(0, 1000) if kind == "stock.moved"]
    assert all(sum(share.delta for share in m.lots) == m.delta and m.lots for m in moved)
    assert (await lane.get("/stock/audit")).json()["violations"] == []


async def test_the_audit_names_a_lot_that_drifted_from_its_movements(lone_box):
    box, lane = lone_box
    sku = packed()["sku"]
    await box.actor.ask("receive", sku=sku, qty=5, lot="L1", use_by="2099-01-01")
    await box.store_db.writer.execute("update lots set on_hand = on_hand + 1 where sku = ? and lot = 'L1'", (sku,))
    violations = (await lane.get("/stock/audit")).json()["violations"]
    assert any("'L1'" in v for v in violations) and any("Σ lots" in v for v in violations), violations


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"lots{uuid.uuid4().hex[:6]}-") as (services, url):
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": stack.nats_url, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        async with httpx.AsyncClient(base_url=url, timeout=20) as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            yield services, http, box, lane
        await box.stop()


async def test_the_clouds_stock_view_shows_the_same_lots_and_use_by_as_the_box(world):
    services, http, box, lane = world
    sku, today = packed()["sku"], chain_day(box.clock.now_ms())
    await box.actor.ask("receive", sku=sku, qty=6, lot="A1", use_by=day(2, today))
    await box.actor.ask("receive", sku=sku, qty=4, lot="B7", use_by=day(5, today))
    await sell(lane, packed()["gtin"], 7)
    box_lots = lots_of((await lane.get("/stock")).json()["stock"], sku)
    assert box_lots == {"B7": (day(5, today), 3)}

    async def cloud_lots():
        stock = (await http.get(f"/stores/{STORE}/stock", params={"sku": sku})).json()["stock"]
        found = lots_of(stock, sku) if stock else {}
        return found if found == box_lots else None
    assert await eventually(cloud_lots), "the cloud's lots never matched the box's"
    assert (await lane.get("/stock/audit")).json()["violations"] == []
    admin = await operator_headers(services)
    assert this_clouds((await http.get("/audit", headers=admin)).json()["violations"]) == []
