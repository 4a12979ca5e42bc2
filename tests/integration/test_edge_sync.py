"""Edge and cloud together over real NATS: escrow, sales, acks, orders to fulfil, pickups, a network cut."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.lanes import build_lane_app
from edge.sync import StuckHead
from protocol import codec, subjects
from protocol.messages import MemberUpdated
from simulators.netcut import NetCut
from tests.integration.harness import (
    customer,
    envelope,
    eventually,
    operator_headers,
    pay_by_wallet,
    running_cloud,
)

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S004"


def packed() -> dict:
    return next(p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"]
                and "online" in p["channels"])


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"sync{uuid.uuid4().hex[:6]}-") as (services, url):
        proxy = await NetCut("127.0.0.1", int(stack.nats_address.rsplit(":", 1)[1])).start()
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": proxy.url, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        async with httpx.AsyncClient(base_url=url, timeout=20) as cloud_http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            await eventually(lambda: _online(box), timeout_s=10)
            yield services, cloud_http, box, lane, proxy
        await box.stop()
        await proxy.stop()


async def _online(box):
    return box.actor.online


async def drained(box):
    return await box.store_db.outbox_depth() == 0


async def test_receiving_grants_escrow_and_sales_reach_the_cloud_exactly_once(world, stack):
    services, http, box, lane, _ = world
    sku = packed()["sku"]
    await box.actor.ask("receive", sku=sku, qty=20)  # 40% -> 8 units escrowed for online
    for _ in range(3):
        await lane.post("/lanes/1/scan", json={"code": packed()["gtin"]})
    sale = (await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**6})).json()
    assert await eventually(lambda: drained(box)), "the outbox did not drain: no business acks?"

    async def cloud_view():
        stock = {r["sku"]: r for r in (await http.get(f"/stores/{STORE}/stock")).json()["stock"]}
        return stock.get(sku) if stock.get(sku, {}).get("on_hand") == 17 else None
    row = await eventually(cloud_view)
    assert row and row["escrow"] == 8
    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("select count(*) from till_sales where sale_id = $1", sale["sale_id"]) == 1
    finally:
        await conn.close()


async def test_online_pickup_order_is_printed_picked_and_fulfilled(world):
    services, http, box, lane, _ = world
    sku = packed()["sku"]
    await box.actor.ask("receive", sku=sku, qty=10)
    await eventually(lambda: drained(box))
    slot = (datetime.now(timezone(timedelta(hours=8))) + timedelta(days=1)).replace(hour=10, minute=0, second=0,
                                                                                      microsecond=0).isoformat()
    member = await customer(services, http)
    order = (await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": slot,
                                              "items": [{"sku": sku, "qty": 2}]},
                             headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})).json()
    assert order["status"] == "reserved", order
    await pay_by_wallet(services, http, member, order["order_id"])

    async def arrived():
        async with box.store_db.reader.execute("select status from orders where order_id = ?", (order["order_id"],)) as cur:
            return await cur.fetchone()
    assert await eventually(arrived), "the order to fulfil did not reach the store"
    r = await lane.post(f"/pickups/{order['pickup_code']}")
    assert r.status_code == 200 and r.json() == {"order_id": order["order_id"], "status": "picked_up"}

    async def fulfilled():
        return (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()["status"] == "picked_up"
    assert await eventually(fulfilled)


async def test_a_duplicate_command_changes_nothing(world, stack):
    _, _, box, _, _ = world
    member = MemberUpdated(**envelope(STORE, 900), member_id="M-dup", phone_hash=b"h" * 32,
                           phone_masked="139****0001", member_code="0000000001",
                           level="gold", stored_value_fen=5000, points=10)
    import nats as nats_client
    nc = await nats_client.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        for msg_id in ("first", "second-copy"):  # two deliveries of one command, past the stream's dedupe
            await js.publish(subjects.cloud_message_subject(STORE, member.KIND), codec.encode(member),
                             headers={subjects.MSG_ID_HEADER: f"{msg_id}-{member.event_id}"})
    finally:
        await nc.close()
    await eventually(lambda: _dupes(box))
    assert box.actor.stats["duplicates"] >= 1
    async with box.store_db.reader.execute("select count(*), max(stored_value_fen) from members "
                                           "where member_id = 'M-dup'") as cur:
        assert tuple(await cur.fetchone()) == (1, 5000)


async def _dupes(box):
    return box.actor.stats["duplicates"] >= 1


async def test_network_cut_sales_continue_then_everything_arrives_once_in_order(world, stack):
    services, http, box, lane, proxy = world
    sku = packed()["sku"]
    # this box's events only: other modules may have spoken as this store on the shared database before
    since_ms = services.cloud.now_ms()
    await box.actor.ask("receive", sku=sku, qty=50)
    await eventually(lambda: drained(box))
    proxy.cut()
    assert await eventually(lambda: _offline(box), timeout_s=10)
    sales = []
    for _ in range(15):
        await lane.post("/lanes/4/scan", json={"code": packed()["gtin"]})
        r = await lane.post("/lanes/4/pay", json={"method": "cash", "tendered_fen": 10**6})
        assert r.status_code == 201 and r.json()["offline"] is True
        sales.append(r.json()["sale_id"])
    assert await box.store_db.outbox_depth() >= 30  # 15 sales + their movements wait in the outbox
    proxy.heal()
    assert await eventually(lambda: drained(box), timeout_s=30), "the outbox did not drain after healing"
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch("select sale_id from till_sales where sale_id = any($1::text[])", sales)
        assert len(rows) == 15
        seqs = [r["seq"] for r in await conn.fetch("select seq from edge_events where store_id = $1 "
                                                    "and received_ms >= $2 order by received_ms, seq", STORE,
                                                    since_ms)]
        assert len(seqs) >= 30
        assert len(seqs) == len(set(seqs)), "an event was applied twice"
    finally:
        await conn.close()


async def test_a_lost_business_ack_is_recovered_by_sending_again_under_a_new_id(world, stack, monkeypatch):
    """The bridge applies a sale but its ack never reaches the store (lost on the way back). The store's outbox
    keeps the events; after the (here shortened) wait it sends them again under new message ids, so JetStream
    does not drop them as duplicates; the bridge finds them applied, acks them, and the outbox drains - with the
    sale applied once."""
    services, http, box, lane, _ = world
    monkeypatch.setattr(StuckHead, "AFTER_S", 1.0)
    monkeypatch.setattr(StuckHead, "CHECK_S", 0.2)
    bridge = services.bridge
    real_acks, lost = bridge._acks, []

    async def lossy_acks(events, new_ids):  # every ack for this store is lost while `lose` is on
        kept = [e for e in events if e.store_id != STORE]
        lost.extend(e.event_id for e in events if e.store_id == STORE)
        await real_acks(kept, new_ids)
    monkeypatch.setattr(bridge, "_acks", lossy_acks)
    await box.actor.ask("receive", sku=packed()["sku"], qty=5)
    await lane.post("/lanes/6/scan", json={"code": packed()["gtin"]})
    sale = (await lane.post("/lanes/6/pay", json={"method": "cash", "tendered_fen": 10**6})).json()
    conn = await asyncpg.connect(stack.database_url)
    try:
        async def applied():
            return await conn.fetchval("select count(*) from till_sales where sale_id = $1", sale["sale_id"]) == 1
        assert await eventually(applied), "the cloud never applied the sale"
        await asyncio.sleep(0.5)
        assert lost and await box.store_db.outbox_depth() > 0  # applied in the cloud, unacked at the store
        monkeypatch.setattr(bridge, "_acks", real_acks)  # the way back works again; nothing is re-sent by the cloud
        assert await eventually(lambda: drained(box), timeout_s=30), "the store never got its acks"
        assert await conn.fetchval("select count(*) from till_sales where sale_id = $1", sale["sale_id"]) == 1
    finally:
        await conn.close()


async def _offline(box):
    return not box.actor.online


async def test_a_new_rule_book_reaches_the_till(world):
    services, http, box, lane, _ = world
    sku = packed()["sku"]
    version = (await http.get("/products")).json()["rule_book_version"] + 1  # a store keeps only a newer book
    book = {"version": version, "rules": [{"type": "item_discount", "id": "half", "name": "Half price", "skus": [sku],
                                           "percent_off_bp": 5000}]}
    hq = await operator_headers(services)
    r = await http.put("/rule-book", json=book, headers=hq)
    assert r.status_code == 200, r.text
    # a book numbered at or below the one in force is refused: the stores would keep the newer one they hold
    stale = await http.put("/rule-book", json=dict(book, version=version - 1), headers=hq)
    assert stale.status_code == 422 and f"version {version - 1} is not newer than version {version} in force" in \
        stale.json()["detail"], stale.text

    async def arrived():
        return box.actor.rule_book is not None and box.actor.rule_book.version == version
    assert await eventually(arrived), "the new rule book did not reach the store"
    r = await lane.post("/lanes/9/scan", json={"code": packed()["gtin"]})
    assert r.json()["cart"]["applied_rules"][0]["rule_id"] == "half"


async def test_heartbeats_show_the_store_online_with_its_outbox_and_devices(world):
    _, http, _, _, _ = world

    async def live():
        store = next(s for s in (await http.get("/stores")).json()["stores"] if s["store_id"] == STORE)
        return store if store["online"] and store["last_heartbeat"] else None
    store = await eventually(live, timeout_s=10)
    assert store and store["outbox_depth"] is not None and set(store["devices"]) == {"scale", "scanner", "printer", "disk"}
