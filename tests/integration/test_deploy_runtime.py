"""Running for real (issue 18): the actor journal is truncated after snapshots and a restart rebuilds the same
state; shard counts are recorded and a process with other counts is refused; the streams the cloud creates are
bounded. Real PostgreSQL and nats-server (the session's stack); actor names and prefixes of this module only."""
from __future__ import annotations

import time
import uuid

import asyncpg
import nats
import pytest

from actors.member_ledger import MemberLedger, MemberQuery, TopUp
from cloud.messaging import streams
from cloud.migrations import migrate
from cloud.runtime.durable import DurableHost
from cloud.runtime.shard_guard import settle_shard_map
from cloud.runtime.shard_map import ShardConfig, ShardConfigError

pytestmark = pytest.mark.integration


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _journal(conn: asyncpg.Connection, actor: str) -> tuple[int, int | None]:
    row = await conn.fetchrow("select count(*) as n, min(seq) as low from actor_journal where actor = $1", actor)
    return row["n"], row["low"]


async def _host(stack, name: str, **kwargs) -> DurableHost:
    return await DurableHost(name, MemberLedger, stack.database_url, expire_every_ms=0, **kwargs).start()


async def test_journal_truncated_after_snapshot_and_restart_rebuilds_the_same_state(stack) -> None:
    name = f"dpl{uuid.uuid4().hex[:8]}-member_ledger-0"
    host = await _host(stack, name, snapshot_every=10, journal_keep_ms=0)
    try:
        for i in range(25):  # one commit per top-up: snapshots at seq 10 and 20
            (result,) = await host.submit([TopUp(id=f"dpl-t{i}", member=f"M{i % 3}", amount_fen=100 + i)])
            assert result.succeeded
        before = {m: host.ask(MemberQuery(member=m, now_ms=0)) for m in ("M0", "M1", "M2")}
        await host._truncating  # the truncation after the last snapshot (it runs off the commit path)
        assert host.snapshot_seq == 20
    finally:
        await host.stop()
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows, low = await _journal(conn, name)
        assert (rows, low) == (5, 21), "journal rows covered by the snapshot at seq 20 should be gone"
    finally:
        await conn.close()

    again = await _host(stack, name, snapshot_every=10, journal_keep_ms=0)
    try:
        assert again.seq == 25
        assert {m: again.ask(MemberQuery(member=m, now_ms=0)) for m in ("M0", "M1", "M2")} == before
        # a command from before the snapshot is still known by its id: its retry does not apply twice
        (retry,) = await again.submit([TopUp(id="dpl-t3", member="M0", amount_fen=103)])
        assert retry.status == "exists"
        assert again.ask(MemberQuery(member="M0", now_ms=0)) == before["M0"]
    finally:
        await again.stop()


async def test_journal_rows_are_kept_within_the_keep_window_and_without_a_snapshot(stack) -> None:
    name = f"dpl{uuid.uuid4().hex[:8]}-member_ledger-0"
    host = await _host(stack, name, snapshot_every=1_000, journal_keep_ms=3_600_000)
    try:
        await host.submit([TopUp(id=f"dpl-k{i}", member="M9", amount_fen=5) for i in range(4)])
        assert await host.truncate_journal() == 0  # no snapshot: the journal is the only record
        await host.snapshot()
        if host._truncating is not None:
            await host._truncating
        assert await host.truncate_journal() == 0  # covered, but younger than the keep window
        host.journal_keep_ms = 0
        assert await host.truncate_journal() == 4
    finally:
        await host.stop()


async def test_shard_counts_recorded_then_other_counts_refused_once_shards_hold_state(stack) -> None:
    prefix = f"dpl{uuid.uuid4().hex[:8]}-"
    conn = await asyncpg.connect(stack.database_url)
    try:
        await migrate(conn)
        two = ShardConfig(stock_pool=2, member_ledger=2, prefix=prefix)
        four = ShardConfig(stock_pool=4, member_ledger=2, prefix=prefix)
        assert await settle_shard_map(conn, two, _now_ms()) == "record"
        assert await settle_shard_map(conn, two, _now_ms()) == "keep"
        assert await settle_shard_map(conn, four, _now_ms()) == "record"  # nothing held yet: free to change
        assert await settle_shard_map(conn, two, _now_ms()) == "record"

        host = await _host(stack, two.member_ledger_name("M1"))
        try:
            await host.submit([TopUp(id="dpl-s1", member="M1", amount_fen=1)])
        finally:
            await host.stop()
        with pytest.raises(ShardConfigError, match="member_ledger=2.*hold state"):
            await settle_shard_map(conn, four, _now_ms())
        recorded = await conn.fetchrow("select stock_pool, member_ledger from shard_map where prefix = $1", prefix)
        assert dict(recorded) == {"stock_pool": 2, "member_ledger": 2}  # the refusal changed nothing
        assert await settle_shard_map(conn, two, _now_ms()) == "keep"
    finally:
        await conn.close()


async def test_the_streams_the_cloud_creates_are_bounded(stack) -> None:
    client = await nats.connect(stack.nats_url)
    try:
        js = client.jetstream()
        await streams.ensure_streams(js)  # as the cloud does at every start
        bounds = streams.StreamBounds.from_env({})
        for name in (streams.subjects.EVENTS_STREAM, streams.subjects.CLOUD_MESSAGES_STREAM):
            config = (await js.stream_info(name)).config
            assert config.max_bytes and 0 < config.max_bytes <= max(bounds.events_max_bytes,
                                                                    bounds.cloud_messages_max_bytes), name
            assert config.max_age and config.max_age >= streams.DUPLICATE_WINDOW_S, name
    finally:
        await client.close()
