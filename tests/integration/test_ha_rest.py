"""The rest of high availability (issue 18), for real.

- Streams made at the same moment by several cloud instances on a fresh NATS (its own nats-server, with the
  embedded server's JetStream storage limit: two concurrent creates each reserve their max_bytes, and the loser was
  refused "insufficient storage resources"): every instance comes up, each stream exists once, as intended.
- Shard leases on the session's PostgreSQL (cloud/messaging/shard_leases.py, a shard count no cloud uses): a lapsed
  lease goes to another instance with a new generation, and the old holder's renewals and applies are refused; a
  takeover waits for an apply in flight, never for a frozen one.
- Two `python -m cloud` instances started at the same moment (leases of 3 s), S055's box selling: the instance
  applying S055's shard is frozen (SIGSTOP); the other takes the shard and applies the sales; woken (SIGCONT), the
  frozen one notices and applies nothing twice (edge = cloud).
- The console (in Chromium) and /metrics of one of them show S056's box's low disk from its heartbeats, greyed with
  its age once the box is offline.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import time
import uuid

import asyncpg
import httpx
import nats
import pytest
import pytest_asyncio

from cloud.embedded import process
from cloud.messaging import bridge_shards, shard_leases, stream_setup, streams
from cloud.messaging.shard_leases import APPLYING, LeaseTimes, ShardLeases, ShardLost, check_fence
from cloud.migrations import migrate
from cloud.runtime.hosting import retire_actors
from protocol import codec, subjects
from tests.integration.harness import SECRET_KEY, eventually

pytestmark = pytest.mark.integration
INSTANCES = 4
ROUNDS = 3


async def test_instances_starting_together_on_a_fresh_nats_all_come_up_with_the_streams_made_once(fresh_nats):
    clients = [await nats.connect(fresh_nats, connect_timeout=5) for _ in range(INSTANCES)]
    try:
        js = clients[0].jetstream()
        bounds = streams.StreamBounds()
        for _ in range(ROUNDS):  # each round a fresh start: no stream yet
            for name in (subjects.EVENTS_STREAM, subjects.CLOUD_MESSAGES_STREAM):
                try:
                    await js.delete_stream(name)
                except Exception:  # noqa: BLE001, S110 - not there yet (the first round)
                    pass
            results = await asyncio.gather(*(streams.ensure_streams(c.jetstream(), bounds) for c in clients),
                                           return_exceptions=True)
            assert [r for r in results if isinstance(r, BaseException)] == []
            names = [s.config.name for s in await js.streams_info()]
            assert sorted(names) == sorted([subjects.EVENTS_STREAM, subjects.CLOUD_MESSAGES_STREAM])
            for wanted in (streams.events_stream_config(bounds), streams.cloud_messages_stream_config(bounds)):
                info = await js.stream_info(wanted.name)
                assert stream_setup.differences(info.config, wanted) == []
    finally:
        for c in clients:
            await c.close()


async def test_an_instance_with_new_limits_updates_them_and_one_with_another_meaning_is_refused(fresh_nats):
    """A rolling deploy that raises a byte limit: the stream takes it (started together with an old instance, both
    come up). A stream that means something else (another storage type) is never changed: said, field by field."""
    clients = [await nats.connect(fresh_nats, connect_timeout=5) for _ in range(2)]
    try:
        js = clients[0].jetstream()
        old, new = streams.StreamBounds(), streams.StreamBounds(events_max_bytes=512 * 1024 ** 2)
        results = await asyncio.gather(streams.ensure_streams(clients[0].jetstream(), old),
                                       streams.ensure_streams(clients[1].jetstream(), new), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        await streams.ensure_streams(js, new)  # the new instance's next start: its limit holds
        assert (await js.stream_info(subjects.EVENTS_STREAM)).config.max_bytes == new.events_max_bytes
        assert await stream_setup.ensure_stream(js, streams.events_stream_config(new)) == "kept"
        other = dataclasses.replace(streams.events_stream_config(new), subjects=["elsewhere.>"])
        with pytest.raises(stream_setup.StreamConfigConflict, match="subjects"):
            await stream_setup.ensure_stream(js, other)
        assert (await js.stream_info(subjects.EVENTS_STREAM)).config.subjects == [subjects.EVENTS_SUBJECTS]
    finally:
        for c in clients:
            await c.close()


# ---- shard leases ------------------------------------------------------------------------------------------------
LEASE_SHARDS = 7  # no cloud shares its events in 7 shards: these rows are this module's
SHORT = LeaseTimes(lease_s=1.0, stall_s=5.0)


@pytest_asyncio.fixture
async def pg(stack):
    """Connections of two would-be instances and one for their applies."""
    conns = [await asyncpg.connect(stack.database_url) for _ in range(4)]
    await migrate(conns[0])
    try:
        yield conns
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                await c.close()


async def _applied_under(conn, fence) -> None:
    """An apply's transaction, as the bridge's: the fence first."""
    token = APPLYING.set(fence)
    try:
        async with conn.transaction():
            await check_fence(conn)
    finally:
        APPLYING.reset(token)


async def test_a_lapsed_lease_goes_to_another_instance_and_the_old_holder_is_fenced(pg):
    a, b = ShardLeases(pg[0], "test-a", LEASE_SHARDS, SHORT), ShardLeases(pg[1], "test-b", LEASE_SHARDS, SHORT)
    first = await a.take(3)
    assert first is not None and await b.take(3) is None  # held and renewed: not b's
    assert await a.renew({3: first}) == {3}
    await _applied_under(pg[2], a.fence(3, first))  # the holder applies
    await asyncio.sleep(SHORT.lease_s * 1.5)  # a renews nothing (frozen)
    second = await b.take(3)
    assert second == first + 1
    assert await a.renew({3: first}) == set()  # woken: it learns it lost the shard
    with pytest.raises(ShardLost):
        await _applied_under(pg[2], a.fence(3, first))  # and its late apply records nothing
    await _applied_under(pg[2], b.fence(3, second))
    await b.release(3, second)
    assert await a.take(3) == second + 1  # let go: taken at once


async def test_a_takeover_waits_for_an_apply_in_flight_never_for_a_frozen_one(pg):
    a, b = ShardLeases(pg[0], "test-a2", LEASE_SHARDS, SHORT), ShardLeases(pg[1], "test-b2", LEASE_SHARDS, SHORT)
    first = await a.take(5)
    assert first is not None
    token = APPLYING.set(a.fence(5, first))
    try:
        tx = pg[2].transaction()
        await tx.start()
        await check_fence(pg[2])  # an apply in flight holds the lease row
        busy = asyncio.create_task(pg[2].execute("select pg_sleep(3)"))  # (a long statement of it)
        await asyncio.sleep(SHORT.lease_s * 1.5)  # its lease lapses meanwhile
        assert await b.take(5) is None  # not waited for past the lock timeout: b's other shards are renewed
        await busy  # then its process freezes inside the transaction
        # PostgreSQL ends the frozen transaction's session after a lease (idle in transaction): the row is free
        deadline = asyncio.get_running_loop().time() + 30
        while (taken := await b.take(5)) is None:
            assert asyncio.get_running_loop().time() < deadline, "the frozen apply held the shard"
            await asyncio.sleep(0.2)
        assert taken == first + 1
        with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                            ConnectionError)):
            await tx.commit()  # its session was ended: nothing it did is recorded
    finally:
        APPLYING.reset(token)
    assert shard_leases.MIGRATION_39[0] == 39


# ---- two cloud instances: a frozen one loses its shards; the console shows the boxes' disks ------------------------
STORE, DISK_STORE = "S055", "S056"  # this module's stores: S055's box sells, S056 only sends heartbeats
LEASE_S = 3  # FRESHMESH_BRIDGE_LEASE_S of both instances: a frozen one's shards move within seconds


@pytest_asyncio.fixture(scope="module")
async def two_clouds(stack, ray_runtime, tmp_path_factory):
    from edge.box import EdgeBox
    from edge.lanes import build_lane_app
    from tests.integration.test_high_availability import ADMIN_PASSWORD, WORLD, CloudProcess, any_of, hq_admin

    logs, prefix = tmp_path_factory.mktemp("ha2-logs"), f"ha2{uuid.uuid4().hex[:6]}-"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHMESH_")}
    env.update(NATS_URL=stack.nats_url, DATABASE_URL=stack.database_url,
               RAY_ADDRESS=ray_runtime.get_runtime_context().gcs_address, FRESHMESH_SECRET_KEY=SECRET_KEY,
               FRESHMESH_STORE_CREDENTIALS=str(stack.credentials.path), FRESHMESH_ADMIN_PASSWORD=ADMIN_PASSWORD,
               XDG_STATE_HOME=str(logs), FRESHMESH_ACTOR_PREFIX=prefix, FRESHMESH_BRIDGE_LEASE_S=str(LEASE_S))
    clouds = [CloudProcess(env, process.free_port(), logs, "a"), CloudProcess(env, process.free_port(), logs, "b")]
    try:
        for cloud in clouds:  # at the same moment (the streams' creation is race-safe)
            cloud.start()
        await asyncio.gather(*(cloud.healthy() for cloud in clouds))
        operator = await hq_admin(stack, clouds)
        for store_id in (STORE, DISK_STORE):
            r = await any_of(clouds, "PUT", f"/stores/{store_id}", json={
                "name": f"FreshMesh {store_id}", "lat": 31.2, "lon": 121.4, "slot_capacity": 100}, headers=operator)
            assert r.status_code == 200, r.text
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": stack.nats_address, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                         base_url="http://lane") as lane:
                assert await eventually(lambda: _online(box), timeout_s=30)
                yield clouds, box, lane, operator
        finally:
            await box.stop()
    finally:
        for c in clouds:
            if c.proc is not None and c.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(c.proc.pid, signal.SIGCONT)  # never leave a frozen process behind
            c.kill()
        retire_actors(prefix)


async def _online(box) -> bool:
    return box.actor.online


async def _drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


async def _sell(lane, gtin: str) -> str:
    await lane.post("/lanes/1/scan", json={"code": gtin})
    r = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**6})
    assert r.status_code == 201, r.text
    return r.json()["sale_id"]


async def _holder(stack, shard: int) -> tuple[str | None, int]:
    conn = await asyncpg.connect(stack.database_url)
    try:
        row = await conn.fetchrow("select owner, generation from bridge_shard_leases where shards = $1 and shard = $2",
                                  bridge_shards.BRIDGE_SHARDS, shard)
    finally:
        await conn.close()
    return (row["owner"], row["generation"]) if row else (None, 0)


def _pid_of(owner: str | None) -> int | None:
    return int(owner.split("/")[1]) if owner else None


async def _db(stack, sql: str, *args):
    conn = await asyncpg.connect(stack.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_a_frozen_instance_loses_its_shards_and_applies_nothing_twice_when_it_wakes(two_clouds, stack):
    """SIGSTOP the instance applying S055's shard: it keeps its PostgreSQL sessions (and any lock), its loop stands
    still. The other takes the shard within the lease and applies the store's sales; woken, the frozen one finds its
    lease gone and applies nothing twice: edge = cloud, every sale once, the store's events in order."""
    from tests.integration.test_high_availability import any_of, packed
    clouds, box, lane, _ = two_clouds
    product = packed(0)
    shard = bridge_shards.shard_of_store(STORE)
    since_ms = int(time.time() * 1000)
    await box.actor.ask("receive", sku=product["sku"], qty=300)
    sales = [await _sell(lane, product["gtin"]) for _ in range(5)]
    assert await eventually(lambda: _drained(box), timeout_s=60)
    owner, generation = await _holder(stack, shard)
    frozen = next(c for c in clouds if c.proc.pid == _pid_of(owner))
    other = next(c for c in clouds if c is not frozen)
    os.kill(frozen.proc.pid, signal.SIGSTOP)
    try:
        sales += [await _sell(lane, product["gtin"]) for _ in range(10)]
        assert await eventually(lambda: _drained(box), timeout_s=120), "no instance applied the frozen one's shard"
        taker, taken = await _holder(stack, shard)
        assert _pid_of(taker) == other.proc.pid and taken > generation
    finally:
        os.kill(frozen.proc.pid, signal.SIGCONT)
    sales += [await _sell(lane, product["gtin"]) for _ in range(5)]
    assert await eventually(lambda: _drained(box), timeout_s=120)

    async def noticed() -> bool:  # woken, it renews, is refused, and drops the shard
        return "lost (generation" in frozen.tail() or "refused by the fence" in frozen.tail()
    assert await eventually(noticed, timeout_s=30), frozen.tail()
    rows = await _db(stack, "select sale_id from till_sales where sale_id = any($1::text[])", sales)
    assert sorted(r["sale_id"] for r in rows) == sorted(sales)
    events = await _db(stack, "select event_id, seq, received_ms from edge_events where store_id = $1 "
                              "and received_ms >= $2 order by seq", STORE, since_ms)
    assert len(events) == len({e["seq"] for e in events}) >= 2 * len(sales)  # each event once (a sale, its move)
    moves = await _db(stack, "select count(*) as n, count(distinct event_id) as d from stock_movements "
                             "where store_id = $1 and sku = $2 and reason = 'sale' and wall_ms >= $3",
                      STORE, product["sku"], since_ms - 60_000)
    assert moves[0]["n"] == moves[0]["d"] == len(sales)

    async def edge_equals_cloud() -> bool:
        r = await any_of(clouds, "GET", f"/stores/{STORE}/stock")
        cloud = next((row["on_hand"] for row in r.json()["stock"] if row["sku"] == product["sku"]), None)
        edge = (await box.store_db.stock_level(product["sku"])).on_hand
        return cloud == edge == 300 - len(sales)
    assert await eventually(edge_equals_cloud, timeout_s=60)


async def test_the_console_and_metrics_show_a_boxs_low_disk_greyed_once_it_is_offline(two_clouds, stack, tmp_path):
    """S056's box says in its heartbeats that its data disk is nearly full: its console row shows the free bytes in
    human units, flagged, with a disk_low alert, and /metrics carries the gauge the alert rule reads; once the box
    is offline the value is greyed with its age and the alert (a live condition) is gone."""
    from playwright.async_api import async_playwright

    from cloud.services.operators import Operators
    from protocol.messages import DeviceHealth, Heartbeat
    from tests.integration.harness import OPERATOR_PASSWORD, StoreLink, WallClock, envelope, ids
    from tests.integration.test_console import chromium, launch, sign_in
    clouds = two_clouds[0]
    cloud = clouds[1]
    username = f"ha2-admin-{uuid.uuid4().hex[:8]}"
    db = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    try:
        await Operators(db, WallClock(), ids()).create(username, OPERATOR_PASSWORD, "hq_admin", None, by_name="tests")
    finally:
        await db.close()
    low = 120_000_000  # under the edge's default low-water mark (200 MB)

    async def heartbeats(link: StoreLink) -> None:
        while True:
            hb = Heartbeat(**envelope(DISK_STORE, 0), outbox_depth=0, last_event_seq=link.seq,
                           last_acked_seq=link.seq, last_cloud_message_seq=0, rule_book_version=1,
                           devices=(DeviceHealth(device="disk", state="degraded", detail="120.0 MB free"),),
                           disk_free_bytes=low)
            await link.nc.publish(subjects.store_heartbeat(DISK_STORE), codec.encode(hb))
            await asyncio.sleep(0.5)

    async def metric() -> float | None:
        async with httpx.AsyncClient(timeout=30) as http:
            text = (await http.get(f"{cloud.url}/metrics")).text
        found = re.search(rf'^freshmesh_store_disk_free_bytes\{{store="{DISK_STORE}"\}} (\S+)$', text, re.M)
        return float(found[1]) if found else None

    row = f'#stores tr[data-store="{DISK_STORE}"]'
    async with StoreLink(stack, DISK_STORE) as link, async_playwright() as pw:
        sending = asyncio.create_task(heartbeats(link))
        browser = await launch(pw, chromium(), tmp_path)
        try:
            assert await eventually(lambda: _equals(metric, low), timeout_s=60)
            page = browser.pages[0] if browser.pages else await browser.new_page()
            await sign_in(page, cloud.url, username, OPERATOR_PASSWORD)
            await page.wait_for_selector(f'{row} td.disk[data-disk-low="true"]', timeout=60_000)
            assert "120.0 MB" in await page.text_content(f"{row} td.disk")
            alert = f'#alert-list [data-alert-id="disk_low:{DISK_STORE}"]'
            await page.wait_for_selector(alert, timeout=30_000)
            assert "120.0 MB free" in await page.text_content(alert)
            sending.cancel()  # the box goes away: its disk is a last-known value now
            await page.wait_for_selector(f'{row}[data-stale="true"]', timeout=60_000)
            disk = await page.text_content(f"{row} td.disk")
            assert "120.0 MB" in disk and "last seen" in disk, disk
            assert await page.eval_on_selector(f"{row} td.disk", "td => getComputedStyle(td).color") == \
                await page.eval_on_selector(f"{row} td:first-child", "td => getComputedStyle(td).color")  # greyed
            await page.wait_for_selector(alert, state="detached", timeout=30_000)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            await browser.close()


async def _equals(read, value) -> bool:
    return await read() == value
