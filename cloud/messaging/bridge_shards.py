"""Several bridge instances sharing the edge events: the work split by store, each shard bound by one instance.

The choice (issue 18): the edge events are split into `BRIDGE_SHARDS` shards by store (`shard_of_store`: crc32 of
the store id, the same in every process), with one durable pull consumer per shard over the whole events stream.
An instance applies a shard's events only while it holds that shard's PostgreSQL advisory lock (a session lock on
its own connection), so one instance at a time reads a shard's consumer, in stream order:
- per-store order is kept: all of a store's events are in one shard, applied by one instance, in the order the
  store published them (with AckPolicy.ALL the bridge's batch logic - "nothing overtakes a message still being
  retried" - holds per shard as it held for the one consumer);
- no instance acks another's batch: an ack (ack-all) on a shard's consumer only ever covers that instance's own
  fetches. The events of other shards in a fetched batch are not applied here, and acked with it: each has its own
  shard's consumer, which delivers it to that shard's holder;
- nothing is applied twice: the bridge's unique event ids (`edge_events`, actor command ids) as before.
A shard changes hands when its holder stops (it finishes its batch first, then unlocks), dies (PostgreSQL ends its
session and with it the lock) or holds more than its fair share (`fair_share`: the instances are counted by their
membership locks). The new holder starts the shard where its acks end: a consumer with deliveries not acked (a
holder that died mid-batch) is made again from its ack floor, so those events come first, in order, instead of
after the next ones (ack-all would then also have acked them unapplied).
Why not one shared consumer with per-message acks: two instances would apply one store's consecutive events at the
same time, in any order (the seq gate orders a store only after the rate dropped one of its events).
Cost: every shard's consumer carries every event, so an instance fetches each event once per shard it holds and
skips the others' by subject alone (no decoding); hence few shards. A bridge instance past `BRIDGE_SHARDS` is a
hot standby. `BRIDGE_SHARDS` is a constant: every instance must agree on it.
Known limit: an instance that loses its lock connection stops its shards before its next batch; one whose event
loop stalls while its connection lives keeps its shards until it wakes.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import zlib
from collections.abc import Awaitable, Callable

import asyncpg
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from cloud.messaging import streams
from protocol import subjects
from protocol.errors import ProtocolError
from protocol.pull import fetch_ready

BRIDGE_SHARDS = 4
SHARD_LOCK_CLASS = 7_413_001  # advisory lock (class, shard): held by the instance that applies the shard
MEMBER_LOCK_CLASS = 7_413_002  # advisory lock (class, random): one per live bridge instance, to count them
REBALANCE_EVERY_S = 1.0
FETCH_BATCH = 2_000
WORKER_STOP_S = 30.0  # a shard's last batch may take this long to finish before the shard is let go regardless
FETCH_ERROR_PAUSE_S = 0.5
log = logging.getLogger("freshmesh.bridge")


def shard_of_store(store_id: str, shards: int = BRIDGE_SHARDS) -> int:
    return zlib.crc32(store_id.encode()) % shards


def shard_of_subject(subject: str, shards: int = BRIDGE_SHARDS) -> int:
    """A message's shard by its subject's store; a subject naming no store is shard 0's to dead-letter, once."""
    try:
        return shard_of_store(subjects.store_from_subject(subject), shards)
    except ProtocolError:
        return 0


def fair_share(shards: int, members: int) -> int:
    """How many shards one of `members` live instances should hold (at least one while any run)."""
    return math.ceil(shards / max(members, 1))


def consumer_name(shard: int, shards: int = BRIDGE_SHARDS) -> str:
    return f"{subjects.EVENTS_CONSUMER}_{shard}of{shards}"


def consumer_names(shards: int = BRIDGE_SHARDS) -> list[str]:
    """Every shard's consumer (for the console's and /metrics' bridge backlog: each carries every event, so the
    backlog is the largest of theirs, not their sum)."""
    return [consumer_name(k, shards) for k in range(shards)]


class BridgeShards:
    """This instance's part of the edge events. `apply(msgs)` is the bridge's batch handler (it acks what it
    applied); it is called for one batch at a time per instance, as the bridge was written for."""

    def __init__(self, js: JetStreamContext, database_url: str, apply: Callable[[list], Awaitable[None]],
                 shards: int = BRIDGE_SHARDS) -> None:
        self.js, self.database_url, self.apply, self.shards = js, database_url, apply, shards
        self.member_key = int.from_bytes(os.urandom(3), "big")
        self._conn: asyncpg.Connection | None = None
        self._workers: dict[int, tuple[asyncio.Event, asyncio.Task]] = {}
        self._applying = asyncio.Lock()
        self._coordinator: asyncio.Task | None = None
        self.stats = {"fetched": 0, "applied": 0, "skipped": 0, "takeovers": 0, "restarted_from_ack_floor": 0}

    @property
    def held(self) -> list[int]:
        return sorted(self._workers)

    async def start(self) -> BridgeShards:
        await self._connect()
        await self._rebalance()  # take a share at once: events flow before start() returns
        self._coordinator = asyncio.create_task(self._coordinate())
        return self

    async def stop(self) -> None:
        """Finish the batches in hand, then let every shard go (another instance takes them at once)."""
        if self._coordinator is not None:
            self._coordinator.cancel()
            await asyncio.gather(self._coordinator, return_exceptions=True)
        shards = list(self._workers)
        await asyncio.gather(*(self._stop_worker(k) for k in shards), return_exceptions=True)
        for k in shards:  # one at a time: one connection
            await self._unlock(k)
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    async def _connect(self) -> None:
        self._conn = await asyncpg.connect(self.database_url)
        while not await self._conn.fetchval("select pg_try_advisory_lock($1, $2)", MEMBER_LOCK_CLASS, self.member_key):
            self.member_key = int.from_bytes(os.urandom(3), "big")  # (a clash of random keys: another one)

    def _lost(self) -> bool:
        return self._conn is None or self._conn.is_closed()

    async def _coordinate(self) -> None:
        while True:
            await asyncio.sleep(REBALANCE_EVERY_S)
            try:
                if self._lost():  # the locks went with the session: stop applying, then take a share again
                    await asyncio.gather(*(self._stop_worker(k) for k in list(self._workers)), return_exceptions=True)
                    await self._connect()
                await self._rebalance()
            except Exception as exc:  # noqa: BLE001 - the database may be away: try again next round
                log.warning("bridge shard rebalance failed (%s: %s)", type(exc).__name__, exc)

    async def _members(self) -> int:
        assert self._conn is not None
        count: int = await self._conn.fetchval(
            """select count(*) from pg_locks where locktype = 'advisory' and granted and objsubid = 2
               and classid::bigint = $1 and database = (select oid from pg_database where datname = current_database())""",
            MEMBER_LOCK_CLASS)
        return count

    async def _rebalance(self) -> None:
        assert self._conn is not None
        for k, (_, task) in list(self._workers.items()):
            if task.done():  # a worker that ended by itself (an error): the shard goes back to be taken again
                await self._release(k)
        want = fair_share(self.shards, await self._members())
        for k in self.held[want:]:  # more than our share: let the last ones go (to a newcomer)
            await self._release(k)
        order = [(self.member_key + i) % self.shards for i in range(self.shards)]  # instances start apart
        for k in order:
            if len(self._workers) >= want:
                break
            if k not in self._workers and await self._conn.fetchval(
                    "select pg_try_advisory_lock($1, $2)", SHARD_LOCK_CLASS, k):
                await self._take(k)

    async def _take(self, shard: int) -> None:
        try:
            sub = await self._bind(shard)
        except Exception:
            await self._unlock(shard)
            raise
        stopping = asyncio.Event()
        self._workers[shard] = (stopping, asyncio.create_task(self._work(shard, sub, stopping)))
        self.stats["takeovers"] += 1
        log.info("bridge shard %d/%d taken (member %d)", shard, self.shards, self.member_key)

    async def _bind(self, shard: int):
        """The shard's consumer, starting where its acks end (made there if a holder left deliveries unacked)."""
        name = consumer_name(shard, self.shards)
        try:
            info = await self.js.consumer_info(subjects.EVENTS_STREAM, name)
            start = info.ack_floor.stream_seq + 1 if info.num_ack_pending else None
            if start is not None:
                await self.js.delete_consumer(subjects.EVENTS_STREAM, name)
                self.stats["restarted_from_ack_floor"] += 1
                log.warning("bridge shard %d: %d deliveries were never acked (their holder died); starting again at "
                            "stream seq %d", shard, info.num_ack_pending, start)
                await streams.ensure_events_shard_consumer(self.js, name, start)
        except NotFoundError:
            await streams.ensure_events_shard_consumer(self.js, name, await self._first_seq())
        return await self.js.pull_subscribe_bind(durable=name, stream=subjects.EVENTS_STREAM)

    async def _first_seq(self) -> int | None:
        """Where a new shard consumer starts: after what every existing events consumer has acked (the one before
        shards, or shards of another count), else at the stream's start."""
        floors = [c.ack_floor.stream_seq for c in await self.js.consumers_info(subjects.EVENTS_STREAM)
                  if c.name.startswith(subjects.EVENTS_CONSUMER) and c.ack_floor is not None]
        return min(floors) + 1 if floors else None

    async def _work(self, shard: int, sub, stopping: asyncio.Event) -> None:
        while not stopping.is_set() and not self._lost():
            try:
                msgs = await fetch_ready(sub.fetch, FETCH_BATCH)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except Exception as exc:  # noqa: BLE001 - reconnects are nats-py's job; keep pulling
                log.warning("shard %d fetch failed: %s", shard, exc)
                await asyncio.sleep(FETCH_ERROR_PAUSE_S)
                continue
            if self._lost():
                return  # the lock is gone: another instance may hold the shard now; these come to it again
            mine = [m for m in msgs if shard_of_subject(m.subject, self.shards) == shard]
            self.stats["fetched"] += len(msgs)
            self.stats["skipped"] += len(msgs) - len(mine)
            async with self._applying:
                if mine:
                    await self.apply(mine)
                    self.stats["applied"] += len(mine)
                if not msgs[-1].is_acked:
                    await msgs[-1].ack()  # ack-all: ours are applied, the others are other shards' to apply

    async def _stop_worker(self, shard: int) -> None:
        stopping, task = self._workers.pop(shard)
        stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), WORKER_STOP_S)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except Exception as exc:  # noqa: BLE001 - it ended by itself with an error: logged, let go all the same
            log.warning("shard %d worker ended with %s: %s", shard, type(exc).__name__, exc)

    async def _release(self, shard: int) -> None:
        await self._stop_worker(shard)
        await self._unlock(shard)
        log.info("bridge shard %d/%d let go (member %d)", shard, self.shards, self.member_key)

    async def _unlock(self, shard: int) -> None:
        if not self._lost():
            assert self._conn is not None
            await self._conn.fetchval("select pg_advisory_unlock($1, $2)", SHARD_LOCK_CLASS, shard)
