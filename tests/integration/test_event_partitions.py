"""The edge events stored partitioned, so that each bridge shard fetches its own events only (issue 22), for real.

- A real nats-server stores every store's event under the partition `protocol.subjects.partition_of_store` computes
  (the bridge relies on the two agreeing for events stored before partitioning).
- A chain's stream made before partitioning, with events not yet applied and its unpartitioned shard consumers at
  different ack floors, is upgraded in place: the bridge's shards (on a database of this test only) apply every
  event past the lowest floor, each store's in the order it published them, each in its store's partition's shard;
  the events published after the upgrade are fetched once; the unpartitioned consumers are gone at the end.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import string
import uuid

import asyncpg
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from cloud.messaging import bridge_shards, streams
from cloud.messaging.bridge_shards import BridgeShards
from cloud.messaging.shard_leases import APPLYING, LeaseTimes
from cloud.migrations import migrate
from protocol import subjects
from tests.integration.harness import eventually

pytestmark = pytest.mark.integration
LEGACY_FLOORS = (10, 25, 40, 55)  # each unpartitioned shard consumer's ack floor when the upgrade comes
STORES = [f"S{i:03d}" for i in range(1, 13)]
EACH = 5  # events per store, before the upgrade and again after


@pytest.fixture
async def own_database(stack):
    """A database of this test only on the session's server: its bridge members and leases are its own."""
    name = f"fm_parts_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(stack.database_url)
    await admin.execute(f'create database "{name}"')
    url = stack.database_url.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    try:
        yield url
    finally:
        await admin.execute(f'drop database "{name}" with (force)')
        await admin.close()


async def test_the_server_stores_each_event_under_the_partition_the_bridge_computes(fresh_nats):
    rng = random.Random(22)
    alphabet = string.ascii_letters + string.digits + "_-"
    stores = [f"S{i:03d}" for i in range(1, 200)] + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 32)))
                                                    for _ in range(300)]
    nc = await nats.connect(fresh_nats)
    try:
        js = nc.jetstream()
        await streams.ensure_streams(js)
        for store in stores:
            await js.publish(subjects.store_event(store, "sale.committed"), b"x")
        seen = {}
        for seq in range(1, len(stores) + 1):
            stored = (await js.get_msg(subjects.EVENTS_STREAM, seq)).subject
            store = subjects.store_from_subject(stored)
            seen[store] = subjects.partition_of_subject(stored)
            assert subjects.published_subject(stored) == subjects.store_event(store, "sale.committed")
        assert seen == {s: subjects.partition_of_store(s) for s in stores}
        assert set(seen.values()) == set(range(subjects.EVENT_PARTITIONS))
    finally:
        await nc.close()


async def test_a_stream_from_before_partitioning_is_upgraded_and_loses_nothing_nor_reorders_a_store(
        fresh_nats, own_database):
    nc = await nats.connect(fresh_nats)
    shards = None
    try:
        js = nc.jetstream()
        before = dataclasses.replace(streams.events_stream_config(), subject_transform=None)
        await js.add_stream(before)
        published: dict[str, list[int]] = {s: [] for s in STORES}
        order = [s for _ in range(EACH) for s in STORES]
        for n, store in enumerate(order):  # the stores' events, interleaved, unpartitioned
            ack = await js.publish(subjects.store_event(store, "sale.committed"), f"{store}:{n}".encode())
            published[store].append(ack.seq)
        for k, floor in enumerate(LEGACY_FLOORS):  # the shards of the release before, each acked to its floor
            await js.add_consumer(subjects.EVENTS_STREAM, ConsumerConfig(
                durable_name=f"{subjects.EVENTS_CONSUMER}_{k}of4_g5", ack_policy=AckPolicy.ALL,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=floor + 1,
                filter_subject=subjects.EVENTS_SUBJECTS))
        await streams.ensure_streams(js)  # the new release starts: the stream is updated in place
        for n, store in enumerate(order, len(order)):
            ack = await js.publish(subjects.store_event(store, "sale.committed"), f"{store}:{n}".encode())
            published[store].append(ack.seq)
        legacy_after_floor = len(order) - min(LEGACY_FLOORS)

        applied: list[tuple[int, str, int]] = []  # (shard applying, store, stream seq)

        async def apply(msgs) -> None:
            fence = APPLYING.get()
            for m in msgs:
                applied.append((fence.shard, subjects.store_from_subject(m.subject), m.metadata.sequence.stream))

        shards = await BridgeShards(js, own_database, apply, times=LeaseTimes(lease_s=3.0, stall_s=10.0)).start()
        assert shards.held == list(range(subjects.EVENT_PARTITIONS))  # the only instance: every shard

        wanted = {(s, seq) for s, seqs in published.items() for seq in seqs if seq > min(LEGACY_FLOORS)}

        async def all_applied():
            return wanted <= {(s, seq) for _, s, seq in applied}
        assert await eventually(all_applied, timeout_s=20)
        await asyncio.sleep(0.5)  # anything more would show now
        for shard, store, _ in applied:  # each store's events in its partition's shard, old and new alike
            assert shard == subjects.partition_of_store(store), (shard, store)
        for store in STORES:  # in the order the store published them (a redelivery below the floors repeats)
            firsts = list(dict.fromkeys(seq for _, s, seq in applied if s == store))
            assert firsts == sorted(firsts) and set(firsts) >= {q for q in published[store] if q > min(LEGACY_FLOORS)}
        # the events published after the upgrade were fetched once; those before it by every shard (and skipped by
        # the shards they are not of)
        assert shards.stats["fetched"] == subjects.EVENT_PARTITIONS * legacy_after_floor + len(order)
        names = {c.name for c in await js.consumers_info(subjects.EVENTS_STREAM)}
        assert names == set(bridge_shards.current_consumers(list(names)).values())  # the unpartitioned ones gone
        assert len(names) == subjects.EVENT_PARTITIONS
    finally:
        if shards is not None:
            with contextlib.suppress(Exception):
                await shards.stop()
        await nc.close()
