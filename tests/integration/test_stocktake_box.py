"""A stocktake on a store box with no cloud at all (no NATS configured): the session, its counts and the books at
count time are durable in the store's SQLite, so a box restarted in the middle of a count goes on with it, and the
approval's movements and note wait in the outbox for the cloud."""
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
STORE = "S013"
PRODUCT = next(p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"])


def config(tmp_path) -> dict:
    return {"store_id": STORE, "data_dir": str(tmp_path / "data"), "world": str(WORLD),
            "cashiers": {"MGR1": {"pin_hash": hash_pin("1357"), "role": "manager"}, "clerk1": hash_pin("1111"),
                         "clerk2": hash_pin("1111")}}


def lane_of(box) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane")


async def test_a_box_restarted_during_a_count_keeps_it_and_posts_it_for_the_cloud(tmp_path):
    sku = PRODUCT["sku"]
    box = await EdgeBox(config(tmp_path)).start()
    try:
        async with lane_of(box) as lane:
            assert (await lane.post(f"/stock/{sku}/receive", json={"qty": 30})).status_code == 200
            r = await lane.post("/stocktakes", json={"scope": {"skus": [sku]}, "opened_by": "clerk1"})
            sid = r.json()["stocktake_id"]
            assert (await lane.post(f"/stocktakes/{sid}/counts", json={"sku": sku, "counted": 26,
                                                                       "counted_by": "clerk1"})).status_code == 200
            await lane.delete("/lanes/1/cart")
            assert (await lane.post("/lanes/1/scan", json={"code": PRODUCT["gtin"]})).status_code == 200
            # a box with cashiers takes money only with one signed in at the lane (edge/lane_guard.py)
            assert (await lane.post("/lanes/1/cashier", json={"cashier_id": "clerk1", "pin": "1111"})).status_code == 200
            assert (await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**6})).status_code == 201
    finally:
        await box.stop()
    box = await EdgeBox(config(tmp_path)).start()  # the power came back
    try:
        async with lane_of(box) as lane:
            busy = await lane.post("/stocktakes", json={"scope": {"skus": [sku]}, "opened_by": "clerk2"})
            assert busy.status_code == 409  # still open, still holding its SKU
            review = (await lane.get(f"/stocktakes/{sid}", headers={"X-Manager-Id": "MGR1",
                                                                     "X-Manager-Pin": "1357"})).json()
            assert [(x["counted"], x["book_at_count"], x["variance"]) for x in review["counted"]] == [(26, 30, -4)]
            r = await lane.post(f"/stocktakes/{sid}/approve", json={"manager_id": "MGR1", "pin": "1357"})
            assert r.status_code == 200, r.text
            assert (await box.store_db.stock_level(sku)).on_hand == 26 - 1  # counted, less the sale after it
            assert (await lane.get("/stock/audit")).json()["violations"] == []
            kinds = [codec.decode(frame).KIND for _, _, frame, _ in await box.store_db.outbox(0, 1000)]
            assert kinds.count("stocktake.posted") == 1
            moved = [codec.decode(frame) for _, _, frame, kind in await box.store_db.outbox(0, 1000)
                     if kind == "stock.moved"]
            assert [(m.delta, m.reason, m.reference) for m in moved if m.reason == "stocktake"] == [(-4, "stocktake",
                                                                                                       sid)]
    finally:
        await box.stop()


async def test_bad_bodies_are_refused_naming_what_was_wrong(tmp_path):
    box = await EdgeBox(config(tmp_path)).start()
    try:
        async with lane_of(box) as lane:
            r = await lane.post("/stocktakes", content=b"{not json")
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
            r = await lane.post("/stocktakes", json={"scope": {"aisles": ["3"]}, "opened_by": "clerk1"})
            assert r.status_code == 422 and "scope" in r.json()["detail"]
            r = await lane.post("/stocktakes", json={"scope": {"categories": ["toys"]}, "opened_by": "clerk1"})
            assert r.status_code == 404 and "toys" in r.json()["detail"]
            r = await lane.post("/stocktakes", content=b'{"scope": "all", "opened_by": "' + b"x" * 70_000 + b'"}')
            assert r.status_code == 413
            sid = (await lane.post("/stocktakes", json={"scope": "all", "opened_by": "clerk1"})).json()["stocktake_id"]
            r = await lane.post(f"/stocktakes/{sid}/counts", json={"sku": PRODUCT["sku"], "counted": -1,
                                                                   "counted_by": "clerk1"})
            assert r.status_code == 422 and "counted" in r.json()["detail"]
            r = await lane.post(f"/stocktakes/{sid}/approve", json={"manager_id": "NOBODY", "pin": "1"})
            assert r.status_code == 401 and "NOBODY" in r.json()["detail"]
            r = await lane.post("/stocktakes/NOSUCH/cancel", json={"cancelled_by": "clerk1"})
            assert r.status_code == 404 and "NOSUCH" in r.json()["detail"]
            r = await lane.post("/stocktakes", json={"scope": "all", "opened_by": "stranger"})
            assert r.status_code == 404 and "opened_by: no cashier stranger" in r.json()["detail"]
    finally:
        await box.stop()
