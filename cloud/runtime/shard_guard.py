"""The chain's recorded shard counts in PostgreSQL (table `shard_map`, migration 36), checked at every start.

Guarantees: every cloud process of one database (and one actor prefix) runs with the same shard counts, or the
later one refuses to start with a message naming both (`shard_map.judge_shard_map`); the first process records its
counts; counts change only while the sharded actors hold no state (no journal row and no snapshot). The check and
the record are one transaction under a row lock, so two processes starting together cannot record different maps.
"""
from __future__ import annotations

import asyncpg

from cloud.runtime.shard_map import ShardConfig, judge_shard_map

MIGRATION_36 = (36, "the shard counts the chain's actors were made with (cloud/runtime/shard_guard.py)", """
    create table if not exists shard_map (
        prefix        text   primary key,   -- actor name prefix ('' in production; tests keep theirs apart)
        stock_pool    int    not null check (stock_pool > 0),
        member_ledger int    not null check (member_ledger > 0),
        recorded_ms   bigint not null
    );
""")
_LOCK_KEY = 0x46525348  # "FRSH": one shard-map check at a time (the row may not exist yet to be locked)


async def _state_held(conn: asyncpg.Connection, names: list[str]) -> bool:
    """Whether any of these actors has journaled a command or kept a snapshot (by primary key: no scan)."""
    return bool(await conn.fetchval(
        "select exists(select 1 from actor_snapshot where actor = any($1::text[])) "
        "or exists(select 1 from actor_journal where actor = any($1::text[]))", names))


async def settle_shard_map(conn: asyncpg.Connection, shards: ShardConfig, now_ms: int) -> str:
    """Record or check `shards` against the recorded map; returns "record" or "keep", raises ShardConfigError."""
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", _LOCK_KEY)
        row = await conn.fetchrow("select stock_pool, member_ledger from shard_map where prefix = $1", shards.prefix)
        recorded = dict(row) if row is not None else None
        held = False
        if recorded is not None and recorded != shards.counts():
            old = ShardConfig(stock_pool=recorded["stock_pool"], member_ledger=recorded["member_ledger"],
                              prefix=shards.prefix)
            held = await _state_held(conn, old.all_sharded())
        decision = judge_shard_map(recorded, shards, held)
        if decision == "record":
            await conn.execute("""insert into shard_map (prefix, stock_pool, member_ledger, recorded_ms)
                                  values ($1, $2, $3, $4) on conflict (prefix) do update
                                  set stock_pool = excluded.stock_pool, member_ledger = excluded.member_ledger,
                                      recorded_ms = excluded.recorded_ms""",
                               shards.prefix, shards.stock_pool, shards.member_ledger, now_ms)
    return decision
