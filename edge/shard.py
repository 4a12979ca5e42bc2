"""The store's shard in SQLite (aiosqlite, WAL, synchronous=FULL): what the box knows, durable on power loss.

A sale, its stock movements and its outbox rows commit in **one transaction**: once `commit_sale` returns, the
sale exists and will reach the cloud, even if the process is killed the next instant. Cloud commands are applied
with their event id recorded in `inbox` in the same transaction, so a redelivered command changes nothing.
Outbox rows stay until the cloud's business ack names their event.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

SCHEMA = """
create table if not exists meta (key text primary key, value text not null);
create table if not exists stock (sku text primary key, on_hand integer not null default 0,
                                  escrow integer not null default 0);
create table if not exists movements (id integer primary key autoincrement, event_id text not null unique,
    sku text not null, delta integer not null, reason text not null, shrinkage_reason text not null,
    reference text not null, on_hand_after integer not null, at_ms integer not null);
create table if not exists sales (sale_id text primary key, lane text not null, total_fen integer not null,
    lines text not null, payments text not null, member_id text, offline integer not null, at_ms integer not null,
    receipt blob);
create table if not exists outbox (seq integer primary key, event_id text not null unique, kind text not null,
    frame blob not null, created_ms integer not null);
create table if not exists inbox (event_id text primary key, kind text not null, applied_ms integer not null);
create table if not exists orders (order_id text primary key, pickup_code text, status text not null,
    payload text not null);
create index if not exists orders_code on orders (pickup_code);
create table if not exists members (member_id text primary key, phone text, member_code text, level text,
    stored_value_fen integer not null, points integer not null, offline_spent_fen integer not null default 0);
"""


@dataclass
class Position:
    sku: str
    on_hand: int
    escrow: int


class Shard:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: aiosqlite.Connection | None = None  # the StoreActor's: every write, in its transactions
        self.reader: aiosqlite.Connection | None = None  # the relay's and health's: sees committed data only

    async def open(self) -> "Shard":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = await aiosqlite.connect(self.path, isolation_level=None)
        await self.db.execute("pragma journal_mode=WAL")
        await self.db.execute("pragma synchronous=FULL")
        await self.db.execute("pragma busy_timeout=5000")
        await self.db.executescript(SCHEMA)
        # A second connection for readers outside the actor. On the actor's connection a read issued between the
        # awaits of an open transaction would see its uncommitted rows - and could publish a sale that a power
        # cut then erases.
        self.reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self.reader.execute("pragma busy_timeout=5000")
        return self

    async def close(self) -> None:
        for conn in (self.reader, self.db):
            if conn is not None:
                await conn.close()
        self.db = self.reader = None

    # ---- meta ---------------------------------------------------------------------------------------
    async def get_meta(self, key: str, default: str | None = None) -> str | None:
        async with self.reader.execute("select value from meta where key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else default

    async def set_meta(self, key: str, value: str) -> None:
        await self.db.execute("insert into meta (key, value) values (?, ?) on conflict (key) do update set value = "
                              "excluded.value", (key, value))

    # ---- a transaction with sequence numbers ---------------------------------------------------------------
    async def transaction(self):
        return _Tx(self.db)

    async def position(self, sku: str) -> Position:
        async with self.db.execute("select on_hand, escrow from stock where sku = ?", (sku,)) as cur:
            row = await cur.fetchone()
        return Position(sku, *(row or (0, 0)))

    async def positions(self) -> list[Position]:
        async with self.db.execute("select sku, on_hand, escrow from stock order by sku") as cur:
            return [Position(*r) async for r in cur]

    async def outbox(self, after_seq: int, limit: int) -> list[tuple[int, str, bytes, str]]:
        async with self.reader.execute("select seq, event_id, frame, kind from outbox where seq > ? order by seq limit ?",
                                   (after_seq, limit)) as cur:
            return [tuple(r) async for r in cur]

    async def outbox_depth(self) -> int:
        async with self.reader.execute("select count(*) from outbox") as cur:
            return (await cur.fetchone())[0]

    async def drop_acked(self, event_ids: list[str], settled=None) -> int:
        """One transaction (one fsync) for the whole ack. `settled(frame)` names stored value the cloud now holds
        for an acked sale, so the member cache stops counting it as unsettled."""
        async with await self.transaction() as tx:
            unsettled = await tx.fetchone("select 1 from members where offline_spent_fen > 0 limit 1")
            if settled is not None and unsettled:  # only then is there anything to look for
                marks = ",".join("?" * len(event_ids))
                async with self.db.execute(f"select frame from outbox where kind = 'sale.committed' "  # noqa: S608
                                           f"and event_id in ({marks})", event_ids) as cur:
                    frames = [r[0] async for r in cur]
                for frame in frames:
                    done = settled(frame)
                    if done:
                        await tx.execute("update members set offline_spent_fen = max(offline_spent_fen - ?, 0) "
                                         "where member_id = ?", (done[1], done[0]))
            await self.db.executemany("delete from outbox where event_id = ?", [(e,) for e in event_ids])
        return len(event_ids)

    async def seen_command(self, event_id: str) -> bool:
        async with self.db.execute("select 1 from inbox where event_id = ?", (event_id,)) as cur:
            return await cur.fetchone() is not None

    async def sale(self, sale_id: str):
        async with self.db.execute("select sale_id, lane, total_fen, lines, payments, member_id, offline, at_ms "
                                   "from sales where sale_id = ?", (sale_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return {"sale_id": row[0], "lane": row[1], "total_fen": row[2], "lines": json.loads(row[3]),
                "payments": json.loads(row[4]), "member_id": row[5], "offline": bool(row[6]), "at_ms": row[7]}

    async def count(self, table: str) -> int:
        assert table in ("sales", "movements", "outbox", "inbox", "orders", "members")
        async with self.reader.execute(f"select count(*) from {table}") as cur:  # noqa: S608 - table is from the list above
            return (await cur.fetchone())[0]


class _Tx:
    """`async with await shard.transaction() as tx:` - BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def __aenter__(self) -> "_Tx":
        await self.db.execute("begin immediate")
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        await self.db.execute("rollback" if exc_type else "commit")

    async def execute(self, sql: str, params=()) -> None:
        await self.db.execute(sql, params)

    async def fetchone(self, sql: str, params=()):
        async with self.db.execute(sql, params) as cur:
            return await cur.fetchone()

    async def next_seq(self) -> int:
        row = await self.fetchone("select value from meta where key = 'event_seq'")
        seq = int(row[0]) + 1 if row else 1
        await self.execute("insert into meta (key, value) values ('event_seq', ?) on conflict (key) do update set "
                           "value = excluded.value", (str(seq),))
        return seq

    async def move(self, sku: str, delta_on_hand: int, delta_escrow: int = 0) -> tuple[int, int]:
        await self.execute("insert into stock (sku, on_hand, escrow) values (?, 0, 0) on conflict (sku) do nothing", (sku,))
        await self.execute("update stock set on_hand = on_hand + ?, escrow = escrow + ? where sku = ?",
                           (delta_on_hand, delta_escrow, sku))
        row = await self.fetchone("select on_hand, escrow from stock where sku = ?", (sku,))
        return row[0], row[1]

    async def outbox(self, message, frame: bytes) -> None:
        await self.execute("insert into outbox (seq, event_id, kind, frame, created_ms) values (?, ?, ?, ?, ?)",
                           (message.seq, message.event_id, message.KIND, frame, message.wall_ms))

    async def journal(self, message) -> None:
        await self.execute("""insert into movements (event_id, sku, delta, reason, shrinkage_reason, reference,
                              on_hand_after, at_ms) values (?, ?, ?, ?, ?, ?, ?, ?)""",
                           (message.event_id, message.sku, message.delta, message.reason, message.shrinkage_reason,
                            message.reference, message.on_hand_after, message.wall_ms))

    async def mark_command(self, event_id: str, kind: str, at_ms: int) -> None:
        await self.execute("insert into inbox (event_id, kind, applied_ms) values (?, ?, ?)", (event_id, kind, at_ms))
