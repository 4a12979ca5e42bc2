"""Returns and after-sales of orders that picking changed, over the real stack (the picking module's store box):
what can be given back is what the store handed over, less everything given back before (picking refunds, till
returns, approved after-sales), judged one at a time per order. The money given back never exceeds the charge."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from cloud.services.verdicts import Refusal
from protocol.return_messages import AfterSalesLine
from tests.integration.harness import eventually, operator_headers
from tests.integration.test_picking import (
    STORE,
    balance,
    drained,
    movement,
    own_violations,
    paid_order,
    pick,
    pieces,
    receive,
    status_of,
    weighed,
    world,  # noqa: F401 - the fixture: the picking module's box and cloud
)

pytestmark = pytest.mark.integration


async def picked_up(http, lane, member, order: dict) -> None:
    assert (await lane.post(f"/pickups/{order['pickup_code']}")).status_code == 200
    await status_of(http, member, order["order_id"], "picked_up")


async def refunds(services, order_id: str) -> list[dict]:
    return [dict(r) for r in await services.cloud.db.fetch(
        "select movement_id, amount_fen, state from money_movements where order_id = $1 and kind = 'refund'", order_id)]


async def all_done(services, order_id: str) -> bool:
    rows = await refunds(services, order_id)
    return bool(rows) and all(r["state"] == "done" for r in rows)


async def test_a_line_picked_short_gives_back_only_what_left_the_store_at_the_till_and_online(world):  # noqa: F811 - the imported fixture
    services, http, box, lane = world
    a, b = pieces()[20]["sku"], pieces()[21]["sku"]
    await receive(box, a, 20)
    await receive(box, b, 20)
    member, order = await paid_order(services, http, box, [{"sku": a, "qty": 5}, {"sku": b, "qty": 1}],
                                     balance_fen=50_000)
    oid, total = order["order_id"], order["total_fen"]
    await pick(lane, oid, {a: {"qty": 3}, b: {"qty": 1}})  # 2 of a short: nobody else has them, refunded
    await status_of(http, member, oid, "ready")
    short = await eventually(lambda: movement(services, f"refund:{oid}:short:{STORE}:{a}"))
    assert short and short["state"] == "done"
    await picked_up(http, lane, member, order)
    ask = f"/orders/{oid}/after-sales"

    online = await http.post(ask, json={"lines": [{"sku": a, "qty": 5}], "reason": "all bad"}, headers=member.headers)
    assert online.status_code == 422 and f"{a}: 5 piece asked, but 3 piece were sold" in online.json()["detail"]
    at_till = await lane.post("/lanes/1/returns", json={"order_id": oid, "lines": [{"sku": a, "qty": 5}]})
    assert at_till.status_code == 409 and "3 piece were sold" in at_till.json()["detail"], at_till.text

    back = await lane.post("/lanes/1/returns", json={"order_id": oid, "lines": [{"sku": a, "qty": 3}]})
    assert back.status_code == 201, back.text
    await status_of(http, member, oid, "partially_refunded")
    line_a = next(x["amount_fen"] for x in order["lines"] if x["sku"] == a)
    returned = await eventually(lambda: movement(services, f"refund:{oid}:ret:{back.json()['return_id']}"))
    assert returned and returned["amount_fen"] + short["amount_fen"] <= line_a  # never more than the line's share

    # the last line refunded online without a return: the order is refunded whole, to the fen
    rest = await http.post(ask, json={"lines": [{"sku": b, "qty": 1}], "reason": "soft", "with_return": False},
                           headers=member.headers)
    assert rest.status_code == 201, rest.text
    manager = await operator_headers(services, "store_manager", store_id=STORE)
    approved = await http.post(f"/operator/after-sales/{rest.json()['request_id']}/approve", headers=manager)
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    await status_of(http, member, oid, "refunded")
    assert await eventually(lambda: all_done(services, oid), timeout_s=20)
    assert sum(r["amount_fen"] for r in await refunds(services, oid)) == total
    assert await balance(http, member) == 50_000

    # refunded online, so not taken back again at the till (the store's copy shows the approval)
    async def refused_at_till():
        r = await lane.post("/lanes/1/returns", json={"order_id": oid, "lines": [{"sku": b, "qty": 1}]})
        return r if r.status_code == 409 else None
    again = await eventually(refused_at_till)
    assert again and "1 piece returned already" in again.json()["detail"]
    assert await eventually(lambda: drained(box), timeout_s=15)
    assert await own_violations(http, [oid]) == []


async def test_a_catch_weight_line_refunded_lighter_is_returned_whole_at_the_till(world):  # noqa: F811 - the imported fixture
    services, http, box, lane = world
    sku = weighed()[3]["sku"]
    await receive(box, sku, 10_000)
    member, order = await paid_order(services, http, box, [{"sku": sku, "qty": 500}], balance_fen=20_000)
    oid = order["order_id"]
    await pick(lane, oid, {sku: {"weight_g": 470}})
    await status_of(http, member, oid, "ready")
    light = await eventually(lambda: movement(services, f"refund:{oid}:weight:{STORE}"))
    assert light and light["amount_fen"] > 0
    await picked_up(http, lane, member, order)
    over = await lane.post("/lanes/1/returns", json={"order_id": oid, "lines": [{"sku": sku, "weight_g": 500}]})
    assert over.status_code == 409 and "470 g were sold" in over.json()["detail"], over.text
    back = await lane.post("/lanes/1/returns", json={"order_id": oid, "lines": [{"sku": sku, "weight_g": 470}]})
    assert back.status_code == 201, back.text
    await status_of(http, member, oid, "refunded", timeout_s=20)  # not dead-lettered: the parts fit the charge
    assert await eventually(lambda: all_done(services, oid), timeout_s=20)
    assert sum(r["amount_fen"] for r in await refunds(services, oid)) == order["total_fen"]
    assert await balance(http, member) == 20_000
    assert await eventually(lambda: drained(box), timeout_s=15)
    assert await own_violations(http, [oid]) == []


async def test_after_sales_requests_and_decisions_of_one_order_are_taken_one_at_a_time(world):  # noqa: F811 - the imported fixture
    services, http, box, lane = world
    sku = pieces()[22]["sku"]
    await receive(box, sku, 20)
    member, order = await paid_order(services, http, box, [{"sku": sku, "qty": 2}], balance_fen=20_000)
    oid = order["order_id"]
    await pick(lane, oid, {sku: {"qty": 2}})
    await status_of(http, member, oid, "ready")
    await picked_up(http, lane, member, order)
    after_sales = services.after_sales
    line = (AfterSalesLine(sku=sku, qty=2),)
    made = await asyncio.gather(*(after_sales.request(oid, member.member_id, line, "twice", False, None)
                                  for _ in range(3)), return_exceptions=True)
    believed = [m for m in made if not isinstance(m, BaseException)]
    assert len(believed) == 1, made  # the same two pieces are asked for once
    assert all(isinstance(m, Refusal) and "2 piece returned already" in m.detail for m in made if m not in believed)
    request_id = believed[0][0]["request_id"]
    decided = await asyncio.gather(after_sales.decide(request_id, True, "", "operator x"),
                                   after_sales.decide(request_id, False, "looks fine", "store S003 (W1)"),
                                   return_exceptions=True)
    row = await after_sales.get(request_id)
    part = await movement(services, f"refund:{oid}:as:{request_id}")
    assert sum(isinstance(d, Refusal) for d in decided) == 1, decided  # one decision stands, the other is refused
    assert (row["status"] == "approved") == (part is not None)  # money moved exactly when approved
    assert await own_violations(http, [oid]) == []


async def test_a_part_refund_retried_concurrently_counts_once_on_the_order(world):  # noqa: F811 - the imported fixture
    services, http, box, lane = world
    sku = pieces()[23]["sku"]
    await receive(box, sku, 20)
    member, order = await paid_order(services, http, box, [{"sku": sku, "qty": 2}], balance_fen=20_000)
    oid = order["order_id"]
    part = f"test:{uuid.uuid4().hex[:8]}"
    moved = await asyncio.gather(*(services.payments.refund_part(oid, part, 10, "retried") for _ in range(4)))
    assert {m["movement_id"] for m in moved} == {f"refund:{oid}:{part}"}
    assert await services.cloud.db.fetchval("select refunded_fen from orders where order_id = $1", oid) == 10
