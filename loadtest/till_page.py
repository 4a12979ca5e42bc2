"""`freshmesh load till-page`: scan -> line on the till page, as a cashier's keyboard-wedge scanner drives it.

A real box (store S032, its own SQLite in a temporary directory, no network: the till must not depend on it)
serves its lane app over real HTTP on loopback; one client posts scans one after the other to the page's
`POST /till/{lane}/scan` (what the page's scan field does on Enter) and times each until the rendered cart with the
new line has arrived. Every 30 scans the cart is voided (a cashier's basket). Reports scans/s and latency in ms.
"""
from __future__ import annotations

import asyncio
import json
import random
import socket
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn

from edge.box import EdgeBox
from edge.lanes import build_lane_app
from loadtest.report import latency_ms

STORE = "S032"
LANE = "9"
BASKET = 30
WORLD = Path(__file__).resolve().parents[1] / "cloud" / "data" / "default_world.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _measure(seconds: float, seed: int) -> dict:
    rng = random.Random(seed)
    codes = [p["gtin"] for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"]]
    with tempfile.TemporaryDirectory() as data_dir:
        box = await EdgeBox({"store_id": STORE, "data_dir": data_dir, "world": str(WORLD)}).start()
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(build_lane_app(box), host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        serving = asyncio.create_task(server.serve())
        samples: list[float] = []
        errors = 0
        try:
            while not server.started:
                await asyncio.sleep(0.05)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                await http.get(f"/till/{LANE}")  # the page is open
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    code = rng.choice(codes)
                    start = time.perf_counter()
                    r = await http.post(f"/till/{LANE}/scan", json={"code": code})
                    took = time.perf_counter() - start
                    if r.status_code == 200 and "tr class=\"line\"" in r.json()["html"]:
                        samples.append(took)
                    else:
                        errors += 1
                    if len(samples) % BASKET == 0:
                        await http.delete(f"/till/{LANE}/cart")
        finally:
            server.should_exit = True
            await serving
            await box.stop()
    return {"suite": "till-page", "store": STORE, "scans": len(samples), "errors": errors,
            "scans_per_s": round(len(samples) / seconds, 1), "scan_to_line_ms": latency_ms(samples),
            "target": "scan to line p99 under 100 ms"}


def run(seconds: float = 5.0, seed: int = 7) -> dict:
    return asyncio.run(_measure(seconds, seed))
