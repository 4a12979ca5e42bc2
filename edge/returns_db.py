"""The store's record of returns in SQLite: the return rows, their lines (what each source has had back), and the
reads a return decides on. Registered with `edge.store_db` (its schema and the `InsertReturn` executor), so a
return commits in the same transaction as its stock movements and outbox row.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from edge import return_promotions_db
from edge.core.outcome import DecideAfterSales, InsertReturn, StoreAfterSales
from edge.core.returns import ORDER_REFUND, Source
from protocol.handed_over import Picked, handed_over
from protocol.returns import Back, Sold, returned_so_far

SCHEMA = """
create table if not exists returns (return_id text primary key, source text not null, lane text not null,
    method text not null, total_fen integer not null, lines text not null, at_ms integer not null);
create table if not exists returned_lines (return_id text not null, source text not null, sku text not null,
    qty integer not null, fen integer not null);
create index if not exists returned_lines_source on returned_lines (source);
create table if not exists after_sales (request_id text primary key, order_id text not null, payload text not null,
    status text not null, reason text not null default '', staff text not null default '', decided_ms integer);
""" + return_promotions_db.SCHEMA


async def insert_return(db, e: InsertReturn) -> None:
    await db.execute("insert into returns (return_id, source, lane, method, total_fen, lines, at_ms, refunds) "
                     "values (?, ?, ?, ?, ?, ?, ?, ?)",  # refunds: edge migration 4 (per method, as given back)
                     (e.return_id, e.source, e.lane, e.method, e.total_fen, json.dumps(e.lines), e.at_ms,
                      json.dumps([list(p) for p in e.refunds])))
    await db.executemany("insert into returned_lines (return_id, source, sku, qty, fen) values (?, ?, ?, ?, ?)",
                         [(e.return_id, e.source, sku, qty, fen) for sku, qty, fen, _ in e.lines])


async def store_after_sales(db, e: StoreAfterSales) -> None:
    await db.execute("insert into after_sales (request_id, order_id, payload, status, staff) values (?, ?, ?, ?, ?) "
                     "on conflict (request_id) do update set status = excluded.status, staff = excluded.staff "
                     "where after_sales.status = 'requested' and excluded.status <> 'requested'",
                     (e.request_id, e.order_id, json.dumps(e.payload), e.status,
                      "" if e.status == "requested" else "cloud"))


async def decide_after_sales(db, e: DecideAfterSales) -> None:
    await db.execute("update after_sales set status = ?, reason = ?, staff = ?, decided_ms = ? where request_id = ? "
                     "and status = 'requested'", (e.status, e.reason, e.staff, e.at_ms, e.request_id))


EXECUTORS: dict[type, Any] = {InsertReturn: insert_return, StoreAfterSales: store_after_sales,
                              DecideAfterSales: decide_after_sales, **return_promotions_db.EXECUTORS}


def _request(row) -> dict:
    return {"request_id": row[0], "order_id": row[1], **json.loads(row[2]), "status": row[3],
            **({"decision_reason": row[4], "staff": row[5]} if row[3] != "requested" else {})}


async def after_sales(db, status: str | None = None) -> list[dict]:
    """The requests the store was asked to decide, newest first (`status`: only those)."""
    async with db.execute("select request_id, order_id, payload, status, reason, staff from after_sales "
                          "where ? is null or status = ? order by rowid desc limit 200", (status, status)) as cur:
        return [_request(r) for r in await cur.fetchall()]


async def after_sales_one(db, request_id: str) -> dict | None:
    row = await _one(db, "select request_id, order_id, payload, status, reason, staff from after_sales "
                         "where request_id = ?", (request_id,))
    return _request(row) if row else None


async def _one(db, sql: str, params: tuple) -> tuple | None:
    async with db.execute(sql, params) as cur:
        row = await cur.fetchone()
    return tuple(row) if row is not None else None


async def earlier(db, source_key: str) -> dict[str, Back]:
    """What the source had back: its till returns, and for an order its approved after-sales requests too."""
    async with db.execute("select sku, qty, fen from returned_lines where source = ?", (source_key,)) as cur:
        rows = [tuple(r) for r in await cur.fetchall()]
    kind, _, source_id = source_key.partition(":")
    if kind == "order":
        rows += await approved_after_sales(db, source_id)
    return returned_so_far(rows)


async def existing(db, return_id: str) -> InsertReturn | None:
    row = await _one(db, "select return_id, source, lane, method, total_fen, lines, at_ms, refunds from returns "
                         "where return_id = ?", (return_id,))
    if row is None:
        return None
    return InsertReturn(row[0], row[1], row[2], row[3], row[4], tuple(tuple(x) for x in json.loads(row[5])), row[6],
                        tuple((m, fen) for m, fen in json.loads(row[7] or "[]")))


async def refunded(db, source_key: str) -> tuple[tuple[str, int], ...]:
    """(method, fen) the source's returns gave back so far; a return kept before the refunds column (edge
    migration 4) counts its whole total by its one method (stricter, never looser)."""
    async with db.execute("select method, total_fen, refunds from returns where source = ?", (source_key,)) as cur:
        rows = [tuple(r) for r in await cur.fetchall()]
    out: list[tuple[str, int]] = []
    for method, total_fen, refunds in rows:
        out += [(m, int(fen)) for m, fen in json.loads(refunds)] if refunds is not None else [(method, total_fen)]
    return tuple(out)


async def sale_source(db, sale_id: str, books=None) -> Source | None:
    """A till sale of this store with the promotions it carried: the coupons it redeemed here, and (with `books`)
    the gifts its lines show and those an earlier return already paid for."""
    row = await _one(db, "select sale_id, total_fen, lines, payments, member_id from sales where sale_id = ?",
                     (sale_id,))
    if row is None:
        return None
    lines = tuple((sku, qty, unit, fen) for sku, qty, unit, fen in json.loads(row[2]))
    payments = json.loads(row[3])
    gifts = return_promotions_db.sale_gifts(lines, books) if books is not None else ()
    # the money's way back: the sale's method besides points (points paying part go back through the cloud)
    method = next((p[0] for p in payments if p[0] != "points"), payments[0][0] if payments else "")
    return Source("sale", row[0], "sold", lines, row[1], method, row[4],
                  coupons=await return_promotions_db.sale_coupons(db, row[0]), gifts=gifts,
                  payments=tuple((m, fen) for m, fen, *_ in payments),
                  points_back=await return_promotions_db.points_back(db, f"sale:{row[0]}"),
                  refunded=await refunded(db, f"sale:{row[0]}"),
                  gifts_settled=await return_promotions_db.gifts_settled(db, f"sale:{row[0]}") if gifts else ())


async def order_source(db, order_id: str | None = None, pickup_code: str | None = None,
                       unit_of: Callable[[str], str] | None = None) -> Source | None:
    """An online order as this store handed it over: its lines as picked (`picks`: the picked pieces or weight, a
    substitute as its own line), not as ordered - a short line was refunded or served elsewhere, and returning
    more than left the store would be refused by the cloud after the goods were booked back here. `unit_of`: a
    substitute's stock unit (the catalogue's)."""
    column, value = ("order_id", order_id) if order_id else ("pickup_code", pickup_code)
    row = await _one(db, f"select order_id, status, payload from orders where {column} = ?", (value,))  # noqa: S608
    if row is None:
        return None
    payload = json.loads(row[2])
    ordered = {line["sku"]: Sold(line["sku"], line["qty"], line.get("unit", "piece"), line.get("amount_fen", 0))
               for line in payload["lines"]}
    async with db.execute("select sku, ordered, picked, short, substitute_sku, substitute_qty from picks "
                          "where order_id = ?", (row[0],)) as cur:
        picks = [Picked(*r) for r in await cur.fetchall()]
    units = {sku: item.unit for sku, item in ordered.items()}
    units.update({p.substitute_sku: unit_of(p.substitute_sku) for p in picks if p.substitute_sku and unit_of})
    # (the store's figures are an estimate: it does not know the picking refunds; the cloud pays its own)
    handed = handed_over({"here": ordered}, {"here": picks}, {}, {}, units)["here"]
    lines = tuple((x.sku, x.qty, x.unit, x.paid_fen) for x in handed.values())
    total = sum(fen for *_, fen in lines)  # this store's part (the order's own total may span stores)
    return Source("order", row[0], row[1], lines, total, ORDER_REFUND)


async def approved_after_sales(db, order_id: str) -> list[tuple[str, int, int]]:
    """(sku, qty, 0) of the order's approved after-sales requests: refunded online, never returned again here."""
    async with db.execute("select payload from after_sales where order_id = ? and status = 'approved'",
                          (order_id,)) as cur:
        return [(x["sku"], x["qty"], 0) for (p,) in await cur.fetchall() for x in json.loads(p)["lines"]]
