"""DurableHost: gives a pure actor durability by journaling its commands in PostgreSQL with group commits.

- Commands from every concurrent caller queue up; one committer applies a batch to the pure actor, writes the
  batch's state-changing commands to `actor_journal` in **one transaction** (COPY), and only then answers the
  callers. A caller never hears "ok" for a change that is not durable.
- The journal is the record: on start the host loads the latest snapshot and replays the journal after it.
  Apply is deterministic in (state, command, at_ms), so the rebuilt state is the state before the crash. A
  command in flight during a crash was either committed (its retry answers `exists` with the first result) or
  not (its retry applies it), never both.
- If a commit fails, the host rebuilds its state from PostgreSQL and tells the batch's callers to retry.
- Time is read from the injected clock once per batch and journaled with it; a ticker sends `Expire`.
- The queue is bounded (`QUEUE_MAX_COMMANDS`): past it a submit is refused at once with `Unavailable` (the
  caller backs off and retries with the same ids) instead of growing without end behind a slow database.
- Retention: once a snapshot at seq N is in PostgreSQL, journal rows ≤ N are no longer needed to rebuild; they are
  deleted when also older than `journal_keep_ms` (FRESHMESH_JOURNAL_KEEP_S, default 2 days: the console reads
  today's top-ups from the ledgers' journals, and a recent history helps an investigation). The bound is read from
  the stored snapshot row in the delete itself, never from memory (a snapshot that failed to write must not let
  its journal go). Deletion runs after every snapshot and every `TRUNCATE_EVERY_S`, in batches of
  `TRUNCATE_BATCH_ROWS`, off the commit path: a slow delete never holds a caller's answer.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TypedDict

import asyncpg

from actors.base import Command, Expire, IdempotentActor, Query, Result, command_to_wire
from cloud.migrations import migrate
from protocol.clock import Clock, ReadingClock
from protocol.codec import pack, unpack

COMMIT_BATCH_MAX = 5_000
QUEUE_MAX_COMMANDS = 100_000  # waiting to be committed; past this, submits are refused until the queue drains
GROUP_COMMIT_WAIT_MS = 2  # when a batch is small, wait this long for more callers to join it
SNAPSHOT_EVERY = 100_000  # journaled commands between snapshots
JOURNAL_KEEP_S = 2 * 24 * 3600  # journal rows covered by a snapshot are kept this long (FRESHMESH_JOURNAL_KEEP_S)
TRUNCATE_EVERY_S = 600  # also when no snapshot came: rows covered earlier age past the keep window
TRUNCATE_BATCH_ROWS = 10_000  # per delete statement: short transactions, no long lock on the journal
EXPIRE_EVERY_MS = 1_000
# A rebuild after a failed commit is retried until PostgreSQL answers (the actor cannot answer without it):
REBUILD_RETRY_FIRST_S, REBUILD_RETRY_MAX_S = 0.1, 5.0
log = logging.getLogger("freshmesh.durable")


class Unavailable(RuntimeError):
    """The change could not be made durable (database down): nothing was applied; retry with the same ids."""


class DurableStats(TypedDict):
    batches: int
    commands: int
    journaled: int
    last_batch: int
    errors: int
    last_error: str


class DurableHost:
    def __init__(self, name: str, factory: type[IdempotentActor], database_url: str, clock: Clock | None = None,
                 expire_every_ms: int = EXPIRE_EVERY_MS, snapshot_every: int = SNAPSHOT_EVERY,
                 journal_keep_ms: int | None = None) -> None:
        self.name, self.factory, self.database_url = name, factory, database_url
        self.clock = clock or ReadingClock(time.time_ns, time.monotonic_ns)
        self.expire_every_ms, self.snapshot_every = expire_every_ms, snapshot_every
        self.journal_keep_ms = (int(float(os.environ.get("FRESHMESH_JOURNAL_KEEP_S") or JOURNAL_KEEP_S) * 1000)
                                if journal_keep_ms is None else journal_keep_ms)
        self._truncating: asyncio.Task | None = None
        self.actor = factory()
        self.seq = 0
        self.snapshot_seq = 0
        self.pool: asyncpg.Pool | None = None
        self._queue: list[tuple[Command, dict | None, asyncio.Future]] = []  # command, its wire form if known
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.stats: DurableStats = {"batches": 0, "commands": 0, "journaled": 0, "last_batch": 0, "errors": 0,
                                    "last_error": ""}

    async def start(self) -> DurableHost:
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=2, command_timeout=30)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        await self._rebuild()
        self._tasks = [asyncio.create_task(self._committer(), name=f"{self.name}-committer")]
        if self.expire_every_ms:
            self._tasks.append(asyncio.create_task(self._ticker(), name=f"{self.name}-ticker"))
        self._tasks.append(asyncio.create_task(self._retention(), name=f"{self.name}-retention"))
        return self

    def _db(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError(f"{self.name}: not started")
        return self.pool

    async def stop(self) -> None:
        for task in [*self._tasks, *([self._truncating] if self._truncating else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.pool is not None:
            await self.pool.close()

    async def _rebuild(self) -> None:
        """State = latest snapshot + the journal after it."""
        actor = self.factory()
        async with self._db().acquire() as conn:
            snap = await conn.fetchrow("select seq, state from actor_snapshot where actor = $1", self.name)
            seq = 0
            if snap is not None:
                actor.restore(unpack(snap["state"]))
                seq = snap["seq"]
            self.snapshot_seq = seq
            async with conn.transaction():
                async for row in conn.cursor("select seq, at_ms, command from actor_journal where actor = $1 and seq > $2 "
                                             "order by seq", self.name, seq, prefetch=5_000):
                    actor.apply(self.factory.decode(unpack(row["command"])), row["at_ms"], row["command"])
                    seq = row["seq"]
        self.actor, self.seq = actor, seq
        log.info("%s rebuilt at seq %d (snapshot %d)", self.name, seq, self.snapshot_seq)

    async def submit(self, commands: list[Command], wires: list[dict] | None = None) -> list[Result]:
        """`wires`: the commands' wire forms when the caller has them (they came that way): journaled as they are."""
        if len(self._queue) + len(commands) > QUEUE_MAX_COMMANDS:
            raise Unavailable(f"{self.name}: {len(self._queue)} commands waiting; retry shortly")
        loop = asyncio.get_running_loop()
        futures = []
        for i, command in enumerate(commands):
            fut = loop.create_future()
            self._queue.append((command, wires[i] if wires is not None else None, fut))
            futures.append(fut)
        self._wake.set()
        return list(await asyncio.gather(*futures))

    async def _committer(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._queue) < COMMIT_BATCH_MAX // 10:
                await asyncio.sleep(GROUP_COMMIT_WAIT_MS / 1000)
            batch, self._queue = self._queue[:COMMIT_BATCH_MAX], self._queue[COMMIT_BATCH_MAX:]
            if not self._queue:
                self._wake.clear()
            if batch:
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[Command, dict | None, asyncio.Future]]) -> None:
        try:
            await self._apply_and_journal(batch)
        except Exception as exc:  # noqa: BLE001 - the committer must never die: fail this batch, rebuild, go on
            log.exception("%s: batch of %d failed unexpectedly; rebuilding from PostgreSQL", self.name, len(batch))
            self.stats["errors"] += 1
            self.stats["last_error"] = f"{type(exc).__name__}: {exc}"
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(Unavailable(f"{self.name}: internal error ({type(exc).__name__}); retry"))
            await self._rebuild_until_ok()

    async def _apply_and_journal(self, batch: list[tuple[Command, dict | None, asyncio.Future]]) -> None:
        now = self.clock.now_ms()
        results: list[Result] = []
        rows: list[tuple[str, int, int, bytes]] = []
        for command, wire, _ in batch:
            packed = pack(wire if wire is not None else command_to_wire(command))
            result = self.actor.apply(command, now, packed)
            results.append(result)
            if self.actor.changes_state(result):
                rows.append((self.name, self.seq + len(rows) + 1, now, packed))
        try:
            if rows:
                async with self._db().acquire() as conn:
                    await conn.copy_records_to_table("actor_journal", records=rows,
                                                     columns=["actor", "seq", "at_ms", "command"])
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self.stats["errors"] += 1
            self.stats["last_error"] = f"{type(exc).__name__}: {exc}"
            log.error("%s: commit of %d commands failed (%s); rebuilding from PostgreSQL", self.name, len(rows), exc)
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(Unavailable(f"{self.name}: the change could not be made durable; retry"))
            await self._rebuild_until_ok()
            return
        self.seq += len(rows)
        self.stats["batches"] += 1
        self.stats["commands"] += len(batch)
        self.stats["journaled"] += len(rows)
        self.stats["last_batch"] = len(batch)
        for (_, _, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)
        if self.seq - self.snapshot_seq >= self.snapshot_every:
            try:
                await self.snapshot()
            except Exception as exc:  # noqa: BLE001 - a snapshot only shortens recovery; the journal is the record
                log.warning("%s: snapshot failed (%s); will try again later", self.name, exc)
                self.snapshot_seq = self.seq

    async def _rebuild_until_ok(self) -> None:
        delay = REBUILD_RETRY_FIRST_S
        while True:
            try:
                await self._rebuild()
                return
            except Exception as exc:  # noqa: BLE001 - the committer must live on: callers get Unavailable meanwhile
                # A database away retries until it is back; a journal this build cannot read (a command of an
                # older shape) fails the same way each time: logged loudly, the actor answers nothing until fixed.
                self.stats["errors"] += 1
                self.stats["last_error"] = f"rebuild failed: {type(exc).__name__}: {exc}"[:300]
                log.error("%s: rebuild failed (%s: %s); retrying in %.1fs", self.name, type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, REBUILD_RETRY_MAX_S)

    async def snapshot(self) -> None:
        state = pack(self.actor.snapshot())
        async with self._db().acquire() as conn:
            await conn.execute("""insert into actor_snapshot (actor, seq, at_ms, state) values ($1, $2, $3, $4)
                                  on conflict (actor) do update set seq = excluded.seq, at_ms = excluded.at_ms,
                                  state = excluded.state""", self.name, self.seq, self.clock.now_ms(), state)
        self.snapshot_seq = self.seq
        self._truncate_soon()

    def _truncate_soon(self) -> None:
        """Start a truncation in the background unless one runs (the committer goes on answering meanwhile)."""
        if self._truncating is None or self._truncating.done():
            self._truncating = asyncio.create_task(self._truncate_logged(), name=f"{self.name}-truncate")

    async def _truncate_logged(self) -> None:
        try:
            await self.truncate_journal()
        except Exception as exc:  # noqa: BLE001 - retention only saves space; the next snapshot or tick tries again
            log.warning("%s: journal truncation failed (%s); will try again later", self.name, exc)

    async def truncate_journal(self) -> int:
        """Delete journal rows covered by the stored snapshot and older than the keep window; returns how many."""
        cutoff_ms = self.clock.now_ms() - self.journal_keep_ms
        deleted = 0
        while True:
            async with self._db().acquire() as conn:
                status = await conn.execute(
                    """delete from actor_journal where actor = $1 and seq in (
                           select j.seq from actor_journal j
                           where j.actor = $1 and j.at_ms < $2
                             and j.seq <= (select s.seq from actor_snapshot s where s.actor = $1)
                           order by j.seq limit $3)""", self.name, cutoff_ms, TRUNCATE_BATCH_ROWS)
            count = int(status.split()[-1])
            deleted += count
            if count < TRUNCATE_BATCH_ROWS:
                if deleted:
                    log.info("%s: %d journal rows covered by the snapshot deleted", self.name, deleted)
                return deleted

    async def _retention(self) -> None:
        while True:
            await asyncio.sleep(TRUNCATE_EVERY_S)
            self._truncate_soon()

    async def _ticker(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(self.expire_every_ms / 1000)
            n += 1
            try:
                await self.submit([Expire(id=f"expire:{os.getpid()}:{self.clock.now_ms()}:{n}")])
            except Unavailable:
                pass

    def ask(self, query: Query):
        """Answer a read-only question from the in-memory state."""
        return query.answer(self.actor)
