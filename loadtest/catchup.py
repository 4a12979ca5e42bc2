"""`freshmesh load catchup`: a store comes back after an outage with a backlog; how fast does it drain?

1. A backlog is made offline: an edge box with no network sells `--sales` baskets (each sale is one
   sale.committed and one stock.moved per line) into its SQLite outbox.
2. The cloud runs (`freshmesh cloud` with embedded servers); the edge box is started as its own process on that
   store db with the network back, and drains its outbox: relay -> JetStream -> bridge (exactly once, Postgres) ->
   business acks -> outbox rows deleted.
Reports events_per_s (backlog events / time to an empty outbox) and edge_rss_mb (the edge process's peak RSS).
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import psutil

from cloud.embedded import EmbeddedStack
from cloud.embedded.process import free_port
from loadtest.cost import CpuMeter, ms_per_unit
from loadtest.report import Progress, stop_process, wait_http

STORE = "S001"
LINES_PER_SALE = 3


def world_path() -> str:
    """The default world a load box starts with (the cloud's own copy)."""
    return str(resources.files("cloud.data").joinpath("default_world.json"))


async def make_backlog(data_dir: Path, sales: int, seed: int, store: str = STORE) -> int:
    """A box at `data_dir` that sold `sales` baskets offline: its outbox holds the backlog; the count of events."""
    from edge.box import EdgeBox
    box = await EdgeBox({"store_id": store, "data_dir": str(data_dir), "world": world_path()}).start()
    try:
        actor = box.actor
        assert actor is not None and actor.catalogue is not None, "a started box has loaded its world"
        packed = [p for p in actor.catalogue.by_sku.values() if p.gtin and not p.weighed][:20]
        for p in packed:
            await actor.ask("receive", sku=p.sku, qty=10**6)
        rng = random.Random(seed)
        progress = Progress(f"backlog of {store}")
        for n in range(sales):
            for p in rng.sample(packed, LINES_PER_SALE):
                await actor.ask("scan", lane="1", code=p.gtin)
            await actor.ask("pay", lane="1", method="wallet_sim")
            progress.update(f"{n + 1:,} offline sales")
        progress.done()
        return await box.store_db.outbox_depth()
    finally:
        await box.stop()


def run_from_args(args) -> dict:
    sales = args.sales
    workdir = Path(tempfile.mkdtemp(prefix="freshmesh-catchup-"))
    events = asyncio.run(make_backlog(workdir / "edge", sales, args.seed))
    cloud = edge = None
    with EmbeddedStack(store_ids=[STORE]) as stack:
        env = {**os.environ, "NATS_URL": stack.nats_url, "DATABASE_URL": stack.database_url,
               "FRESHMESH_SECRET_KEY": secrets.token_urlsafe(48), "FRESHMESH_STORE_CREDENTIALS": str(stack.credentials.path)}
        env.pop("RAY_ADDRESS", None)
        cloud_port = free_port()
        try:
            cloud = subprocess.Popen([sys.executable, "-m", "simulators.cli", "cloud", "--http-port", str(cloud_port),
                                      "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_http(f"http://127.0.0.1:{cloud_port}/health", 120, cloud)
            lane_port = free_port()
            config = workdir / "edge.json"
            config.write_text(json.dumps({"store_id": STORE, "data_dir": str(workdir / "edge"), "world": world_path(),
                                          "http_port": lane_port, "nats_url": stack.nats_address,
                                          "nats_password": stack.store_credentials(STORE)[1]}))
            started = time.monotonic()
            edge = subprocess.Popen([sys.executable, "-m", "simulators.cli", "edge", "--config", str(config)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            proc = psutil.Process(edge.pid)
            meter = CpuMeter({cloud.pid: "cloud", edge.pid: "edge"}).start()
            sampled = started
            peak_rss, depth, first_drop = 0, events, None
            progress = Progress("catchup")
            while depth > 0 and time.monotonic() - started < 600:
                peak_rss = max(peak_rss, proc.memory_info().rss)
                depth = _outbox_depth(lane_port, depth)
                if first_drop is None and depth < events:
                    first_drop = time.monotonic()
                progress.update(f"outbox {depth:,} of {events:,}")
                if time.monotonic() - sampled > 1.0:
                    meter.sample()
                    sampled = time.monotonic()
                time.sleep(0.05)
            done = time.monotonic()
            cpu = meter.stop()
            drained_s = done - started
            progress.done()
        finally:
            stop_process(edge)
            stop_process(cloud)
            shutil.rmtree(workdir, ignore_errors=True)  # the backlog's store db: a run leaves nothing behind
    draining_s = done - (first_drop or started)
    return {"suite": "catchup", "store": STORE, "backlog_sales": sales, "backlog_events": events,
            "drained": depth == 0, "seconds_to_empty_outbox": round(drained_s, 3),
            "seconds_start_to_first_ack": round((first_drop or done) - started, 3),
            "events_per_s": round(events / drained_s), "events_per_s_once_draining": round(events / max(draining_s, 1e-3)),
            "edge_rss_mb": round(peak_rss / 2**20, 1),
            "cpu": cpu, "cpu_ms_per_event": ms_per_unit(cpu, events),
            "note": "events_per_s counts from the edge process start (import, SQLite, NATS connect) to an empty outbox"}


def _outbox_depth(port: int, last: int) -> int:
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return json.load(r)["outbox_depth"]
    except OSError:
        return last
