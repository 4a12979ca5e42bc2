"""Leases on the bridge's shards: work-conserving ownership with a fencing token (issue 18).

Why not advisory locks (the first design): a PostgreSQL session lock is held for as long as its session lives. An
instance whose event loop is stuck, or whose process is frozen (SIGSTOP, a VM paused), keeps its session - and with
it its shards - while applying nothing: its stores' events waited forever. A lease has to be *renewed*, and only an
instance that is making progress renews it.

Guarantees:
- one row per shard (`bridge_shard_leases`): its owner, a generation (the fencing token) and when the owner last
  renewed it, by PostgreSQL's clock (`clock_timestamp()`: one clock for every instance, none of theirs is trusted).
  A shard whose lease was not renewed for `lease_s` may be taken by any instance; taking it increments the
  generation, in one statement, so two takers can never both win one generation;
- fencing: every batch applied for a shard checks, inside the transaction that records its events, that the lease
  is still this instance's, at this generation (`check_fence`, row locked FOR SHARE until the commit: a taker's
  update waits for an apply in flight, and an apply after a takeover sees the new generation and rolls back with
  `ShardLost`). So a stale owner that wakes up applies nothing: no double effect, and the store's order is the new
  owner's. A transaction left open by a frozen process is ended by PostgreSQL after `lease_s`
  (idle_in_transaction_session_timeout, set for that transaction only), so it cannot hold a takeover off for ever;
- a takeover does not wait on a row lock longer than `TAKE_LOCK_TIMEOUT_MS` (it tries again next round), so a stuck
  apply elsewhere cannot stall this instance's renewals of its other shards;
- membership: each instance beats a row in `bridge_members`; the live ones (beaten within `lease_s`) share the
  shards fairly. A frozen instance stops beating, so the others count it out and take its whole share.
The actor commands an apply sends before its transaction carry the event id as their id (cloud/messaging/bridge.py):
a stale owner's late command answers `exists` or comes before the new owner's in the store's order.
"""
from __future__ import annotations

import contextvars
import os
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

LEASE_S = 10.0  # FRESHMESH_BRIDGE_LEASE_S: a shard not renewed this long goes to another instance
STALL_S = 60.0  # FRESHMESH_BRIDGE_STALL_S: a shard whose worker made no progress this long is let go
TAKE_LOCK_TIMEOUT_MS = 500
MEMBERS_FORGOTTEN_AFTER_LEASES = 100  # a member row not beaten for this many leases is deleted

MIGRATION_39 = (39, "leases on the bridge's shards, with a fencing generation (cloud/messaging/shard_leases.py)", """
    create table if not exists bridge_shard_leases (
        shards      int         not null check (shards > 0),
        shard       int         not null check (shard >= 0 and shard < shards),
        owner       text,                              -- null: let go (taken at once by whoever wants it)
        generation  bigint      not null default 0,    -- the fencing token: +1 at every taking
        renewed_at  timestamptz,                       -- by PostgreSQL's clock
        primary key (shards, shard)
    );
    create table if not exists bridge_members (
        member   text        primary key,
        seen_at  timestamptz not null
    );
""")


class ShardLost(BaseException):  # noqa: N818 - a signal to unwind, not an error of the event being applied
    """The shard's lease is no longer this instance's: unwind the apply without recording, acking or refusing
    anything. A BaseException so that the bridge's per-event retry and dead-letter handlers (`except Exception`)
    let it through: nothing about the event is wrong, only who applies it."""


@dataclass(frozen=True)
class LeaseTimes:
    lease_s: float = LEASE_S
    stall_s: float = STALL_S

    def __post_init__(self) -> None:
        if not self.lease_s > 0 or not self.stall_s > 0:
            raise ValueError(f"FRESHMESH_BRIDGE_LEASE_S / FRESHMESH_BRIDGE_STALL_S must be positive, got {self}")

    @property
    def renew_every_s(self) -> float:
        """Three renewals per lease: one lost or late round does not lose the shard."""
        return self.lease_s / 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LeaseTimes:
        env = os.environ if env is None else env
        return cls(float(env.get("FRESHMESH_BRIDGE_LEASE_S") or LEASE_S),
                   float(env.get("FRESHMESH_BRIDGE_STALL_S") or STALL_S))


@dataclass(frozen=True)
class Fence:
    """What an apply of one shard's batch is allowed under: checked in the transaction that records it."""
    shards: int
    shard: int
    owner: str
    generation: int
    lease_s: float


APPLYING: contextvars.ContextVar[Fence | None] = contextvars.ContextVar("freshmesh_bridge_fence", default=None)


def locally_valid_until(renew_sent_s: float, lease_s: float) -> float:
    """Until when (this process's monotonic clock) a lease renewed by a request sent at `renew_sent_s` is surely
    still ours: PostgreSQL stamped it no earlier than we sent it, so its expiry is no earlier than this."""
    return renew_sent_s + lease_s


def stalled(last_progress_s: float, now_s: float, stall_s: float) -> bool:
    return now_s - last_progress_s > stall_s


async def check_fence(conn: asyncpg.Connection) -> None:
    """In the apply's transaction: the lease this task applies under (`APPLYING`) is still ours at its generation,
    locked until the commit; raises ShardLost otherwise. No fence set (an apply that is not a shard's): nothing."""
    fence = APPLYING.get()
    if fence is None:
        return
    row = await conn.fetchrow(
        """select set_config('idle_in_transaction_session_timeout', $3, true) as _, owner, generation
           from bridge_shard_leases where shards = $1 and shard = $2 for share""",
        fence.shards, fence.shard, f"{int(fence.lease_s * 1000)}ms")
    if row is None or row["owner"] != fence.owner or row["generation"] != fence.generation:
        raise ShardLost(f"shard {fence.shard}/{fence.shards}: lease generation {fence.generation} of {fence.owner} "
                        f"is no longer current ({None if row is None else (row['owner'], row['generation'])})")


class ShardLeases:
    """One instance's leases, on its own connection (autocommit statements, one at a time)."""

    def __init__(self, conn: asyncpg.Connection, member: str, shards: int, times: LeaseTimes) -> None:
        self.conn, self.member, self.shards, self.times = conn, member, shards, times

    async def beat(self) -> int:
        """This instance is alive; returns how many instances are (beaten within a lease, this one included)."""
        await self.conn.execute(
            """insert into bridge_members (member, seen_at) values ($1, clock_timestamp())
               on conflict (member) do update set seen_at = excluded.seen_at""", self.member)
        await self.conn.execute("delete from bridge_members where seen_at < clock_timestamp() - make_interval(secs => $1)",
                                self.times.lease_s * MEMBERS_FORGOTTEN_AFTER_LEASES)
        live: int = await self.conn.fetchval(
            "select count(*) from bridge_members where seen_at >= clock_timestamp() - make_interval(secs => $1)",
            self.times.lease_s)
        return live

    async def leave(self) -> None:
        await self.conn.execute("delete from bridge_members where member = $1", self.member)

    async def take(self, shard: int) -> int | None:
        """The shard if it is free, its lease lapsed or it is this instance's own (taken again after a lost
        connection: a new generation fences the old worker): its new generation; None if another instance holds it."""
        try:
            async with self.conn.transaction():
                await self.conn.execute(f"set local lock_timeout = {TAKE_LOCK_TIMEOUT_MS}")
                generation: int | None = await self.conn.fetchval(
                    """insert into bridge_shard_leases as l (shards, shard, owner, generation, renewed_at)
                       values ($1, $2, $3, 1, clock_timestamp())
                       on conflict (shards, shard) do update
                         set owner = excluded.owner, generation = l.generation + 1, renewed_at = clock_timestamp()
                         where l.owner is null or l.owner = excluded.owner
                            or l.renewed_at < clock_timestamp() - make_interval(secs => $4)
                       returning generation""", self.shards, shard, self.member, self.times.lease_s)
        except asyncpg.LockNotAvailableError:
            return None  # an apply of the old owner holds the row: next round (its session ends in a lease)
        return generation

    async def renew(self, held: Mapping[int, int]) -> set[int]:
        """Renew every lease in `held` (shard -> generation); returns the shards still ours."""
        if not held:
            return set()
        rows = await self.conn.fetch(
            """update bridge_shard_leases set renewed_at = clock_timestamp()
               where shards = $1 and owner = $2
                 and (shard, generation) in (select * from unnest($3::int[], $4::bigint[]))
               returning shard""", self.shards, self.member, list(held), list(held.values()))
        return {r["shard"] for r in rows}

    async def release(self, shard: int, generation: int) -> None:
        """Let the shard go (another instance takes it at once); nothing if it was no longer ours."""
        await self.conn.execute(
            """update bridge_shard_leases set owner = null
               where shards = $1 and shard = $2 and owner = $3 and generation = $4""",
            self.shards, shard, self.member, generation)

    def fence(self, shard: int, generation: int) -> Fence:
        return Fence(self.shards, shard, self.member, generation, self.times.lease_s)
