"""A budget-capped rule at a till (issue 17, item 4), on the real stack: the till applies it only within the share of
the budget the cloud granted its store; offline it stops when the share is used up (the last sale gets only what
is left); back online its uses are debited from the store's share in the cloud's PromotionBudgets actor and the
cloud grants the next share, so the rule applies again. The actor failing once when the uses arrive holds the
batch (not acked) until they are applied, once.

Isolation: the cloud's world adds store S029 (provisioned by the test stack, sold from by no other module) and a
rule id no other module uses; only S029's box runs, so the cloud grants shares to S029 only.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from actors.promotion_budgets import StoreUsed
from cloud.runtime.calls import ActorsUnavailable
from cloud.world import World
from edge import budget_db
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.money import portion_fen
from simulators.netcut import NetCut
from tests.integration import harness
from tests.integration.harness import eventually, running_cloud

pytestmark = pytest.mark.integration
STORE, RULE = "S029", "LVL-TILL-CAP-1"
DEFAULT = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"


def product() -> dict:
    """A piece with a GTIN, sold at the till, that no rule of the default book names by sku or category."""
    data = json.loads(DEFAULT.read_text())
    rules = data["rule_book"]["rules"]
    named = {s for r in rules for s in r.get("skus", [])} | {r.get("gift_sku") for r in rules}
    categories = {c for r in rules for c in r.get("categories", [])}
    return next(p for p in data["catalogue"] if p["unit"] == "piece" and p["gtin"] and p["price_fen"] < 4_000
                and "offline" in p["channels"] and p["sku"] not in named and p["category"] not in categories)


def world_file(path: Path, sku: str, budget_fen: int) -> Path:
    data = json.loads(DEFAULT.read_text())
    data["rule_book"]["rules"].append({"type": "item_discount", "id": RULE, "name": "Half price, capped",
                                       "percent_off_bp": 5000, "skus": [sku], "budget_fen": budget_fen})
    data["stores"].append(dict(next(s for s in data["stores"] if s["store_id"] == "S001"), store_id=STORE))
    path.write_text(json.dumps(data))
    return path


async def sell_one(lane, gtin: str) -> dict:
    await lane.delete("/lanes/3/cart")
    r = await lane.post("/lanes/3/scan", json={"code": gtin})
    assert r.status_code == 200, r.text
    cart = (await lane.get("/lanes/3/cart")).json()
    paid = await lane.post("/lanes/3/pay", json={"method": "cash", "tendered_fen": 10**6})
    assert paid.status_code == 201, paid.text
    assert paid.json()["total_fen"] == cart["total_fen"]
    return cart


def given(cart: dict) -> int:
    return sum(a["saving_fen"] for a in cart["applied_rules"] if a["rule_id"] == RULE)


async def test_a_till_stops_applying_a_capped_rule_when_its_share_is_used_up(stack, ray_runtime, tmp_path,
                                                                             monkeypatch):
    p = product()
    saving = portion_fen(p["price_fen"], 5000)
    step = 2 * saving + saving // 2  # the store's share: two sales in full, then what is left
    path = world_file(tmp_path / "world.json", p["sku"], step * 10)  # a step is a tenth of the budget
    monkeypatch.setattr(harness.World, "load", classmethod(lambda cls, _=None: World.from_data(
        json.loads(path.read_text()))))
    async with running_cloud(stack, prefix=f"lvt{uuid.uuid4().hex[:6]}-") as (services, _):
        proxy = await NetCut("127.0.0.1", int(stack.nats_address.rsplit(":", 1)[1])).start()
        config = {"store_id": STORE, "data_dir": str(tmp_path / "edge"), "world": str(path), "nats_url": proxy.url,
                  "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                         base_url="http://lane") as lane:
                async def granted(total: int):
                    async def check():
                        return (await budget_db.allowances(box.store_db.reader)).get(RULE, (0, 0))[0] == total
                    return await eventually(check, timeout_s=20)
                assert await granted(step), "the cloud did not grant the store its share"
                await box.actor.ask("receive", sku=p["sku"], qty=30)
                proxy.cut()

                async def offline():
                    return not box.actor.online
                assert await eventually(offline, timeout_s=15)
                carts = [await sell_one(lane, p["gtin"]) for _ in range(4)]
                assert [given(c) for c in carts] == [saving, saving, step - 2 * saving, 0]  # the share, no more
                assert carts[3]["total_fen"] == p["price_fen"]
                # the PromotionBudgets actor briefly unavailable when the store's uses arrive: the batch is not
                # acked without them, it is retried, and each use is applied once
                client, failed = services.cloud.actors.budgets, []
                real_send = client.send

                async def send_failing_once(command):
                    if isinstance(command, StoreUsed) and not failed:
                        failed.append(command)
                        raise ActorsUnavailable("promotion_budgets: down for the test")
                    return await real_send(command)
                monkeypatch.setattr(client, "send", send_failing_once)
                proxy.heal()

                async def debited():
                    view = (await services.cloud.actors.budgets.budgets([RULE]))[RULE]
                    return view if view["store_used"].get(STORE) == step else None
                view = await eventually(debited, timeout_s=20)
                assert view, "the store's uses did not reach the cloud"
                assert view["over"].get(STORE, 0) == 0 and view["used"] <= step * 10
                async def recorded():  # committed just after the actor's debit (same batch)
                    return await services.cloud.db.fetchval(
                        "select sum(fen) from budget_uses where rule_id = $1 and store_id = $2 "
                        "and channel = 'offline'", RULE, STORE) == step
                assert await eventually(recorded, timeout_s=10)  # the sales' uses, once each, in the record
                assert failed, "the fault was never met"
                ids = await services.cloud.db.fetch("select order_id from budget_uses where rule_id = $1", RULE)
                assert all(r["order_id"].startswith(f"store:{STORE}:") for r in ids)  # never an online order's id
                assert await granted(2 * step), "the cloud did not grant the next share"
                again = await sell_one(lane, p["gtin"])
                assert given(again) == saving
                assert await services.cloud.actors.budgets.audit() == []
        finally:
            await box.stop()
            await proxy.stop()
