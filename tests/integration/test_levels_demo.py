"""The demo's levels/budgets/gifts customers (simulators/levels_demo.py) for a few seconds against a real cloud and a
real store box: what they counted agrees with the summary read from the cloud's database, and the capped rule never
gave more than its cap.

Isolation: the cloud runs a world of ONE store, S028 (provisioned by the test stack, sold from by no other module),
so HQ's new rule book is sent to that store only and nothing waits in the world stores' streams.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import uvicorn

from cloud.embedded.process import free_port
from cloud.world import World
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from loadtest.http import LeanClients
from simulators import levels_demo
from simulators.levels_demo import BUDGET_FEN, BUDGET_RULE, LevelsShoppers
from tests.integration import harness
from tests.integration.harness import eventually, operator_headers, running_cloud

pytestmark = pytest.mark.integration
STORE = "S028"
DEFAULT = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"


def one_store_world(path: Path) -> Path:
    data = json.loads(DEFAULT.read_text())
    data["stores"] = [dict(next(s for s in data["stores"] if s["store_id"] == "S001"), store_id=STORE)]
    path.write_text(json.dumps(data))
    return path


@contextlib.asynccontextmanager
async def serving(app):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_the_levels_demo_counts_agree_with_the_cloud(stack, ray_runtime, tmp_path, monkeypatch):
    world_file = one_store_world(tmp_path / "world.json")
    monkeypatch.setattr(harness.World, "load", classmethod(lambda cls, path=None: World.from_data(
        json.loads(world_file.read_text()))))
    since = time.time_ns() // 1_000_000
    async with running_cloud(stack, prefix=f"lvd{uuid.uuid4().hex[:6]}-") as (services, url):
        config = {"store_id": STORE, "data_dir": str(tmp_path / "edge"), "world": str(world_file),
                  "nats_url": stack.nats_address, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        try:
            async def online():
                return box.actor.online
            assert await eventually(online, timeout_s=15)
            products = json.loads(world_file.read_text())["catalogue"]
            pieces = [p["sku"] for p in products if p["unit"] == "piece" and "online" in p["channels"]][:6]
            for sku in pieces:
                await box.actor.ask("receive", sku=sku, qty=50)  # 20 of each online

            async def escrowed():
                stock = await services.cloud.actors.stock_pool.availability([STORE], pieces)
                return all(stock[STORE].get(s, 0) >= 20 for s in pieces)
            assert await eventually(escrowed, timeout_s=20)
            operator = await operator_headers(services)
            async with serving(build_lane_app(box)) as lane_url, LeanClients(timeout=20) as http:
                counts: Counter = Counter()
                stop = asyncio.Event()
                shoppers = LevelsShoppers(url, operator, services.identity.sms.inbox, {STORE: lane_url},
                                          random.Random(17), counts, stop, services.payments.wallet.sim.url,
                                          round_s=0.05)
                task = asyncio.create_task(shoppers.run(http))
                await asyncio.sleep(8)
                stop.set()
                await task
            assert counts["levels_rules_published"] == 1, counts
            assert counts["levels_orders"] >= 5, counts
            assert not [k for k in counts if k.startswith("levels_refused:5")], counts  # no server errors

            async def summary():
                found = await levels_demo.summary(services.cloud.db, since)
                budget = next(b for b in found["budgets"] if b["rule_id"] == BUDGET_RULE)
                return found if budget["used_fen"] == counts["levels_budget_fen"] else None
            found = await eventually(summary, timeout_s=10)
            assert found, (await levels_demo.summary(services.cloud.db, since), counts)
            budget = next(b for b in found["budgets"] if b["rule_id"] == BUDGET_RULE)
            assert budget["cap_fen"] == BUDGET_FEN and budget["used_fen"] <= BUDGET_FEN
            assert found["gifts_by_channel"]["online"] == counts["levels_gifts_online"]
            assert sum(found["members_by_level"].values()) >= 1
            view = (await services.cloud.actors.budgets.budgets([BUDGET_RULE]))[BUDGET_RULE]
            # the actor's figure also holds the share carved out for the store's tills
            assert view["used"] == budget["used_fen"] + sum(view["shares"].values()), view
        finally:
            await box.stop()
