"""The box's record of shifts beyond sign-in and sign-out (`shifts` in `edge.store_db`): each shift's opening float,
the carts voided at each lane, and each closed shift's cash-up; and the reads a cash-up is worked out from (the
shift's sales, returns, cash top-ups and voids, from the box's own tables). Registered with `edge.store_db` (its
SCHEMA and EXECUTORS), so a float, a void or a close commits in the store actor's one transaction with the rest.
"""
from __future__ import annotations

import json
from typing import Any

from edge.core.cash_up import refund_split
from edge.core.shift_effects import RecordFloat, RecordShiftReport, RecordVoid

SCHEMA = """
create table if not exists shift_floats (shift_id text primary key, float_fen integer not null, counted text not null,
    at_ms integer not null);
create table if not exists till_voids (id integer primary key autoincrement, lane text not null, lines integer not null,
    at_ms integer not null);
create index if not exists till_voids_lane on till_voids (lane, at_ms);
create table if not exists shift_reports (shift_id text primary key, lane text not null, report text not null,
    closed_ms integer not null);
"""

EXECUTORS: dict[type, Any] = {
    RecordFloat: lambda db, e: db.execute(
        "insert into shift_floats (shift_id, float_fen, counted, at_ms) values (?, ?, ?, ?)",
        (e.shift_id, e.float_fen, json.dumps(e.counted), e.at_ms)),
    RecordVoid: lambda db, e: db.execute("insert into till_voids (lane, lines, at_ms) values (?, ?, ?)",
                                         (e.lane, e.lines, e.at_ms)),
    RecordShiftReport: lambda db, e: db.execute(
        "insert into shift_reports (shift_id, lane, report, closed_ms) values (?, ?, ?, ?)",
        (e.shift_id, e.lane, e.report, e.closed_ms)),
}


async def _all(db, sql: str, params: tuple) -> list[tuple]:
    async with db.execute(sql, params) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def shift(db, shift_id: str) -> dict | None:
    rows = await _all(db, "select s.shift_id, s.cashier_id, s.lane, s.opened_ms, s.closed_ms, f.float_fen, f.counted "
                          "from shifts s left join shift_floats f on f.shift_id = s.shift_id where s.shift_id = ?",
                      (shift_id,))
    if not rows:
        return None
    r = rows[0]
    return {"shift_id": r[0], "cashier_id": r[1], "lane": r[2], "opened_ms": r[3], "closed_ms": r[4],
            "float_fen": r[5], "float_counted": json.loads(r[6]) if r[6] else []}


async def report(db, shift_id: str) -> dict | None:
    rows = await _all(db, "select report from shift_reports where shift_id = ?", (shift_id,))
    return json.loads(rows[0][0]) if rows else None


async def taken(db, lane: str, since_ms: int, until_ms: int, shift_id: str) -> dict:
    """What the lane's shift took between its opening and `until_ms`: its sales (as stored: payments, and tenders
    or change if a later schema keeps them), its returns (method, fen), its cash top-ups and its voids. A lane has
    one shift at a time (signing in closes the lane's previous one), so the lane and the window are the shift."""
    columns = {r[1] for r in await _all(db, "pragma table_info(sales)", ())}
    extra = [c for c in ("tenders", "change_fen") if c in columns]  # split payments, when they land
    sql = (f"select payments, total_fen{''.join(', ' + c for c in extra)} from sales "  # noqa: S608 - known names
           "where lane = ? and at_ms >= ? and at_ms <= ?")
    sales = []
    for row in await _all(db, sql, (lane, since_ms, until_ms)):
        sale: dict[str, Any] = {"payments": json.loads(row[0]), "total_fen": row[1]}
        for name, value in zip(extra, row[2:], strict=True):
            sale[name] = json.loads(value) if name == "tenders" and isinstance(value, str) else value
        sales.append(sale)
    # a return's refunds as the till gave them (edge migration 5); one kept before that: worked out again
    refunds = [[tuple(p) for p in json.loads(r[3])] if r[3] is not None else
               refund_split(r[0], r[1], json.loads(r[2]) if r[2] else None) for r in await _all(
        db, "select r.method, r.total_fen, s.payments, r.refunds from returns r left join sales s on r.source = "
            "'sale:' || s.sale_id where r.lane = ? and r.at_ms >= ? and r.at_ms <= ?", (lane, since_ms, until_ms))]
    topups = (await _all(db, "select coalesce(sum(amount_fen), 0) from topups where shift_id = ?", (shift_id,)))[0][0]
    voids = (await _all(db, "select count(*) from till_voids where lane = ? and at_ms >= ? and at_ms <= ?",
                        (lane, since_ms, until_ms)))[0][0]
    return {"sales": sales, "refunds": refunds, "topups_fen": topups, "voids": voids}
