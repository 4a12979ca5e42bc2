"""The demo's restocking staff (simulators/ops_restock.py) against a real store box served over HTTP and a real
cloud: HQ sets points above what the store holds, the box raises the alerts, the staff order and receive each once
through the box's lane API, and what they counted agrees with the cloud's summary read from PostgreSQL."""
from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn

from cloud.embedded.process import free_port
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from edge.store_db import SEQ_FLOOR_KEY, StoreDb
from loadtest.http import LeanClients
from simulators import ops_restock
from tests.integration.harness import eventually, operator_headers, running_cloud, this_clouds

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S003"
SKUS = ("PAC-DUMPLI-0209", "PAC-DUMPLI-0210")  # sold by no other module


@pytest_asyncio.fixture(scope="module")
async def served(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"opsrestock{uuid.uuid4().hex[:6]}-") as (services, url):
        data_dir = tmp_path_factory.mktemp("edge")
        conn = await asyncpg.connect(stack.database_url)
        try:  # a store's seqs only grow: go on from the highest the cloud has of it
            seq = await conn.fetchval("select coalesce(max(seq), 0) from edge_events where store_id = $1", STORE) or 0
        finally:
            await conn.close()
        db = await StoreDb(data_dir / f"{STORE}.sqlite").open()
        await db.writer.execute("insert into meta (key, value) values (?, ?)", (SEQ_FLOOR_KEY, str(seq)))
        await db.close()
        box = await EdgeBox({"store_id": STORE, "data_dir": str(data_dir), "world": str(WORLD),
                             "nats_url": stack.nats_url, "nats_password": stack.store_credentials(STORE)[1]}).start()
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(build_lane_app(box), host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        try:
            yield services, url, box, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task
            await box.stop()


async def test_the_restock_staff_receive_each_alert_once_and_their_counts_agree_with_the_clouds_summary(served, stack):
    services, cloud_url, box, lane_url = served
    assert await eventually(lambda: _online(box), timeout_s=10)
    for sku in SKUS:
        await box.actor.ask("receive", sku=sku, qty=10)
    fleet = SimpleNamespace(lanes={STORE: lane_url})
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    try:
        before = await ops_restock.summary(pool, stores=[STORE])
        counts: Counter = Counter()
        rng = random.Random(3)
        admin = await operator_headers(services)
        assert await ops_restock.hq_sets_points(cloud_url, admin, fleet, rng, counts, per_store=2) == 2
        stop = asyncio.Event()
        # as the demo makes it (fleet, rng, counts, stop): the box names each alert's supplier
        staff = ops_restock.OpsRestock(fleet, rng, counts, stop, round_s=0.3, lead_s=0.5)
        async with LeanClients(timeout=10) as http:
            tasks = staff.tasks(http)

            async def all_received():
                return counts["restock_received"] >= 2
            assert await eventually(all_received, timeout_s=15), counts
            await asyncio.sleep(1)  # a few more rounds: nothing is received twice
            stop.set()
            await asyncio.gather(*tasks)
        assert counts["restock_alerts_seen"] == counts["restock_received"] == 2, counts
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                     base_url="http://lane") as lane:
            alerts = (await lane.get("/restock/alerts")).json()["alerts"]
        assert len(alerts) == 2 and not any(a["open"] for a in alerts)
        assert counts["restock_received_units"] == sum(a["suggested_qty"] for a in alerts)
        assert not [k for k in counts if k.startswith("staff_refused")], counts
        assert counts["restock_notes_received"] == 2  # as the supplier's delivery notes, with lots
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                     base_url="http://lane") as lane:
            notes = (await lane.get("/receivings", params={"since": 0})).json()["receivings"]
        assert sorted(n["note_no"] for n in notes) == sorted(f"RS-{a['alert_id']}" for a in alerts)

        async def synced():
            after = await ops_restock.summary(pool, stores=[STORE])
            return after if after["alerts_cleared"] - before["alerts_cleared"] == 2 else None
        after = await eventually(synced)
        assert after, "the cloud never heard of both alerts cleared"
        assert after["alerts_raised"] - before["alerts_raised"] == counts["restock_alerts_seen"]
        assert after["alerts_cleared"] - before["alerts_cleared"] == counts["restock_received"]
        assert after["reorder_points_set"] - before["reorder_points_set"] == counts["restock_points_set"] == 2
        assert after["alerts_open"] == before["alerts_open"]
        assert (after["restock_deliveries_received"] - before["restock_deliveries_received"]
                == counts["restock_notes_received"])
    finally:
        await pool.close()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
        assert (await lane.get("/stock/audit")).json()["violations"] == []
    async with httpx.AsyncClient(base_url=cloud_url, timeout=20) as http:
        admin = await operator_headers(services)
        assert this_clouds((await http.get("/audit", headers=admin)).json()["violations"]) == []


async def _online(box) -> bool:
    return box.actor.online
