"""kill -9 the edge box in the middle of sales; restart it: nothing printed is lost, the store db adds up, the outbox
drains and the cloud's count matches."""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from cloud.embedded.process import free_port
from tests.integration.harness import eventually, running_cloud

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S006"


def start_edge(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "simulators.cli", "edge", "--config", str(config_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_lane(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(200):
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the edge box did not come up")


async def sell(url: str, gtin: str, printed: list[str], stop: asyncio.Event, lane: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        while not stop.is_set():
            try:
                await http.post(f"/lanes/{lane}/scan", json={"code": gtin})
                r = await http.post(f"/lanes/{lane}/pay", json={"method": "cash", "tendered_fen": 10**6})
                if r.status_code == 201:
                    printed.append(r.json()["sale_id"])  # the receipt printed: this sale must never be lost
            except httpx.HTTPError:
                return  # the box died under us


def store_facts(db: Path) -> dict:
    conn = sqlite3.connect(db)
    try:
        sales = {r[0] for r in conn.execute("select sale_id from sales")}
        stock = dict(conn.execute("select sku, on_hand from stock"))
        journal = dict(conn.execute("select sku, sum(delta) from movements group by sku"))
        outbox = conn.execute("select count(*) from outbox").fetchone()[0]
        sale_events = conn.execute("select count(*) from outbox where kind = 'sale.committed'").fetchone()[0]
    finally:
        conn.close()
    return {"sales": sales, "stock": stock, "journal": journal, "outbox": outbox, "sale_events": sale_events}


async def test_kill_9_during_sales_loses_nothing(stack, ray_runtime, tmp_path):
    gtin = next(p["gtin"] for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"])
    async with running_cloud(stack, prefix=f"kill{uuid.uuid4().hex[:6]}-"):
        port = free_port()
        config = tmp_path / "edge.json"
        config.write_text(json.dumps({"store_id": STORE, "data_dir": str(tmp_path / "data"), "world": str(WORLD),
                                      "http_port": port, "nats_url": stack.nats_address,
                                      "nats_password": stack.store_credentials(STORE)[1]}))
        url = f"http://127.0.0.1:{port}"
        started_ms = time.time_ns() // 1_000_000
        printed: list[str] = []
        for round_ in range(3):
            edge = start_edge(config)
            await wait_lane(url)
            stop = asyncio.Event()
            sellers = [asyncio.create_task(sell(url, gtin, printed, stop, str(lane))) for lane in range(3)]
            await asyncio.sleep(random.Random(round_).uniform(0.5, 1.5))
            os.kill(edge.pid, signal.SIGKILL)  # power loss: no cleanup of any kind
            edge.wait(10)
            stop.set()
            await asyncio.gather(*sellers)
        db = tmp_path / "data" / f"{STORE}.sqlite"
        facts = store_facts(db)
        assert len(printed) >= 5, "too few sales before the kills to prove anything"
        assert set(printed) <= facts["sales"], "a sale whose receipt printed was lost"
        assert facts["stock"] == facts["journal"], "on-hand does not equal the sum of the journal"

        edge = start_edge(config)  # restart: the outbox drains to the cloud
        try:
            await wait_lane(url)

            async def drained():
                return store_facts(db)["outbox"] == 0
            # Bounded by design, not instant: a business ack the killed box had fetched but not yet acked comes
            # back after the consumer's ack wait (30 s), and an event whose ack was lost is re-sent after the
            # stuck-head wait (30 s); on a loaded box the kill lands in those windows now and then.
            assert await eventually(drained, timeout_s=75)
            conn = await asyncpg.connect(stack.database_url)
            try:
                cloud_sales = await conn.fetchval("select count(*) from till_sales where store_id = $1", STORE)
                events, seqs = await conn.fetchrow("select count(*), count(distinct seq) from edge_events "
                                                   "where store_id = $1 and wall_ms >= $2", STORE, started_ms)
            finally:
                await conn.close()
            assert cloud_sales == len(store_facts(db)["sales"])
            # the in-memory seq continued above every seq published before each kill (acked or not): none reused
            assert events > 0 and seqs == events, f"{events - seqs} event seqs were used twice across the kills"
        finally:
            edge.send_signal(signal.SIGTERM)
            edge.wait(20)
