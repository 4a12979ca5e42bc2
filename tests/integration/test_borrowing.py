"""Borrowing across channels over the real stack (issue 15, item 5): a real edge box on real NATS as its own store
user, the cloud with its actors on Ray and PostgreSQL.

- 100 on hand at a store, the default ratio (40 online): an online order for 50 succeeds because the cloud borrows
  the 10 it lacks from the store's offline share; afterwards the store's and the cloud's escrow agree, the grant was
  applied once (also when it came again through the event path) and the audit is clean.
- HQ's ratio reaches the store and changes what it grants; only HQ may set it (403 for a store manager).
- A store whose box is down is asked at most once (no responders: no wait) and the order is refused as before.
"""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest
import pytest_asyncio

from cloud.services.borrowing import BORROW_TIMEOUT_S
from edge import allocations
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from edge.store_db import SEQ_FLOOR_KEY, StoreDb
from protocol import subjects
from tests.integration.harness import (
    customer,
    eventually,
    operator_headers,
    pay_by_wallet,
    running_cloud,
    this_clouds,
)

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S005"
# SKUs no other module's S005 receives, one per test, so each test's stock is its own
BORROWED, RATIO, OFFLINE, DELIVERED = "PAC-STEAME-0224", "PAC-STEAME-0225", "PAC-STEAME-0226", "PAC-STEAME-0227"
SHARED, LATE = "PAC-SESAME-0228", "PAC-SESAME-0229"


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"borrow{uuid.uuid4().hex[:6]}-") as (services, url):
        data_dir = tmp_path_factory.mktemp("edge")
        await _continue_seq(stack, data_dir)
        config = {"store_id": STORE, "data_dir": str(data_dir), "world": str(WORLD), "nats_url": stack.nats_address,
                  "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        state = {"running": True}
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            await eventually(lambda: _online(box), timeout_s=10)
            yield services, http, box, state
        if state["running"]:
            await box.stop()


async def _continue_seq(stack, data_dir: Path) -> None:
    """A store's seqs only grow: this new box goes on from the highest the cloud has of the store (another module's
    box or link), as a real box's would."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        seq = await conn.fetchval("select coalesce(max(seq), 0) from edge_events where store_id = $1", STORE) or 0
    finally:
        await conn.close()
    db = await StoreDb(data_dir / f"{STORE}.sqlite").open()
    await db.writer.execute("insert into meta (key, value) values (?, ?)", (SEQ_FLOOR_KEY, str(seq)))
    await db.close()


async def _online(box) -> bool:
    return box.actor.online


async def _drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


async def _stocked(box, http, sku: str, qty: int) -> dict:
    """Receive `qty` at the store; the cloud's view once it has the on-hand (and the grant)."""
    await box.actor.ask("receive", sku=sku, qty=qty)
    assert await eventually(lambda: _drained(box)), "the store's events were not acked"

    async def seen():
        row = await _cloud_row(http, sku)
        return row if row and row["on_hand"] >= qty else None
    row = await eventually(seen)
    assert row, f"the cloud never saw {sku} on hand"
    return row


async def _cloud_row(http, sku: str) -> dict | None:
    rows = (await http.get(f"/stores/{STORE}/stock", params={"sku": sku})).json()["stock"]
    return rows[0] if rows else None


def _slot() -> str:
    return (datetime.now(timezone(timedelta(hours=8))) + timedelta(days=1)).replace(
        hour=10, minute=0, second=0, microsecond=0).isoformat()


async def _order(http, member, sku: str, qty: int) -> httpx.Response:
    return await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": _slot(),
                                            "items": [{"sku": sku, "qty": qty}]},
                           headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})


async def test_an_order_for_50_with_100_on_hand_borrows_the_shortfall_from_the_offline_share(world, stack):
    services, http, box, _ = world
    row = await _stocked(box, http, BORROWED, 100)
    assert row["escrow"] == 40 and row["available_online"] == 40  # the default ratio: 40% online

    member = await customer(services, http)
    r = await _order(http, member, BORROWED, 50)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "reserved" and order["stores"] == [STORE]

    # the store lent exactly the shortfall, down from its offline share, and committed it with its grant event
    level = await box.store_db.stock_level(BORROWED)
    assert (level.on_hand, level.escrow) == (100, 50)
    assert box.sync.lending.stats["lent"] == 1
    assert await eventually(lambda: _drained(box)), "the loan's grant event was not acked"
    conn = await asyncpg.connect(stack.database_url)
    try:
        loan = await conn.fetchrow("select * from escrow_borrows where store_id = $1 and sku = $2", STORE, BORROWED)
        assert (loan["asked"], loan["granted"], loan["order_ref"]) == (10, 10, order["order_id"])
        # the same grant came again through JetStream: taken as applied (never dead-lettered, never doubled)
        assert await conn.fetchval("select count(*) from edge_events where event_id = $1", loan["grant_event_id"]) == 1
        assert await conn.fetchval("select count(*) from dead_letters where store_id = $1 and reason like $2",
                                   STORE, f"%{BORROWED}%") == 0
    finally:
        await conn.close()

    row = await _cloud_row(http, BORROWED)  # the store and the cloud agree
    assert (row["on_hand"], row["escrow"], row["reserved"], row["available_online"]) == (100, 50, 50, 0)
    admin = await operator_headers(services)
    violations = this_clouds((await http.get("/audit", headers=admin)).json()["violations"])
    assert [v for v in violations if not v.startswith("money:") or order["order_id"] in v] == []

    # and the order goes on as any: paid, sent to the store, picked up - its 50 leave the shelf and the escrow
    await pay_by_wallet(services, http, member, order["order_id"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
        async def picked_up():
            r = await lane.post(f"/pickups/{order['pickup_code']}")
            return r.status_code == 200
        assert await eventually(picked_up), "the paid order never reached the store"
    assert await eventually(lambda: _drained(box))

    async def settled():
        row = await _cloud_row(http, BORROWED)
        return row if row and row["on_hand"] == 50 and row["confirmed"] == 0 else None
    row = await eventually(settled)
    assert row and (row["escrow"], row["reserved"]) == (0, 0)
    level = await box.store_db.stock_level(BORROWED)
    assert (level.on_hand, level.escrow) == (50, 0)
    violations = this_clouds((await http.get("/audit", headers=admin)).json()["violations"])
    assert [v for v in violations if not v.startswith("money:") or order["order_id"] in v] == []


async def test_orders_at_once_share_one_borrow_per_store_and_sku(world):
    services, http, box, _ = world
    await _stocked(box, http, SHARED, 100)
    borrowing = services.orders.borrowing
    asked = borrowing.stats["asked"]
    lent = await asyncio.gather(*(borrowing.borrow(STORE, SHARED, 10) for _ in range(5)))
    assert lent == [10] * 5 and borrowing.stats["asked"] == asked + 1  # one request; the others waited for it
    assert (await box.store_db.stock_level(SHARED)).escrow == 50
    assert await eventually(lambda: _drained(box))
    assert (await _cloud_row(http, SHARED))["escrow"] == 50


async def test_a_delivery_order_borrows_from_a_nearby_store_that_has_the_units_on_its_shelf(world, stack):
    services, http, box, _ = world
    await _stocked(box, http, DELIVERED, 30)  # 12 online, 18 offline; the till keeps 5
    here = services.cloud.world.stores[STORE]
    member = await customer(services, http)
    r = await http.post("/orders", json={"fulfilment": "delivery", "location": {"lat": here.lat, "lon": here.lon},
                                         "slot_start": _slot(), "items": [{"sku": DELIVERED, "qty": 20}]},
                        headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert r.status_code == 201, r.text
    assert r.json()["stores"] == [STORE]
    assert (await box.store_db.stock_level(DELIVERED)).escrow == 20  # lent the 8 it lacked
    assert await eventually(lambda: _drained(box))
    row = await _cloud_row(http, DELIVERED)
    assert (row["on_hand"], row["escrow"], row["reserved"]) == (30, 20, 20)
    # past the till's floor nothing is lent: 30 - 20 = 10 offline, 5 of them kept: 6 more cannot be had, and the 5
    # that could are not lent either (they would not make the order possible)
    r = await http.post("/orders", json={"fulfilment": "delivery", "location": {"lat": here.lat, "lon": here.lon},
                                         "slot_start": _slot(), "items": [{"sku": DELIVERED, "qty": 6}]},
                        headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert r.status_code == 409, r.text
    assert (await box.store_db.stock_level(DELIVERED)).escrow == 20


async def test_a_store_may_take_borrow_requests_only_on_its_own_subject(world, stack):
    errors: list[str] = []

    async def on_error(exc):
        errors.append(str(exc))
    user, password = stack.store_credentials(STORE)
    nc = await nats.connect(stack.nats_address, user=user, password=password, error_cb=on_error,
                            inbox_prefix=subjects.store_inbox_prefix(STORE))
    try:
        await nc.subscribe(subjects.store_escrow_borrow("S001"))  # another store's loans: refused by nats-server
        await nc.flush()

        async def refused():
            return any("permissions violation for subscription" in e.lower() and "fm.store.s001.escrow.borrow" in e.lower()
                       for e in errors)
        assert await eventually(refused, timeout_s=5), errors
    finally:
        await nc.close()


async def test_hq_sets_the_ratio_and_the_store_grants_by_it(world):
    services, http, box, _ = world
    row = await _stocked(box, http, RATIO, 10)
    assert row["escrow"] == 4
    admin = await operator_headers(services)
    r = await http.put(f"/stores/{STORE}/allocation", json={"sku": RATIO, "ratio_bp": 8_000}, headers=admin)
    assert r.status_code == 200, r.text
    assert (r.json()["ratio_bp"], r.json()["version"], r.json()["store_told"]) == (8_000, 1, True)

    async def kept():
        return [a for a in await allocations.listing(box.store_db) if a["key"] == RATIO]
    assert await eventually(kept) == [{"scope": "sku", "key": RATIO, "ratio_bp": 8_000, "version": 1}]

    async def cloud_escrow(expected: int):
        row = await _cloud_row(http, RATIO)
        return row if row and row["escrow"] == expected else None
    # the store rebalanced to its new share at once (80% of 10), and grants by it on receiving (80% of 20)
    assert await eventually(lambda: cloud_escrow(8)), "the store did not grant its new share"
    await box.actor.ask("receive", sku=RATIO, qty=10)
    assert await eventually(lambda: cloud_escrow(16)), "receiving did not grant by the new ratio"
    assert (await box.store_db.stock_level(RATIO)).escrow == 16
    (position,) = await services.cloud.actors.stock_pool.positions(STORE, RATIO)
    assert position["ratio_bp"] == 8_000  # the StockPool's ratio follows HQ's

    shown = (await http.get(f"/stores/{STORE}/allocation", headers=admin)).json()
    assert {"scope": "sku", "sku": RATIO, "ratio_bp": 8_000, "version": 1}.items() <= next(
        a for a in shown["allocations"] if a.get("sku") == RATIO).items()
    entries = (await http.get("/operator/audit", headers=admin)).json()["entries"]
    assert any(e["action"] == "allocation.set" and e["target"] == f"{STORE}/sku:{RATIO}"
               and e["after"] == {"ratio_bp": 8_000, "version": 1} for e in entries)

    # a ratio of 0: the store lends nothing for this SKU (HQ took it off line here) and asks its escrow back
    r = await http.put(f"/stores/{STORE}/allocation", json={"sku": RATIO, "ratio_bp": 0}, headers=admin)
    assert r.json()["version"] == 2
    assert await eventually(lambda: cloud_escrow(0)), "the cloud did not give the escrow back"
    assert await eventually(lambda: _level_escrow(box, RATIO, 0))
    member = await customer(services, http)
    assert (await _order(http, member, RATIO, 1)).status_code == 409


async def _level_escrow(box, sku: str, expected: int) -> bool:
    return (await box.store_db.stock_level(sku)).escrow == expected


async def test_only_hq_sets_a_ratio_and_a_bad_one_says_what_is_wrong(world):
    services, http, _, _ = world
    manager = await operator_headers(services, "store_manager", store_id=STORE)
    r = await http.put("/stores/S001/allocation", json={"sku": RATIO, "ratio_bp": 9_000}, headers=manager)
    assert r.status_code == 403 and "allocation.change" in r.json()["detail"]
    own = await http.put(f"/stores/{STORE}/allocation", json={"sku": RATIO, "ratio_bp": 9_000}, headers=manager)
    assert own.status_code == 403  # HQ's decision, also for the manager's own store
    assert (await http.put(f"/stores/{STORE}/allocation", json={"sku": RATIO, "ratio_bp": 9_000})).status_code == 401
    assert (await http.get("/stores/S001/allocation", headers=manager)).status_code == 403
    assert (await http.get(f"/stores/{STORE}/allocation", headers=manager)).status_code == 200  # sees its own
    admin = await operator_headers(services)
    for body, says in [({"sku": RATIO, "category": "packed", "ratio_bp": 1}, "exactly one"),
                       ({"sku": "NOPE", "ratio_bp": 1}, "unknown product"),
                       ({"category": "toys", "ratio_bp": 1}, "unknown category"),
                       ({"sku": RATIO, "ratio_bp": 10_001}, "ratio_bp"),
                       ({"sku": RATIO, "ratio_bp": "half"}, "ratio_bp")]:
        r = await http.put(f"/stores/{STORE}/allocation", json=body, headers=admin)
        assert r.status_code == 422 and says in r.json()["detail"], (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await http.put("/stores/S999/allocation", json={"sku": RATIO, "ratio_bp": 1},
                           headers=admin)).status_code == 404


async def test_a_loan_answered_too_late_is_not_waited_for_and_reaches_the_cloud_once_through_the_event_path(
        world, stack):
    services, http, box, _ = world
    await _stocked(box, http, LATE, 100)
    lend = box.actor._lend

    async def slow(request):  # the store decides after the cloud's deadline
        await asyncio.sleep(BORROW_TIMEOUT_S + 0.5)
        return await lend(request)
    box.actor._lend = slow
    try:
        member = await customer(services, http)
        r = await _order(http, member, LATE, 50)
        assert r.status_code == 409, r.text  # not waited for: refused as before
    finally:
        box.actor._lend = lend
    assert await eventually(lambda: _level_escrow(box, LATE, 50)), "the store did not lend after all"
    assert await eventually(lambda: _drained(box))

    async def granted():
        row = await _cloud_row(http, LATE)
        return row if row and row["escrow"] == 50 else None
    assert await eventually(granted), "the late loan never reached the cloud through the event path"
    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("select count(*) from escrow_borrows where store_id = $1 and sku = $2",
                                   STORE, LATE) == 0  # not applied as a loan: only as the grant event it also is
        assert await conn.fetchval("select count(*) from dead_letters where store_id = $1 and reason like $2",
                                   STORE, f"%{LATE}%") == 0
    finally:
        await conn.close()
    assert (await _order(http, member, LATE, 50)).status_code == 201  # the units are the cloud's now


async def test_a_store_whose_box_is_down_is_not_waited_for_and_the_order_is_refused_as_before(world):
    services, http, box, state = world
    row = await _stocked(box, http, OFFLINE, 100)
    assert row["escrow"] == 40
    await box.stop()
    state["running"] = False
    borrowing = services.orders.borrowing
    before = dict(borrowing.stats)
    member = await customer(services, http)
    r = await _order(http, member, OFFLINE, 50)
    assert r.status_code == 409 and r.json()["type"].endswith("out-of-stock"), r.text
    assert borrowing.stats["no_answer"] == before["no_answer"] + 1  # asked once, no one answered
    again = await _order(http, member, OFFLINE, 50)  # backed off: not asked again for a while
    assert again.status_code == 409
    assert borrowing.stats["asked"] == before["asked"] + 1 and borrowing.stats["backed_off"] > before["backed_off"]
    assert (await _order(http, member, OFFLINE, 40)).status_code == 201  # what the cloud holds still sells
    assert (await _cloud_row(http, OFFLINE))["escrow"] == 40
