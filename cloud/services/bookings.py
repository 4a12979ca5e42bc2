"""Local services booking (issue 21 item 7): each store's service book (services, their staff, weekly windows), the
free times of a service on a day, a signed-in member's bookings, cancelling, and the store's day schedule.

Guarantees (decisions in `protocol/service_slots.py`; rows in migration 49, `cloud/services/booking_schema.py`):
- no staff member is ever booked twice for the same time: a booking holds one `service_cells` row per 15-minute
  cell of its duration, keyed (store, staff, cell); PostgreSQL's primary key decides every race, so of two bookings
  racing for a store's last free staff member exactly one is made and the other is refused "taken" (a booking that
  loses one staff member's cells tries the service's next free staff member, inside a savepoint, before refusing);
- a booking is idempotent by its `booking_id`, made by the customer's client: the same id again answers the first
  booking (200) whatever happened since; the same id with another store, service, start or member is refused
  (`key_reused`), never a second booking;
- a customer books, lists and cancels only their own bookings (another member's booking answers 404 as an unknown
  one); a store's manager (or HQ) cancels any booking of that store, audited; cancelling frees the cells in the same
  transaction that marks the booking cancelled, and a second cancel answers the same;
- a member holds at most `MEMBER_AHEAD_MAX` bookings ahead (counted under a per-member lock, so concurrent requests
  cannot pass it together): one person cannot take a store's whole day;
- the price is paid at the store when the service is given (`pay_at: "store"`); no money moves online;
- HQ or the store's manager replaces the store's book with one PUT (checked whole, audited with before and after in
  the transaction that writes it); bookings already made keep their staff and time (the store's schedule shows them).
"""
from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import asyncpg

from cloud.services import operators as operator_audit
from cloud.services.operators import Operator
from cloud.services.verdicts import Refusal
from protocol import service_slots as core
from protocol.clock import parse_rfc3339, to_rfc3339
from protocol.errors import ProtocolError
from protocol.schema import record, record_from_wire, require, to_wire

log = logging.getLogger("freshmesh.bookings")
MEMBER_BOOKINGS_MAX = 50
MEMBER_AHEAD_MAX = 5  # bookings one member may hold ahead at once (one person cannot take a store's whole day)
PAY_AT = "store"  # a service's price is paid at the store when it is given
TAKEN = "that time was just taken by someone else: choose another time"


@record
class BookingBody:
    """What a customer sends to book: the id their client made, the store, the service and the start (RFC 3339)."""
    booking_id: str
    store_id: str
    service_id: str
    start: str

    def __post_init__(self) -> None:
        require(8 <= len(self.booking_id) <= 64 and self.booking_id.isascii() and self.booking_id.isprintable(),
                "booking_id: 8-64 printable ASCII characters, made once per booking by the client")


def day_of(text: str | None) -> date:
    """`?date=YYYY-MM-DD` (a store day) or a refusal naming it."""
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        raise Refusal("invalid", f"date: YYYY-MM-DD, not {str(text)[:20]!r}") from None


def local(ms: int) -> str:
    """An instant as the store's clock shows it: '2026-12-07 10:00'."""
    from datetime import datetime
    return datetime.fromtimestamp(ms / 1000, core.STORE_TZ).strftime("%Y-%m-%d %H:%M")


def booking_json(row, staff_name: str | None = None) -> dict[str, Any]:
    return {"booking_id": row["booking_id"], "store_id": row["store_id"], "service_id": row["service_id"],
            "service_name": row["service_name"], "service_name_en": row["service_name_en"],
            "staff_id": row["staff_id"], "staff_name": staff_name or row["staff_id"],
            "start": to_rfc3339(row["start_ms"]), "end": to_rfc3339(row["end_ms"]), "local_start": local(row["start_ms"]),
            "price_fen": row["price_fen"], "pay_at": PAY_AT, "status": row["status"],
            "cancelled_at": to_rfc3339(row["cancelled_ms"]), "cancelled_by": row["cancelled_by"]}


class Bookings:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    def _store(self, store_id: str) -> None:
        if store_id not in self.cloud.world.stores:
            raise Refusal("not_found", f"no store {store_id}")

    def _open(self, store_id: str) -> bool:
        store = self.cloud.world.stores.get(store_id)
        return store is not None and store.open

    async def book_of(self, store_id: str, conn=None) -> tuple[core.ServiceBook, int]:
        """The store's book and its version (an empty book, version 0, before the store defined one)."""
        self._store(store_id)
        row = await (conn or self.cloud.db).fetchrow("select book, version from service_books where store_id = $1",
                                                     store_id)
        if row is None:
            return core.ServiceBook(services=(), staff=(), schedule=()), 0
        return record_from_wire(core.ServiceBook, json.loads(row["book"]), "book"), row["version"]

    async def _service(self, store_id: str, service_id: str, conn=None) -> tuple[core.ServiceBook, core.Service]:
        book, _ = await self.book_of(store_id, conn)
        service = book.service(service_id)
        if service is None:
            raise Refusal("not_found", f"store {store_id} offers no service {service_id}")
        return book, service

    async def offered(self, store_id: str) -> dict[str, Any]:
        """`GET /stores/{id}/services`: what the store offers, its service hours, and that the price is paid there."""
        book, version = await self.book_of(store_id)
        services = [{**to_wire(s), "staff": len(s.staff)} for s in book.services]
        return {"store_id": store_id, "version": version, "pay_at": PAY_AT, "grid_min": core.GRID_MIN,
                "services": services, "schedule": [to_wire(w) for w in book.schedule]}

    async def book_view(self, store_id: str) -> dict[str, Any]:
        """The whole book as the operators edit it (staff names included)."""
        book, version = await self.book_of(store_id)
        return {"store_id": store_id, "version": version, **to_wire(book)}

    async def put_book(self, store_id: str, raw: dict[str, Any], operator: Operator) -> dict[str, Any]:
        """Replace the store's book (checked whole; audited with before and after; unchanged: no new version)."""
        self._store(store_id)
        try:
            book = record_from_wire(core.ServiceBook, raw, "book")
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(hashtext('service_books/' || $1))", store_id)
            before, version = await self.book_of(store_id, conn)
            if before != book:
                version += 1
                await conn.execute(
                    """insert into service_books (store_id, book, version, updated_ms, updated_by)
                       values ($1, $2, $3, $4, $5) on conflict (store_id) do update set book = excluded.book,
                       version = excluded.version, updated_ms = excluded.updated_ms, updated_by = excluded.updated_by""",
                    store_id, json.dumps(to_wire(book)), version, now, operator.username)
                await operator_audit.record(conn, now, operator, "services.book", store_id,
                                            to_wire(before) if version > 1 else None, to_wire(book))
        log.info("store %s service book v%d by %s", store_id, version, operator.username)
        return {"store_id": store_id, "version": version, **to_wire(book)}

    async def _held(self, conn, store_id: str, staff: tuple[str, ...], since_ms: int, until_ms: int
                    ) -> dict[str, list[int]]:
        rows = await conn.fetch("select staff_id, cell_ms from service_cells where store_id = $1 and "
                                "staff_id = any($2::text[]) and cell_ms >= $3 and cell_ms < $4",
                                store_id, list(staff), since_ms, until_ms)
        held: dict[str, list[int]] = {}
        for r in rows:
            held.setdefault(r["staff_id"], []).append(r["cell_ms"])
        return held

    async def slots(self, store_id: str, service_id: str, day_text: str | None) -> dict[str, Any]:
        """`GET /stores/{id}/services/{service_id}/slots?date=`: every start a customer may book now, with how many of
        the service's staff are free for it."""
        day = day_of(day_text)
        book, service = await self._service(store_id, service_id)
        base = core.day_start_ms(day)
        async with self.cloud.db.acquire() as conn:
            held = await self._held(conn, store_id, service.staff, base, base + core.DAY_MIN * core.MINUTE_MS)
        # a store HQ has closed offers no time (its bookings made before stay, and show in its schedule)
        found = core.free_slots(book, service, day, held, self.cloud.now_ms()) if self._open(store_id) else []
        return {"store_id": store_id, "service_id": service_id, "date": day.isoformat(),
                "duration_min": service.duration_min, "price_fen": service.price_fen, "pay_at": PAY_AT,
                "slots": [{"start": to_rfc3339(start), "local": local(start)[11:], "free": free}
                          for start, free in found]}

    async def book(self, member: str, body: BookingBody) -> tuple[int, dict[str, Any]]:
        """Book `body` for `member`: (201, booking), or (200, the first booking) for a retry of its id."""
        try:
            start_ms = parse_rfc3339(body.start, "start")
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        async with self.cloud.db.acquire() as conn:
            first = await self._retry(conn, member, body, start_ms)
            if first is not None:
                return 200, first
            book, service = await self._service(body.store_id, body.service_id, conn)
            why = (core.start_refusal(book, service, start_ms, self.cloud.now_ms()) if self._open(body.store_id)
                   else f"store {body.store_id} is closed by head office: it takes no bookings")
            if why is not None:
                raise Refusal("slot", why, reason="not_offered")
            end_ms = start_ms + service.duration_min * core.MINUTE_MS
            try:
                made = await self._insert(conn, member, body, book, service, start_ms, end_ms)
            except asyncpg.UniqueViolationError:  # the same booking id made a moment ago by a concurrent retry
                made = None
            if made is None:
                first = await self._retry(conn, member, body, start_ms)
                if first is None:
                    raise Refusal("unavailable", "the booking could not be decided: retry with the same booking_id")
                return 200, first
        log.info("booking %s: %s %s at %s by %s", body.booking_id, body.store_id, body.service_id, body.start, member)
        return 201, made

    async def _retry(self, conn, member: str, body: BookingBody, start_ms: int) -> dict[str, Any] | None:
        row = await conn.fetchrow("select * from service_bookings where booking_id = $1", body.booking_id)
        if row is None:
            return None
        if (row["member_id"], row["store_id"], row["service_id"], row["start_ms"]) != (
                member, body.store_id, body.service_id, start_ms):
            raise Refusal("key_reused", f"booking_id {body.booking_id} was used for another booking: make a new id")
        return booking_json(row, await self._staff_name(row["store_id"], row["staff_id"], conn))

    async def _staff_name(self, store_id: str, staff_id: str, conn=None) -> str:
        book, _ = await self.book_of(store_id, conn)
        return book.staff_name(staff_id)

    async def _insert(self, conn, member: str, body: BookingBody, book: core.ServiceBook, service: core.Service,
                      start_ms: int, end_ms: int) -> dict[str, Any] | None:
        """The booking and its cells with the first free staff member whose cells are still free (a savepoint per
        try: losing a race for one staff member's cells moves on to the next); a refusal when nobody is left."""
        need = core.cells(start_ms, service.duration_min)
        now = self.cloud.now_ms()
        async with conn.transaction():
            # one member's bookings are made one at a time, so their count ahead is exact under concurrent requests
            await conn.execute("select pg_advisory_xact_lock(hashtext('service_bookings/' || $1))", member)
            ahead = await conn.fetchval("select count(*) from service_bookings where member_id = $1 and "
                                        "status = 'booked' and end_ms > $2", member, now)
            if ahead >= MEMBER_AHEAD_MAX:
                raise Refusal("over_limit", f"at most {MEMBER_AHEAD_MAX} bookings ahead per member: cancel one first",
                              reason="too_many")
            held = await self._held(conn, body.store_id, service.staff, start_ms, end_ms)
            for staff in core.free_staff(service, start_ms, held):
                try:
                    async with conn.transaction():  # a savepoint
                        row = await conn.fetchrow(
                            """insert into service_bookings (booking_id, store_id, service_id, service_name,
                               service_name_en, staff_id, member_id, start_ms, end_ms, price_fen, created_ms)
                               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning *""",
                            body.booking_id, body.store_id, service.service_id, service.name, service.name_en, staff,
                            member, start_ms, end_ms, service.price_fen, now)
                        await conn.executemany("insert into service_cells (store_id, staff_id, cell_ms, booking_id) "
                                               "values ($1, $2, $3, $4)",
                                               [(body.store_id, staff, c, body.booking_id) for c in need])
                    return booking_json(row, book.staff_name(staff))
                except asyncpg.UniqueViolationError as exc:
                    if exc.constraint_name == "service_bookings_pkey":
                        return None  # the same id, booked by a concurrent retry: answered as a retry
                    continue  # this staff member was just taken: try the next one
        raise Refusal("slot", TAKEN, reason="taken")

    async def member_bookings(self, member: str) -> dict[str, Any]:
        rows = await self.cloud.db.fetch("select * from service_bookings where member_id = $1 "
                                         "order by start_ms desc limit $2", member, MEMBER_BOOKINGS_MAX)
        books: dict[str, core.ServiceBook] = {}
        out = []
        for r in rows:
            if r["store_id"] not in books:
                books[r["store_id"]] = (await self.book_of(r["store_id"]))[0]
            out.append(booking_json(r, books[r["store_id"]].staff_name(r["staff_id"])))
        return {"member_id": member, "bookings": out}

    async def store_of(self, booking_id: str) -> str:
        store = await self.cloud.db.fetchval("select store_id from service_bookings where booking_id = $1", booking_id)
        if store is None:
            raise Refusal("not_found", f"no booking {booking_id}")
        return store

    async def cancel(self, booking_id: str, member: str | None = None, operator: Operator | None = None
                     ) -> dict[str, Any]:
        """Cancel a booking: by its member (before it starts) or by an operator of its store (checked by the caller;
        audited). The cells are freed in the same transaction; cancelling again answers the same."""
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from service_bookings where booking_id = $1 for update", booking_id)
            if row is None or (member is not None and row["member_id"] != member):
                raise Refusal("not_found", f"no booking {booking_id}")
            if row["status"] == "booked":
                if member is not None and row["start_ms"] <= now:
                    raise Refusal("order_state", f"booking {booking_id} has started or passed: ask the store")
                by = operator.username if operator is not None else "member"
                await conn.execute("delete from service_cells where booking_id = $1", booking_id)
                row = await conn.fetchrow("update service_bookings set status = 'cancelled', cancelled_ms = $2, "
                                          "cancelled_by = $3 where booking_id = $1 returning *", booking_id, now, by)
                if operator is not None:
                    await operator_audit.record(conn, now, operator, "services.cancel_booking", booking_id,
                                                {"status": "booked"}, {"status": "cancelled"})
                log.info("booking %s cancelled by %s", booking_id, by)
            name = await self._staff_name(row["store_id"], row["staff_id"], conn)
        return booking_json(row, name)

    async def schedule(self, store_id: str, day_text: str | None) -> dict[str, Any]:
        """`GET /operator/stores/{id}/schedule?date=`: the day's bookings per staff member (the book's staff first,
        then anyone booked who has left the book), cancelled ones included and marked."""
        day = day_of(day_text)
        book, _ = await self.book_of(store_id)
        base = core.day_start_ms(day)
        rows = await self.cloud.db.fetch("select * from service_bookings where store_id = $1 and start_ms >= $2 and "
                                         "start_ms < $3 order by start_ms, booking_id", store_id, base,
                                         base + core.DAY_MIN * core.MINUTE_MS)
        staff = [(s.staff_id, s.name) for s in book.staff]
        staff += [(sid, sid) for sid in dict.fromkeys(r["staff_id"] for r in rows) if sid not in dict(staff)]
        return {"store_id": store_id, "date": day.isoformat(), "staff": [
            {"staff_id": sid, "name": name,
             "bookings": [_scheduled(r, name) for r in rows if r["staff_id"] == sid]} for sid, name in staff]}


def _scheduled(row, staff_name: str) -> dict[str, Any]:
    """A booking as the store's schedule shows it: the member's id, never their phone."""
    return {**booking_json(row, staff_name), "member_id": row["member_id"], "local_end": local(row["end_ms"])[11:]}
