"""GS1 codes with a lot and a use-by at the till (GS1-128, DataBar Expanded, Digital Link; lane API and the serial
scanner): the line names its lot, the sale takes that lot, an expired code or lot is refused with the reason; and
the same through the cloud after the box was offline. Real SQLite, real ptys; the cloud module runs the harness."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.barcodes import gs1_check_digit
from protocol.clock import ReadingClock
from protocol.gs1 import GS
from protocol.lots import chain_day
from simulators.devices import Scanner
from simulators.label_scale import LabelScaleSim
from tests.integration.harness import eventually, operator_headers, running_cloud, this_clouds

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
DAY_MS = 86_400_000


def products() -> list[dict]:
    return json.loads(WORLD.read_text())["catalogue"]


def packed(k: int = -5) -> dict:
    return [p for p in products() if p["unit"] == "piece" and p["gtin"] and "online" in p["channels"]][k]


def weighed(k: int = -2) -> dict:
    return [p for p in products() if p["unit"] == "kg" and p["plu"]][k]


def day(offset: int, today: str) -> str:
    return (date.fromisoformat(today) + timedelta(days=offset)).isoformat()


def yymmdd(iso: str) -> str:
    return iso[2:4] + iso[5:7] + iso[8:10]


def in_store_gtin14(plu: str) -> str:
    """The GTIN-14 of a weighed product's in-store code: 0 + 21 PLU 00000 + check (GS1 GenSpecs 2.1.14)."""
    body = "021" + plu.zfill(5) + "00000"
    return body + str(gs1_check_digit(body))


class Clock(ReadingClock):
    """The wall clock, moved on by whole days when a test needs tomorrow."""

    def __init__(self) -> None:
        self.offset_ms = 0
        super().__init__(lambda: time.time_ns() + self.offset_ms * 1_000_000, time.monotonic_ns)


@pytest_asyncio.fixture
async def lone_box(tmp_path):
    clock, scanner = Clock(), Scanner(tmp_path / "scanner")
    box = await EdgeBox({"store_id": "S031", "data_dir": str(tmp_path / "d"), "world": str(WORLD),
                         "devices": {"scanner": {"port": scanner.path, "lane": "7"}}}, clock=clock).start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
        yield box, lane, clock, scanner
    await box.stop()
    scanner.close()


def lots_of(stock: list[dict], sku: str) -> dict[str, tuple[str, int]]:
    row = next(r for r in stock if r["sku"] == sku)
    return {lot["lot"]: (lot["use_by"], lot["on_hand"]) for lot in row["lots"]}


async def test_a_gs1_code_sells_from_its_lot_and_an_expired_one_is_refused_with_the_reason(lone_box):
    box, lane, clock, scanner = lone_box
    item, today = packed(), chain_day(box.clock.now_ms())
    gtin14 = "0" + item["gtin"]
    await box.actor.ask("receive", sku=item["sku"], qty=5, lot="L1", use_by=day(4, today))
    await box.actor.ask("receive", sku=item["sku"], qty=5, lot="L9", use_by=day(1, today))  # FEFO would take L9

    r = await lane.post("/lanes/1/scan", json={"code": f"]C101{gtin14}10L1{GS}17{yymmdd(day(4, today))}"})
    assert r.status_code == 200, r.text
    assert (r.json()["line"]["lot"], r.json()["line"]["use_by"]) == ("L1", day(4, today))
    link = f"https://id.freshmesh.example/01/{gtin14}/10/L1?17={yymmdd(day(4, today))}"
    assert (await lane.post("/lanes/1/scan", json={"code": link})).json()["line"]["qty"] == 2  # same lot: adds up
    r = await lane.post("/lanes/1/scan", json={"code": f"(01){gtin14}(17){yymmdd(day(-1, today))}(10)L2"})
    assert r.status_code == 409
    assert r.json()["detail"] == (f"lot L2 of {item['name']} passed its use-by {day(-1, today)}: it cannot be sold; "
                                  f"write it off as expired")
    r = await lane.post("/lanes/1/scan", json={"code": f"01{gtin14[:-1]}{(int(gtin14[-1]) + 1) % 10}"})
    assert r.status_code == 422 and "check digit" in r.json()["detail"]
    paid = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**7})
    assert paid.status_code == 201
    stock = (await lane.get("/stock")).json()["stock"]
    assert lots_of(stock, item["sku"]) == {"L1": (day(4, today), 3), "L9": (day(1, today), 5)}  # L1 sold, not L9

    # two days on: L9 is past its use-by; a code naming only the lot is refused with the box's date for it
    clock.offset_ms = 2 * DAY_MS
    r = await lane.post("/lanes/1/scan", json={"code": f"01{gtin14}10L9"})
    assert r.status_code == 409 and r.json()["detail"].startswith(f"lot L9 of {item['name']} passed its use-by "
                                                                 f"{day(1, today)}")
    r = await lane.post("/lanes/1/scan", json={"code": f"01{gtin14}10L1"})  # the box knows L1's date
    assert r.status_code == 200 and r.json()["line"]["use_by"] == day(4, today)
    assert (await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**7})).status_code == 201
    assert lots_of((await lane.get("/stock")).json()["stock"], item["sku"])["L1"] == (day(4, today), 2)
    assert (await lane.get("/stock/audit")).json()["violations"] == []


async def test_databar_with_weight_and_the_serial_scanner(lone_box):
    box, lane, clock, scanner = lone_box
    veg, today = weighed(), chain_day(box.clock.now_ms())
    await box.actor.ask("receive", sku=veg["sku"], qty=5000, lot="W1", use_by=day(2, today))
    code = f"]e001{in_store_gtin14(veg['plu'])}3103001250{GS}17{yymmdd(day(2, today))}{GS}10W1"
    scanner.scan(code)  # FNC1 as GS through the serial scanner, AIM id and all

    async def scanned():
        lines = (await lane.get("/lanes/7/cart")).json()["lines"]
        return lines or None
    lines = await eventually(scanned)
    assert lines and (lines[0]["sku"], lines[0]["weight_g"], lines[0]["lot"]) == (veg["sku"], 1250, "W1")
    assert lines[0]["list_fen"] == (veg["price_fen"] * 1250 + 500) // 1000
    r = await lane.post("/lanes/7/scan", json={"code": f"01{in_store_gtin14(veg['plu'])}10W1"})
    assert r.status_code == 422 and "carries no weight" in r.json()["detail"]
    scanner.scan(f"01{in_store_gtin14(veg['plu'])}3103001250{GS}17{yymmdd(day(-3, today))}")  # refused: no line
    scanner.garbage(40)
    await asyncio.sleep(0.3)
    assert len((await lane.get("/lanes/7/cart")).json()["lines"]) == 1
    assert (await lane.post("/lanes/7/pay", json={"method": "cash", "tendered_fen": 10**7})).status_code == 201
    assert lots_of((await lane.get("/stock")).json()["stock"], veg["sku"]) == {"W1": (day(2, today), 3750)}
    assert (await lane.get("/stock/audit")).json()["violations"] == []
    assert (await lane.get("/health")).json()["devices"]["scanner"]["state"] in ("ok", "degraded")


# ---- through the cloud, after selling offline -------------------------------------------------------------------
STORE = "S004"  # a store of the world (S001-S005); this test's SKU is one no other module sells


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"gs1{uuid.uuid4().hex[:6]}-") as (services, url):
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            yield services, http


async def test_lot_sales_made_offline_reach_the_cloud_once_with_the_boxs_lots(cloud, stack, tmp_path):
    services, http = cloud
    item, veg, data_dir = packed(-9), weighed(-4), str(tmp_path / "edge")
    scale = LabelScaleSim(tmp_path / "label_scale")
    config = {"store_id": STORE, "data_dir": data_dir, "world": str(WORLD),
              "devices": {"label_scales": [{"port": scale.path, "protocol": "fm-label"}]}}
    box = await EdgeBox(config).start()  # no NATS: the cloud is out of reach
    today = chain_day(box.clock.now_ms())
    gtin14 = "0" + item["gtin"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
        await box.actor.ask("receive", sku=item["sku"], qty=4, lot="K1", use_by=day(3, today))
        await box.actor.ask("receive", sku=item["sku"], qty=4, lot="K2", use_by=day(1, today))
        for _ in range(3):
            assert (await lane.post("/lanes/1/scan", json={"code": f"01{gtin14}17{yymmdd(day(3, today))}10K1"})
                    ).status_code == 200
        assert (await lane.post("/lanes/1/scan", json={"code": f"01{gtin14}10K0{GS}17{yymmdd(day(-1, today))}"})
                ).status_code == 409
        await box.actor.ask("receive", sku=veg["sku"], qty=5000)
        await eventually(lambda: asyncio.sleep(0, result=len(scale.plus) > 0))  # the scale has its table offline too
        scale.weigh(730)
        label = scale.print_label(veg["plu"])
        line = (await lane.post("/lanes/1/scan", json={"code": label.code})).json()["line"]
        assert (line["sku"], line["weight_g"]) == (veg["sku"], 730)
        assert (await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**7})).status_code == 201
        box_lots = lots_of((await lane.get("/stock")).json()["stock"], item["sku"])
        veg_lots = lots_of((await lane.get("/stock")).json()["stock"], veg["sku"])
        assert veg_lots == {"": ("", 5000 - 730)}
        assert box_lots == {"K1": (day(3, today), 1), "K2": (day(1, today), 4)}
        assert await box.store_db.outbox_depth() > 0  # waiting for the cloud
    await box.stop()

    online = {**config, "nats_url": stack.nats_url, "nats_password": stack.store_credentials(STORE)[1]}
    box = await EdgeBox(online).start()  # back online: the outbox drains, exactly once
    try:
        async def drained():
            return await box.store_db.outbox_depth() == 0

        async def cloud_lots():
            stock = (await http.get(f"/stores/{STORE}/stock", params={"sku": item["sku"]})).json()["stock"]
            return stock and lots_of(stock, item["sku"]) == box_lots
        assert await eventually(drained, timeout_s=20)
        assert await eventually(cloud_lots, timeout_s=20), "the cloud's lots never matched the box's"

        async def cloud_veg():
            stock = (await http.get(f"/stores/{STORE}/stock", params={"sku": veg["sku"]})).json()["stock"]
            return stock and lots_of(stock, veg["sku"]) == veg_lots
        assert await eventually(cloud_veg, timeout_s=20), "the label sale's grams never reached the cloud"

        async def scale_seen():
            store = next(x for x in (await http.get("/stores")).json()["stores"] if x["store_id"] == STORE)
            return "label_scale_1" in json.dumps(store["devices"])
        assert await eventually(scale_seen, timeout_s=20), "the heartbeat never showed the label scale"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                     base_url="http://lane") as lane:
            assert (await lane.get("/stock/audit")).json()["violations"] == []
        admin = await operator_headers(services)
        assert this_clouds((await http.get("/audit", headers=admin)).json()["violations"]) == []
    finally:
        await box.stop()
        scale.close()


async def test_a_sale_naming_a_lot_takes_no_more_than_that_lot_holds_and_never_invents_a_lot(lone_box):
    """A code naming lot L1 (2 on hand) sold 5 times, and a code naming a lot the box never received: only the
    unlotted stock may go negative; L1 stops at 0, the rest is taken first-expiry-first-out, no lot LX appears."""
    box, lane, clock, scanner = lone_box
    item, today = packed(), chain_day(box.clock.now_ms())
    gtin14 = "0" + item["gtin"]
    await box.actor.ask("receive", sku=item["sku"], qty=2, lot="L1", use_by=day(4, today))
    await box.actor.ask("receive", sku=item["sku"], qty=3, lot="L9", use_by=day(1, today))
    for _ in range(5):
        r = await lane.post("/lanes/1/scan", json={"code": f"(01){gtin14}(17){yymmdd(day(4, today))}(10)L1"})
        assert r.status_code == 200, r.text
    r = await lane.post("/lanes/1/scan", json={"code": f"(01){gtin14}(17){yymmdd(day(3, today))}(10)LX"})
    assert r.status_code == 200 and r.json()["line"]["lot"] == "LX"
    assert (await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**7})).status_code == 201
    lots = lots_of((await lane.get("/stock")).json()["stock"], item["sku"])
    assert lots == {"": ("", -1)}  # L1: 2 taken, L9: the other 3, LX (unknown): from the unlotted stock
    assert all(on_hand >= 0 for lot, (_, on_hand) in lots.items() if lot)
    assert (await lane.get("/stock/audit")).json()["violations"] == []
