"""A stocktake by shelf area on a real store box (no cloud: the count works offline): the manager places SKUs in
areas (`PUT /areas`), a count of one area lists and counts only that area's SKUs with their area on the sheet,
sales during the count are accounted for as in any stocktake, and the map survives a restart of the box."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from edge.box import EdgeBox
from edge.cashier_pins import hash_pin
from edge.lanes import build_lane_app
from protocol import codec

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S021"  # a store id of this module alone (the box has no cloud here)
PIECES = [p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"]]
A, B, C = PIECES[3], PIECES[4], PIECES[5]
FRUIT, FRIDGE = "果蔬A区", "冷柜2"
MGR = {"manager_id": "MGR1", "pin": "1357"}


def config(tmp_path) -> dict:
    return {"store_id": STORE, "data_dir": str(tmp_path / "data"), "world": str(WORLD),
            "cashiers": {"MGR1": {"pin_hash": hash_pin("1357"), "role": "manager"}, "clerk1": hash_pin("1111")}}


def lane_of(box) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane")


async def on_hand(lane, sku: str) -> int:
    return next(x["on_hand"] for x in (await lane.get("/stock")).json()["stock"] if x["sku"] == sku)


async def test_a_count_of_one_area_counts_only_its_skus_with_sales_during_it_accounted_for(tmp_path):
    box = await EdgeBox(config(tmp_path)).start()
    try:
        async with lane_of(box) as lane:
            areas = {A["sku"]: FRUIT, B["sku"]: FRUIT, C["sku"]: FRIDGE}
            r = await lane.put("/areas", json={"manager_id": "clerk1", "pin": "1111", "areas": areas})
            assert r.status_code == 403 and "not a manager" in r.json()["detail"]
            r = await lane.put("/areas", json={"manager_id": "MGR1", "pin": "0000", "areas": areas})
            assert r.status_code == 401
            r = await lane.put("/areas", json={**MGR, "areas": {**areas, "NO-SUCH-0001": FRUIT}})
            assert r.status_code == 404 and "NO-SUCH-0001" in r.json()["detail"]
            assert (await lane.get("/areas")).json()["skus"] == 0  # nothing written by the refusals
            r = await lane.put("/areas", json={**MGR, "areas": areas})
            assert r.status_code == 200, r.text
            for sku, qty in ((A["sku"], 30), (B["sku"], 20), (C["sku"], 10)):
                assert (await lane.post(f"/stock/{sku}/receive", json={"qty": qty})).status_code == 200

            r = await lane.post("/stocktakes", json={"scope": {"areas": [FRUIT]}, "opened_by": "clerk1"})
            assert r.status_code == 201, r.text
            sid, sheet = r.json()["stocktake_id"], r.json()["sheet"]
            assert sorted((x["sku"], x["area"]) for x in sheet) == sorted([(A["sku"], FRUIT), (B["sku"], FRUIT)])
            assert all("on_hand" not in json.dumps(x) and "book" not in json.dumps(x) for x in sheet)  # blind
            # the fridge is not held by this count: another may count it at the same time
            other = await lane.post("/stocktakes", json={"scope": {"areas": [FRIDGE]}, "opened_by": "clerk1"})
            assert other.status_code == 201 and [x["sku"] for x in other.json()["sheet"]] == [C["sku"]]
            await lane.post(f"/stocktakes/{other.json()['stocktake_id']}/cancel", json={"cancelled_by": "clerk1"})

            count = f"/stocktakes/{sid}/counts"
            r = await lane.post(count, json={"sku": C["sku"], "counted": 3, "counted_by": "clerk1"})
            assert r.status_code == 404 and "scope" in r.json()["detail"]  # another area's SKU
            assert (await lane.post(count, json={"sku": A["sku"], "counted": 26, "counted_by": "clerk1"})).status_code == 200
            assert (await lane.post(count, json={"sku": B["sku"], "counted": 20, "counted_by": "clerk1"})).status_code == 200
            await lane.delete("/lanes/1/cart")
            assert (await lane.post("/lanes/1/scan", json={"code": A["gtin"]})).status_code == 200  # sold after its count
            # a box with cashiers takes money only with one signed in at the lane (edge/lane_guard.py)
            assert (await lane.post("/lanes/1/cashier", json={"cashier_id": "clerk1", "pin": "1111"})).status_code == 200
            assert (await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**6})).status_code == 201

            r = await lane.post(f"/stocktakes/{sid}/approve", json=MGR)
            assert r.status_code == 200, r.text
            assert await on_hand(lane, A["sku"]) == 26 - 1  # counted, less the sale after the count
            assert await on_hand(lane, B["sku"]) == 20
            assert await on_hand(lane, C["sku"]) == 10  # the fridge was not counted: untouched
            assert (await lane.get("/stock/audit")).json()["violations"] == []
            posted = [codec.decode(f) for _, _, f, kind in await box.store_db.outbox(0, 1000) if kind == "stocktake.posted"]
            assert [(p.scope, sorted((x.sku, x.variance) for x in p.lines)) for p in posted] == [
                (f"areas:{FRUIT}", sorted([(A["sku"], -4), (B["sku"], 0)]))]  # every counted line, none of the fridge
    finally:
        await box.stop()
    box = await EdgeBox(config(tmp_path)).start()  # the map is the store's, kept across a restart
    try:
        async with lane_of(box) as lane:
            shown = (await lane.get("/areas")).json()
            assert {(a["area"], s["sku"]) for a in shown["areas"] for s in a["skus"]} == {
                (FRUIT, A["sku"]), (FRUIT, B["sku"]), (FRIDGE, C["sku"])}
            assert shown["set_by"] == "MGR1"
            r = await lane.post("/stocktakes", json={"scope": {"areas": ["冷柜9"]}, "opened_by": "clerk1"})
            assert r.status_code == 404 and "冷柜9" in r.json()["detail"]
    finally:
        await box.stop()
