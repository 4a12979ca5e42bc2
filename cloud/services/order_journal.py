"""The order's timeline in PostgreSQL: every change of status goes through `advance`, which checks the lifecycle
(`protocol/order_lifecycle.py`), moves the order and journals the step in one transaction.

Guarantees:
- an order's status changes only by a transition the lifecycle allows; the step and its timeline row commit
  together, so the timeline is the order's history exactly (a refused step writes nothing);
- a fact with its own id (`key`: a rider's callback id, a store event's id) is applied once: a duplicate answers
  the first step's result and changes nothing;
- each step is announced on the PostgreSQL channel `order_events` (payload: the order id) after it commits, so every
  API process can push it to the customers following the order (`follow`).
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from protocol import order_lifecycle as lifecycle
from protocol.clock import to_rfc3339

log = logging.getLogger("freshmesh.orders")
CHANNEL = "order_events"
# the columns a step may set along with the status (named in the SQL, so only these)
SETTABLE = frozenset({"expires_ms", "payment", "problem", "allocation", "lines", "total_fen", "pickup_code",
                      "slot_start_ms", "location", "member_id", "refunded_fen", "notified_ms",
                      "allow_substitutions"})
FOLLOW_POLL_S = 5.0  # a follower re-reads this often even without a notification (a missed one costs at most this)


@dataclass(frozen=True, slots=True)
class Step:
    order_id: str
    event: str
    before: str
    after: str
    seq: int
    duplicate: bool = False  # the fact (by its key) was journaled before: nothing changed now

    @property
    def moved(self) -> bool:
        return self.before != self.after and not self.duplicate


async def advance(db, order_id: str, event: str, now_ms: int, *, store: str | None = None,
                  detail: dict | None = None, key: str | None = None, only_from: tuple[str, ...] | None = None,
                  fields: dict | None = None) -> Step:
    """Apply `event` to the order; raises `lifecycle.IllegalTransition` (the order does not move) or LookupError (no
    such order). `only_from` narrows the statuses the caller accepts (a customer's cancel); `fields` are other
    columns set in the same update (e.g. `{"expires_ms": ...}`). `db` is a pool or a connection already in a
    transaction."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            return await _advance(conn, order_id, event, now_ms, store, detail, key, only_from, fields)
    return await _advance(db, order_id, event, now_ms, store, detail, key, only_from, fields)


async def _advance(conn, order_id, event, now_ms, store, detail, key, only_from, fields) -> Step:
    row = await conn.fetchrow("select status, fulfilment from orders where order_id = $1 for update", order_id)
    if row is None:
        raise LookupError(f"no order {order_id}")
    status = row["status"]
    if key is not None:
        seen = await conn.fetchrow("select event, status, seq from order_events where order_id = $1 and event_key = $2",
                                   order_id, key)
        if seen is not None:
            return Step(order_id, seen["event"], status, status, seen["seq"], duplicate=True)
    if only_from is not None and status not in only_from and event not in lifecycle.NOTES:
        raise lifecycle.IllegalTransition(status, event, row["fulfilment"])
    after = lifecycle.step(row["fulfilment"], status, event)
    if after != status or fields:
        assert set(fields or {}) <= SETTABLE, f"advance may not set {set(fields or {}) - SETTABLE}"
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields or {}, start=4))
        sql = f"update orders set status = $2, updated_ms = $3{', ' + sets if sets else ''} where order_id = $1"  # noqa: S608 - column names from SETTABLE
        await conn.execute(sql, order_id, after, now_ms, *(fields or {}).values())
    seq = await conn.fetchval(
        """insert into order_events (order_id, seq, event, status, store_id, detail, event_key, at_ms)
           values ($1, coalesce((select max(seq) from order_events where order_id = $1), 0) + 1, $2, $3, $4, $5, $6, $7)
           returning seq""",
        order_id, event, after, store, json.dumps(detail or {}), key, now_ms)
    await conn.execute("select pg_notify($1, $2)", CHANNEL, order_id)
    return Step(order_id, event, status, after, seq)


async def note(db, order_id: str, event: str, now_ms: int, **kw) -> Step:
    """Journal a fact that does not move the order (`lifecycle.NOTES`)."""
    assert event in lifecycle.NOTES, f"{event} is not a note"
    return await advance(db, order_id, event, now_ms, **kw)


@dataclass(frozen=True, slots=True)
class Note:
    """A fact for `note_each`: journaled beside an order without moving it."""
    order_id: str
    event: str  # one of lifecycle.NOTES
    status: str  # the order's status, which the note leaves as it is
    at_ms: int
    store: str | None = None
    detail: dict | None = None
    key: str | None = None


async def note_each(conn, notes: list[Note]) -> None:
    """Journal many notes in one statement, inside the caller's transaction, which must hold each order's row lock
    (the per-order seq is taken under it) and name each order once. A note whose key was journaled before raises
    asyncpg.UniqueViolationError and the caller's transaction writes nothing (the caller then writes one order at a
    time). Announced on `order_events` like `advance`'s steps."""
    if not notes:
        return
    assert all(n.event in lifecycle.NOTES for n in notes), "note_each journals notes only"
    assert len({n.order_id for n in notes}) == len(notes), "one note per order in a batch"
    await conn.execute(
        """insert into order_events (order_id, seq, event, status, store_id, detail, event_key, at_ms)
           select v.order_id, coalesce((select max(e.seq) from order_events e where e.order_id = v.order_id), 0) + 1,
                  v.event, v.status, v.store_id, v.detail::jsonb, v.event_key, v.at_ms
           from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
                as v(order_id, event, status, store_id, detail, event_key, at_ms)""",
        [n.order_id for n in notes], [n.event for n in notes], [n.status for n in notes], [n.store for n in notes],
        [json.dumps(n.detail or {}) for n in notes], [n.key for n in notes], [n.at_ms for n in notes])
    await conn.execute("select pg_notify($1, o) from unnest($2::text[]) as o", CHANNEL, [n.order_id for n in notes])


async def timeline(db, order_id: str, after_seq: int = 0) -> list[dict]:
    """The entries after `after_seq`, as shown (`lifecycle.shown_timeline`: read from the start, since a held group
    order's steps show `group_forming` from its `group_joined` note on)."""
    rows = await db.fetch("select * from order_events where order_id = $1 order by seq", order_id)
    return [e for e in lifecycle.shown_timeline([timeline_json(r) for r in rows]) if e["seq"] > after_seq]


def timeline_json(row) -> dict:
    body = {"seq": row["seq"], "event": row["event"], "status": row["status"], "at": to_rfc3339(row["at_ms"])}
    if row["store_id"]:
        body["store_id"] = row["store_id"]
    detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
    if detail:
        body["detail"] = detail
    return body


class Followers:
    """One LISTEN connection per API process: wakes every customer following an order when its timeline grows."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: asyncpg.Connection | None = None
        self.waiting: dict[str, set[asyncio.Event]] = {}

    async def start(self) -> None:
        try:
            self.conn = await asyncpg.connect(self.dsn)
            await self.conn.add_listener(CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError) as exc:  # followers still poll; the page is only slower
            log.warning("order timeline notifications unavailable (%s); followers poll every %s s", exc, FOLLOW_POLL_S)
            self.conn = None

    async def stop(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    def _notified(self, _conn, _pid, _channel, order_id: str) -> None:
        for waiter in self.waiting.get(order_id, ()):
            waiter.set()

    async def follow(self, db, order_id: str, after_seq: int = 0) -> AsyncIterator[dict | None]:
        """The order's timeline entries after `after_seq`, as they are journaled (forever: the caller stops)."""
        woken = asyncio.Event()
        self.waiting.setdefault(order_id, set()).add(woken)
        try:
            while True:
                for entry in await timeline(db, order_id, after_seq):
                    after_seq = entry["seq"]
                    yield entry
                woken.clear()
                try:
                    await asyncio.wait_for(woken.wait(), FOLLOW_POLL_S)
                except TimeoutError:
                    yield None  # nothing new: lets the caller send a keep-alive and notice a closed connection
        finally:
            self.waiting[order_id].discard(woken)
            if not self.waiting[order_id]:
                del self.waiting[order_id]
