"""Several bridge instances sharing the edge events: the work split by store, each shard applied by one instance.

The choice (issue 18): the edge events are split into `BRIDGE_SHARDS` shards by store, with one durable pull consumer
per shard. The events stream stores each event under its store's partition (protocol/subjects.py: the server's
subject transform, FNV-1a of the store id), so a shard's consumer carries its own partition's events only: each
event is fetched once, whatever the number of shards and instances (issue 22; before, every shard's consumer
carried every event and skipped the others').
An instance applies a shard's events only while it holds that shard's lease (cloud/messaging/shard_leases.py), so
one instance at a time reads a shard's consumer, in stream order:
- per-store order is kept: all of a store's events are in one shard, applied by one instance, in the order the
  store published them (with AckPolicy.ALL the bridge's batch logic - "nothing overtakes a message still being
  retried" - holds per shard as it held for the one consumer);
- no instance acks another's batch: each holding of a shard reads its own consumer, named with the lease's
  generation (`cloud_events_p<k>of<n>_g<generation>`), made by the new holder from where the previous one's acks end,
  and the previous one's deleted. A stale holder's late fetch or ack reaches only its own, abandoned consumer, never
  the new holder's. Events stored before the stream was partitioned (under `.evt.`, no partition token) are read by
  every shard's consumer; each applies its own (`shard_of_subject`: the same FNV-1a rule the server uses, so a
  store's older and newer events are in one shard), and acks the others' with its batch;
- nothing is applied twice: the lease's generation is checked in the transaction that records a batch (a stale
  holder's apply rolls back, `ShardLost`), and the bridge's unique event ids (`edge_events`, actor command ids) make
  a redelivery from the ack floor harmless;
- work-conserving: a holder renews its leases while its workers make progress. One that stops (SIGSTOP, a stuck
  event loop, a worker stuck for `STALL_S`) stops renewing, and after `LEASE_S` any other instance takes its shards
  and goes on from their ack floors. The old holder, woken, finds its renewal refused and drops them.
A shard changes hands when its holder stops (it finishes its batch first, then lets the lease go), dies or freezes
(its lease lapses), or holds more than its fair share (`fair_share`: the instances are counted by their member
beats). The advisory locks of the first design are gone: a session lock outlives a frozen process.
Why not one shared consumer with per-message acks: two instances would apply one store's consecutive events at the
same time, in any order (the seq gate orders a store only after the rate dropped one of its events).
Cost: one more indexed row read per applied batch (the fence). A bridge instance past `BRIDGE_SHARDS` is a hot
standby. `BRIDGE_SHARDS` is a constant (`subjects.EVENT_PARTITIONS`, part of the stream's transform): every instance
must agree on it.
Consumers are named by family: `cloud_events_p<k>of<n>_g<generation>` since partitioning; the first consumer of a
partition starts after what every events consumer has acked (the lowest floor, unpartitioned ones included: a
store's events may have been another shard's before), and the unpartitioned family's consumers are deleted once every
partition has its own. Upgrading from a release before partitioned events: stop every cloud instance, then start the
new ones (an old instance's shards are not the new ones': the two must not apply at once).
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from cloud.messaging import streams
from cloud.messaging.shard_leases import (
    APPLYING,
    LeaseTimes,
    ShardLeases,
    ShardLost,
    locally_valid_until,
    stalled,
)
from protocol import subjects
from protocol.errors import ProtocolError
from protocol.pull import fetch_ready

BRIDGE_SHARDS = subjects.EVENT_PARTITIONS
REBALANCE_EVERY_S = 1.0  # at most; more often when a lease is short (three renewals per lease)
FETCH_BATCH = 2_000
WORKER_STOP_S = 30.0  # a shard's last batch may take this long to finish before the shard is let go regardless
FETCH_ERROR_PAUSE_S = 0.5
LEASE_WAIT_S = 0.1  # a worker whose lease is not surely ours any more fetches nothing until it is renewed
log = logging.getLogger("freshmesh.bridge")
_CONSUMER = re.compile(rf"^{re.escape(subjects.EVENTS_CONSUMER)}_p(\d+)of(\d+)(?:_g(\d+))?$")
_UNPARTITIONED = re.compile(rf"^{re.escape(subjects.EVENTS_CONSUMER)}_(\d+)of(\d+)(?:_g(\d+))?$")  # before issue 22


def shard_of_store(store_id: str, shards: int = BRIDGE_SHARDS) -> int:
    return subjects.partition_of_store(store_id, shards)


def shard_of_subject(subject: str, shards: int = BRIDGE_SHARDS) -> int:
    """A message's shard: its stored subject's partition, or (stored before partitioning) its store's; a subject
    naming no store is shard 0's to dead-letter, once."""
    partition = subjects.partition_of_subject(subject)
    if partition is not None and partition < shards:
        return partition
    try:
        return shard_of_store(subjects.store_from_subject(subject), shards)
    except ProtocolError:
        return 0


def fair_share(shards: int, members: int) -> int:
    """How many shards one of `members` live instances should hold (at least one while any run)."""
    return math.ceil(shards / max(members, 1))


def consumer_name(shard: int, shards: int = BRIDGE_SHARDS, generation: int | None = None) -> str:
    """The shard's name (`generation` None: the stable one the console and /metrics label it with), or the name of
    its consumer for one holding of its lease."""
    base = f"{subjects.EVENTS_CONSUMER}_p{shard}of{shards}"
    return base if generation is None else f"{base}_g{generation}"


def consumer_names(shards: int = BRIDGE_SHARDS) -> list[str]:
    """Every shard's stable name (for the console's and /metrics' bridge backlog: each carries its own partition, so
    the backlog is the sum of theirs)."""
    return [consumer_name(k, shards) for k in range(shards)]


def parse_consumer(name: str) -> tuple[int, int, int] | None:
    """(shard, shards, generation) of a shard consumer's name (generation 0: named before leases); None otherwise."""
    m = _CONSUMER.match(name)
    return None if m is None else (int(m[1]), int(m[2]), int(m[3] or 0))


def current_consumers(names: list[str], shards: int = BRIDGE_SHARDS) -> dict[int, str]:
    """Each shard's current consumer among `names`: its highest generation (older ones are a stale holder's)."""
    best: dict[int, tuple[int, str]] = {}
    for name in names:
        parsed = parse_consumer(name)
        if parsed is not None and parsed[1] == shards and (parsed[0] not in best or parsed[2] > best[parsed[0]][0]):
            best[parsed[0]] = (parsed[2], name)
    return {k: name for k, (_, name) in sorted(best.items())}


async def shard_consumer_infos(js, shards: int = BRIDGE_SHARDS) -> dict[str, ConsumerInfo]:
    """Each shard's current consumer's info, by the shard's stable name (the console's and /metrics' backlog)."""
    infos = {c.name: c for c in await js.consumers_info(subjects.EVENTS_STREAM)}
    return {consumer_name(k, shards): infos[name] for k, name in current_consumers(list(infos), shards).items()}


@dataclass
class _Worker:
    generation: int
    valid_until_s: float  # this process's monotonic clock: the lease is surely ours until then
    progress_s: float
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


class BridgeShards:
    """This instance's part of the edge events. `apply(msgs)` is the bridge's batch handler (it acks what it
    applied); it is called for one batch at a time per instance, as the bridge was written for, under the shard's
    fence (`shard_leases.APPLYING`, checked by the bridge in the transaction that records the batch)."""

    def __init__(self, js: JetStreamContext, database_url: str, apply: Callable[[list], Awaitable[None]],
                 shards: int = BRIDGE_SHARDS, times: LeaseTimes | None = None) -> None:
        if shards != subjects.EVENT_PARTITIONS:  # a shard reads one partition of the stream: the counts are one
            raise ValueError(f"bridge shards: {shards}, but the events stream has {subjects.EVENT_PARTITIONS} partitions")
        self.js, self.database_url, self.apply, self.shards = js, database_url, apply, shards
        self.times = times or LeaseTimes.from_env()
        self.member = f"{socket.gethostname()}/{os.getpid()}/{os.urandom(4).hex()}"
        self._conn: asyncpg.Connection | None = None
        self._leases: ShardLeases | None = None
        self._workers: dict[int, _Worker] = {}
        self._applying = asyncio.Lock()
        self._coordinator: asyncio.Task | None = None
        self.stats = {"fetched": 0, "applied": 0, "skipped": 0, "takeovers": 0, "restarted_from_ack_floor": 0,
                      "lost": 0, "fenced": 0, "stalled": 0}

    @property
    def held(self) -> list[int]:
        return sorted(self._workers)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

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
        held = {k: w.generation for k, w in self._workers.items()}
        await asyncio.gather(*(self._stop_worker(k) for k in list(held)), return_exceptions=True)
        if not self._lost():
            assert self._leases is not None and self._conn is not None
            try:
                for k, generation in held.items():  # one at a time: one connection
                    await self._leases.release(k, generation)
                await self._leases.leave()
            finally:
                await self._conn.close()

    async def _connect(self) -> None:
        self._conn = await asyncpg.connect(self.database_url)
        self._leases = ShardLeases(self._conn, self.member, self.shards, self.times)

    def _lost(self) -> bool:
        return self._conn is None or self._conn.is_closed()

    async def _coordinate(self) -> None:
        while True:
            await asyncio.sleep(min(REBALANCE_EVERY_S, self.times.renew_every_s))
            try:
                if self._lost():  # no renewing without our connection: stop applying, then take a share again
                    await asyncio.gather(*(self._drop(k) for k in list(self._workers)), return_exceptions=True)
                    await self._connect()
                await self._rebalance()
            except Exception as exc:  # noqa: BLE001 - the database may be away: try again next round
                log.warning("bridge shard rebalance failed (%s: %s)", type(exc).__name__, exc)

    async def _rebalance(self) -> None:
        assert self._leases is not None
        sent = self._now()
        ours = await self._leases.renew({k: w.generation for k, w in self._workers.items()})
        for k, w in list(self._workers.items()):
            if k not in ours:  # another instance took it (ours lapsed): stop at once, apply nothing more
                log.warning("bridge shard %d/%d lost (generation %d is no longer ours); dropping it", k, self.shards,
                            w.generation)
                self.stats["lost"] += 1
                await self._drop(k)
            elif w.task is not None and w.task.done():  # ended by itself (an error): the shard goes back
                await self._release(k)
            elif stalled(w.progress_s, self._now(), self.times.stall_s):  # stuck: let another instance try
                log.warning("bridge shard %d/%d made no progress for %.0f s; letting it go", k, self.shards,
                            self._now() - w.progress_s)
                self.stats["stalled"] += 1
                generation = w.generation
                await self._drop(k)
                await self._leases.release(k, generation)
            else:
                w.valid_until_s = locally_valid_until(sent, self.times.lease_s)
        want = fair_share(self.shards, await self._leases.beat())
        for k in self.held[want:]:  # more than our share: let the last ones go (to a newcomer)
            await self._release(k)
        offset = int(self.member.rsplit("/", 1)[-1], 16)
        order = [(offset + i) % self.shards for i in range(self.shards)]  # instances start apart
        for k in order:
            if len(self._workers) >= want:
                break
            if k not in self._workers:
                sent = self._now()
                taken = await self._leases.take(k)
                if taken is not None:
                    await self._take(k, taken, locally_valid_until(sent, self.times.lease_s))

    async def _take(self, shard: int, generation: int, valid_until_s: float) -> None:
        assert self._leases is not None
        try:
            sub = await self._bind(shard, generation)
        except Exception:
            await self._leases.release(shard, generation)
            raise
        w = self._workers[shard] = _Worker(generation, valid_until_s, self._now())
        w.task = asyncio.create_task(self._work(shard, sub, w))
        self.stats["takeovers"] += 1
        log.info("bridge shard %d/%d taken, generation %d (member %s)", shard, self.shards, generation, self.member)

    async def _bind(self, shard: int, generation: int):
        """This holding's consumer, starting where the shard's acks end: its earlier consumers' ack floor (a holder
        that died or froze mid-batch left deliveries unacked: they come first, in order). Earlier ones are deleted
        once it exists, so a stale holder can neither fetch nor ack what is now this holder's."""
        infos = await self.js.consumers_info(subjects.EVENTS_STREAM)
        earlier = [c for c in infos if (p := parse_consumer(c.name)) is not None and p[:2] == (shard, self.shards)
                   and p[2] < generation]
        name = consumer_name(shard, self.shards, generation)
        if earlier:
            start: int | None = min((c.ack_floor.stream_seq if c.ack_floor else 0) for c in earlier) + 1
            pending = sum(c.num_ack_pending or 0 for c in earlier)
            if pending:
                self.stats["restarted_from_ack_floor"] += 1
                log.warning("bridge shard %d: %d deliveries were never acked (their holder died or froze); starting "
                            "again at stream seq %s", shard, pending, start)
        else:
            start = self._first_seq(infos)
        await streams.ensure_events_shard_consumer(self.js, name, shard, start)
        gone = [c.name for c in earlier]
        partitioned = {p[0] for c in infos if (p := parse_consumer(c.name)) is not None and p[1] == self.shards}
        if partitioned | {shard} == set(range(self.shards)):
            # every partition has its consumer, each started after every unpartitioned one's floor: theirs can go
            gone += [c.name for c in infos if _UNPARTITIONED.match(c.name)]
        for old in gone:
            try:
                await self.js.delete_consumer(subjects.EVENTS_STREAM, old)
            except Exception as exc:  # noqa: BLE001 - a leftover is only a cost (its holder's fetches get nothing new)
                log.warning("bridge shard %d: earlier consumer %s not deleted: %s", shard, old, exc)
        return await self.js.pull_subscribe_bind(durable=name, stream=subjects.EVENTS_STREAM)

    @staticmethod
    def _first_seq(infos: list) -> int | None:
        """Where a shard's first consumer starts: after what every existing events consumer has acked (the one
        before shards, or shards of another count), else at the stream's start."""
        floors = [c.ack_floor.stream_seq for c in infos
                  if c.name.startswith(subjects.EVENTS_CONSUMER) and c.ack_floor is not None]
        return min(floors) + 1 if floors else None

    async def _work(self, shard: int, sub, w: _Worker) -> None:
        assert self._leases is not None
        APPLYING.set(self._leases.fence(shard, w.generation))  # this task's applies are fenced by this holding
        while not w.stopping.is_set() and not self._lost():
            w.progress_s = self._now()
            if w.progress_s >= w.valid_until_s:  # not renewed in time (we may have been frozen): fetch nothing
                await asyncio.sleep(LEASE_WAIT_S)
                continue
            try:
                msgs = await fetch_ready(sub.fetch, FETCH_BATCH)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except Exception as exc:  # noqa: BLE001 - reconnects are nats-py's job; keep pulling
                log.warning("shard %d fetch failed: %s", shard, exc)
                await asyncio.sleep(FETCH_ERROR_PAUSE_S)
                continue
            if self._lost():
                return  # no renewing: another instance may hold the shard soon; these come to it again
            mine = [m for m in msgs if shard_of_subject(m.subject, self.shards) == shard]
            self.stats["fetched"] += len(msgs)
            self.stats["skipped"] += len(msgs) - len(mine)
            try:
                async with self._applying:
                    if mine:
                        await self.apply(mine)
                        self.stats["applied"] += len(mine)
                    if not msgs[-1].is_acked:
                        await msgs[-1].ack()  # ack-all: ours are applied, the others are other shards' to apply
            except ShardLost as lost:  # a newer holding applies this shard now: nothing recorded, nothing acked
                self.stats["fenced"] += 1
                log.warning("bridge shard %d: apply refused by the fence (%s); stopping", shard, lost)
                return

    async def _stop_worker(self, shard: int) -> None:
        w = self._workers.pop(shard)
        w.stopping.set()
        assert w.task is not None
        try:
            await asyncio.wait_for(asyncio.shield(w.task), WORKER_STOP_S)
        except TimeoutError:
            w.task.cancel()
            await asyncio.gather(w.task, return_exceptions=True)
        except Exception as exc:  # noqa: BLE001 - it ended by itself with an error: logged, let go all the same
            log.warning("shard %d worker ended with %s: %s", shard, type(exc).__name__, exc)

    async def _drop(self, shard: int) -> None:
        """Stop the shard's worker at once (no batch finished: it is no longer ours to finish, or it is stuck)."""
        w = self._workers.pop(shard)
        w.stopping.set()
        if w.task is not None:
            w.task.cancel()
            await asyncio.gather(w.task, return_exceptions=True)

    async def _release(self, shard: int) -> None:
        assert self._leases is not None
        generation = self._workers[shard].generation
        await self._stop_worker(shard)
        await self._leases.release(shard, generation)
        log.info("bridge shard %d/%d let go (member %s)", shard, self.shards, self.member)
