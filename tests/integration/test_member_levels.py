"""Member levels in every channel, and budget caps held chain-wide (issue 17, items 3 and 4), on the real stack.

A gold member gets the gold price online and at the till (the same rule, the same amount); a member who crosses
into gold by paying an online order is priced gold at the till within seconds, without a top-up. A budget-capped
rule stopped by its cap across two cloud instances: tests/integration/test_promotion_budgets.py.

Store S002's box runs here (its own SQLite, on the stack's NATS).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from actors.member_ledger import RecordSpend
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol import codec
from tests.integration.harness import customer, eventually, operator_headers, pay_by_wallet, running_cloud

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S002"
EGGS = "EGG-FREE-R-0166"  # gold member price and gold rule R0004 (default book), sold in both channels, with a GTIN
GOLD_RULE = "R0004"
GIFT_RULE, TOFU = "R0016", "PAC-TOFU-0196"  # the default book's "spend 50, get tofu" (every channel, whole basket)
CN = timezone(timedelta(hours=8))


def catalogue() -> list[dict]:
    return json.loads(WORLD.read_text())["catalogue"]


def gtin(sku: str) -> str:
    return next(p["gtin"] for p in catalogue() if p["sku"] == sku)


def slot() -> str:
    return (datetime.now(CN) + timedelta(days=2)).replace(hour=11, minute=0, second=0, microsecond=0).isoformat()


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"lvl{uuid.uuid4().hex[:6]}-") as (services, url):
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": stack.nats_address, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        async with httpx.AsyncClient(base_url=url, timeout=30) as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _online(box), timeout_s=15)
            await box.actor.ask("receive", sku=EGGS, qty=40)  # 40% goes to the online escrow
            await box.actor.ask("receive", sku=TOFU, qty=10)

            async def escrowed():
                stock = (await http.get(f"/stores/{STORE}/stock")).json()["stock"]
                return {r["sku"] for r in stock if r["escrow"] >= 4} >= {EGGS, TOFU}
            assert await eventually(escrowed, timeout_s=15), "the box's escrow did not reach the cloud"
            yield services, http, box, lane
        await box.stop()


async def _online(box) -> bool:
    return box.actor.online


async def level_at_store(box, member_id: str, level: str) -> bool:
    cached = await box.store_db.member(member_id=member_id)
    return cached is not None and cached.level == level


async def past_spend(services, member_id: str, fen: int) -> None:
    """The member's earlier year of spending (set-up: what the ledger would hold for a long-standing member)."""
    await services.cloud.actors.member_ledger.send(RecordSpend(id=f"test:{uuid.uuid4().hex[:16]}", member=member_id,
                                                               amount_fen=fen))


async def online_eggs(http, member, qty: int = 1) -> dict:
    r = await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": slot(),
                                         "items": [{"sku": EGGS, "qty": qty}]},
                        headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert r.status_code == 201, r.text
    return r.json()


async def till_eggs(lane, lane_id: str, member_code: str | None, qty: int = 1) -> dict:
    await lane.delete(f"/lanes/{lane_id}/cart")
    if member_code:
        r = await lane.post(f"/lanes/{lane_id}/member", json={"member_code": member_code})
        assert r.status_code == 200, r.text
    for _ in range(qty):
        r = await lane.post(f"/lanes/{lane_id}/scan", json={"code": gtin(EGGS)})
        assert r.status_code in (200, 201), r.text
    return (await lane.get(f"/lanes/{lane_id}/cart")).json()


def saving(applied: list[dict], rule_id: str) -> int:
    return sum(a["saving_fen"] for a in applied if a["rule_id"] == rule_id)


async def test_a_gold_member_gets_the_gold_price_online_and_at_the_till(world):
    services, http, box, lane = world
    member = await customer(services, http)
    await past_spend(services, member.member_id, 600_000)  # 6,000 yuan in the last year: gold
    # the level went to the store with the ledger's answer (no top-up, no registration)
    assert await eventually(lambda: level_at_store(box, member.member_id, "gold"), timeout_s=10)
    order = await online_eggs(http, member)
    applied = order["pricing"]["applied"]
    assert saving(applied, GOLD_RULE) > 0, applied  # the explanation names the member rule
    assert saving(applied, "member-price:gold") > 0, applied
    code = (await services.members.view(member.member_id))["member_code"]
    cart = await till_eggs(lane, "7", code)
    assert cart["member"]["level"] == "gold" and cart["member"]["points"] >= 6_000
    assert {"stored_value_fen", "coupons"} <= set(cart["member"])
    assert saving(cart["applied_rules"], GOLD_RULE) == saving(applied, GOLD_RULE)
    assert cart["total_fen"] == order["total_fen"]
    list_fen = next(p["price_fen"] for p in catalogue() if p["sku"] == EGGS)
    assert order["total_fen"] < list_fen
    # a regular member pays more for the same eggs, online
    regular = await online_eggs(http, await customer(services, http))
    assert saving(regular["pricing"]["applied"], GOLD_RULE) == 0 and regular["total_fen"] > order["total_fen"]


async def test_crossing_into_gold_online_reaches_the_till_without_a_top_up(world):
    services, http, box, lane = world
    member = await customer(services, http)
    await past_spend(services, member.member_id, 499_000)  # 1,000 fen short of gold: silver
    assert await eventually(lambda: level_at_store(box, member.member_id, "silver"), timeout_s=10)
    code = (await services.members.view(member.member_id))["member_code"]
    before = await till_eggs(lane, "8", code)
    assert saving(before["applied_rules"], GOLD_RULE) == 0
    order = await online_eggs(http, member)  # priced silver: no gold rule yet
    assert saving(order["pricing"]["applied"], GOLD_RULE) == 0
    await pay_by_wallet(services, http, member, order["order_id"])  # this spend crosses the gold threshold
    assert await eventually(lambda: level_at_store(box, member.member_id, "gold"), timeout_s=10), \
        "the new level did not reach the store"
    after = await till_eggs(lane, "8", code)
    assert after["member"]["level"] == "gold"
    assert saving(after["applied_rules"], GOLD_RULE) > 0 and after["total_fen"] < before["total_fen"]
    row = await services.cloud.db.fetchrow("select level from member_levels where member_id = $1", member.member_id)
    assert row["level"] == "gold"


async def on_hand(box, sku: str) -> int:
    return (await box.store_db.stock_level(sku)).on_hand


async def movements(box, sku: str, reason: str, reference: str) -> list:
    sent = [codec.decode(frame) for _, _, frame, _ in await box.store_db.outbox(0, 100_000)]
    return [m for m in sent if m.KIND == "stock.moved" and m.sku == sku and m.reason == reason
            and m.reference == reference]


async def test_an_online_gift_is_reserved_picked_and_leaves_stock(world):
    services, http, box, lane = world
    member = await customer(services, http)
    order = await online_eggs(http, member, qty=6)  # past 50 yuan: the tofu gift
    (gift,) = order["pricing"]["gifts"]
    assert gift["rule_id"] == GIFT_RULE and gift["sku"] == TOFU and gift["given"] is True, order["pricing"]
    (line,) = [ln for ln in order["lines"] if ln.get("gift")]
    assert (line["sku"], line["amount_fen"], line["qty"]) == (TOFU, 0, 1)
    assert order["total_fen"] == sum(ln["amount_fen"] for ln in order["lines"])
    # reserved from the store's online stock with the order
    pool = await services.cloud.actors.stock_pool.positions(STORE, TOFU)
    assert pool[0]["pending"] >= 1
    tofu_before = await on_hand(box, TOFU)
    await pay_by_wallet(services, http, member, order["order_id"])

    async def arrived():
        listed = (await lane.get("/picking/orders")).json()["orders"]
        return next((o for o in listed if o["order_id"] == order["order_id"]), None)
    to_pick = await eventually(arrived, timeout_s=15)
    assert to_pick, "the order did not reach the store"
    assert {(ln["sku"], ln["qty"]) for ln in to_pick["lines"]} >= {(TOFU, 1), (EGGS, 6)}, to_pick
    oid = order["order_id"]
    assert (await lane.post(f"/picking/orders/{oid}/start")).status_code == 200
    for sku, qty in ((EGGS, 6), (TOFU, 1)):
        r = await lane.post(f"/picking/orders/{oid}/lines/{sku}", json={"qty": qty})
        assert r.status_code == 200, r.text
    assert (await lane.post(f"/picking/orders/{oid}/done")).json()["status"] == "picked"
    assert await on_hand(box, TOFU) == tofu_before - 1  # the gift left the shelf
    assert [m.delta for m in await movements(box, TOFU, "pick", oid)] == [-1]

    async def fulfilled():  # the cloud took the picked gift out of its online stock like any line
        p = (await services.cloud.actors.stock_pool.positions(STORE, TOFU))[0]
        return p["pending"] == 0 and p["confirmed"] == 0
    assert await eventually(fulfilled, timeout_s=15)
    report = (await http.get("/audit", headers=await operator_headers(services))).json()
    assert not [v for v in report["violations"] if TOFU in v or EGGS in v or STORE in v], report


async def test_a_till_gift_is_a_zero_priced_line_that_leaves_stock(world):
    services, http, box, lane = world
    cart = await till_eggs(lane, "9", None, qty=6)
    assert [g["sku"] for g in cart["gifts"]] == [TOFU], cart  # the cashier sees the gift
    tofu_before = await on_hand(box, TOFU)
    r = await lane.post("/lanes/9/pay", json={"method": "cash", "tendered_fen": 10**6})
    assert r.status_code == 201, r.text
    sale_id = r.json()["sale_id"]
    assert await on_hand(box, TOFU) == tofu_before - 1
    assert [m.delta for m in await movements(box, TOFU, "sale", sale_id)] == [-1]

    async def recorded():
        row = await services.cloud.db.fetchrow("select lines, total_fen from till_sales where sale_id = $1", sale_id)
        return row
    row = await eventually(recorded, timeout_s=15)
    assert row, "the sale did not reach the cloud"
    lines = json.loads(row["lines"])
    assert [TOFU, 1, "piece", 0] in lines, lines  # [sku, amount, unit, fen]
    assert row["total_fen"] == cart["total_fen"]
    report = (await http.get("/audit", headers=await operator_headers(services))).json()
    assert not [v for v in report["violations"] if TOFU in v or STORE in v], report
