"""The store's shelf areas in SQLite (edge.core.shelf_areas): one row per SKU that has an area, and who set the map
last. Registered with `edge.store_db` (its SCHEMA run at open, its EXECUTORS merged), so replacing the map is one
transaction: a reader (a stocktake opening in the same mailbox) sees the old map or the new one, never a mix.
"""
from __future__ import annotations

from typing import Any

from edge.core.outcome import SetShelfAreas

SCHEMA = """
create table if not exists shelf_areas (sku text primary key, area text not null);
create table if not exists shelf_areas_set (one integer primary key check (one = 1), set_by text not null,
    set_ms integer not null);
"""


async def set_areas(db, e: SetShelfAreas) -> None:
    await db.execute("delete from shelf_areas")
    await db.executemany("insert into shelf_areas (sku, area) values (?, ?)", list(e.areas))
    await db.execute("insert into shelf_areas_set (one, set_by, set_ms) values (1, ?, ?) on conflict (one) do update "
                     "set set_by = excluded.set_by, set_ms = excluded.set_ms", (e.set_by, e.at_ms))


EXECUTORS: dict[type, Any] = {SetShelfAreas: set_areas}


async def areas(db) -> dict[str, str]:
    """sku -> area, for every SKU the store placed."""
    async with db.execute("select sku, area from shelf_areas") as cur:
        return {sku: area for sku, area in await cur.fetchall()}


async def set_by(db) -> tuple[str, int]:
    async with db.execute("select set_by, set_ms from shelf_areas_set") as cur:
        row = await cur.fetchone()
    return (row[0], row[1]) if row else ("", 0)
