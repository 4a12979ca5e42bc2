"""Returns and refunds over the real stack (issue 15.6): a real store box takes returns at its till, the cloud
believes them only for that store's own sales and orders, and money and stock end right, exactly once.

Store S005's box sells here (through a proxy that can cut its network); S010 publishes by hand, as a hostile box
would. After each: the stock at the store and in the cloud agree, the ledger balances and /audit names nothing of
ours."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from actors.member_ledger import TopUp
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol import codec
from protocol.messages import Payment, Quantity
from protocol.return_messages import AfterSalesDecided, GoodsReturned, ReturnLine
from simulators.netcut import NetCut
from tests.integration.harness import (
    StoreLink,
    customer,
    eventually,
    operator_headers,
    pay_by_wallet,
    running_cloud,
    this_clouds,
)

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE, HOSTILE = "S005", "S010"


def packed(n: int = 0) -> dict:
    return [p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"]
            and "online" in p["channels"]][n]


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"ret{uuid.uuid4().hex[:6]}-") as (services, url):
        proxy = await NetCut("127.0.0.1", int(stack.nats_address.rsplit(":", 1)[1])).start()
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": proxy.url, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        async with httpx.AsyncClient(base_url=url, timeout=20) as cloud_http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _online(box), timeout_s=10)
            yield services, cloud_http, box, lane, proxy
        await box.stop()
        await proxy.stop()


async def _online(box) -> bool:
    return box.actor.online


async def drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


async def balance(services, member_id: str) -> int:
    return (await services.cloud.actors.member_ledger.member(member_id, services.cloud.now_ms()))["stored_value_fen"]


async def stock_agrees(box, http, sku: str, on_hand: int) -> bool:
    """The store's on-hand is `on_hand`, and the cloud's view of the store says the same."""
    if (await box.store_db.stock_level(sku)).on_hand != on_hand:
        return False
    stock = {r["sku"]: r for r in (await http.get(f"/stores/{STORE}/stock")).json()["stock"]}
    return stock.get(sku, {}).get("on_hand") == on_hand


async def clean_audit(services, http, ids: list[str]) -> list[str]:
    """The audit's violations about this module's members, sales and orders (the database is shared), and any
    actor invariant of this cloud (the ledger balancing among them)."""
    report = (await http.get("/audit", headers=await operator_headers(services))).json()
    found = this_clouds(report["violations"])
    return [v for v in found if any(i in v for i in ids) or "sum to" in v]


async def sell(lane, lane_id: str, gtin: str, n: int, method: str = "cash", member_code: str | None = None) -> dict:
    await lane.delete(f"/lanes/{lane_id}/cart")
    if member_code:
        await lane.post(f"/lanes/{lane_id}/member", json={"member_code": member_code})
    for _ in range(n):
        assert (await lane.post(f"/lanes/{lane_id}/scan", json={"code": gtin})).status_code == 200
    r = await lane.post(f"/lanes/{lane_id}/pay", json={"method": method, "tendered_fen": 10**6})
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_cash_sale_returned_puts_stock_back_at_the_store_and_in_the_cloud_and_over_returns_are_refused(world):
    services, http, box, lane, _ = world
    product = packed()
    sku = product["sku"]
    await box.actor.ask("receive", sku=sku, qty=10)
    start = (await box.store_db.stock_level(sku)).on_hand
    sale = await sell(lane, "1", product["gtin"], 3)
    async with box.store_db.reader.execute("select lines from sales where sale_id = ?", (sale["sale_id"],)) as cur:
        (lines,) = await cur.fetchone()
    # a gift the basket earned (the book's tofu from 50 yuan) comes back with the two: what is kept no longer earns it
    gifts = [{"sku": g, "qty": q} for g, q, _, fen in json.loads(lines) if fen == 0 and g != sku]
    r = await lane.post("/lanes/1/returns", json={"receipt": f"SALE:{sale['sale_id']}",
                                                  "lines": [{"sku": sku, "qty": 2, "disposition": "resaleable"},
                                                            *gifts]})
    assert r.status_code == 201, r.text
    back = r.json()
    # three pieces paid together: two of them give back two thirds of the total, rounded down
    assert back["refund"] == {"method": "cash", "amount_fen": sale["total_fen"] * 2 // 3, "by": "till"}
    assert await eventually(lambda: drained(box)), "the return did not reach the cloud (no business ack)"
    assert await eventually(lambda: stock_agrees(box, http, sku, start - 3 + 2)), "stock differs at store and cloud"
    row = await services.cloud.db.fetchrow("select store_id, amount_fen, method from till_returns where return_id = $1",
                                           back["return_id"])
    assert dict(row) == {"store_id": STORE, "amount_fen": sale["total_fen"] * 2 // 3, "method": "cash"}
    assert await services.cloud.db.fetchval("select returned_fen from till_sales where sale_id = $1",
                                            sale["sale_id"]) == sale["total_fen"] * 2 // 3
    # one piece is left to return: two more are refused, naming the line; the last one gives back the rest exactly
    over = await lane.post("/lanes/1/returns", json={"sale_id": sale["sale_id"], "lines": [{"sku": sku, "qty": 2}]})
    assert over.status_code == 409 and over.headers["content-type"] == "application/problem+json"
    assert f"{sku}: 2 piece asked, but 3 piece were sold and 2 piece returned already (1 piece left)" \
        in over.json()["detail"]
    last = await lane.post("/lanes/1/returns", json={"sale_id": sale["sale_id"],
                                                     "lines": [{"sku": sku, "qty": 1, "disposition": "damaged"}]})
    assert last.status_code == 201 and last.json()["total_fen"] == sale["total_fen"] - sale["total_fen"] * 2 // 3
    assert await eventually(lambda: drained(box))
    assert await eventually(lambda: stock_agrees(box, http, sku, start - 1)), "the damaged piece went back on hand"
    shrunk = await services.cloud.db.fetchval(
        "select count(*) from stock_movements where store_id = $1 and reference = $2 and reason = 'shrinkage' "
        "and shrinkage_reason = 'damaged'", STORE, last.json()["return_id"])
    assert shrunk == 1
    again = await lane.post("/lanes/1/returns", json={"sale_id": sale["sale_id"], "lines": [{"sku": sku, "qty": 1}],
                                                      "return_id": last.json()["return_id"]})
    assert again.status_code == 201 and again.json() == last.json()  # the same return id: its first result
    assert await clean_audit(services, http, [sale["sale_id"]]) == []


async def member_with(services, http, box, amount_fen: int) -> dict:
    member = await customer(services, http)
    await services.cloud.actors.member_ledger.send(TopUp(id=f"test:{uuid.uuid4().hex[:16]}", member=member.member_id,
                                                         amount_fen=amount_fen))
    view = await services.members.view(member.member_id)
    await services.members.notify_stores(view)

    async def cached():
        found = await box.store_db.member(member_id=member.member_id)
        return found if found and found.stored_value_fen == amount_fen else None
    assert await eventually(cached), "the member's balance did not reach the store"
    return view


async def test_a_stored_value_sale_returned_restores_the_balance_exactly_once(world, stack):
    services, http, box, lane, proxy = world
    product = packed(1)
    await box.actor.ask("receive", sku=product["sku"], qty=10)
    member = await member_with(services, http, box, 10_000)
    sale = await sell(lane, "2", product["gtin"], 2, "stored_value", member["member_code"])
    assert await eventually(lambda: drained(box))
    assert await eventually(lambda: _balance_is(services, member["member_id"], 10_000 - sale["total_fen"]))
    proxy.cut()  # the return is taken offline: its event waits in the outbox, where the test reads it
    try:
        assert await eventually(lambda: _not_online(box), timeout_s=15)
        r = await lane.post("/lanes/2/returns", json={"sale_id": sale["sale_id"],
                                                      "lines": [{"sku": product["sku"], "qty": 2}]})
        assert r.status_code == 201 and r.json()["refund"] == {"method": "stored_value",
                                                               "amount_fen": sale["total_fen"], "by": "till"}
        async with box.store_db.reader.execute("select frame from outbox where kind = 'goods.returned'") as cur:
            (frame,) = await cur.fetchone()
    finally:
        proxy.heal()
    assert await eventually(lambda: drained(box), timeout_s=20)
    assert await eventually(lambda: _balance_is(services, member["member_id"], 10_000)), "the refund was not credited"
    event = codec.decode(frame)
    async with StoreLink(stack, STORE) as link:  # delivered twice: past the stream's dedupe, to the bridge itself
        await link.publish(event, msg_id=f"{event.event_id}~1")
        await link.publish(event, msg_id=f"{event.event_id}~2")
    assert await eventually(lambda: _seen_twice(services, event.event_id))
    assert await balance(services, member["member_id"]) == 10_000  # credited once
    assert await services.cloud.db.fetchval("select count(*) from till_returns where sale_id = $1", sale["sale_id"]) == 1
    assert await clean_audit(services, http, [member["member_id"], sale["sale_id"]]) == []


async def _balance_is(services, member_id: str, fen: int) -> bool:
    return await balance(services, member_id) == fen


async def _not_online(box) -> bool:
    return not box.actor.online


async def _seen_twice(services, event_id: str) -> bool:
    return services.bridge.stats["duplicates"] >= 2 and await services.cloud.db.fetchval(
        "select count(*) from edge_events where event_id = $1", event_id) == 1


async def test_a_hostile_store_claiming_a_return_of_another_stores_sale_is_refused(world, stack):
    services, http, box, lane, _ = world
    product = packed()
    await box.actor.ask("receive", sku=product["sku"], qty=5)
    member = await member_with(services, http, box, 5_000)
    sale = await sell(lane, "3", product["gtin"], 1, "stored_value", member["member_code"])
    assert await eventually(lambda: drained(box))
    before = await balance(services, member["member_id"])
    async with StoreLink(stack, HOSTILE) as link:
        forged = GoodsReturned(**link.next_envelope(), return_id=link.next_envelope()["event_id"],
                               sale_id=sale["sale_id"], order_id="", lane="1", member_id=member["member_id"],
                               lines=(ReturnLine(sku=product["sku"], quantity=Quantity.pieces(1),
                                                 amount_fen=sale["total_fen"], disposition="resaleable"),),
                               total_fen=sale["total_fen"],
                               refunds=(Payment(method="stored_value", amount_fen=sale["total_fen"], reference="x"),))
        await link.publish(forged)

        async def dead():
            return await services.cloud.db.fetchval(
                "select reason from dead_letters where reason like $1", f"%return {forged.return_id}%")
        reason = await eventually(dead)
    assert reason and f"store {HOSTILE} goods.returned refused" in reason and "which is another store's" in reason
    assert await balance(services, member["member_id"]) == before  # nothing credited
    assert await services.cloud.db.fetchval("select count(*) from till_returns where return_id = $1",
                                            forged.return_id) == 0


async def test_an_online_order_picked_up_then_returned_at_the_till_is_refunded_through_its_payment(world):
    services, http, box, lane, _ = world
    product = packed(2)
    sku = product["sku"]
    await box.actor.ask("receive", sku=sku, qty=20)
    assert await eventually(lambda: drained(box))
    slot = (datetime.now(timezone(timedelta(hours=8))) + timedelta(days=1)).replace(hour=10, minute=0, second=0,
                                                                                      microsecond=0).isoformat()
    member = await customer(services, http)
    order = (await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": slot,
                                              "items": [{"sku": sku, "qty": 2}]},
                             headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})).json()
    assert order["status"] == "reserved", order
    paid = await pay_by_wallet(services, http, member, order["order_id"])

    async def arrived():
        async with box.store_db.reader.execute("select 1 from orders where order_id = ?", (order["order_id"],)) as cur:
            return await cur.fetchone()
    assert await eventually(arrived), "the order to fulfil did not reach the store"
    early = await lane.post("/lanes/1/returns", json={"order_id": order["order_id"], "lines": [{"sku": sku, "qty": 1}]})
    assert early.status_code == 409 and "only an order picked up at this store" in early.json()["detail"]
    assert (await lane.post(f"/pickups/{order['pickup_code']}")).status_code == 200
    on_hand = (await box.store_db.stock_level(sku)).on_hand
    first = await lane.post("/lanes/1/returns", json={"receipt": f"PICKUP:{order['pickup_code']}",
                                                      "lines": [{"sku": sku, "qty": 1}]})
    assert first.status_code == 201 and first.json()["refund"]["by"] == "cloud", first.text
    half = paid["total_fen"] // 2

    async def status(want: str):
        got = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
        return got if got["status"] == want else None
    view = await eventually(lambda: status("partially_refunded"), timeout_s=20)
    assert view, "the order was not partially refunded"
    part = await services.cloud.db.fetchrow("select amount_fen, method from money_movements where movement_id = $1",
                                            f"refund:{order['order_id']}:ret:{first.json()['return_id']}")
    assert dict(part) == {"amount_fen": half, "method": "wallet_sim"}
    assert any(e["event"] == "refund_part" and e["detail"]["return_id"] == first.json()["return_id"]
               for e in view["timeline"])
    second = await lane.post("/lanes/1/returns", json={"order_id": order["order_id"],
                                                       "lines": [{"sku": sku, "qty": 1, "disposition": "spoiled"}]})
    assert second.status_code == 201, second.text
    assert await eventually(lambda: status("refunded"), timeout_s=20), "the order was not refunded"

    async def money_back():
        rows = await services.cloud.db.fetch("select state, amount_fen from money_movements where order_id = $1 and "
                                             "kind = 'refund'", order["order_id"])
        return all(r["state"] == "done" for r in rows) and sum(r["amount_fen"] for r in rows) == paid["total_fen"]
    assert await eventually(money_back, timeout_s=20), "the refunds did not all go through the wallet"
    assert await eventually(lambda: drained(box))
    assert await eventually(lambda: stock_agrees(box, http, sku, on_hand + 1))  # one resaleable, one spoiled
    assert await clean_audit(services, http, [order["order_id"], member.member_id]) == []


async def picked_up_order(services, http, box, lane, sku: str, qty: int):
    """A member's pickup order at this store, paid by the wallet and picked up at the till: (member, paid order)."""
    await box.actor.ask("receive", sku=sku, qty=20)
    assert await eventually(lambda: drained(box))
    slot = (datetime.now(timezone(timedelta(hours=8))) + timedelta(days=1)).replace(hour=10, minute=0, second=0,
                                                                                      microsecond=0).isoformat()
    member = await customer(services, http)
    order = (await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": slot,
                                              "items": [{"sku": sku, "qty": qty}]},
                             headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})).json()
    paid = await pay_by_wallet(services, http, member, order["order_id"])

    async def arrived():
        async with box.store_db.reader.execute("select 1 from orders where order_id = ?", (order["order_id"],)) as cur:
            return await cur.fetchone()
    assert await eventually(arrived), "the order to fulfil did not reach the store"
    assert (await lane.post(f"/pickups/{order['pickup_code']}")).status_code == 200

    async def handed_over():
        got = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
        return got["status"] == "picked_up"
    assert await eventually(handed_over)
    return member, paid


async def test_after_sales_requests_are_approved_by_the_store_box_and_by_an_operator_or_refused(world, stack):
    services, http, box, lane, _ = world
    sku = packed(3)["sku"]
    member, order = await picked_up_order(services, http, box, lane, sku, 3)
    order_id, total = order["order_id"], order["total_fen"]
    ask = f"/orders/{order_id}/after-sales"
    key = uuid.uuid4().hex
    first = await http.post(ask, json={"lines": [{"sku": sku, "qty": 1}], "reason": "bruised", "with_return": True},
                            headers={**member.headers, "Idempotency-Key": key})
    assert first.status_code == 201 and first.json()["status"] == "requested", first.text
    request_id = first.json()["request_id"]
    assert first.json()["amount_fen"] == total // 3
    again = await http.post(ask, json={"lines": [{"sku": sku, "qty": 1}], "reason": "bruised", "with_return": True},
                            headers={**member.headers, "Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["request_id"] == request_id  # the same key: the same request
    other = await customer(services, http)
    assert (await http.post(ask, json={"lines": [{"sku": sku, "qty": 1}], "reason": "x"},
                            headers=other.headers)).status_code == 404  # not their order
    over = await http.post(ask, json={"lines": [{"sku": sku, "qty": 3}], "reason": "all bad"}, headers=member.headers)
    assert over.status_code == 422 and "3 piece asked, but 3 piece were sold and 1 piece returned already" \
        in over.json()["detail"]

    # a hostile store deciding another store's request is refused, and nothing is refunded
    async with StoreLink(stack, HOSTILE) as link:
        forged = AfterSalesDecided(**link.next_envelope(), request_id=request_id, order_id=order_id, approved=True,
                                   reason="", staff="X")
        await link.publish(forged)

        async def dead():
            return await services.cloud.db.fetchval("select reason from dead_letters where reason like $1",
                                                    f"%after-sales request {request_id} is store {STORE}'s to decide%")
        assert await eventually(dead), "the hostile decision was not refused"
    assert (await http.get(ask, headers=member.headers)).json()["requests"][0]["status"] == "requested"

    # the store's staff see it on the store box and approve it there
    async def at_store():
        listed = (await lane.get("/after-sales?status=requested")).json()["requests"]
        return [r for r in listed if r["request_id"] == request_id]
    assert await eventually(at_store), "the request did not reach the store"
    on_hand = (await box.store_db.stock_level(sku)).on_hand
    r = await lane.post(f"/after-sales/{request_id}/approve", json={"staff": "W01", "disposition": "resaleable"})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    assert await eventually(lambda: stock_agrees(box, http, sku, on_hand + 1)), "the goods brought back are not on hand"
    assert (await lane.post(f"/after-sales/{request_id}/refuse", json={"reason": "changed my mind"})).status_code == 409

    async def status(want: str):
        got = (await http.get(f"/orders/{order_id}", headers=member.headers)).json()
        return got if got["status"] == want else None
    assert await eventually(lambda: status("partially_refunded"), timeout_s=20), "the store's approval did not refund"
    mine = (await http.get(ask, headers=member.headers)).json()["requests"]
    assert [(x["request_id"], x["status"], x["decided_by"]) for x in mine] == [(request_id, "approved", "store S005 (W01)")]

    # a refused one: by an operator of the store, with a reason, on the timeline
    second = (await http.post(ask, json={"lines": [{"sku": sku, "qty": 1}], "reason": "not fresh", "with_return": False},
                              headers=member.headers)).json()
    elsewhere = await operator_headers(services, "store_manager", store_id="S001")
    forbidden = await http.post(f"/operator/after-sales/{second['request_id']}/refuse", json={"reason": "no"},
                                headers=elsewhere)
    assert forbidden.status_code == 403, forbidden.text
    manager = await operator_headers(services, "store_manager", store_id=STORE)
    assert (await http.post(f"/operator/after-sales/{second['request_id']}/refuse", json={},
                            headers=manager)).status_code == 422  # a refusal says why
    refused = await http.post(f"/operator/after-sales/{second['request_id']}/refuse",
                              json={"reason": "photo shows it fresh"}, headers=manager)
    assert refused.status_code == 200 and refused.json()["status"] == "refused", refused.text
    view = (await http.get(f"/orders/{order_id}", headers=member.headers)).json()
    assert view["status"] == "partially_refunded"
    assert any(e["event"] == "after_sales_refused" and e["detail"]["reason"] == "photo shows it fresh"
               for e in view["timeline"])

    async def decided_at_store():
        listed = (await lane.get("/after-sales")).json()["requests"]
        return [r for r in listed if r["request_id"] == second["request_id"] and r["status"] == "refused"]
    assert await eventually(decided_at_store), "the store's copy does not show the operator's refusal"
    assert (await lane.post(f"/after-sales/{second['request_id']}/approve", json={})).status_code == 409

    # the rest, approved by the operator: every line is back, the order is refunded whole
    third = (await http.post(ask, json={"lines": [{"sku": sku, "qty": 2}], "reason": "all soft", "with_return": False},
                             headers=member.headers)).json()
    approved = await http.post(f"/operator/after-sales/{third['request_id']}/approve", headers=manager)
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    assert await eventually(lambda: status("refunded"), timeout_s=20)

    async def money_back():
        rows = await services.cloud.db.fetch("select state, amount_fen from money_movements where order_id = $1 and "
                                             "kind = 'refund'", order_id)
        return all(r["state"] == "done" for r in rows) and sum(r["amount_fen"] for r in rows) == total
    assert await eventually(money_back, timeout_s=20), "the approved refunds did not all go through the wallet"
    assert await clean_audit(services, http, [order_id, member.member_id]) == []


async def test_after_sales_only_for_handed_over_orders_within_the_window(world):
    services, http, box, lane, _ = world
    sku = packed(1)["sku"]
    member, order = await picked_up_order(services, http, box, lane, sku, 1)
    ask = f"/orders/{order['order_id']}/after-sales"
    # as if the hand-over had been 8 days ago: the 7-day window has closed
    await services.cloud.db.execute("update order_events set at_ms = at_ms - 8 * 86400000 where order_id = $1 and "
                                    "event = 'pick_up'", order["order_id"])
    late = await http.post(ask, json={"lines": [{"sku": sku, "qty": 1}], "reason": "late"}, headers=member.headers)
    assert late.status_code == 409 and "the after-sales window of 7 days after the hand-over has closed" \
        in late.json()["detail"], late.text
    bad = await http.post(ask, json={"lines": [], "reason": "x"}, headers=member.headers)
    assert bad.status_code == 422 and "lines: 1-200 lines" in bad.json()["detail"]
    assert (await http.get(ask, headers=member.headers)).json()["requests"] == []


async def test_the_lane_refuses_malformed_returns_saying_what_is_wrong(world):
    _, _, _, lane, _ = world
    sku = packed()["sku"]
    both = await lane.post("/lanes/1/returns", json={"sale_id": "X", "lines": [{"sku": sku, "qty": 1, "weight_g": 5}]})
    assert both.status_code == 422 and "give exactly one of qty or weight_g" in both.json()["detail"]
    two = await lane.post("/lanes/1/returns", json={"sale_id": "X", "order_id": "Y", "lines": [{"sku": sku, "qty": 1}]})
    assert two.status_code == 422 and "give exactly one of receipt, sale_id, order_id or pickup_code" in two.json()["detail"]
    qr = await lane.post("/lanes/1/returns", json={"receipt": "hello", "lines": [{"sku": sku, "qty": 1}]})
    assert qr.status_code == 422 and "not a receipt's QR" in qr.json()["detail"]
    unknown = await lane.post("/lanes/1/returns", json={"receipt": "SALE:NOSUCHSALE", "lines": [{"sku": sku, "qty": 1}]})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no sale NOSUCHSALE at this store"
    none = await lane.post("/lanes/1/returns", json={"pickup_code": "00000000", "lines": [{"sku": sku, "qty": 1}]})
    assert none.status_code == 404 and "no order with pickup code 00000000 at this store" in none.json()["detail"]
