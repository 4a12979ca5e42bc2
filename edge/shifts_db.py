"""The box's record of shifts beyond sign-in and sign-out (`shifts` in `edge.store_db`): each shift's opening float,
the carts voided at each lane, and each closed shift's cash-up; and the reads a cash-up is worked out from (the
shift's sales, returns, cash top-ups and voids, from the box's own tables). Registered with `edge.store_db` (its
SCHEMA and EXECUTORS), so a float, a void or a close commits in the store actor's one transaction with the rest.
"""
from __future__ import annotations

import json
from typing import Any

from edge.core.cash_up import refund_split
from edge.core.shift_effects import RecordFloat, RecordSaleCash, RecordShiftReport, RecordVoid, ShiftEntry

SCHEMA = """
create table if not exists shift_floats (shift_id text primary key, float_fen integer not null, counted text not null,
    at_ms integer not null);
create table if not exists till_voids (id integer primary key autoincrement, lane text not null, lines integer not null,
    at_ms integer not null, shift_id text not null default '');
create index if not exists till_voids_shift on till_voids (shift_id);
create table if not exists shift_entries (kind text not null, ref text not null, shift_id text not null,
    primary key (kind, ref));
create index if not exists shift_entries_shift on shift_entries (shift_id, kind);
create table if not exists shift_reports (shift_id text primary key, lane text not null, report text not null,
    closed_ms integer not null);
create table if not exists sale_cash (sale_id text primary key, tendered_fen integer not null,
    change_fen integer not null);
"""

EXECUTORS: dict[type, Any] = {
    RecordFloat: lambda db, e: db.execute(
        "insert into shift_floats (shift_id, float_fen, counted, at_ms) values (?, ?, ?, ?)",
        (e.shift_id, e.float_fen, json.dumps(e.counted), e.at_ms)),
    RecordVoid: lambda db, e: db.execute("insert into till_voids (lane, lines, at_ms, shift_id) values (?, ?, ?, ?)",
                                         (e.lane, e.lines, e.at_ms, e.shift_id)),
    ShiftEntry: lambda db, e: db.execute("insert or ignore into shift_entries (kind, ref, shift_id) values (?, ?, ?)",
                                         (e.kind, e.ref, e.shift_id)),
    RecordShiftReport: lambda db, e: db.execute(
        "insert into shift_reports (shift_id, lane, report, closed_ms) values (?, ?, ?, ?)",
        (e.shift_id, e.lane, e.report, e.closed_ms)),
    RecordSaleCash: lambda db, e: db.execute(
        "insert or ignore into sale_cash (sale_id, tendered_fen, change_fen) values (?, ?, ?)",
        (e.sale_id, e.tendered_fen, e.change_fen)),
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


async def open_at(db, lane: str) -> list[dict]:
    """The shifts the journal has open at the lane (one, normally; a restart leaves it open), oldest first."""
    rows = await _all(db, "select shift_id, cashier_id, opened_ms from shifts where lane = ? and closed_ms is null "
                          "order by opened_ms, shift_id", (lane,))
    return [{"shift_id": r[0], "cashier_id": r[1], "opened_ms": r[2]} for r in rows]


async def report(db, shift_id: str) -> dict | None:
    rows = await _all(db, "select report from shift_reports where shift_id = ?", (shift_id,))
    return json.loads(rows[0][0]) if rows else None


async def taken(db, shift_id: str) -> dict:
    """What the shift took: its sales (their payments; a cash tender as handed over, with the change given, where
    the box kept them: `sale_cash`), its returns (method, fen), its cash top-ups and its voids - each one made while
    this was its lane's shift (`ShiftEntry`, `shift_id`), never chosen by wall-clock time, which a clock set back
    would make drop the sales since from the drawer's expected cash."""
    sales = []
    for payments, total_fen, change_fen in await _all(
            db, "select s.payments, s.total_fen, c.change_fen from shift_entries e join sales s on s.sale_id = e.ref "
                "left join sale_cash c on c.sale_id = s.sale_id where e.shift_id = ? and e.kind = 'sale'",
            (shift_id,)):
        sale: dict[str, Any] = {"payments": json.loads(payments), "total_fen": total_fen}
        if change_fen is not None:  # the cash handed over (kept + change) and the change, each its own line
            sale["payments"] = [[p[0], p[1] + change_fen, *p[2:]] if p[0] == "cash" else p for p in sale["payments"]]
            sale["change_fen"] = change_fen
        sales.append(sale)
    # a return's refunds as the till gave them (edge migration 4); one kept before that: worked out again
    refunds = [[tuple(p) for p in json.loads(r[3])] if r[3] is not None else
               refund_split(r[0], r[1], json.loads(r[2]) if r[2] else None) for r in await _all(
        db, "select r.method, r.total_fen, s.payments, r.refunds from shift_entries e join returns r on r.return_id = "
            "e.ref left join sales s on r.source = 'sale:' || s.sale_id where e.shift_id = ? and e.kind = 'return'",
        (shift_id,))]
    topups = (await _all(db, "select coalesce(sum(amount_fen), 0) from topups where shift_id = ?", (shift_id,)))[0][0]
    voids = (await _all(db, "select count(*) from till_voids where shift_id = ?", (shift_id,)))[0][0]
    return {"sales": sales, "refunds": refunds, "topups_fen": topups, "voids": voids}
