"""The cloud API through HTTP against the real app, real Ray, real PostgreSQL and real NATS."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import httpx
import pytest
import pytest_asyncio

from protocol.messages import EscrowGranted, OrderToFulfil, PickupCompleted, StockMoved
from tests.integration.harness import (
    StoreLink,
    customer,
    eventually,
    operator_headers,
    pay_by_wallet,
    running_cloud,
    top_up,
)

pytestmark = pytest.mark.integration
CN = timezone(timedelta(hours=8))
OP: dict[str, str] = {}  # an hq_admin's session: filled by the `cloud` fixture once the cloud runs


def next_slot(hour: int = 11) -> str:
    day = datetime.now(CN) + timedelta(days=1)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0).isoformat()


def key() -> dict:
    return {"Idempotency-Key": uuid.uuid4().hex}


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"api{uuid.uuid4().hex[:6]}-", reservation_ttl_ms=1500) as (services, url):
        OP.update(await operator_headers(services))
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            yield services, http


@pytest_asyncio.fixture(scope="module")
async def stocked(cloud, stack):
    """Stores S001 and S002 grant the cloud escrow for two products, through NATS as the edge would."""
    services, http = cloud
    products = (await http.get("/products")).json()["products"]
    pieces = [p["sku"] for p in products if p["unit"] == "piece" and "online" in p["channels"]][:2]
    async with StoreLink(stack, "S001") as s1, StoreLink(stack, "S002") as s2:
        # a store grants only what it reported on hand (protocol.store_facts): receive first, as an edge box does
        for link, sku in ((s1, pieces[0]), (s2, pieces[0]), (s2, pieces[1])):
            await link.publish(StockMoved(**link.next_envelope(), sku=sku, delta=20, reason="receiving",
                                          shrinkage_reason="", on_hand_after=20, reference=""))
        await s1.publish(EscrowGranted(**s1.next_envelope(), sku=pieces[0], qty=5, escrow_after=5))
        await s2.publish(EscrowGranted(**s2.next_envelope(), sku=pieces[0], qty=3, escrow_after=3))
        await s2.publish(EscrowGranted(**s2.next_envelope(), sku=pieces[1], qty=2, escrow_after=2))

    async def granted():
        stock = (await http.get("/stores/S002/stock")).json()["stock"]
        return {r["sku"]: r["escrow"] for r in stock} == {pieces[0]: 3, pieces[1]: 2}
    assert await eventually(granted)
    return pieces


async def member_with(services, http, balance: int):
    """A member signed in through SMS (a new phone), with `balance` fen of stored value."""
    member = await customer(services, http)
    if balance:  # bought through the simulated wallet provider, credited on its signed notification
        assert (await top_up(services, http, member, balance))["stored_value_fen"] == balance
    return member


def fan(services, name: str) -> dict:
    """A flash pass for member `name`, as the cloud issues one to a signed-in member (`POST /auth/passes`): the
    flash tests below are about the gate, so their many fans skip the SMS round trip; signing in for a pass is
    tested through HTTP in test_identity.py."""
    return {"Authorization": f"Bearer {services.passes.issue(name)[0]}"}


async def test_health_products_stores_openapi_metrics(cloud):
    _, http = cloud
    assert (await http.get("/health")).json()["status"] == "ok"
    assert len((await http.get("/products")).json()["products"]) > 100
    assert [s["store_id"] for s in (await http.get("/stores")).json()["stores"]] == ["S001", "S002", "S003", "S004", "S005"]
    paths = (await http.get("/openapi.json")).json()["paths"]
    for path in ("/orders", "/orders/{order_id}/pay", "/flash-sales/{sale_id}/orders", "/members/{member_id}/top-ups"):
        assert path in paths
    assert "freshmesh_http_requests_total" in (await http.get("/metrics")).text


async def test_pickup_order_lifecycle_through_the_store(cloud, stocked, stack):
    services, http = cloud
    member = await member_with(services, http, 100_000)
    body = {"fulfilment": "pickup", "store_id": "S001", "slot_start": next_slot(), "items": [{"sku": stocked[0], "qty": 2}]}
    r = await http.post("/orders", json=body, headers={**key(), **member.headers})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "reserved" and order["stores"] == ["S001"] and len(order["pickup_code"]) == 8
    assert order["total_fen"] == sum(line["amount_fen"] for line in order["lines"]) > 0
    assert order["member_id"] == member.member_id
    paid = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    mine = await http.get(f"/members/{member.member_id}", headers=member.headers)
    assert mine.json()["stored_value_fen"] == 100_000 - order["total_fen"]
    async with StoreLink(stack, "S001") as store:
        commands = await store.commands(want=10_000, timeout_s=5, until=lambda c: isinstance(c, OrderToFulfil)
                                        and c.order_id == order["order_id"])
        fulfil = [c for c in commands if isinstance(c, OrderToFulfil) and c.order_id == order["order_id"]]
        assert len(fulfil) == 1 and fulfil[0].pickup_code == order["pickup_code"]
        await store.publish(PickupCompleted(**store.next_envelope(), order_id=order["order_id"],
                                            pickup_code=order["pickup_code"], lane="1"))

    async def fulfilled():
        return (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()["status"] == "picked_up"
    assert await eventually(fulfilled)


async def test_store_revenue_is_for_operators_only(cloud):
    _, http = cloud
    public = (await http.get("/stores")).json()["stores"]
    assert public and all("till_sales" not in s and "till_sales_fen" not in s for s in public)
    assert all("online" in s and "lat" in s for s in public)  # the stores themselves stay open to browse
    wrong = (await http.get("/stores", headers={"Authorization": "Bearer not-a-session"})).json()["stores"]
    assert all("till_sales_fen" not in s for s in wrong)
    seen = (await http.get("/stores", headers=OP)).json()["stores"]
    assert all(isinstance(s["till_sales"], int) and isinstance(s["till_sales_fen"], int) for s in seen)


async def test_delivery_is_split_or_reports_what_is_missing(cloud, stocked):
    services, http = cloud
    member = await customer(services, http)
    s1 = (await http.get("/stores")).json()["stores"][0]
    near = {"lat": s1["lat"], "lon": s1["lon"]}
    body = {"fulfilment": "delivery", "location": near, "slot_start": next_slot(12),
            "items": [{"sku": stocked[0], "qty": 1}, {"sku": stocked[1], "qty": 50}]}
    r = await http.post("/orders", json=body, headers={**key(), **member.headers})
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert "out of stock nearby" in r.json()["detail"] and stocked[1] in r.json()["missing"]


async def test_idempotent_retry_and_key_reuse(cloud, stocked):
    services, http = cloud
    member, other_member = await customer(services, http), await customer(services, http)
    headers = {**key(), **member.headers}
    body = {"fulfilment": "pickup", "store_id": "S001", "slot_start": next_slot(13),
            "items": [{"sku": stocked[0], "qty": 1}]}
    first, again = await asyncio.gather(http.post("/orders", json=body, headers=headers),
                                        http.post("/orders", json=body, headers=headers))
    assert first.status_code == again.status_code == 201
    assert first.json()["order_id"] == again.json()["order_id"]
    other = await http.post("/orders", json={**body, "items": [{"sku": stocked[0], "qty": 2}]}, headers=headers)
    assert other.status_code == 409 and "different body" in other.json()["detail"]
    # the same key from another member is that member's own key: another order, not the first member's
    theirs = await http.post("/orders", json=body, headers={**headers, **other_member.headers})
    assert theirs.status_code == 201 and theirs.json()["order_id"] != first.json()["order_id"]
    for order, who in ((first, member), (theirs, other_member)):
        await http.post(f"/orders/{order.json()['order_id']}/cancel", json={}, headers=who.headers)


async def test_unpaid_order_expires_and_its_stock_returns(cloud, stocked):
    services, http = cloud
    async def available():
        (position,) = await services.cloud.actors.stock_pool.positions("S002", stocked[1])
        return position["available"]
    before = await available()
    member = await customer(services, http)
    body = {"fulfilment": "pickup", "store_id": "S002", "slot_start": next_slot(14),
            "items": [{"sku": stocked[1], "qty": 1}]}
    order = (await http.post("/orders", json=body, headers={**key(), **member.headers})).json()
    assert await available() == before - 1

    async def expired():
        return (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()["status"] == "expired"
    assert await eventually(expired, timeout_s=10)
    assert await eventually(lambda: _equals(available, before), timeout_s=10)
    pay = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "wallet_sim"}, headers=member.headers)
    assert pay.status_code == 409 and "expired" in pay.json()["detail"]


async def _equals(fn, value):
    return await fn() == value


async def test_cancel_returns_stock_and_money(cloud, stocked):
    services, http = cloud
    member = await member_with(services, http, 50_000)
    me = member.headers
    body = {"fulfilment": "pickup", "store_id": "S002", "slot_start": next_slot(15),
            "items": [{"sku": stocked[0], "qty": 1}]}
    order = (await http.post("/orders", json=body, headers={**key(), **me})).json()
    await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value"}, headers=me)
    assert (await http.get(f"/members/{member.member_id}", headers=me)).json()["stored_value_fen"] < 50_000
    r = await http.post(f"/orders/{order['order_id']}/cancel", json={"reason": "changed mind"}, headers=me)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert (await http.get(f"/members/{member.member_id}", headers=me)).json()["stored_value_fen"] == 50_000


@pytest_asyncio.fixture(scope="module")
async def signed_in(cloud):
    services, http = cloud
    return await customer(services, http)


@pytest.mark.parametrize("method, path, body, status, words", [
    ("post", "/orders",
     {"fulfilment": "pickup", "store_id": "S001", "slot_start": "tomorrow", "items": [{"sku": "X", "qty": 1}]},
     422, "slot_start: not an RFC 3339 time"),
    ("post", "/orders", {"fulfilment": "drone", "items": []}, 422, "order.fulfilment: 'drone' is not one of"),
    ("post", "/orders", {"fulfilment": "delivery", "slot_start": "2026-01-01T09:00:00Z", "items": [{"sku": "X", "qty": 1}]},
     422, "location: required for delivery"),
    ("post", "/orders", {"fulfilment": "pickup", "store_id": "S001", "slot_start": next_slot(),
                         "items": [{"sku": "NOPE", "qty": 1}]}, 422, "items: unknown sku 'NOPE'"),
    ("post", "/orders", {"fulfilment": "pickup", "store_id": "S001", "slot_start": "2026-01-01T09:00:00Z",
                         "member_id": "someone", "items": [{"sku": "X", "qty": 1}]}, 422, "unknown field(s) ['member_id']"),
    ("get", "/orders/01ARZ3NDEKTSV4RRFFQ69G5FAV", None, 404, "no order"),
    ("get", "/orders/01ARZ3NDEK%00TSV4RRFFQ69G5FAV", None, 422, "order_id: control character '\\x00' at position 10"),
    ("get", "/flash-sales/" + "X" * 200, None, 422, "sale_id: at most 128 characters"),
    ("post", "/orders", {"fulfilment": "pickup", "store_id": "S001", "slot_start": "1970-01-01T09:00:00Z",
                         "items": [{"sku": "X", "qty": 1}]}, 422, "slot_start: must be within the next 30 days"),
    ("post", "/orders", {"fulfilment": "pickup", "store_id": "S001", "slot_start": "9999-01-01T09:00:00+08:00",
                         "items": [{"sku": "X", "qty": 1}]}, 422, "slot_start: must be within the next 30 days"),
    ("post", "/orders", {"deep": json.loads("[" * 20 + "]" * 20)}, 422, "body: nested deeper than 16 levels"),
    ("post", "/auth/codes", {"phone": "abc"}, 422, "phone: 'a' is not a digit"),
    ("post", "/auth/codes", {"phone": "13800000000", "age": 3}, 422, "unknown field(s) ['age']"),
    ("get", "/members/nobody", None, 404, "no member nobody"),
    ("get", "/flash-sales/nosale", None, 404, "no flash sale nosale"),
    ("get", "/stores/S999/stock", None, 404, "no store S999"),
    ("get", "/nowhere", None, 404, "no such endpoint"),
])
async def test_errors_are_problems_that_say_what_was_wrong(cloud, signed_in, method, path, body, status, words):
    _, http = cloud
    r = await http.request(method.upper(), path, json=body, headers={**key(), **signed_in.headers})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status and words in problem["detail"] and problem["title"]


async def test_missing_idempotency_key_and_bad_json(cloud, signed_in):
    _, http = cloud
    r = await http.post("/orders", json={}, headers=signed_in.headers)
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["detail"]
    r = await http.post("/auth/codes", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]


async def test_operator_endpoints_need_an_operator_session(cloud):
    _, http = cloud
    sale = {"sku": "X", "quantity": 1, "price_fen": 1,
            "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z"}
    missing = await http.post("/flash-sales", json=sale)
    assert missing.status_code == 401 and "POST /operator/sessions" in missing.json()["detail"]
    wrong = await http.post("/flash-sales", json=sale, headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401 and "sign in again" in wrong.json()["detail"]


async def test_flash_sale_statuses(cloud, stocked):
    services, http = cloud
    now = datetime.now(UTC)
    sale = {"sku": stocked[0], "quantity": 3, "price_fen": 990, "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), "per_member_limit": 1, "rate_per_s": 1000}
    created = await http.post("/flash-sales", json=sale, headers=OP)
    assert created.status_code == 201, created.text
    sale_id = created.json()["sale_id"]
    members = [f"m-{i}" for i in range(6)]
    first_key = key()
    first = await http.post(f"/flash-sales/{sale_id}/orders", json={}, headers={**first_key, **fan(services, members[0])})
    assert first.status_code == 201 and first.json()["total_fen"] == 990
    retry = await http.post(f"/flash-sales/{sale_id}/orders", json={}, headers={**first_key, **fan(services, members[0])})
    assert retry.status_code == 201 and retry.json() == first.json()  # a retry gets the order it bought
    other_body = await http.post(f"/flash-sales/{sale_id}/orders", json={"qty": 2},
                                 headers={**first_key, **fan(services, members[0])})
    assert other_body.status_code == 409 and "Idempotency-Key" in other_body.json()["detail"]  # not the first's 201
    again = await http.post(f"/flash-sales/{sale_id}/orders", json={}, headers={**key(), **fan(services, members[0])})
    assert again.status_code == 403 and "limit" in again.json()["detail"]
    results = await asyncio.gather(*(http.post(f"/flash-sales/{sale_id}/orders", json={},
                                               headers={**key(), **fan(services, m)})
                                     for m in members[1:]))
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 2 and codes.count(409) == 3
    assert all("sold out" in r.json()["detail"] for r in results if r.status_code == 409)
    status = (await http.get(f"/flash-sales/{sale_id}")).json()
    assert (status["quantity"], status["sold"], status["remaining"]) == (3, 3, 0)


async def test_flash_sale_throttles_with_retry_after(cloud, stocked):
    services, http = cloud
    now = datetime.now(UTC)
    sale = {"sku": stocked[1], "quantity": 1000, "price_fen": 100, "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), "per_member_limit": 5, "rate_per_s": 2}
    sale_id = (await http.post("/flash-sales", json=sale, headers=OP)).json()["sale_id"]
    results = await asyncio.gather(*(http.post(f"/flash-sales/{sale_id}/orders", json={},
                                               headers={**key(), **fan(services, f"t{i}")})
                                     for i in range(10)))
    throttled = [r for r in results if r.status_code == 429]
    assert throttled and throttled[0].headers["retry-after"] == "1"


async def test_redelivered_and_malformed_edge_events(cloud, stack, stocked):
    services, http = cloud
    async with StoreLink(stack, "S003") as store:
        await store.publish(StockMoved(**store.next_envelope(), sku=stocked[0], delta=12, reason="receiving",
                                       shrinkage_reason="", on_hand_after=12, reference=""))
        grant = EscrowGranted(**store.next_envelope(), sku=stocked[0], qty=4, escrow_after=4)
        await store.publish(grant)
        await store.publish_raw("sale.committed", b"\xc1garbage")
        await store.publish(grant, msg_id="redelivery-" + grant.event_id)  # past the stream's dedupe: a true redelivery
        move = StockMoved(**store.next_envelope(), sku=stocked[0], delta=-1, reason="sale", shrinkage_reason="",
                          on_hand_after=11, reference="sale-1")
        await store.publish(move)

    async def applied():
        stock = {r["sku"]: r for r in (await http.get("/stores/S003/stock")).json()["stock"]}
        return stock.get(stocked[0], {}).get("on_hand") == 11 and stock[stocked[0]]
    row = await eventually(applied)
    assert row and row["escrow"] == 4, "a redelivered grant was applied twice (or not at all)"
    conn = await asyncpg.connect(stack.database_url)
    try:
        dead = await conn.fetchrow("select subject, reason, raw from dead_letters where subject like '%S003%' "
                                   "order by id desc")
        assert dead is not None and bytes(dead["raw"]) == b"\xc1garbage" and "not a valid msgpack frame" in dead["reason"]
        assert await conn.fetchval("select count(*) from edge_events where event_id = $1", grant.event_id) == 1
    finally:
        await conn.close()


async def test_store_catches_up_on_missed_commands_in_order(cloud, stack, stocked, signed_in):
    _, http = cloud
    orders = []
    for hour in (16, 17, 18):
        body = {"fulfilment": "pickup", "store_id": "S002", "slot_start": next_slot(hour),
                "items": [{"sku": stocked[0], "qty": 1}]}
        order = (await http.post("/orders", json=body, headers={**key(), **signed_in.headers})).json()
        await pay_by_wallet(cloud[0], http, signed_in, order["order_id"])
        orders.append(order["order_id"])
    async with StoreLink(stack, "S002") as store:  # the store was "offline": nothing pulled until now
        commands = await store.commands(want=10_000, timeout_s=5, until=lambda c: isinstance(c, OrderToFulfil)
                                        and c.order_id == orders[-1])
    fulfil = [c.order_id for c in commands if isinstance(c, OrderToFulfil)]
    assert [o for o in fulfil if o in orders] == orders
    # what the cloud sent one after the other arrives in that order (concurrent senders, such as the bridge's
    # acks, number and publish their own messages independently, so only this test's sequence is compared)
    seqs = [c.seq for c in commands if isinstance(c, OrderToFulfil) and c.order_id in orders]
    assert len(seqs) == 3 and seqs == sorted(seqs), "commands arrived out of order"


async def test_database_down_answers_503_with_retry_after_not_a_hang(cloud):
    services, http = cloud
    import asyncpg as pg

    from cloud.embedded.process import free_port
    dead = await pg.create_pool(f"postgresql://x:y@127.0.0.1:{free_port()}/none", min_size=0, max_size=1)
    real, services.cloud.db = services.cloud.db, dead
    try:
        r = await http.get("/me", headers={"Authorization": "Bearer some-session-token"})
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert "unavailable" in r.json()["detail"]
    finally:
        services.cloud.db = real
        await dead.close()


async def test_two_api_workers_share_a_sale_and_never_oversell(cloud, stack, stocked):
    """A second, independent API process (its own services and lease) sells from the same gate."""
    services, http = cloud
    now = datetime.now(UTC)
    sale = {"sku": stocked[0], "quantity": 40, "price_fen": 500, "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), "per_member_limit": 1, "rate_per_s": 100_000}
    sale_id = (await http.post("/flash-sales", json=sale, headers=OP)).json()["sale_id"]
    async with running_cloud(stack, prefix=services.cloud.shards.prefix) as (_, other_url):
        async with httpx.AsyncClient(base_url=other_url, timeout=20) as other:
            clients = [http, other]
            results = await asyncio.gather(*(clients[i % 2].post(f"/flash-sales/{sale_id}/orders",
                                                                 json={}, headers={**key(), **fan(services, f"two-{i}")})
                                             for i in range(150)))
    accepted = [r for r in results if r.status_code == 201]
    assert len(accepted) == 40
    # a buyer waiting for units the other worker holds hears "try again" (429, Retry-After) if the hand-back takes
    # longer than the wait (a busy box), never a wrong "sold out": every unit is sold
    assert {r.status_code for r in results} <= {201, 409, 429}
    assert all("retry-after" in r.headers for r in results if r.status_code == 429)
    status = (await http.get(f"/flash-sales/{sale_id}")).json()
    assert (status["sold"], status["remaining"]) == (40, 0)


async def test_operators_change_the_world_and_bad_changes_are_refused(cloud):
    services, http = cloud
    store = {"name": "FreshMesh Riverside", "lat": 31.25, "lon": 121.5, "slot_capacity": 10}
    assert (await http.put("/stores/S010", json=store)).status_code == 401
    r = await http.put("/stores/S010", json=store, headers=OP)
    assert r.status_code == 200, r.text
    assert "S010" in [s["store_id"] for s in (await http.get("/stores")).json()["stores"]]
    products = (await http.get("/products")).json()["products"]
    bad = [dict(products[0], price_fen=-5)] + products[1:]
    r = await http.put("/products", json={"products": bad}, headers=OP)
    assert r.status_code == 422 and "price_fen must be positive" in r.json()["detail"]
    book = {"version": 99,
            "rules": [{"type": "coupon", "id": "C1", "name": "c", "categories": ["toys"], "amount_off_fen": 1}]}
    r = await http.put("/rule-book", json=book, headers=OP)
    assert r.status_code == 422 and "rule 'C1': unknown category 'toys'" in r.json()["detail"]
    assert (await http.get("/products")).json()["rule_book_version"] != 99


async def test_a_flash_order_can_be_paid_and_cancelled(cloud, stocked):
    services, http = cloud
    member = await member_with(services, http, 0)
    now = datetime.now(UTC)
    sale = {"sku": stocked[0], "quantity": 5, "price_fen": 700, "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat()}
    sale_id = (await http.post("/flash-sales", json=sale, headers=OP)).json()["sale_id"]
    flash_pass = (await http.post("/auth/passes", headers=member.headers)).json()["pass"]
    order = (await http.post(f"/flash-sales/{sale_id}/orders", json={},
                             headers={**key(), "Authorization": f"Bearer {flash_pass}"})).json()
    assert order["member_id"] == member.member_id
    paid = await pay_by_wallet(services, http, member, order["order_id"])
    assert paid["status"] == "paid" and paid["total_fen"] == 700 and paid["payment"]["method"] == "wallet_sim"
    cancelled = await http.post(f"/orders/{order['order_id']}/cancel", json={}, headers=member.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


async def test_both_flash_order_shells_answer_alike_with_the_limits_of_every_endpoint(cloud, stocked):
    """The fast path and the routed endpoint are two shells over one core: the same status and problem for a
    missing key, bad JSON, an unknown field, an oversized body, an unknown sale, a gate that cannot sell (503 with
    Retry-After, never a bare 500) and an accepted order."""
    from cloud.http.app import build_app
    services, http = cloud
    fast = build_app(services)
    shells = {"fast path": fast, "routed": fast.app}
    sale = {"sku": stocked[0], "quantity": 5, "price_fen": 990, "per_member_limit": 1, "rate_per_s": 1000,
            "starts_at": datetime.now(CN).isoformat(), "ends_at": (datetime.now(CN) + timedelta(hours=1)).isoformat()}
    sale_id = (await http.post("/flash-sales", json=sale, headers=OP)).json()["sale_id"]
    unopened = "UNOPENED" + uuid.uuid4().hex[:8].upper()  # known to the database, never opened at its gate
    await services.cloud.db.execute("insert into flash_sales (sale_id, config, created_ms) values ($1, '{}', 0)",
                                    unopened)
    a = fan(services, "a")
    cases = [
        ("no pass", sale_id, key(), b'{"qty": 1}', 401),
        ("a session token is not a pass", sale_id, {**key(), "Authorization": "Bearer " + "x" * 43}, b'{}', 401),
        ("no key", sale_id, a, b'{"qty": 1}', 400),
        ("bad json", sale_id, {**key(), **a}, b'{"qty": ', 400),
        ("unknown field", sale_id, {**key(), **a}, b'{"member_id": "b", "qty": 1}', 422),
        ("oversized", sale_id, {**key(), **a}, b'{"qty": 1, "x": "' + b"x" * 70_000 + b'"}', 413),
        ("unknown sale", "NOSUCHSALE", {**key(), **a}, b'{"qty": 1}', 404),
        ("gate not open", unopened, {**key(), **a}, b'{"qty": 1}', 503),
        ("nested", sale_id, {**key(), **a}, b'{"qty": 1, "x": ' + b"[" * 40 + b"]" * 40 + b"}", 422),
    ]
    for name, shell in shells.items():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=shell), base_url="http://t") as client:
            for case, target, headers, body, status in cases:
                r = await client.post(f"/flash-sales/{target}/orders", content=body,
                                      headers={**headers, "content-type": "application/json"})
                assert r.status_code == status, (name, case, r.status_code, r.text[:300])
                assert r.headers["content-type"].startswith("application/problem+json"), (name, case)
                assert r.json()["status"] == status and r.json()["detail"], (name, case)
                if status == 503:
                    assert "retry-after" in r.headers, (name, case)
            accepted = await client.post(f"/flash-sales/{sale_id}/orders", json={},
                                         headers={**key(), **fan(services, f"both-{name}")})
            assert accepted.status_code == 201 and accepted.json()["qty"] == 1, (name, accepted.text)


async def test_a_member_reaches_only_their_own_account_orders_and_pickup_codes(cloud, stocked):
    """Member B, signed in, tries everything on member A's account and order: each answers exactly as for an id that
    does not exist (404, problem+json); anonymous callers get 401; nothing of A's changes."""
    services, http = cloud
    a, b = await member_with(services, http, 20_000), await member_with(services, http, 0)
    body = {"fulfilment": "pickup", "store_id": "S001", "slot_start": next_slot(19),
            "items": [{"sku": stocked[0], "qty": 1}]}
    placed = await http.post("/orders", json=body, headers={**key(), **a.headers})
    assert placed.status_code == 201 and placed.json()["member_id"] == a.member_id
    order_id = placed.json()["order_id"]
    unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    for method, path, payload in [("GET", f"/orders/{order_id}", None),
                                  ("POST", f"/orders/{order_id}/pay", {"method": "stored_value"}),
                                  ("POST", f"/orders/{order_id}/cancel", {}),
                                  ("GET", f"/members/{a.member_id}", None),
                                  ("POST", f"/members/{a.member_id}/top-ups", {"amount_fen": 100})]:
        theirs = await http.request(method, path, json=payload, headers={**key(), **b.headers})
        assert theirs.status_code == 404, (method, path, theirs.text)
        assert theirs.headers["content-type"] == "application/problem+json"
        assert set(theirs.json()) == {"type", "title", "status", "detail"}  # a problem, nothing of A's
        nobody = await http.request(method, path.replace(order_id, unknown).replace(a.member_id, "nobody"),
                                    json=payload, headers={**key(), **b.headers})
        assert theirs.json()["detail"].replace(order_id, "X").replace(a.member_id, "X") == \
            nobody.json()["detail"].replace(unknown, "X").replace("nobody", "X"), "another's resource must look absent"
        anonymous = await http.request(method, path, json=payload, headers=key())
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert (await http.post("/orders", json=body, headers=key())).status_code == 401  # no anonymous orders
    # B cannot order as A: the body has no member field, and B's order is B's
    as_a = await http.post("/orders", json={**body, "member_id": a.member_id}, headers={**key(), **b.headers})
    assert as_a.status_code == 422 and "member_id" in as_a.json()["detail"]
    b_order = (await http.post("/orders", json=body, headers={**key(), **b.headers})).json()
    assert b_order["member_id"] == b.member_id
    # B's stored value pays B's order only: B has none, and A's balance is untouched
    paid = await http.post(f"/orders/{b_order['order_id']}/pay", json={"method": "stored_value"}, headers=b.headers)
    assert paid.status_code == 409, paid.text
    mine = (await http.get(f"/orders/{order_id}", headers=a.headers)).json()
    assert mine["status"] == "reserved" and len(mine["pickup_code"]) == 8
    assert (await http.get(f"/members/{a.member_id}", headers=a.headers)).json()["stored_value_fen"] == 20_000
    # a flash pass is issued only to a session, names its member, and is refused once altered
    assert (await http.post("/auth/passes")).status_code == 401
    flash_pass = (await http.post("/auth/passes", headers=b.headers)).json()["pass"]
    assert services.passes.member(flash_pass) == b.member_id
    assert services.passes.member(flash_pass.replace(b.member_id, a.member_id)) is None
    # signing out ends the session everywhere it is asked for
    assert (await http.delete("/auth/sessions", headers=a.headers)).status_code == 204
    assert (await http.get(f"/orders/{order_id}", headers=a.headers)).status_code == 401
    for order in (order_id, b_order["order_id"]):
        await services.orders.cancel(order, None, "test over")


async def test_an_order_abandoned_half_way_gives_its_stock_and_slot_back(cloud, stocked, monkeypatch):
    """The request dies after reserving (here: a crash injected before the slot booking finishes) and is never
    retried: the sweeper refuses the order and gives back what its plan held; a late retry gets that answer."""
    from cloud.services import order_endings
    services, http = cloud
    member = await customer(services, http)

    async def available():
        (position,) = await services.cloud.actors.stock_pool.positions("S001", stocked[0])
        return position["available"]
    before = await available()

    async def dies(*args, **kwargs):
        raise RuntimeError("the API process died here (injected)")

    async def gone(*args, **kwargs):  # a dead process cleans nothing up (an error it lives through does: `_fail`)
        return None
    monkeypatch.setattr(services.orders, "_book_slots", dies)
    monkeypatch.setattr(services.orders, "_fail", gone)
    headers = {**key(), **member.headers}
    body = {"fulfilment": "pickup", "store_id": "S001", "slot_start": next_slot(20),
            "items": [{"sku": stocked[0], "qty": 1}]}
    assert (await http.post("/orders", json=body, headers=headers)).status_code == 500
    monkeypatch.undo()
    row = await services.cloud.db.fetchrow("select * from orders where idempotency_key like $1::text",
                                           f"{member.member_id}/%")
    assert row["status"] == "pending" and await available() == before - 1  # held, and nobody left to finish it
    await services.orders.sweep_abandoned()  # not yet: a retry may still come and finish it
    assert await services.cloud.db.fetchval("select status from orders where order_id = $1", row["order_id"]) == "pending"
    await services.cloud.db.execute("update orders set updated_ms = updated_ms - $2 where order_id = $1",
                                    row["order_id"], order_endings.ABANDONED_MS + 1)  # five minutes later
    assert await eventually(lambda: _equals(available, before), timeout_s=10)  # the background sweeper ran
    late = await http.post("/orders", json=body, headers=headers)
    assert late.status_code == 409 and "abandoned" in late.json()["detail"]


async def _flash_sale(http, sku: str, quantity: int, limit: int = 1) -> str:
    now = datetime.now(UTC)
    sale = {"sku": sku, "quantity": quantity, "price_fen": 500, "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), "per_member_limit": limit, "rate_per_s": 100_000}
    created = await http.post("/flash-sales", json=sale, headers=OP)
    assert created.status_code == 201, created.text
    return created.json()["sale_id"]


async def _flash_rows(services, sale_id: str) -> int:
    return await services.cloud.db.fetchval("select count(*) from orders where sale_id = $1 and kind = 'flash'",
                                            sale_id)


async def _audit_of(http, sale_id: str) -> list[str]:
    report = (await http.get("/audit", headers=OP)).json()
    return [v for v in report["violations"] if sale_id in v]


async def test_two_api_workers_sell_every_unit_of_a_40_unit_sale_and_a_retry_anywhere_gets_its_order(
        cloud, stack, stocked):
    """The first worker to ask leases all 40 units; the other's buyers wait for units handed back instead of hearing
    "sold out" with units left. After sell-out, each buyer's retry (same key) through the *other* worker gets the
    order it bought, from its row; a stranger with a new key hears sold out from both."""
    services, http = cloud
    sale_id = await _flash_sale(http, stocked[0], 40)
    buyers = [(f"forty-{uuid.uuid4().hex[:6]}-{i}", key()) for i in range(40)]
    async with running_cloud(stack, prefix=services.cloud.shards.prefix) as (other_services, other_url):
        async with httpx.AsyncClient(base_url=other_url, timeout=20) as other:
            workers = [http, other]
            assert (await http.post(f"/flash-sales/{sale_id}/orders", json={},  # worker 0 leases every unit
                                    headers={**buyers[0][1], **fan(services, buyers[0][0])})).status_code == 201
            rest = await asyncio.gather(*(workers[i % 2].post(f"/flash-sales/{sale_id}/orders", json={},
                                                              headers={**k, **fan(services, m)})
                                          for i, (m, k) in enumerate(buyers) if i))
            assert [r.status_code for r in rest] == [201] * 39, [r.text for r in rest if r.status_code != 201][:3]
            bought = {buyers[0][0]: (await http.post(f"/flash-sales/{sale_id}/orders", json={}, headers={
                **buyers[0][1], **fan(services, buyers[0][0])})).json()}
            bought.update({r.json()["member_id"]: r.json() for r in rest})
            status = (await http.get(f"/flash-sales/{sale_id}")).json()
            assert (status["sold"], status["remaining"]) == (40, 0)
            for worker in workers:
                late = await worker.post(f"/flash-sales/{sale_id}/orders", json={},
                                         headers={**key(), **fan(services, "forty-late")})
                assert late.status_code == 409 and "sold out" in late.json()["detail"]
            retries = await asyncio.gather(*(workers[(i + 1) % 2].post(f"/flash-sales/{sale_id}/orders", json={},
                                                                       headers={**k, **fan(services, m)})
                                             for i, (m, k) in enumerate(buyers)))
            assert [r.status_code for r in retries] == [201] * 40
            assert [r.json() for r in retries] == [bought[m] for m, _ in buyers]
            other_body = await other.post(f"/flash-sales/{sale_id}/orders", json={"qty": 2},
                                          headers={**buyers[1][1], **fan(services, buyers[1][0])})
            assert other_body.status_code == 409 and "Idempotency-Key" in other_body.json()["detail"]
    assert await _flash_rows(services, sale_id) == 40
    assert await _audit_of(http, sale_id) == []


async def test_an_order_row_the_database_refuses_hands_its_unit_back(cloud, stocked):
    """A trigger refuses one member's flash order row: that request is told to retry (503), the unit is unsold,
    and someone else buys it; the sale's sold count and its order rows agree, and /audit says so."""
    services, http = cloud
    sale_id = await _flash_sale(http, stocked[0], 1)
    refused = f"refused-{uuid.uuid4().hex[:8]}"
    trigger = f"refuse_{uuid.uuid4().hex[:8]}"
    await services.cloud.db.execute(f"""
        create function {trigger}() returns trigger language plpgsql as $$
        begin
            if new.member_id = '{refused}' then raise exception 'refused by the test'; end if;
            return new;
        end $$;
        create trigger {trigger} before insert on orders for each row execute function {trigger}();""")
    try:
        r = await http.post(f"/flash-sales/{sale_id}/orders", json={}, headers={**key(), **fan(services, refused)})
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    finally:
        await services.cloud.db.execute(f"drop trigger {trigger} on orders; drop function {trigger}();")

    async def unsold():
        return (await http.get(f"/flash-sales/{sale_id}")).json()["sold"] == 0
    assert await eventually(unsold, timeout_s=5)
    assert (await http.get(f"/flash-sales/{sale_id}")).json()["released"] == 1
    other = await http.post(f"/flash-sales/{sale_id}/orders", json={}, headers={**key(), **fan(services, "after-refused")})
    assert other.status_code == 201, other.text
    status = (await http.get(f"/flash-sales/{sale_id}")).json()
    assert (status["sold"], await _flash_rows(services, sale_id)) == (1, 1)
    assert await _audit_of(http, sale_id) == []


async def test_order_rows_lost_with_the_database_are_looked_up_and_their_units_handed_back(cloud, stocked):
    """The database goes away as a flash order's row is written: the buyer hears 503, the unit stays sold while
    nobody can tell whether the row exists, and once the database answers again (no row) it is unsold and sold to
    someone else."""
    import asyncpg as pg

    from cloud.embedded.process import free_port
    services, http = cloud
    sale_id = await _flash_sale(http, stocked[0], 2)
    first = await http.post(f"/flash-sales/{sale_id}/orders", json={}, headers={**key(), **fan(services, "db-first")})
    assert first.status_code == 201
    dead = await pg.create_pool(f"postgresql://x:y@127.0.0.1:{free_port()}/none", min_size=0, max_size=1)
    real, services.cloud.db = services.cloud.db, dead
    try:
        lost = await http.post(f"/flash-sales/{sale_id}/orders", json={}, headers={**key(), **fan(services, "db-lost")})
        assert lost.status_code == 503, lost.text
        status = await services.cloud.actors.flash_sale(sale_id).status()
        assert (status["sold"], status["unrecorded"]) == (2, 1)  # sold until its row is known to be missing
    finally:
        services.cloud.db = real
        await dead.close()

    async def unsold():
        return (await http.get(f"/flash-sales/{sale_id}")).json()["sold"] == 1
    assert await eventually(unsold, timeout_s=5)
    again = await http.post(f"/flash-sales/{sale_id}/orders", json={}, headers={**key(), **fan(services, "db-after")})
    assert again.status_code == 201, again.text
    assert ((await http.get(f"/flash-sales/{sale_id}")).json()["sold"], await _flash_rows(services, sale_id)) == (2, 2)
    assert await _audit_of(http, sale_id) == []


async def test_a_buyer_who_gives_up_before_the_verdict_gets_no_order_and_the_unit_goes_back(cloud, stocked):
    """The gate answers late (its sync is slowed); the request is cancelled before (a client's or the endpoint's
    deadline): the sale the gate accepted gets no row and is unsold, and someone else buys the unit."""
    services, http = cloud
    sale_id = await _flash_sale(http, stocked[0], 1)
    worker = await services.flash.worker(sale_id)
    real = worker.gate.sync

    async def late(command):
        await asyncio.sleep(0.5)
        return await real(command)
    worker.gate.sync = late
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(services.flash.order(sale_id, "gave-up", 1, uuid.uuid4().hex), 0.1)
        await asyncio.sleep(0.6)  # the late answer: accepted, nobody waits for it
    finally:
        worker.gate.sync = real

    async def unsold():
        return (await http.get(f"/flash-sales/{sale_id}")).json()["sold"] == 0
    assert await eventually(unsold, timeout_s=5)
    # the API worker hears that the unit is back at its next sync with the gate (within IDLE_SYNC_MS): until then it
    # answers "sold out" from what it knew, so the buyer retries with the same key, as a client does
    retry = {**key(), **fan(services, "stayed")}

    async def bought():
        answer = await http.post(f"/flash-sales/{sale_id}/orders", json={}, headers=retry)
        return answer if answer.status_code == 201 else None
    other = await eventually(bought, timeout_s=5)
    assert other, "nobody could buy the unit the buyer who gave up left"
    assert ((await http.get(f"/flash-sales/{sale_id}")).json()["sold"], await _flash_rows(services, sale_id)) == (1, 1)
