"""The store's record of stocktakes in SQLite: the sessions, their count sheet lines with each count and the book
quantity at the moment of counting, and the reads the decisions and views need. Registered with `edge.store_db`
(its SCHEMA run at open, its EXECUTORS merged), so a count, or an approval with its stock movements and outbox
rows, commits in one transaction with everything else the outcome does.
"""
from __future__ import annotations

import json
from typing import Any

from edge.core.outcome import CloseStocktake, OpenStocktake, RecordCount
from edge.core.stocktake import Line, Stocktake

SCHEMA = """
create table if not exists stocktakes (stocktake_id text primary key, scope text not null, opened_by text not null,
    opened_ms integer not null, status text not null, closed_by text not null default '', closed_ms integer,
    reply text);
create index if not exists stocktakes_status on stocktakes (status);
create table if not exists stocktake_lines (stocktake_id text not null, sku text not null, lot text not null,
    use_by text not null, counted integer, book integer, counted_by text not null default '', counted_ms integer,
    primary key (stocktake_id, sku, lot));
"""
LIST_MAX = 100


async def open_stocktake(db, e: OpenStocktake) -> None:
    await db.execute("insert into stocktakes (stocktake_id, scope, opened_by, opened_ms, status) values (?, ?, ?, ?, "
                     "'open')", (e.stocktake_id, e.scope, e.opened_by, e.at_ms))
    await db.executemany("insert into stocktake_lines (stocktake_id, sku, lot, use_by) values (?, ?, ?, ?)",
                         [(e.stocktake_id, sku, lot, use_by) for sku, lot, use_by in e.lines])


async def record_count(db, e: RecordCount) -> None:
    # a recount replaces the count, and the book with the one of its own moment
    await db.execute("insert into stocktake_lines (stocktake_id, sku, lot, use_by, counted, book, counted_by, "
                     "counted_ms) values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (stocktake_id, sku, lot) do update set "
                     "counted = excluded.counted, book = excluded.book, counted_by = excluded.counted_by, "
                     "counted_ms = excluded.counted_ms",
                     (e.stocktake_id, e.sku, e.lot, e.use_by, e.counted, e.book, e.counted_by, e.at_ms))


async def close_stocktake(db, e: CloseStocktake) -> None:
    await db.execute("update stocktakes set status = ?, closed_by = ?, closed_ms = ?, reply = ? "
                     "where stocktake_id = ? and status = 'open'", (e.status, e.by, e.at_ms, e.reply, e.stocktake_id))


EXECUTORS: dict[type, Any] = {OpenStocktake: open_stocktake, RecordCount: record_count,
                              CloseStocktake: close_stocktake}


async def _rows(db, sql: str, params: tuple = ()) -> list[tuple]:
    async with db.execute(sql, params) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def stocktake(db, stocktake_id: str) -> Stocktake | None:
    found = await _rows(db, "select stocktake_id, scope, opened_by, opened_ms, status, reply from stocktakes "
                            "where stocktake_id = ?", (stocktake_id,))
    if not found:
        return None
    sid, scope, opened_by, opened_ms, status, reply = found[0]
    lines = await _rows(db, "select sku, lot, use_by, counted, book, counted_by, counted_ms from stocktake_lines "
                            "where stocktake_id = ?", (stocktake_id,))
    return Stocktake(sid, json.loads(scope), opened_by, opened_ms, status,
                     {(r[0], r[1]): Line(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or 0) for r in lines},
                     json.loads(reply) if reply else None)


async def busy_skus(db) -> dict[str, str]:
    """SKU -> the open stocktake that holds it."""
    rows = await _rows(db, "select distinct l.sku, s.stocktake_id from stocktakes s join stocktake_lines l "
                           "on l.stocktake_id = s.stocktake_id where s.status = 'open'")
    return {sku: sid for sku, sid in rows}


async def lot_costs(db, skus) -> dict[tuple[str, str], int]:
    """(sku, lot) -> the unit cost receiving recorded for that lot (lots without one are left out)."""
    skus = sorted(set(skus))
    if not skus:
        return {}
    marks = ",".join("?" * len(skus))
    rows = await _rows(db, f"select sku, lot, unit_cost_fen from lots where sku in ({marks}) "  # noqa: S608
                           "and unit_cost_fen > 0", tuple(skus))
    return {(sku, lot): int(cost) for sku, lot, cost in rows}


async def listed(db, status: str | None = None) -> list[dict]:
    """The newest stocktakes (only `status` ones if given), with how many lines are counted so far."""
    rows = await _rows(db, "select s.stocktake_id, s.scope, s.opened_by, s.opened_ms, s.status, s.closed_by, "
                           "s.closed_ms, count(l.sku), count(l.counted) from stocktakes s left join stocktake_lines l "
                           "on l.stocktake_id = s.stocktake_id where ? is null or s.status = ? "
                           "group by s.stocktake_id order by s.opened_ms desc, s.stocktake_id desc limit ?",
                       (status, status, LIST_MAX))
    return [{"stocktake_id": r[0], "scope": json.loads(r[1]), "opened_by": r[2], "opened_ms": r[3], "status": r[4],
             "closed_by": r[5], "closed_ms": r[6], "lines": r[7], "counted": r[8]} for r in rows]
