"""Budget caps held chain-wide (issue 17, item 4), on the real stack: a budget-capped rule is stopped by its cap
across TWO cloud instances (two `Services`, each with its own actor clients and database pool, on one Ray: what two
API processes are), with orders racing between them; a cancelled order gives its part back. The store the test
speaks for first gets its tills' share of the budget (cloud/messaging/budgets.py): the orders share the rest.

The test's own world adds store S025 (provisioned by the stack, sold from by no other module) and a rule id no other
module uses; its orders are never paid, so nothing is sent to a store.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cloud.runtime.hosting import retire_actors
from cloud.runtime.shard_map import ShardConfig
from cloud.services.order_request import OrderItem, OrderRequest
from cloud.wiring import start_services
from cloud.world import World
from protocol.messages import EscrowGranted, StockMoved
from protocol.money import portion_fen
from tests.integration.harness import StoreLink, eventually, fixed_keys

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
CN = timezone(timedelta(hours=8))


def catalogue() -> list[dict]:
    return json.loads(WORLD.read_text())["catalogue"]


def slot() -> str:
    return (datetime.now(CN) + timedelta(days=2)).replace(hour=11, minute=0, second=0, microsecond=0).isoformat()


def saving(applied: list[dict], rule_id: str) -> int:
    return sum(a["saving_fen"] for a in applied if a["rule_id"] == rule_id)


BUDGET_RULE = "LVL-TEST-BUDGET-1"
BUDGET_STORE = "S025"  # a store of this test's own world: provisioned by the stack, sold from by no one else


def budget_sku() -> dict:
    """A piece under 40 yuan that no rule of the default book names, by sku or category (its stock is this test's
    own: it is held only at BUDGET_STORE, which no other module sells from)."""
    rules = json.loads(WORLD.read_text())["rule_book"]["rules"]
    named = {s for r in rules for s in r.get("skus", [])} | {r.get("gift_sku") for r in rules}
    categories = {c for r in rules for c in r.get("categories", [])}
    return next(p for p in reversed(catalogue()) if p["unit"] == "piece" and p["price_fen"] < 4_000
                and set(p["channels"]) == {"online", "offline"} and p["sku"] not in named
                and p["category"] not in categories)


def world_with_cap(sku: str, cap_fen: int) -> World:
    data = json.loads(WORLD.read_text())
    data["rule_book"]["rules"].append({"type": "item_discount", "id": BUDGET_RULE, "name": "Half price, capped",
                                       "percent_off_bp": 5000, "skus": [sku], "budget_fen": cap_fen})
    own = dict(next(s for s in data["stores"] if s["store_id"] == "S005"), store_id=BUDGET_STORE)
    data["stores"].append(own)
    return World.from_data(data)


async def test_a_budget_cap_stops_the_rule_across_two_cloud_instances(stack, ray_runtime):
    product = budget_sku()
    half = portion_fen(product["price_fen"], 5000)  # what the rule gives one order
    cap = 2 * half + half // 2  # two orders in full, the third gets what is left, the rest nothing
    shards, world = ShardConfig(prefix=f"lvb{uuid.uuid4().hex[:6]}-"), world_with_cap(product["sku"], cap)
    one = await start_services(world, stack.database_url, stack.nats_url, shards, background=True,
                               explicit_world=True, keys=fixed_keys(stack))
    two = await start_services(world, stack.database_url, stack.nats_url, shards, background=False,
                               explicit_world=True, keys=fixed_keys(stack))
    try:
        async with StoreLink(stack, BUDGET_STORE) as store:
            await store.publish(StockMoved(**store.next_envelope(), sku=product["sku"], delta=40, reason="receiving",
                                           shrinkage_reason="", on_hand_after=40, reference=""))

            async def on_hand():
                return await one.cloud.db.fetchval("select on_hand from store_stock where store_id = $1 and sku = $2",
                                                   BUDGET_STORE, product["sku"]) == 40
            assert await eventually(on_hand, timeout_s=15)
            await store.publish(EscrowGranted(**store.next_envelope(), sku=product["sku"], qty=30, escrow_after=30))

        async def granted():
            avail = await one.cloud.actors.stock_pool.availability([BUDGET_STORE], [product["sku"]])
            return avail[BUDGET_STORE].get(product["sku"], 0) >= 30
        assert await eventually(granted, timeout_s=15)
        members = [(await one.members.register(f"13{uuid.uuid4().int % 10**9:09d}"))[0]["member_id"] for _ in range(8)]

        async def order(i: int, member: str) -> dict:
            instance = (one, two)[i % 2]  # alternating between the two instances, all at once
            req = OrderRequest(fulfilment="pickup", store_id=BUDGET_STORE, slot_start=slot(),
                               items=(OrderItem(sku=product["sku"], qty=1),))
            return await instance.orders.create(req, member, uuid.uuid4().hex, {"i": i, "m": member})
        async def store_share():  # the store the test's link speaks for got its tills' share of the budget first
            shares = (await one.cloud.actors.budgets.budgets([BUDGET_RULE]))[BUDGET_RULE]["shares"]
            return shares.get(BUDGET_STORE, 0)
        till_share = await eventually(store_share, timeout_s=15)
        assert till_share == cap // 10, till_share
        online = cap - till_share  # what the online orders may give between them
        orders = await asyncio.gather(*(order(i, m) for i, m in enumerate(members)))
        given = [saving(o["pricing"]["applied"], BUDGET_RULE) for o in orders]
        assert sum(given) == online, given  # all that is left, and never more, across both instances
        assert sorted(given, reverse=True)[:3] == [half, half, online - 2 * half] and given.count(0) == len(given) - 3
        for o, g in zip(orders, given, strict=True):
            assert o["total_fen"] == product["price_fen"] - g
        # a cancelled order gives its part back: the next order (on the other instance) gets it
        first = next(o for o, g in zip(orders, given, strict=True) if g == half)
        await two.orders.cancel(first["order_id"], None, "test")
        view = (await one.cloud.actors.budgets.budgets([BUDGET_RULE]))[BUDGET_RULE]
        assert view["used"] == cap - half and view["left"] == half  # the store's share stays carved out
        late = await order(1, members[0])
        assert saving(late["pricing"]["applied"], BUDGET_RULE) == half
        assert await one.cloud.actors.budgets.audit() == []
        for o in [*orders, late]:  # nothing of this test stays reserved
            await one.orders.cancel(o["order_id"], None, "test done")
        assert (await one.cloud.actors.budgets.budgets([BUDGET_RULE]))[BUDGET_RULE]["used"] == till_share
    finally:
        await two.stop()
        await one.stop()
        retire_actors(shards.prefix)  # detached actors outlive their cloud
