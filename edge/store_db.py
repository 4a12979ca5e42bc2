"""The store's own database in SQLite (aiosqlite, WAL, synchronous=FULL): what the box knows, durable on power loss.

The StoreActor's shell: it loads the state the pure core decides on, and `apply()` executes an Outcome's effects
in **one transaction** - a sale, its stock movements and its outbox rows commit together, so once `apply` returns
the sale exists and will reach the cloud even if the process is killed the next instant. A cloud message's event
id goes into `inbox` in the same transaction as its effect. Outbox rows stay until the cloud's business ack names
them; dropping them raises the persisted seq floor in the same transaction, so the highest event seq ever
committed is always max(outbox seq, floor) - the actor recovers its in-memory seq from that at start.

Personal data: the member cache holds no phone number, only its keyed hash under this store's lookup key and the
masked form receipts show. The database file, its -wal and -shm are readable by their owner only (0600, in a 0700
directory), and deleted rows are overwritten (`secure_delete`), so an erased member leaves nothing in free pages.
"""
from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
from aiosqlite import Row

from edge import (
    budget_db,
    coupons_db,
    lots_db,
    markdowns_db,
    migrations,
    picking_db,
    receiving_db,
    restock_db,
    returns_db,
    shifts_db,
    stocktake_db,
    transfers_db,
)
from edge.core.cloud_messages import AckedRow
from edge.core.outcome import (
    AddUnsettled,
    ChangeEscrow,
    CloseShift,
    DropAcked,
    DropMember,
    InsertOrder,
    InsertSale,
    MarkApplied,
    MoveStock,
    OpenShift,
    Publish,
    RecordPick,
    RecordTopUp,
    SetAllocation,
    SetAsideRefused,
    SetLotCost,
    SetOrderStatus,
    SettleStoredValue,
    StoreBook,
    UpsertMember,
)
from edge.core.state import Member, PendingOrder, StockLevel
from edge.shelf_areas_db import EXECUTORS as AREA_EXECUTORS
from edge.shelf_areas_db import SCHEMA as AREA_SCHEMA
from protocol import codec, phones
from protocol.errors import ProtocolError
from protocol.lots import LotLevel

BUSY_TIMEOUT_MS = 5_000
SEQ_FLOOR_KEY = "event_seq_floor"  # the highest seq of the events the cloud acked (and the outbox dropped)
LEGACY_SEQ_KEY = "event_seq"  # the counter older boxes kept per event; still counted when recovering
SQL_VARIABLES_MAX = 500  # ids per `in (...)` query (SQLite's limit is higher; this keeps statements small)

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
create table if not exists refused_events (event_id text primary key, seq integer not null, kind text not null,
    frame blob not null, reason text not null, refused_ms integer not null);
create table if not exists orders (order_id text primary key, pickup_code text, status text not null,
    payload text not null);
create index if not exists orders_code on orders (pickup_code);
create table if not exists members (member_id text primary key, phone_hash blob, phone_masked text, member_code text,
    level text, stored_value_fen integer not null, points integer not null, offline_spent_fen integer not null default 0);
create table if not exists unsettled_spends (reference text primary key, member_id text not null,
    amount_fen integer not null, offline integer not null, at_ms integer not null);
create index if not exists unsettled_spends_member on unsettled_spends (member_id);
create table if not exists shifts (shift_id text primary key, cashier_id text not null, lane text not null,
    opened_ms integer not null, closed_ms integer);
create table if not exists topups (topup_id text primary key, lane text not null, member_id text not null,
    amount_fen integer not null, cashier_id text not null, shift_id text not null, at_ms integer not null);
create index if not exists topups_at on topups (at_ms);
create table if not exists allocations (scope text not null, key text not null, ratio_bp integer not null,
    version integer not null, primary key (scope, key));
-- a cache from before spends were kept one by one kept their sum on the member: it becomes one spend to settle
insert into unsettled_spends (reference, member_id, amount_fen, offline, at_ms)
    select 'legacy:' || member_id, member_id, offline_spent_fen, 1, 0 from members where offline_spent_fen > 0
    on conflict (reference) do nothing;
update members set offline_spent_fen = 0 where offline_spent_fen > 0;
"""
# After `_unclear_phones` (a box from before the phone left the cache has no phone_hash column until then).
MEMBER_INDEXES = """
create index if not exists members_phone_hash on members (phone_hash);
create index if not exists members_code on members (member_code);
"""
# a member as the till sees them: the cached snapshot, and what was spent here that it does not include yet
MEMBER_COLUMNS = ("member_id, phone_masked, member_code, level, stored_value_fen, points, "
                  "(select coalesce(sum(amount_fen), 0) from unsettled_spends u where u.member_id = members.member_id), "
                  "(select coalesce(sum(amount_fen), 0) from unsettled_spends u where u.member_id = members.member_id "
                  "and u.offline = 1)")
FILE_MODE, DIR_MODE = 0o600, 0o700
log = logging.getLogger("freshmesh.edge")
UPSERT_META = "insert into meta (key, value) values (?, ?) on conflict (key) do update set value = excluded.value"


def private_files(path: Path, before_open: bool) -> None:
    """The database's directory 0700 (unless it is shared, e.g. sticky like /tmp, or not ours) and the database, its
    -wal and -shm 0600 (SQLite gives the -wal and -shm the main file's mode; pre-creating it 0600 covers them).

    Only by path once SQLite has the file open (`before_open=False`): closing any descriptor of a file drops every
    POSIX lock this process holds on it, SQLite's included, and another process's connection would then take
    itself for the last one and checkpoint and delete the WAL under this one (found by the kill -9 test: writes
    went on into an unlinked WAL)."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    info = path.parent.stat()
    if info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX and stat.S_IMODE(info.st_mode) != DIR_MODE:
        path.parent.chmod(DIR_MODE)
    if before_open:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, FILE_MODE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and stat.S_IMODE(file.stat().st_mode) != FILE_MODE:
            file.chmod(FILE_MODE)


class StoreDb:
    def __init__(self, path: Path, member_lookup_key: bytes | None = None) -> None:
        """`member_lookup_key`: this store's key of phone hashes (`protocol.policy.member_lookup_key`); it is needed
        only to convert a cache that an older version kept with clear phones."""
        self.path = path
        self.member_lookup_key = member_lookup_key
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    @property
    def writer(self) -> aiosqlite.Connection:
        """The StoreActor's connection: every write, in its transactions."""
        if self._writer is None:
            raise RuntimeError(f"the store db {self.path} is not open")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        """The relay's, health's and tests' connection: it sees committed data only."""
        if self._reader is None:
            raise RuntimeError(f"the store db {self.path} is not open")
        return self._reader

    async def open(self) -> StoreDb:
        private_files(self.path, before_open=True)
        writer = self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        await writer.execute("pragma journal_mode=WAL")
        await writer.execute("pragma synchronous=FULL")
        await writer.execute("pragma secure_delete=ON")
        await writer.execute(f"pragma busy_timeout={BUSY_TIMEOUT_MS}")
        await migrations.refuse_newer(writer, self.path)  # a newer build's file: untouched (edge/migrations.py)
        await writer.executescript(SCHEMA + picking_db.SCHEMA)
        await writer.executescript(returns_db.SCHEMA + receiving_db.SCHEMA + restock_db.SCHEMA)
        await writer.executescript(lots_db.SCHEMA)
        await writer.executescript(markdowns_db.SCHEMA)
        await writer.executescript(stocktake_db.SCHEMA + AREA_SCHEMA)
        await writer.executescript(transfers_db.SCHEMA)
        await writer.executescript(coupons_db.SCHEMA)
        await writer.executescript(budget_db.SCHEMA)
        await writer.executescript(shifts_db.SCHEMA)  # floats, voids, cash-ups of shifts (edge/shifts_db.py)
        await self._unclear_phones()
        await writer.executescript(MEMBER_INDEXES)
        await migrations.upgrade(writer, self.path)  # the numbered changes since the tables' first layouts
        private_files(self.path, before_open=False)  # the -wal and -shm exist now
        # A second connection for readers outside the actor. On the actor's connection a read issued between the
        # awaits of an open transaction would see its uncommitted rows - and could publish a sale that a power
        # cut then erases.
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute(f"pragma busy_timeout={BUSY_TIMEOUT_MS}")
        return self

    async def _unclear_phones(self) -> None:
        """A cache from before phones left it has a clear `phone` column: hash and mask each phone with this store's
        key (without the key the rows keep no phone: the cloud's next snapshot of the member brings the hash), drop
        the column, and rewrite the file so no clear number stays in free pages or the WAL."""
        async with self.writer.execute("pragma table_info(members)") as cur:
            columns = {row[1] for row in await cur.fetchall()}
        if "phone" not in columns:
            return
        db = self.writer
        await db.execute("begin immediate")
        try:
            await db.execute("alter table members add column phone_hash blob")
            await db.execute("alter table members add column phone_masked text")
            async with db.execute("select member_id, phone from members where phone is not null") as cur:
                rows = list(await cur.fetchall())
            for member_id, phone in rows:
                try:
                    e164 = phones.normalise(phone)
                except ProtocolError:
                    continue
                digest = phones.lookup_hash(self.member_lookup_key, e164) if self.member_lookup_key else None
                await db.execute("update members set phone_hash = ?, phone_masked = ? where member_id = ?",
                                 (digest, phones.masked(e164), member_id))
            await db.execute("alter table members drop column phone")
        except BaseException:
            await db.execute("rollback")
            raise
        await db.execute("commit")
        await db.execute("vacuum")  # rewrites every page: the old rows leave free pages; in WAL mode via the WAL,
        async with db.execute("pragma wal_checkpoint(TRUNCATE)") as cur:  # so copy it back and empty it
            await cur.fetchall()
        log.info("member cache of %s: %d phones replaced by their hashes", self.path.name, len(rows))

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None

    # ---- what the actor loads -------------------------------------------------------------------------------
    async def _one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        async with self.writer.execute(sql, params) as cur:
            return await cur.fetchone()

    async def _all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        async with self.writer.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def _count(self, sql: str) -> int:
        async with self.reader.execute(sql) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = await self._one("select value from meta where key = ?", (key,))
        return row[0] if row else default

    async def recover_seq(self) -> int:
        """The highest event seq ever committed (0 for a new box): the outbox holds every unacked event, the floor
        every acked one's seq, so the sequence continues above everything ever published, even after kill -9."""
        row = await self._one("select coalesce(max(seq), 0) from outbox")
        outbox = int(row[0]) if row else 0
        floors = [int(r[0]) for r in await self._all("select value from meta where key in (?, ?)",
                                                     (SEQ_FLOOR_KEY, LEGACY_SEQ_KEY))]
        return max([outbox, *floors])

    async def stock_level(self, sku: str) -> StockLevel:
        row = await self._one("select on_hand, escrow from stock where sku = ?", (sku,))
        return StockLevel(sku, *(row or (0, 0)))

    async def stock_levels(self, skus=None) -> dict[str, StockLevel]:
        """The given SKUs' levels (those with no row yet are left out), or every SKU's."""
        if skus is None:
            rows = await self._all("select sku, on_hand, escrow from stock order by sku")
        else:
            skus = sorted(set(skus))
            rows = []
            for i in range(0, len(skus), SQL_VARIABLES_MAX):
                part = skus[i:i + SQL_VARIABLES_MAX]
                rows += await self._all(f"select sku, on_hand, escrow from stock where sku in ({','.join('?' * len(part))})",  # noqa: S608
                                        part)
        return {r[0]: StockLevel(*r) for r in rows}

    async def lot_levels(self, sku: str) -> list[LotLevel]:
        return await lots_db.lot_levels(self.writer, sku)

    async def stock_view(self) -> list[dict]:
        """Every SKU's on-hand, escrow and lots (committed data: the reader's)."""
        return await lots_db.stock_view(self.reader)

    async def stock_audit(self) -> list[str]:
        """Violations of Σ movements = on_hand, per SKU and per lot ([] when they hold)."""
        return await lots_db.audit(self.reader)

    async def member(self, phone_hash: bytes | None = None, member_code: str | None = None,
                     member_id: str | None = None) -> Member | None:
        column, value = (("phone_hash", phone_hash) if phone_hash else ("member_id", member_id) if member_id
                         else ("member_code", member_code))
        row = await self._one(f"select {MEMBER_COLUMNS} from members where {column} = ?", (value,))  # noqa: S608
        return Member(*row) if row else None

    async def pending_order(self, pickup_code: str) -> PendingOrder | None:
        row = await self._one("select order_id, status, payload from orders where pickup_code = ?", (pickup_code,))
        if row is None:
            return None
        lines = tuple((line["sku"], line["qty"]) for line in json.loads(row[2])["lines"])
        return PendingOrder(row[0], row[1], lines)

    async def order(self, order_id: str) -> tuple[str, dict] | None:
        """(status, payload) of an online order the store received (or had sent back), by its id."""
        row = await self._one("select status, payload from orders where order_id = ?", (order_id,))
        return (row[0], json.loads(row[1])) if row else None

    async def seen_cloud_message(self, event_id: str) -> bool:
        return await self._one("select 1 from inbox where event_id = ?", (event_id,)) is not None

    async def acked_rows(self, event_ids: list[str]) -> list[AckedRow]:
        """The outbox rows an ack names; sale frames only when some member has unsettled stored value (only then
        is there anything to settle)."""
        unsettled = await self._one("select 1 from unsettled_spends limit 1") is not None
        frame = "case when kind = 'sale.committed' then frame end" if unsettled else "null"
        rows = []
        for i in range(0, len(event_ids), SQL_VARIABLES_MAX):
            part = event_ids[i:i + SQL_VARIABLES_MAX]
            rows += await self._all(f"select seq, event_id, kind, {frame} from outbox "  # noqa: S608
                                    f"where event_id in ({','.join('?' * len(part))})", part)
        return [AckedRow(*r) for r in rows]

    # ---- what the relay, health and tests read (committed data only) ------------------------------------------
    async def outbox(self, after_seq: int, limit: int) -> list[tuple[int, str, bytes, str]]:
        async with self.reader.execute("select seq, event_id, frame, kind from outbox where seq > ? order by seq "
                                       "limit ?", (after_seq, limit)) as cur:
            return [tuple(r) async for r in cur]

    async def outbox_depth(self) -> int:
        return await self._count("select count(*) from outbox")

    async def refused_events(self) -> list[dict]:
        """Events the cloud refused for good, newest first: what the store's staff and support look into."""
        async with self.reader.execute("select event_id, seq, kind, reason, refused_ms from refused_events "
                                       "order by refused_ms desc, seq desc limit 100") as cur:
            return [dict(zip(("event_id", "seq", "kind", "reason", "refused_ms"), row, strict=True))
                    for row in await cur.fetchall()]

    async def sale(self, sale_id: str) -> dict | None:
        async with self.reader.execute("select sale_id, lane, total_fen, lines, payments, member_id, offline, at_ms "
                                       "from sales where sale_id = ?", (sale_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return {"sale_id": row[0], "lane": row[1], "total_fen": row[2], "lines": json.loads(row[3]),
                "payments": json.loads(row[4]), "member_id": row[5], "offline": bool(row[6]), "at_ms": row[7]}

    async def unsettled(self, member_id: str) -> list[dict]:
        """The member's stored-value spends here that the cached balance does not include yet."""
        async with self.reader.execute("select reference, amount_fen, offline from unsettled_spends where member_id = ? "
                                       "order by at_ms, reference", (member_id,)) as cur:
            return [{"reference": r[0], "amount_fen": r[1], "offline": bool(r[2])} for r in await cur.fetchall()]

    async def topped_up_since(self, since_ms: int) -> int:
        """Cash top-ups taken at this store's tills since `since_ms` (the start of the chain day)."""
        row = await self._one("select coalesce(sum(amount_fen), 0) from topups where at_ms >= ?", (since_ms,))
        return int(row[0]) if row else 0

    async def count(self, table: str) -> int:
        assert table in ("sales", "movements", "outbox", "inbox", "orders", "members", "refused_events", "topups",
                         "shifts")
        return await self._count(f"select count(*) from {table}")  # noqa: S608 - table is from the list above

    # ---- executing effects ------------------------------------------------------------------------------------
    async def apply(self, effects) -> None:
        """Every effect in one transaction (BEGIN IMMEDIATE ... COMMIT), or none of them (ROLLBACK on any error)."""
        if not effects:
            return
        db = self.writer
        await db.execute("begin immediate")
        try:
            for effect in effects:
                await _EXECUTORS[type(effect)](db, effect)
        except BaseException:
            await db.execute("rollback")
            raise
        await db.execute("commit")


async def _change_stock(db, sku: str, on_hand_delta: int, escrow_delta: int) -> None:
    await db.execute("insert into stock (sku, on_hand, escrow) values (?, 0, 0) on conflict (sku) do nothing", (sku,))
    await db.execute("update stock set on_hand = on_hand + ?, escrow = escrow + ? where sku = ?",
                     (on_hand_delta, escrow_delta, sku))


async def _outbox(db, event) -> None:
    await db.execute("insert into outbox (seq, event_id, kind, frame, created_ms) values (?, ?, ?, ?, ?)",
                     (event.seq, event.event_id, event.KIND, codec.encode(event), event.wall_ms))


async def _move_stock(db, e: MoveStock) -> None:
    m = await lots_db.split(db, e.event)  # the lots it takes from (or puts into), decided now if the core did not
    await _change_stock(db, m.sku, m.delta, e.escrow_delta)
    await lots_db.move(db, m)
    await db.execute("""insert into movements (event_id, sku, delta, reason, shrinkage_reason, reference, on_hand_after,
                        at_ms) values (?, ?, ?, ?, ?, ?, ?, ?)""",
                     (m.event_id, m.sku, m.delta, m.reason, m.shrinkage_reason, m.reference, m.on_hand_after, m.wall_ms))
    await _outbox(db, m)


async def _insert_sale(db, e: InsertSale) -> None:
    await db.execute("insert into sales (sale_id, lane, total_fen, lines, payments, member_id, offline, at_ms) "
                     "values (?, ?, ?, ?, ?, ?, ?, ?)",
                     (e.sale_id, e.lane, e.total_fen,
                      json.dumps([[line.sku, line.quantity.amount, line.quantity.unit, line.amount_fen]
                                  for line in e.lines]),
                      json.dumps([[p.method, p.amount_fen, p.reference] for p in e.payments]),
                      e.member_id, int(e.offline), e.at_ms))


async def _upsert_member(db, e: UpsertMember) -> None:
    m = e.member
    await db.execute("""insert into members (member_id, phone_hash, phone_masked, member_code, level, stored_value_fen,
                        points) values (?, ?, ?, ?, ?, ?, ?) on conflict (member_id) do update set
                        phone_hash = excluded.phone_hash, phone_masked = excluded.phone_masked,
                        member_code = excluded.member_code, level = excluded.level, points = excluded.points,
                        stored_value_fen = excluded.stored_value_fen""",
                     (m.member_id, m.phone_hash or None, m.phone_masked or None, m.member_code, m.level,
                      m.stored_value_fen, m.points))
    if m.settles:  # this store's spends the new balance includes: no longer unsettled
        await _forget_settled(db, m.member_id, m.settles)


async def _drop_member(db, e: DropMember) -> None:
    await db.execute("delete from members where member_id = ?", (e.member_id,))
    await db.execute("delete from unsettled_spends where member_id = ?", (e.member_id,))


async def _forget_settled(db, member_id: str, references) -> None:
    """The member's spends with these references are settled at the cloud: no longer counted as unsettled."""
    await db.executemany("delete from unsettled_spends where reference = ? and member_id = ?",
                         [(r, member_id) for r in references])


async def _settle(db, e: SettleStoredValue) -> None:
    await _forget_settled(db, e.member_id, e.references)
    # a spend from before they were kept one by one is in the member's legacy sum: take the amount off it
    await db.execute("update unsettled_spends set amount_fen = max(amount_fen - ?, 0) where reference = ?",
                     (e.amount_fen, f"legacy:{e.member_id}"))
    await db.execute("delete from unsettled_spends where reference = ? and amount_fen = 0", (f"legacy:{e.member_id}",))


async def _set_order_status(db, e: SetOrderStatus) -> None:
    if e.only_from is None:
        await db.execute("update orders set status = ? where order_id = ?", (e.status, e.order_id))
    else:
        only = (e.only_from,) if isinstance(e.only_from, str) else e.only_from
        await db.execute(f"update orders set status = ? where order_id = ? and status in ({','.join('?' * len(only))})",  # noqa: S608
                         (e.status, e.order_id, *only))


async def _store_book(db, e: StoreBook) -> None:
    await db.executemany(UPSERT_META, [(e.key, e.text), (f"{e.key}_version", str(e.version))])


async def _set_aside_refused(db, e: SetAsideRefused) -> None:
    await db.executemany("insert into refused_events (event_id, seq, kind, frame, reason, refused_ms) "
                         "select event_id, seq, kind, frame, ?, ? from outbox where event_id = ? "
                         "on conflict (event_id) do nothing", [(why, e.at_ms, i) for i, why in e.refusals])


async def _drop_acked(db, e: DropAcked) -> None:
    await db.executemany("delete from outbox where event_id = ?", [(i,) for i in e.event_ids])
    await db.execute("insert into meta (key, value) values (?, ?) on conflict (key) do update set value = "
                     "cast(max(cast(meta.value as integer), cast(excluded.value as integer)) as text)",
                     (SEQ_FLOOR_KEY, str(e.seq_floor)))


_EXECUTORS: dict[type, Any] = {
    MoveStock: _move_stock,
    ChangeEscrow: lambda db, e: _change_stock(db, e.sku, 0, e.delta),
    Publish: lambda db, e: _outbox(db, e.event),
    InsertSale: _insert_sale,
    DropMember: _drop_member,
    AddUnsettled: lambda db, e: db.execute(
        "insert into unsettled_spends (reference, member_id, amount_fen, offline, at_ms) values (?, ?, ?, ?, "
        "cast(strftime('%s', 'now') as integer) * 1000) on conflict (reference) do nothing",
        (e.reference, e.member_id, e.amount_fen, int(e.offline))),
    SettleStoredValue: _settle,
    RecordTopUp: lambda db, e: db.execute(
        "insert into topups (topup_id, lane, member_id, amount_fen, cashier_id, shift_id, at_ms) "
        "values (?, ?, ?, ?, ?, ?, ?)", (e.topup_id, e.lane, e.member_id, e.amount_fen, e.cashier_id, e.shift_id, e.at_ms)),
    OpenShift: lambda db, e: db.execute("insert into shifts (shift_id, cashier_id, lane, opened_ms) values (?, ?, ?, ?)",
                                        (e.shift_id, e.cashier_id, e.lane, e.at_ms)),
    CloseShift: lambda db, e: db.execute("update shifts set closed_ms = ? where shift_id = ? and closed_ms is null",
                                         (e.at_ms, e.shift_id)),
    InsertOrder: lambda db, e: db.execute(
        "insert into orders (order_id, pickup_code, status, payload) values (?, ?, 'to_pick', ?) "
        "on conflict (order_id) do nothing", (e.order_id, e.pickup_code, json.dumps(e.payload))),
    SetOrderStatus: _set_order_status,
    RecordPick: picking_db.record_pick,
    UpsertMember: _upsert_member,
    MarkApplied: lambda db, e: db.execute("insert into inbox (event_id, kind, applied_ms) values (?, ?, ?)",
                                          (e.event_id, e.kind, e.at_ms)),
    StoreBook: _store_book,
    SetAsideRefused: _set_aside_refused,
    SetLotCost: lots_db.set_cost,
    DropAcked: _drop_acked,
    **returns_db.EXECUTORS,
    **receiving_db.EXECUTORS,
    **restock_db.EXECUTORS,
    **stocktake_db.EXECUTORS,
    **AREA_EXECUTORS,
    **transfers_db.EXECUTORS,
    **coupons_db.EXECUTORS,
    **budget_db.EXECUTORS,
    **shifts_db.EXECUTORS,
    SetAllocation: lambda db, e: db.execute(  # HQ's ratio: only a newer version replaces the one kept
        "insert into allocations (scope, key, ratio_bp, version) values (?, ?, ?, ?) on conflict (scope, key) do "
        "update set ratio_bp = excluded.ratio_bp, version = excluded.version where excluded.version > allocations.version",
        (e.scope, e.key, e.ratio_bp, e.version)),
}
