"""The store's record of returns in SQLite: the return rows, their lines (what each source has had back), and the
reads a return decides on. Registered with `edge.store_db` (its schema and the `InsertReturn` executor), so a
return commits in the same transaction as its stock movements and outbox row.
"""
from __future__ import annotations

import json
from typing import Any

from edge.core.outcome import InsertReturn
from edge.core.returns import ORDER_REFUND, Source
from protocol.returns import Back, returned_so_far

SCHEMA = """
create table if not exists returns (return_id text primary key, source text not null, lane text not null,
    method text not null, total_fen integer not null, lines text not null, at_ms integer not null);
create table if not exists returned_lines (return_id text not null, source text not null, sku text not null,
    qty integer not null, fen integer not null);
create index if not exists returned_lines_source on returned_lines (source);
"""


async def insert_return(db, e: InsertReturn) -> None:
    await db.execute("insert into returns (return_id, source, lane, method, total_fen, lines, at_ms) "
                     "values (?, ?, ?, ?, ?, ?, ?)",
                     (e.return_id, e.source, e.lane, e.method, e.total_fen, json.dumps(e.lines), e.at_ms))
    await db.executemany("insert into returned_lines (return_id, source, sku, qty, fen) values (?, ?, ?, ?, ?)",
                         [(e.return_id, e.source, sku, qty, fen) for sku, qty, fen, _ in e.lines])


EXECUTORS: dict[type, Any] = {InsertReturn: insert_return}


async def _one(db, sql: str, params: tuple) -> tuple | None:
    async with db.execute(sql, params) as cur:
        row = await cur.fetchone()
    return tuple(row) if row is not None else None


async def earlier(db, source_key: str) -> dict[str, Back]:
    async with db.execute("select sku, qty, fen from returned_lines where source = ?", (source_key,)) as cur:
        return returned_so_far([tuple(r) for r in await cur.fetchall()])


async def existing(db, return_id: str) -> InsertReturn | None:
    row = await _one(db, "select return_id, source, lane, method, total_fen, lines, at_ms from returns "
                         "where return_id = ?", (return_id,))
    if row is None:
        return None
    return InsertReturn(row[0], row[1], row[2], row[3], row[4], tuple(tuple(x) for x in json.loads(row[5])), row[6])


async def sale_source(db, sale_id: str) -> Source | None:
    row = await _one(db, "select sale_id, total_fen, lines, payments, member_id from sales where sale_id = ?",
                     (sale_id,))
    if row is None:
        return None
    lines = tuple((sku, qty, unit, fen) for sku, qty, unit, fen in json.loads(row[2]))
    payments = json.loads(row[3])
    return Source("sale", row[0], "sold", lines, row[1], payments[0][0] if payments else "", row[4])


async def order_source(db, order_id: str | None = None, pickup_code: str | None = None) -> Source | None:
    column, value = ("order_id", order_id) if order_id else ("pickup_code", pickup_code)
    row = await _one(db, f"select order_id, status, payload from orders where {column} = ?", (value,))  # noqa: S608
    if row is None:
        return None
    payload = json.loads(row[2])
    lines = tuple((line["sku"], line["qty"], line.get("unit", "piece"), line.get("amount_fen", 0))
                  for line in payload["lines"])
    total = sum(fen for *_, fen in lines)  # this store's part (the order's own total may span stores)
    return Source("order", row[0], row[1], lines, total, ORDER_REFUND)
