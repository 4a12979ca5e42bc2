"""The cloud's PostgreSQL schema, as numbered migrations applied at start (idempotent, under an advisory lock)."""
from __future__ import annotations

import asyncpg

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "actor journal and snapshots", """
        create table actor_journal (
            actor   text   not null,
            seq     bigint not null,
            at_ms   bigint not null,
            command bytea  not null,
            primary key (actor, seq)
        );
        create table actor_snapshot (
            actor text   primary key,
            seq   bigint not null,
            at_ms bigint not null,
            state bytea  not null
        );
    """),
]
_LOCK_KEY = 0x46524D53  # "FRMS": one migrator at a time


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply the migrations this database lacks; returns the versions applied now."""
    applied_now = []
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute("""create table if not exists schema_migrations (
                                  version int primary key, name text not null,
                                  applied_at timestamptz not null default now())""")
        done = {r["version"] for r in await conn.fetch("select version from schema_migrations")}
        for version, name, sql in MIGRATIONS:
            if version not in done:
                await conn.execute(sql)
                await conn.execute("insert into schema_migrations (version, name) values ($1, $2)", version, name)
                applied_now.append(version)
    return applied_now
