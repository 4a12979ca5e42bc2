"""The demo's GS1 scanning staff (simulators.ops_labels) against a real box (lane API over HTTP) with a simulated label
scale on a pseudo-terminal (as the demo's fleet gives each store) and a real cloud: what it counts is what the cloud's
database shows, the labels the scale printed are what the till sold, and the box's and the cloud's books stay
right."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import uvicorn

from cloud.embedded.process import free_port
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from loadtest.http import LeanClients
from protocol.lots import chain_day
from simulators import ops_labels
from simulators.label_scale import LabelScaleSim
from tests.integration.harness import eventually, operator_headers, running_cloud, this_clouds

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S003"  # a store of the world; this test's SKUs are ones no other module sells


async def test_label_staff_counts_agree_with_the_clouds_summary(stack, ray_runtime, tmp_path, monkeypatch):
    monkeypatch.setattr(ops_labels, "ROUND_S", 0.3)  # many rounds in a few seconds; what a round does is the same
    catalogue = json.loads(WORLD.read_text())["catalogue"]
    packed = [p for p in catalogue if p["unit"] == "piece" and p["gtin"] and "offline" in p["channels"]][-12]
    veg = [p for p in catalogue if p["unit"] == "kg" and p["plu"]][-7]
    lotless = [p for p in catalogue if p["unit"] == "piece" and p["gtin"] and "offline" in p["channels"]][-13]
    async with running_cloud(stack, prefix=f"opslabels{uuid.uuid4().hex[:6]}-") as (services, url):
        scale = LabelScaleSim(tmp_path / "label_scale")
        box = await EdgeBox({"store_id": STORE, "data_dir": str(tmp_path), "world": str(WORLD),
                             "nats_url": stack.nats_url, "nats_password": stack.store_credentials(STORE)[1],
                             "devices": {"label_scales": [{"port": scale.path, "protocol": "fm-label"}]}}).start()
        today = chain_day(box.clock.now_ms())
        soon = (date.fromisoformat(today) + timedelta(days=2)).isoformat()
        await box.actor.ask("receive", sku=packed["sku"], qty=500, lot="P1", use_by=soon)
        await box.actor.ask("receive", sku=veg["sku"], qty=200_000, lot="V1", use_by=soon)
        await box.actor.ask("receive", sku=lotless["sku"], qty=500)
        before = await ops_labels.summary(services.cloud.db, [STORE])
        start_ms = box.clock.now_ms()
        # an ordinary till sale at lane 1 takes lot P1 first-expiry-first-out: not a sale of the labels staff
        assert (await box.actor.ask("scan", lane="1", code=packed["gtin"]))["line"]["sku"] == packed["sku"]
        assert (await box.actor.ask("pay", lane="1", method="cash", tendered_fen=10**7))["sale_id"]
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(build_lane_app(box), host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.02)
            counts: Counter = Counter()
            stop = asyncio.Event()
            fleet = SimpleNamespace(lanes={STORE: f"http://127.0.0.1:{port}"}, world_path=WORLD,
                                    devices={STORE: SimpleNamespace(label_scale=scale)})
            # the box loads the scale with its PLU table (the weighed goods it sells, at today's prices)
            assert await eventually(lambda: _loaded(scale, veg["plu"]), timeout_s=20), "the box never loaded the scale"
            async with LeanClients(timeout=15) as lean:
                staff = ops_labels.LabelOps(fleet, __import__("random").Random(5), counts, stop)
                tasks = staff.tasks(lean)
                await asyncio.sleep(6)
                stop.set()
                await asyncio.gather(*tasks)
            assert counts["labels_lot_sales"] >= 3 and counts["labels_gs1_sales"] >= 1, counts
            assert counts["labels_expired_refused"] >= 1, counts
            # the counter weighed loose goods on the label scale; each label it printed was scanned and paid
            assert counts["labels_scale_sales"] >= 1, counts
            assert counts["labels_scale_printed"] == counts["labels_scale_sales"] == len(scale.labels), counts
            # the till read back the weight each label carries (it prices it itself, with the day's promotions)
            assert counts["labels_scale_misread"] == 0 and counts["labels_scale_fen"] > 0, counts
            assert not [k for k in counts if k.startswith("staff_")], (counts, staff.refusals)

            async def agreed():
                after = await ops_labels.summary(services.cloud.db, [STORE])
                return (after["lot_sales"] - before["lot_sales"] == counts["labels_lot_sales"]
                        and after["lot_units_sold"] - before["lot_units_sold"] == counts["labels_lot_units"]
                        and after["scale_labels_sold"] - before["scale_labels_sold"] == counts["labels_scale_sales"]
                        ) and after
            after = await eventually(agreed, timeout_s=20)
            assert after, (counts, await ops_labels.summary(services.cloud.db, [STORE]), before)
            since = await ops_labels.summary(services.cloud.db, [STORE], since_ms=start_ms)
            assert (since["lot_sales"], since["lot_units_sold"]) == (counts["labels_lot_sales"],
                                                                     counts["labels_lot_units"])
            assert (since["scale_labels_sold"], since["scale_labels_fen"]) == (counts["labels_scale_sales"],
                                                                               counts["labels_scale_fen"])
            later = await ops_labels.summary(services.cloud.db, [STORE], since_ms=box.clock.now_ms() + 60_000)
            assert (later["lot_sales"], later["lot_units_sold"], later["scale_labels_sold"]) == (0, 0, 0)
            assert after["lots_held"] >= 2 and after["expired_lots_on_hand"] == before["expired_lots_on_hand"]
            async with httpx.AsyncClient(base_url=url, timeout=20) as http:
                box_stock = (await http.get(f"http://127.0.0.1:{port}/stock")).json()["stock"]
                assert (await http.get(f"http://127.0.0.1:{port}/stock/audit")).json()["violations"] == []
                for sku in (packed["sku"], veg["sku"]):
                    mine = {lot["lot"]: (lot["use_by"], lot["on_hand"])
                            for lot in next(r for r in box_stock if r["sku"] == sku)["lots"]}

                    async def same(sku=sku, mine=mine):
                        rows = (await http.get(f"/stores/{STORE}/stock", params={"sku": sku})).json()["stock"]
                        return rows and {lot["lot"]: (lot["use_by"], lot["on_hand"]) for lot in rows[0]["lots"]} == mine
                    assert await eventually(same, timeout_s=20), f"the cloud's lots of {sku} differ from the box's"
                admin = await operator_headers(services)
                assert this_clouds((await http.get("/audit", headers=admin)).json()["violations"]) == []
        finally:
            server.should_exit = True
            await serving
            await box.stop()
            scale.close()


async def _loaded(scale: LabelScaleSim, plu: str) -> bool:
    return any(entry.plu.lstrip("0") == plu.lstrip("0") for entry in list(scale.plus.values()))
