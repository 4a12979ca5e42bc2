"""Borrowing escrow from a store's offline share when an online order is short (issue 15, item 5).

The cloud reserves online orders only against escrow a store granted (DESIGN.md section 3). When a store that
could serve an order is short of escrow but its last reported on-hand is above its escrow, the cloud asks it for
the shortfall - core NATS request/reply on the store's own `fm.store.<id>.escrow.borrow`, with a deadline - before
refusing or routing elsewhere. The store decides (`edge.core.lending`: never below the till's floor), commits the
grant durably (escrow + outbox `EscrowGranted`) and answers with the grant's event id.

Guarantees:
- A grant is applied once: the StockPool `Grant` takes the store's event id as its id, so the same grant arriving
  later through the JetStream event path answers `exists`. It is written to `escrow_borrows` before it is applied,
  so the bridge's trust check knows it was already judged and applied (`protocol.store_facts.Known.applied_grants`)
  and does not judge it again against an escrow that already includes it.
- A grant is believed as any grant: escrow after it within the store's reported on-hand (`judge_grant`, against the
  escrow read once the answer is here; a grant the event path applied first is not judged twice); one that is not
  is left to the event path, which judges it with whatever the store has reported by then.
- One order borrows from as few stores as it needs: nearest first, one store at a time, until it is covered
  (`actors.borrow_plan`).
- Bounded: at most one borrow in flight per (store, sku) - a concurrent order waits for that one's answer - and
  after a refusal (nothing lent, no answer, store offline) that (store, sku) is not asked again for
  `BORROW_BACKOFF_MS`. A store that is offline answers at once with no responders; one that is slow costs an order
  at most `BORROW_TIMEOUT_S`. Then the order proceeds as it would have: routed elsewhere, or refused.
"""
from __future__ import annotations

import asyncio
import logging

import nats.errors
from prometheus_client import Counter

from actors.borrow_plan import next_ask
from actors.stock_pool import MALL, Grant
from protocol import codec, subjects
from protocol.errors import ProtocolError
from protocol.escrow_messages import EscrowBorrowAnswered, EscrowBorrowRequested
from protocol.messages import EscrowGranted
from protocol.store_facts import judge_grant

BORROW_TIMEOUT_S = 1.0  # how long an order waits for a store's answer
BORROW_STORES_PER_ORDER_MAX = 3  # stores asked one after another for one order (each may cost BORROW_TIMEOUT_S)
BORROW_BACKOFF_MS = 10_000  # after a refusal, that (store, sku) is not asked again for this long
BORROWS_IN_FLIGHT_MAX = 256  # (store, sku) pairs asked at once, over all orders of this process
BACKED_OFF_KEPT_MAX = 10_000  # (store, sku) back-offs remembered before the ones that are over are dropped
log = logging.getLogger("freshmesh.borrowing")
BORROWS = Counter("freshmesh_escrow_borrows_total", "Escrow borrows asked of stores, by outcome", ["outcome"])

Pair = tuple[str, str]


class Borrowing:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self._in_flight: dict[Pair, asyncio.Task[int]] = {}
        self._refused_until: dict[Pair, int] = {}
        self.stats = {"asked": 0, "lent": 0, "refused": 0, "no_answer": 0, "not_believed": 0, "backed_off": 0}

    def _count(self, outcome: str) -> None:
        self.stats[outcome] += 1
        BORROWS.labels(outcome).inc()

    async def fill(self, stores: list[str], items: dict[str, int], availability: dict[str, dict[str, int]],
                   order_ref: str = "") -> dict[str, dict[str, int]]:
        """`availability` ({store: {sku: units}}) after asking the short stores (`stores`: nearest first) that
        have units on hand beyond their escrow to lend, one store at a time and only until the order is covered
        (`actors.borrow_plan.next_ask`: one order must not pull loans from several stores' shelves and use one);
        the same map when nothing was lent."""
        short = [(store, sku) for store in stores for sku, qty in items.items()
                 if availability.get(store, {}).get(sku, 0) < qty]
        if not short or self.cloud.nats is None:
            return availability
        spare = await self._spare(short)
        asked: set[str] = set()
        while len(asked) < BORROW_STORES_PER_ORDER_MAX and \
                (ask := next_ask(items, stores, availability, spare, asked)) is not None:
            store, lines = ask
            asked.add(store)
            lent = await asyncio.gather(*(self.borrow(store, sku, qty, order_ref) for sku, qty in lines.items()))
            if any(lent):
                availability = await self.cloud.actors.stock_pool.availability(stores, list(items))
        return availability

    async def _spare(self, pairs: list[Pair]) -> dict[Pair, int]:
        """Units each store last reported on hand beyond the escrow it granted (what it might lend)."""
        rows = await self.cloud.db.fetch(
            "select store_id, sku, on_hand from store_stock where (store_id, sku) in "
            "(select * from unnest($1::text[], $2::text[]))", [s for s, _ in pairs], [k for _, k in pairs])
        on_hand = {(r["store_id"], r["sku"]): r["on_hand"] for r in rows}
        spare = {}
        for store, sku in pairs:
            if on_hand.get((store, sku), 0) <= 0:
                continue
            positions = await self.cloud.actors.stock_pool.positions(store, sku)
            escrow = positions[0]["escrow"] if positions else 0
            spare[(store, sku)] = on_hand[(store, sku)] - escrow
        return spare

    async def borrow(self, store: str, sku: str, qty: int, order_ref: str = "") -> int:
        """Units the store lent (and the cloud applied) for this ask; 0 when backed off, refused or unanswered. A
        borrow already in flight for the pair is waited for instead of asking again."""
        pair = (store, sku)
        if self._refused_until.get(pair, 0) > self.cloud.now_ms():
            self._count("backed_off")
            return 0
        running = self._in_flight.get(pair)
        if running is None:
            if len(self._in_flight) >= BORROWS_IN_FLIGHT_MAX:
                return 0
            running = self._in_flight[pair] = asyncio.create_task(self._ask(store, sku, qty, order_ref))

            def done(_: asyncio.Task[int], pair: Pair = pair) -> None:
                self._in_flight.pop(pair, None)
            running.add_done_callback(done)
        granted = await asyncio.shield(running)
        if not granted:
            now = self.cloud.now_ms()
            if len(self._refused_until) >= BACKED_OFF_KEPT_MAX:  # bounded: forget the back-offs that are over
                self._refused_until = {p: until for p, until in self._refused_until.items() if until > now}
            self._refused_until[pair] = now + BORROW_BACKOFF_MS
        return granted

    async def _ask(self, store: str, sku: str, qty: int, order_ref: str) -> int:
        cloud = self.cloud
        request = EscrowBorrowRequested(event_id=cloud.ids.new(), store_id=store, seq=0, wall_ms=cloud.now_ms(),
                                        mono_ms=cloud.clock.monotonic_ms(), borrow_id=cloud.ids.new(), sku=sku,
                                        qty=qty, order_ref=order_ref[:80])
        self._count("asked")
        try:
            reply = await cloud.nats.request(subjects.store_escrow_borrow(store), codec.encode(request),
                                             timeout=BORROW_TIMEOUT_S)
            answer = codec.decode(reply.data)
        except (ProtocolError, TimeoutError, nats.errors.Error, OSError) as exc:
            self._count("no_answer")
            log.info("store %s: no answer to borrowing %d %s (%s)", store, qty, sku, type(exc).__name__)
            return 0
        if not (isinstance(answer, EscrowBorrowAnswered) and answer.borrow_id == request.borrow_id
                and answer.store_id == store and answer.sku == sku and answer.asked == qty):
            self._count("no_answer")
            log.warning("store %s: an answer that is not for borrow %s", store, request.borrow_id)
            return 0
        if not answer.lent:
            self._count("refused")
            log.info("store %s lent no %s: %s", store, sku, answer.reason)
            return 0
        return await self._apply(answer, order_ref)

    async def _apply(self, answer: EscrowBorrowAnswered, order_ref: str) -> int:
        """The store's grant, judged as the event path judges a grant, recorded, then applied (id = its event id).
        Judged against the escrow read now, after the answer: one read before asking may be stale by then (another
        grant or a reclaim applied meanwhile) and let a loan past the store's reported on-hand. The same grant may
        have come first through the event path (the store's relay is as fast as its answer): then it was judged and
        applied there, and it is not judged again against an escrow that already includes it."""
        cloud, store, sku = self.cloud, answer.store_id, answer.sku
        grant = EscrowGranted(event_id=answer.grant_event_id, store_id=store, seq=0, wall_ms=answer.wall_ms,
                              mono_ms=answer.mono_ms, sku=sku, qty=answer.lent, escrow_after=answer.escrow_after)
        positions = await cloud.actors.stock_pool.positions(store, sku)
        escrow_now = positions[0]["escrow"] if positions else 0
        if await cloud.db.fetchval("select 1 from edge_events where event_id = $1", grant.event_id):
            self._count("lent")
            log.info("store %s lent %d %s (grant %s, applied by the event path)", store, answer.lent, sku,
                     grant.event_id)
            return answer.lent
        on_hand = await cloud.db.fetchval("select on_hand from store_stock where store_id = $1 and sku = $2", store, sku)
        why = judge_grant(grant, on_hand, escrow_now)
        if why:  # left to the event path, which judges it with what the store has reported by then
            self._count("not_believed")
            log.warning("store %s: loan %s not applied now: %s", store, grant.event_id, why)
            return 0
        await cloud.db.execute(
            """insert into escrow_borrows (grant_event_id, borrow_id, store_id, sku, asked, granted, order_ref, at_ms)
               values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (grant_event_id) do nothing""",
            grant.event_id, answer.borrow_id, store, sku, answer.asked, answer.lent, order_ref, cloud.now_ms())
        # the mall's units (as the event path applies the same grant: the same command either way)
        await cloud.actors.stock_pool.send(Grant(id=grant.event_id, store=store, sku=sku, qty=answer.lent, channel=MALL))
        self._count("lent")
        log.info("store %s lent %d %s (grant %s)", store, answer.lent, sku, grant.event_id)
        return answer.lent
