"""Cashiers' shift reports from the stores, on the cloud's side: believed (`protocol.shift_facts`), recorded once,
listed for operators.

Guarantees:
- A `ShiftReported` is believed only from its own store's subject (the bridge), with figures that add up (the
  message's own checks), once per shift id, and only for a shift the cloud does not know as another store's (its
  cash top-ups); anything else is refused with the reason through the bridge's normal path (dead-lettered, the
  store told `refused`), and the rest of the batch applies.
- Recorded once: the report is written in the bridge's transaction with the event id (`shift_reports`,
  migration 37); a re-sent event changes nothing.
- A shift closed without a count (signed out, signed in over, left open over a restart) is reported `uncounted`
  (column added by migration 42, `cloud/services/member_names.py`): its counted figures are the expected ones, not
  a count, and the list says so.
- `listed` reads one store's reports (or all stores'), newest first, bounded by time and count.
"""
from __future__ import annotations

import json

from protocol.messages import Message
from protocol.shift_facts import judge_shift_reports
from protocol.shift_messages import ShiftReported

MIGRATION_37 = """
    create table if not exists shift_reports (
        shift_id        text primary key,
        store_id        text not null,
        event_id        text not null unique,
        lane            text not null,
        cashier_id      text not null,
        opened_ms       bigint not null,
        closed_ms       bigint not null,
        float_fen       bigint not null,
        counted         jsonb not null,     -- [[denomination fen, pieces]] of the closing count
        methods         jsonb not null,     -- [{"method", "expected_fen", "counted_fen"}]
        expected_fen    bigint not null,    -- cash
        counted_fen     bigint not null,    -- cash
        difference_fen  bigint not null,    -- cash counted - expected (negative: short)
        sales           int not null,
        returns         int not null,
        voids           int not null,
        received_ms     bigint not null
    );
    create index if not exists shift_reports_store on shift_reports (store_id, closed_ms desc);
    create index if not exists till_topups_shift on till_topups (shift_id);
"""
LIST_MAX = 500


async def admit(cloud, events: list[Message]) -> dict[str, str]:
    reports = [e for e in events if isinstance(e, ShiftReported)]
    if not reports:
        return {}
    ids = [e.shift_id for e in reports]
    reported = {r["shift_id"]: (r["store_id"], r["event_id"]) for r in await cloud.db.fetch(
        "select shift_id, store_id, event_id from shift_reports where shift_id = any($1::text[])", ids)}
    stores: dict[str, set[str]] = {}
    for r in await cloud.db.fetch("select distinct shift_id, store_id from till_topups where shift_id = any($1::text[])",
                                  ids):
        stores.setdefault(r["shift_id"], set()).add(r["store_id"])
    return judge_shift_reports(reports, reported, {k: frozenset(v) for k, v in stores.items()})


async def record(conn, events: list[Message], now_ms: int) -> None:
    rows = []
    for e in events:
        if not isinstance(e, ShiftReported):
            continue
        cash = next(m for m in e.methods if m.method == "cash")
        rows.append((e.shift_id, e.store_id, e.event_id, e.lane, e.cashier_id, e.opened_ms, e.closed_ms, e.float_fen,
                     json.dumps([[c.denomination_fen, c.pieces] for c in e.counted]),
                     json.dumps([{"method": m.method, "expected_fen": m.expected_fen, "counted_fen": m.counted_fen}
                                 for m in e.methods]),
                     cash.expected_fen, cash.counted_fen, e.difference_fen, e.sales, e.returns, e.voids, now_ms,
                     e.uncounted))
    if rows:
        await conn.executemany(
            """insert into shift_reports (shift_id, store_id, event_id, lane, cashier_id, opened_ms, closed_ms,
               float_fen, counted, methods, expected_fen, counted_fen, difference_fen, sales, returns, voids,
               received_ms, uncounted) values ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11, $12, $13,
               $14, $15, $16, $17, $18) on conflict (shift_id) do nothing""", rows)


async def listed(db, store_id: str | None, from_ms: int, to_ms: int, limit: int) -> list[dict]:
    """The reports closed in [from_ms, to_ms) (of `store_id`, or of every store), newest first."""
    rows = await db.fetch(
        """select shift_id, store_id, lane, cashier_id, opened_ms, closed_ms, float_fen, counted::text, methods::text,
                  expected_fen, counted_fen, difference_fen, sales, returns, voids, uncounted from shift_reports
           where ($1::text is null or store_id = $1) and closed_ms >= $2 and closed_ms < $3
           order by closed_ms desc, shift_id limit $4""", store_id, from_ms, to_ms, limit)
    out = []
    for r in rows:
        item = dict(r)
        item["counted"] = [{"denomination_fen": d, "pieces": n} for d, n in json.loads(item["counted"])]
        item["methods"] = [{**m, "difference_fen": m["counted_fen"] - m["expected_fen"]}
                           for m in json.loads(item["methods"])]
        out.append(item)
    return out
