"""How an online order ends unserved (issue 17 review, defects 5 and 9), on the real stack (Ray, PostgreSQL, NATS):
everything it holds goes back, once, on every path, and what a failure kept back is finished by a sweep:
- a cancel whose budget give-back fails still ends the order and gives back the rest; the expiry loop's sweep
  (`sweep_given_back`) gives the budget uses back later;
- an error (not a refusal) while an out-of-stock order is turned into a pre-sale ends it (rejected), not left pending;
- an abandoned request's coupon goes back to the wallet with the rest of its plan;
- a pre-sale (issue 17 review, defects 3 and 10) is priced without gifts (it holds no stock until its own comes, so
  a gift could never be handed over) and counts in the promotion-effect figures; paid partly with points and ended
  overdue, its points come back, and a refund that fails once neither stops the sweep nor keeps the money: the
  money sweeper refunds it.

Isolation: the module's world adds store S039 (provisioned by the stack, used by no other module) and rule ids no
other module uses; its only paid order is a pre-sale whose stock never comes, so nothing is sent to a store.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio

from actors.member_ledger import GrantPoints, TopUp
from cloud.runtime.hosting import retire_actors
from cloud.runtime.shard_map import ShardConfig
from cloud.services import order_endings
from cloud.services.order_request import OrderItem, OrderRequest
from cloud.services.verdicts import Refusal
from cloud.wiring import start_services
from cloud.world import World
from protocol.messages import EscrowGranted, StockMoved
from protocol.money_saga import refund_id
from protocol.restock_messages import RestockAlerted
from tests.integration.harness import StoreLink, eventually, fixed_keys
from tests.integration.wallet_coupons import coupon_status, issued_coupon, new_member

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
CN = timezone(timedelta(hours=8))
STORE = "S039"  # this module's own store
RUN = uuid.uuid4().hex[:6]
PREFIX = f"oen-{RUN}"  # this module's coupon definitions
CAPPED, PLAIN, GIFT = "OEN-CAPPED-ITEM", "OEN-COUPON-PLAIN", "OEN-GIFT"
PRESALE_SKU = "PAC-NOODLE-0204"  # from a supplier, no stock at S039: pre-sold there once its supply is due


def product() -> dict:
    """A piece under 20 yuan that no rule of the default book names (only this module's rules price it)."""
    data = json.loads(WORLD.read_text())
    rules = data["rule_book"]["rules"]
    named = {s for r in rules for s in r.get("skus", [])} | {r.get("gift_sku") for r in rules}
    categories = {c for r in rules for c in r.get("categories", [])}
    candidates = [p for p in data["catalogue"] if p["unit"] == "piece" and p["price_fen"] < 1_900
                  and set(p["channels"]) == {"online", "offline"} and p["sku"] not in named
                  and p["category"] not in categories]
    return candidates[len(candidates) // 3]


def world(sku: str, price_fen: int) -> World:
    data = json.loads(WORLD.read_text())
    data["rule_book"]["rules"] += [
        {"type": "item_discount", "id": CAPPED, "name": "20% off, capped", "percent_off_bp": 2000, "skus": [sku],
         "budget_fen": 100 * price_fen},
        {"type": "coupon", "id": PLAIN, "name": "2 yuan off", "amount_off_fen": 200, "skus": [sku]},
        {"type": "gift", "id": GIFT, "name": "a gift with the noodles", "priority": 4, "spend_fen": 100,
         "skus": [PRESALE_SKU], "gift_sku": sku}]
    data["stores"].append(dict(next(s for s in data["stores"] if s["store_id"] == "S005"), store_id=STORE))
    return World.from_data(data)


def req(sku: str, qty: int, coupons: tuple[str, ...] = (), presale: bool = False, days: int = 2) -> OrderRequest:
    slot = (datetime.now(CN) + timedelta(days=days)).replace(hour=11, minute=0, second=0, microsecond=0).isoformat()
    return OrderRequest(fulfilment="pickup", store_id=STORE, slot_start=slot, items=(OrderItem(sku=sku, qty=qty),),
                        coupons=coupons, presale=presale)


@pytest.fixture(scope="module")
def item() -> dict:
    return product()


@pytest_asyncio.fixture(scope="module")
async def services(stack, ray_runtime, item):
    one = await start_services(world(item["sku"], item["price_fen"]), stack.database_url, stack.nats_url,
                               ShardConfig(prefix=f"oen{uuid.uuid4().hex[:6]}-"), background=True,
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
            # short of the pre-sale SKU: its supply is due (the alert is never cleared: no other module sells at S039)
            await store.publish(RestockAlerted(**store.next_envelope(), alert_id=one.cloud.ids.new(), sku=PRESALE_SKU,
                                               on_hand=0, owed=0, reorder_point=2, target=4, suggested_qty=4))

            async def alerted():
                return await one.cloud.db.fetchval("select 1 from restock_alerts where store_id = $1 and sku = $2 "
                                                   "and cleared_ms is null", STORE, PRESALE_SKU)
            assert await eventually(alerted, timeout_s=15)

        async def granted():
            avail = await one.cloud.actors.stock_pool.availability([STORE], [item["sku"]])
            return avail[STORE].get(item["sku"], 0) >= 100
        assert await eventually(granted, timeout_s=15)
        yield one
    finally:
        await one.stop()
        retire_actors(one.cloud.shards.prefix)  # detached actors outlive their cloud


async def test_a_budget_give_back_that_fails_is_finished_by_the_sweep(services, item):
    buyer = await new_member(services)
    code = await issued_coupon(services, PLAIN, buyer, PREFIX)
    o = await services.orders.create(req(item["sku"], 2, (code,)), buyer, uuid.uuid4().hex, {"t": 1})
    assert any(a["rule_id"] == CAPPED for a in o["pricing"]["applied"]), o["pricing"]
    uses = "select count(*) from budget_uses where order_id = $1 and given_back_ms is null"
    assert await services.cloud.db.fetchval(uses, o["order_id"]) > 0
    give_back = services.orders.member_pricing.give_back

    async def failing(order_id: str) -> None:
        raise RuntimeError("test: the budgets actor did not answer")
    services.orders.member_pricing.give_back = failing
    try:  # the cancel still ends the order and gives back all the rest
        ended = await services.orders.cancel(o["order_id"], None, "test: a give-back fails")
    finally:
        services.orders.member_pricing.give_back = give_back
    assert ended["status"] == "cancelled"
    assert await coupon_status(services, code) == ("issued", None)
    assert await services.cloud.db.fetchval(uses, o["order_id"]) > 0  # kept back by the failure
    assert await services.orders.sweep_given_back() >= 1  # the expiry loop's sweep finishes it
    assert await services.cloud.db.fetchval(uses, o["order_id"]) == 0


async def test_an_error_while_turning_an_order_into_a_presale_ends_it(services, item):
    buyer, key = await new_member(services), uuid.uuid4().hex
    instead = services.orders.presales.instead

    async def failing(*args, **kwargs):
        raise RuntimeError("test: the pre-sale path failed")
    services.orders.presales.instead = failing
    try:
        with pytest.raises(RuntimeError):
            await services.orders.create(req(item["sku"], 10_000, presale=True), buyer, key, {"t": 2})
    finally:
        services.orders.presales.instead = instead
    row = await services.cloud.db.fetchrow("select status, problem from orders where member_id = $1", buyer)
    assert row["status"] == "rejected", row  # not left pending for the abandoned-order sweep
    assert "new Idempotency-Key" in json.loads(row["problem"])["detail"]


async def test_an_abandoned_request_gives_its_coupon_back(services, item):
    sku, buyer = item["sku"], await new_member(services)
    code = await issued_coupon(services, PLAIN, buyer, PREFIX)
    price, fail = services.orders.member_pricing.price, services.orders._fail  # noqa: SLF001

    async def dies(*args, **kwargs):  # the request dies after holding the code: nobody ends it (a crash)
        raise RuntimeError("test: the process died here")

    async def nothing(order_id: str) -> None:
        return None
    services.orders.member_pricing.price, services.orders._fail = dies, nothing  # noqa: SLF001
    try:
        with pytest.raises(RuntimeError):
            await services.orders.create(req(sku, 1, (code,)), buyer, uuid.uuid4().hex, {"t": 3})
    finally:
        services.orders.member_pricing.price, services.orders._fail = price, fail  # noqa: SLF001
    order_id = await services.cloud.db.fetchval("select order_id from orders where member_id = $1 "
                                                "and status = 'pending'", buyer)
    assert order_id is not None
    assert await coupon_status(services, code) == ("reserved", order_id)
    await services.cloud.db.execute("update orders set updated_ms = updated_ms - $2 where order_id = $1", order_id,
                                    order_endings.ABANDONED_MS + 1)  # five minutes later
    assert await services.orders.sweep_abandoned() >= 1
    assert await services.cloud.db.fetchval("select status from orders where order_id = $1", order_id) == "rejected"
    assert await coupon_status(services, code) == ("issued", None)  # back in the wallet with the rest of its plan


async def test_a_presale_has_no_gift_counts_in_the_figures_and_ends_overdue_with_its_points_and_money_back(services):
    buyer = await new_member(services)
    assert (await services.cloud.actors.member_ledger.send(GrantPoints(id=f"setup:{uuid.uuid4().hex}", member=buyer,
                                                                        points=5_000, why="setup"))).succeeded
    assert (await services.cloud.actors.member_ledger.send(TopUp(id=f"setup:{uuid.uuid4().hex}", member=buyer,
                                                                  amount_fen=100_000))).succeeded
    try:  # the slot must start on the day its supply is due, or later
        o = await services.orders.create(req(PRESALE_SKU, 3, presale=True), buyer, uuid.uuid4().hex, {"t": 4})
    except Refusal as refused:
        assert "presale_available_from" in refused.extra, refused.to_record()
        due = datetime.fromisoformat(refused.extra["presale_available_from"]).astimezone(CN).date()
        days = max((due - datetime.now(CN).date()).days, 1)
        o = await services.orders.create(req(PRESALE_SKU, 3, presale=True, days=days), buyer, uuid.uuid4().hex,
                                         {"t": 5})
    assert o["presale"]["store_id"] == STORE
    assert GIFT not in json.dumps(o["pricing"]) and len(o["lines"]) == 1, o  # no gift on a pre-sale
    order_id = o["order_id"]
    assert await services.cloud.db.fetchval("select store_id from promotion_baskets where ref = $1",
                                            order_id) == STORE  # counted as any online order is
    points = o["total_fen"] // 4
    await services.orders.points.pay(order_id, buyer, "stored_value", points)

    async def paid():
        return await services.cloud.db.fetchval("select status from orders where order_id = $1", order_id) == "paid"
    assert await eventually(paid, timeout_s=20)
    assert (await services.orders.points.part(order_id))["state"] == "redeemed"
    # its supply never came: overdue (its due day long past); the refund fails once
    await services.cloud.db.execute("update presale_orders set due_day = '2020-01-01' where order_id = $1", order_id)
    refund = services.orders.payments.refund

    async def failing(oid: str):
        raise RuntimeError("test: the provider did not answer")
    services.orders.payments.refund = failing
    try:
        assert await services.presales.end_overdue(services.cloud.now_ms()) >= 1  # the loop goes on
    finally:
        services.orders.payments.refund = refund
    assert await services.cloud.db.fetchval("select status from orders where order_id = $1", order_id) == "cancelled"
    assert (await services.orders.points.part(order_id))["state"] != "redeemed"  # its points back
    assert await services.orders.payments.get(refund_id(order_id)) is None  # the refund failed
    # what the money sweeper does for a cancelled order with a done charge and no refund (its whole sweep also
    # resolves other modules' wallet movements, which this module's cloud has no wallet provider for)
    await services.orders.payments.refund(order_id)

    async def refunded():
        row = await services.orders.payments.get(refund_id(order_id))
        return row is not None and row["state"] == "done"
    assert await eventually(refunded, timeout_s=20)
