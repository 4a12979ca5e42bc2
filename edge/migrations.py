"""Versioned schema changes of the store db (SQLite's `PRAGMA user_version`).

How the store db's layout is made, every time it opens (`StoreDb.open`):
1. `refuse_newer`: a db file whose user_version is above what this build knows (written by a newer freshmesh) is
   refused with a message saying so, before anything touches it: an older build must not write into a layout it
   does not know (a rollback of the software keeps the newer file as it was; restore its backup or upgrade).
2. Every module's SCHEMA string runs (`create table/index if not exists`): idempotent, it makes what is missing and
   leaves what exists. A module's `create table` statement is its table's FIRST layout and is never edited
   afterwards; a new table goes into its module's SCHEMA.
3. `upgrade`: the numbered MIGRATIONS above the file's user_version run in order, each in its own transaction
   together with the user_version it brings, so a crash leaves the file at a version it really has. They run on new
   and old files alike (a new file's tables were just made at their first layout), so a change to an existing
   table (ALTER TABLE ... ADD COLUMN, a new index on a new column, a data fix) is a new entry here and nowhere else.
   A file from before versioning is version 0: exactly the first layouts.

Guarantees: a file is upgraded in place, keeping every row; never twice (the version is committed with the step);
a file newer than this build is refused, never downgraded or written.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import aiosqlite


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    why: str
    sql: str  # one or more statements, run in one transaction with the version bump


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "points at the till read a member's recent sales (edge/points_till.py): index them by member",
              "create index if not exists sales_member_at on sales (member_id, at_ms);"),
    Migration(2, "a write-off retried by its id is found by its movement's reference (edge/receiving_db.py)",
              "create index if not exists movements_reference on movements (reference);"),
    Migration(3, "a whole return marks its sale's coupon released rather than deleting the redemption "
                 "(edge/return_promotions_db.py): usable again only once the cloud's wallet shows it issued",
              "alter table coupon_redemptions add column released_by text;"),
    Migration(4, "a return keeps what it gave back by each method (edge/returns_db.py): a split sale's later "
                 "returns, and the cash-up, count each tender's refunds as they were given",
              "alter table returns add column refunds text;"),
)
CURRENT = MIGRATIONS[-1].version if MIGRATIONS else 0


class NewerStoreDb(RuntimeError):
    """The store db was written by a newer freshmesh than this one."""


async def version_of(db: aiosqlite.Connection) -> int:
    async with db.execute("pragma user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def refuse_newer(db: aiosqlite.Connection, path: Path, current: int = CURRENT) -> int:
    """The file's version; NewerStoreDb if it is above `current`."""
    found = await version_of(db)
    if found > current:
        raise NewerStoreDb(f"the store db {path} has schema version {found}, newer than this freshmesh edge knows "
                           f"(up to {current}): it was written by a newer version. Run that version (or newer), or "
                           f"restore a backup made by this one; the file was left untouched")
    return found


async def upgrade(db: aiosqlite.Connection, path: Path, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Run the migrations above the file's version, each in its own transaction; the versions applied."""
    found = await refuse_newer(db, path, migrations[-1].version if migrations else 0)
    applied = []
    for step in migrations:
        if step.version <= found:
            continue
        await db.execute("begin immediate")
        try:
            for statement in _statements(step.sql):
                await db.execute(statement)
            await db.execute(f"pragma user_version = {int(step.version)}")
        except BaseException:
            if db.in_transaction:
                await db.execute("rollback")
            raise
        await db.execute("commit")
        applied.append(step.version)
    return applied


def _statements(sql: str) -> list[str]:
    """The statements of a migration (split where sqlite3 says a statement is complete)."""
    out, part = [], ""
    for chunk in sql.split(";"):  # a ';' inside a quoted string leaves the statement incomplete: it goes on
        part += chunk + ";"
        if sqlite3.complete_statement(part):
            if part.strip(" \n\t;"):
                out.append(part.strip())
            part = ""
    return out
