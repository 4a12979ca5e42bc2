"""The rest of high availability (issue 18), for real.

- Streams made at the same moment by several cloud instances on a fresh NATS (its own nats-server, with the
  embedded server's JetStream storage limit: two concurrent creates each reserve their max_bytes, and the loser was
  refused "insufficient storage resources"): every instance comes up, each stream exists once, as intended.
- Shard leases on the session's PostgreSQL (cloud/messaging/shard_leases.py, a shard count no cloud uses): a lapsed
  lease goes to another instance with a new generation, and the old holder's renewals and applies are refused; a
  takeover waits for an apply in flight, never for a frozen one.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import asyncpg
import nats
import pytest
import pytest_asyncio

from cloud.embedded import process
from cloud.embedded.nats import nats_server_binary
from cloud.messaging import shard_leases, stream_setup, streams
from cloud.messaging.shard_leases import APPLYING, LeaseTimes, ShardLeases, ShardLost, check_fence
from cloud.migrations import migrate
from protocol import subjects

pytestmark = pytest.mark.integration
INSTANCES = 4
ROUNDS = 3


@pytest.fixture
def fresh_nats(tmp_path):
    """A nats-server of this test only, JetStream limited as the embedded one is (cloud/embedded/nats.py)."""
    port = process.free_port()
    config = tmp_path / "nats.conf"
    config.write_text(f'listen: "127.0.0.1:{port}"\n'
                      f'jetstream {{ store_dir: "{tmp_path / "js"}", max_memory_store: 268435456, '
                      f'max_file_store: 4294967296 }}\n')
    proc = process.spawn([nats_server_binary(), "-c", str(config)], tmp_path / "nats.log")
    try:
        process.wait_for_port(port, proc, "nats-server", tmp_path / "nats.log")
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.stop(proc)


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
        with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError)):
            await tx.commit()  # its session was ended: nothing it did is recorded
    finally:
        APPLYING.reset(token)
    assert shard_leases.MIGRATION_39[0] == 39
