"""Online orders at the seams of coupons and promotion budgets (issue 17 review), on the real stack (Ray,
PostgreSQL, NATS):
- a held coupon the order's real pricing did not use (the budgets changed between the preview and the pricing) is
  let go, back in the wallet, and the answer says it did not apply and why (never redeemed with the order);
- a coupon on a budget-capped coupon rule is accepted online (the preview reads the budgets left);
- pricing failing after the coupon was held leaves nothing held: the order is rejected, its coupon is back in the
  wallet, its stock free again, and a retry of its key is told to place it again.

Isolation: the module's world adds store S026 (provisioned by the stack, sold from by no other module) and rule ids
no other module uses; its orders are never paid, so nothing is sent to a store.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio

from cloud.runtime.hosting import retire_actors
from cloud.runtime.shard_map import ShardConfig
from cloud.services.order_request import OrderItem, OrderRequest
from cloud.services.verdicts import Refusal
from cloud.wiring import start_services
from cloud.world import World
from protocol.messages import EscrowGranted, StockMoved
from protocol.money import portion_fen
from tests.integration.harness import StoreLink, eventually, fixed_keys
from tests.integration.wallet_coupons import coupon_status, issued_coupon, new_member

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
CN = timezone(timedelta(hours=8))
STORE = "S026"  # this module's own store
RUN = uuid.uuid4().hex[:6]
PREFIX = f"opr-{RUN}"  # this module's coupon definitions
CAPPED, MIN_SPEND, BUDGETED = "OPR-CAPPED-ITEM", "OPR-COUPON-MIN", "OPR-COUPON-BUDGETED"
PLAIN = "OPR-COUPON-PLAIN"


def product() -> dict:
    """A piece under 20 yuan that no rule of the default book names, by sku or category (two of them stay below
    the book's "spend 40" threshold, so only this module's rules price the coupon test's order)."""
    data = json.loads(WORLD.read_text())
    rules = data["rule_book"]["rules"]
    named = {s for r in rules for s in r.get("skus", [])} | {r.get("gift_sku") for r in rules}
    categories = {c for r in rules for c in r.get("categories", [])}
    candidates = [p for p in data["catalogue"] if p["unit"] == "piece" and p["price_fen"] < 1_900
                  and set(p["channels"]) == {"online", "offline"} and p["sku"] not in named
                  and p["category"] not in categories]
    return candidates[len(candidates) // 2]


def world(sku: str, price_fen: int) -> World:
    data = json.loads(WORLD.read_text())
    data["rule_book"]["rules"] += [
        {"type": "item_discount", "id": CAPPED, "name": "20% off, capped", "percent_off_bp": 2000, "skus": [sku],
         "budget_fen": 5 * price_fen},
        {"type": "coupon", "id": MIN_SPEND, "name": "5% off from two", "percent_off_bp": 500, "skus": [sku],
         "min_spend_fen": 2 * price_fen},
        {"type": "coupon", "id": BUDGETED, "name": "3 yuan off, budgeted", "amount_off_fen": 300, "skus": [sku],
         "budget_fen": 100_000},
        {"type": "coupon", "id": PLAIN, "name": "2 yuan off", "amount_off_fen": 200, "skus": [sku]}]
    data["stores"].append(dict(next(s for s in data["stores"] if s["store_id"] == "S005"), store_id=STORE))
    return World.from_data(data)


def slot() -> str:
    return (datetime.now(CN) + timedelta(days=2)).replace(hour=11, minute=0, second=0, microsecond=0).isoformat()


def req(sku: str, qty: int, coupons: tuple[str, ...] = ()) -> OrderRequest:
    return OrderRequest(fulfilment="pickup", store_id=STORE, slot_start=slot(), items=(OrderItem(sku=sku, qty=qty),),
                        coupons=coupons)


def saving(o: dict, rule_id: str) -> int:
    return sum(a["saving_fen"] for a in o["pricing"]["applied"] if a["rule_id"] == rule_id)


@pytest.fixture(scope="module")
def item() -> dict:
    return product()


@pytest_asyncio.fixture(scope="module")
async def services(stack, ray_runtime, item):
    one = await start_services(world(item["sku"], item["price_fen"]), stack.database_url, stack.nats_url,
                               ShardConfig(prefix=f"opr{uuid.uuid4().hex[:6]}-"), background=True,
                               explicit_world=True, keys=fixed_keys(stack))
    try:
        async with StoreLink(stack, STORE) as store:
            await store.publish(StockMoved(**store.next_envelope(), sku=item["sku"], delta=200, reason="receiving",
                                           shrinkage_reason="", on_hand_after=200, reference=""))

            async def on_hand():
                return await one.cloud.db.fetchval("select on_hand from store_stock where store_id = $1 and sku = $2",
                                                   STORE, item["sku"]) == 200
            assert await eventually(on_hand, timeout_s=15)
            await store.publish(EscrowGranted(**store.next_envelope(), sku=item["sku"], qty=150, escrow_after=150))

        async def granted():
            avail = await one.cloud.actors.stock_pool.availability([STORE], [item["sku"]])
            return avail[STORE].get(item["sku"], 0) >= 100
        assert await eventually(granted, timeout_s=15)
        yield one
    finally:
        await one.stop()
        retire_actors(one.cloud.shards.prefix)  # detached actors outlive their cloud


async def test_a_held_coupon_the_real_pricing_did_not_use_goes_back_to_the_wallet(services, item):
    sku, price = item["sku"], item["price_fen"]
    taker, buyer = await new_member(services), await new_member(services)
    # another order takes all the capped rule has left
    big = await services.orders.create(req(sku, 40), taker, uuid.uuid4().hex, {"t": 1})
    assert saving(big, CAPPED) > 0
    assert (await services.cloud.actors.budgets.budgets([CAPPED]))[CAPPED]["left"] == 0
    code = await issued_coupon(services, MIN_SPEND, buyer, PREFIX)
    # the buyer's preview: no capped discount left, two pieces reach the coupon's minimum. Between its preview and
    # its pricing the big order is cancelled: the budget is back, the capped rule applies, and the eligible spend
    # falls below the coupon's minimum
    hold = services.orders.coupons.hold

    async def hold_then_cancel(*args, **kwargs):
        await hold(*args, **kwargs)
        await services.orders.cancel(big["order_id"], None, "test: the budget comes back")
    services.orders.coupons.hold = hold_then_cancel
    try:
        o = await services.orders.create(req(sku, 2, (code,)), buyer, uuid.uuid4().hex, {"t": 2})
    finally:
        services.orders.coupons.hold = hold
    assert saving(o, CAPPED) == portion_fen(2 * price, 2000) and saving(o, MIN_SPEND) == 0
    assert o["status"] == "reserved" and o["coupons"] == []
    assert [c["code"] for c in o["coupons_not_applied"]] == [code]
    assert "does not apply" in o["coupons_not_applied"][0]["reason"]
    assert await coupon_status(services, code) == ("issued", None)  # back in the wallet: paying cannot redeem it
    await services.orders.cancel(o["order_id"], None, "test done")


async def test_a_coupon_on_a_budget_capped_coupon_rule_is_accepted_online(services, item):
    buyer = await new_member(services)
    code = await issued_coupon(services, BUDGETED, buyer, PREFIX)
    o = await services.orders.create(req(item["sku"], 1, (code,)), buyer, uuid.uuid4().hex, {"t": 3})
    assert o["coupons"] == [code] and saving(o, BUDGETED) == 300
    assert {"rule_id": BUDGETED, "consumed_fen": 300} in o["pricing"]["budgets"]
    assert await coupon_status(services, code) == ("reserved", o["order_id"])
    await services.orders.cancel(o["order_id"], None, "test done")
    used = (await services.cloud.actors.budgets.budgets([BUDGETED]))[BUDGETED]["used"]
    assert used == 100_000 // 10, used  # only the store's tills' share stays carved out: the order's 300 came back


async def test_pricing_failing_after_the_coupon_hold_leaves_nothing_held(services, item):
    sku, buyer = item["sku"], await new_member(services)
    code = await issued_coupon(services, PLAIN, buyer, PREFIX)
    before = (await services.cloud.actors.stock_pool.availability([STORE], [sku]))[STORE][sku]
    price = services.orders.member_pricing.price

    async def failing(*args, **kwargs):
        raise RuntimeError("test: the budgets actor died")
    services.orders.member_pricing.price = failing
    key = uuid.uuid4().hex
    try:
        with pytest.raises(RuntimeError):
            await services.orders.create(req(sku, 3, (code,)), buyer, key, {"t": 4})
    finally:
        services.orders.member_pricing.price = price
    row = await services.cloud.db.fetchrow("select status, problem from orders where member_id = $1", buyer)
    assert row["status"] == "rejected"
    assert await coupon_status(services, code) == ("issued", None)
    async def free():
        return (await services.cloud.actors.stock_pool.availability([STORE], [sku]))[STORE][sku]
    assert await eventually(lambda: _eq(free, before), timeout_s=5), (await free(), before)
    with pytest.raises(Refusal) as refused:  # a retry of the key is told what happened
        await services.orders.create(req(sku, 3, (code,)), buyer, key, {"t": 4})
    assert refused.value.kind == "order_state" and "new Idempotency-Key" in refused.value.detail


async def _eq(get, want) -> bool:
    return await get() == want
