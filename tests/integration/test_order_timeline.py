"""Every order step is journaled on its timeline, shown by GET /orders/{id} and streamed live to its customer;
a step the lifecycle does not allow writes nothing; a fact with its own id is applied once."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import pytest_asyncio

from cloud.services import order_journal as journal
from protocol import order_lifecycle as lifecycle
from protocol.messages import EscrowGranted, StockMoved
from tests.integration.harness import StoreLink, customer, eventually, operator_headers, running_cloud, top_up

pytestmark = pytest.mark.integration
CN = timezone(timedelta(hours=8))
STORE = "S003"


def next_slot() -> str:
    day = datetime.now(CN) + timedelta(days=1)
    return day.replace(hour=10, minute=0, second=0, microsecond=0).isoformat()


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"tl{uuid.uuid4().hex[:6]}-") as (services, url):
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            products = (await http.get("/products")).json()["products"]
            sku = next(p["sku"] for p in products if p["unit"] == "piece" and "online" in p["channels"])
            async with StoreLink(stack, STORE) as link:
                await link.publish(StockMoved(**link.next_envelope(), sku=sku, delta=40, reason="receiving",
                                              shrinkage_reason="", on_hand_after=40, reference=""))
                await link.publish(EscrowGranted(**link.next_envelope(), sku=sku, qty=20, escrow_after=20))

            async def granted():
                stock = (await http.get(f"/stores/{STORE}/stock")).json()["stock"]
                return any(r["sku"] == sku and r["escrow"] == 20 for r in stock)
            assert await eventually(granted)
            yield services, http, sku


async def place(http, member, sku) -> dict:
    body = {"fulfilment": "pickup", "store_id": STORE, "slot_start": next_slot(), "items": [{"sku": sku, "qty": 1}]}
    r = await http.post("/orders", json=body, headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert r.status_code == 201, r.text
    return r.json()


async def test_the_timeline_shows_every_step_in_order(cloud):
    services, http, sku = cloud
    member = await customer(services, http)
    await top_up(services, http, member, 10_000)
    order = await place(http, member, sku)
    paid = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.status_code == 200, paid.text
    cancelled = await http.post(f"/orders/{order['order_id']}/cancel", json={"reason": "changed my mind"},
                                headers=member.headers)
    assert cancelled.json()["status"] == "cancelled"
    body = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
    steps = [(e["event"], e["status"]) for e in body["timeline"]]
    assert steps == [("created", "pending"), ("reserve", "reserved"), ("pay", "paid"), ("cancel", "cancelled")]
    assert [e["seq"] for e in body["timeline"]] == [1, 2, 3, 4]
    assert body["timeline"][3]["detail"] == {"reason": "changed my mind"}
    assert body["final"] is True and body["fulfilment"] == "pickup"
    # a cancelled order cannot be paid again: the step is refused and nothing is journaled
    again = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert again.status_code == 409
    after = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
    assert len(after["timeline"]) == 4


async def test_a_customer_follows_the_order_live_and_only_their_own(cloud):
    services, http, sku = cloud
    member, stranger = await customer(services, http), await customer(services, http)
    order = await place(http, member, sku)
    url = f"/orders/{order['order_id']}/events"
    token = member.headers["Authorization"].split(" ", 1)[1]
    got: list[dict] = []

    async def follow():
        async with http.stream("GET", url, params={"token": token}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            event = None
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "step":
                    got.append(json.loads(line[6:]))
                    if got[-1]["status"] == "cancelled":
                        return
    follower = asyncio.create_task(follow())
    assert await eventually(lambda: _has(got, 2), timeout_s=10)  # created and reserve, from the start
    await http.post(f"/orders/{order['order_id']}/cancel", headers=member.headers)
    await asyncio.wait_for(follower, 10)  # the cancel arrives without asking again
    assert [e["event"] for e in got] == ["created", "reserve", "cancel"]
    # from where a reconnecting browser left off
    async with http.stream("GET", url, headers={"Last-Event-ID": "2", **member.headers}) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:])["seq"] == 3
                break
    stranger_token = stranger.headers["Authorization"].split(" ", 1)[1]
    assert (await http.get(url, params={"token": stranger_token})).status_code == 404
    assert (await http.get(url)).status_code == 401
    bad = await http.get(url, params={"token": token, "after": "x1"})
    assert bad.status_code == 422 and "after" in bad.json()["detail"]


async def _has(got, n):
    return len(got) >= n


async def test_a_step_the_lifecycle_refuses_writes_nothing_and_a_repeated_fact_applies_once(cloud):
    services, http, sku = cloud
    member = await customer(services, http)
    order = await place(http, member, sku)
    db, now = services.cloud.db, services.cloud.now_ms()
    with pytest.raises(lifecycle.IllegalTransition, match="reserved cannot take 'start_picking'"):
        await journal.advance(db, order["order_id"], "start_picking", now)
    with pytest.raises(LookupError):
        await journal.advance(db, "no-such-order", "pay", now)
    first = await journal.note(db, order["order_id"], "rider", now, key="cb-1", detail={"lat": 31.2})
    again = await journal.note(db, order["order_id"], "rider", now, key="cb-1", detail={"lat": 31.3})
    assert not first.duplicate and again.duplicate and again.seq == first.seq
    timeline = await journal.timeline(db, order["order_id"])
    assert [e["event"] for e in timeline] == ["created", "reserve", "rider"]
    assert timeline[-1]["detail"] == {"lat": 31.2} and timeline[-1]["status"] == "reserved"


async def test_operators_see_orders_by_final_state_and_what_each_open_one_waits_for(cloud):
    services, http, sku = cloud
    member = await customer(services, http)
    since = datetime.now(CN).isoformat()
    open_order = await place(http, member, sku)
    ended = await place(http, member, sku)
    await http.post(f"/orders/{ended['order_id']}/cancel", headers=member.headers)
    op = await operator_headers(services)
    r = await http.get("/operator/orders/summary", params={"since": since}, headers=op)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ended"].get("cancelled", 0) >= 1
    mine = [o for o in body["open"] if o["order_id"] == open_order["order_id"]]
    assert mine and mine[0]["status"] == "reserved" and "payment" in mine[0]["waiting_for"]
    assert all(o["order_id"] != ended["order_id"] for o in body["open"])
    assert (await http.get("/operator/orders/summary", headers=member.headers)).status_code == 401
    bad = await http.get("/operator/orders/summary", params={"since": "yesterday"}, headers=op)
    assert bad.status_code == 422 and "since" in bad.json()["detail"]
