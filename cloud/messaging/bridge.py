"""The NATS bridge: edge events in, exactly once; business acks and replies out; heartbeats to the registry.

Exactly once: an event's id is inserted into `edge_events` in the **same PostgreSQL transaction** as its effect
(till sale, stock movement, on-hand). Effects on actors are commands whose id is the event id, sent before that
transaction: a redelivery - even hours later - finds the id in `edge_events` and changes nothing, and an actor
command re-sent after a crash answers `exists`. Only then is the JetStream message acked and the store told (a
business ack) that it may drop the event from its outbox. A malformed frame goes to `dead_letters` with the
reason and its raw bytes, is acked, and the next message is processed.

Trust: a store is believed only about its own facts (`protocol.store_facts`, judged for each batch before any
effect): an event it may not send - another store's pickup, a member who does not exist, a grant past what it
reported on hand, a quantity past the sane bounds - is dead-lettered with the reason and its store told `refused`.
Each store has a rate (`protocol.rate`): frames over it wait for the store to send them again, so one store's flood
never holds up the others; a throttled store's events are then applied only in its own order (`throttle`).

Instances: any number share the events, split by store into shards each applied by one instance at a time, so a
store's events keep their order and no instance acks another's batch (`cloud/messaging/bridge_shards.py`).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable

import asyncpg
import nats.errors
from nats.js import JetStreamContext

from actors.member_ledger import RecordSpend
from actors.stock_pool import MALL, Fulfil, Grant, Reclaim, ReportOnHand
from cloud.messaging import coupons, lots, markdowns, promotion_uses, refusals, return_promotions, streams, to_stores
from cloud.messaging.bridge_shards import BridgeShards
from cloud.messaging.budgets import StoreBudgets
from cloud.messaging.budgets import admit as admit_budget_uses
from cloud.messaging.bulk import insert_rows
from cloud.messaging.points_till import apply_sale_points
from cloud.messaging.receiving import Receivings
from cloud.messaging.restock import StoreRestock
from cloud.messaging.returns import AFTER_THE_OTHERS, TillReturns
from cloud.messaging.shard_leases import check_fence
from cloud.messaging.shift_reports import admit as admit_shift_reports
from cloud.messaging.shift_reports import record as record_shift_reports
from cloud.messaging.stall_sales import admit as admit_stall_sales
from cloud.messaging.stall_sales import record as record_stall_sales
from cloud.messaging.stocktakes import Stocktakes
from cloud.messaging.stored_value import NewBalances, admit_cash_top_ups, apply_cash_top_up, apply_sale_spends
from cloud.messaging.throttle import Throttle
from cloud.messaging.transfers import BridgeTransfers
from cloud.runtime.calls import ActorsUnavailable
from protocol import codec, subjects
from protocol.budget_messages import BudgetUsed
from protocol.delivery_messages import StaffDelivery
from protocol.errors import ProtocolError
from protocol.ids import derived_id
from protocol.messages import (
    Ack,
    BusinessAck,
    CashToppedUp,
    EscrowGranted,
    EscrowReclaimed,
    EscrowReclaimRequested,
    Heartbeat,
    OrderPicked,
    PickingStarted,
    PickupCompleted,
    SaleCommitted,
    StockMoved,
)
from protocol.policy import STORE_CASH_TOPUP_DAY_CAP_FEN
from protocol.rate import StoreRateLimits, StoreRates
from protocol.schema import CONTROL_CHARACTERS
from protocol.store_facts import judge

REPORTED_REASONS = ("sale", "shrinkage", "stocktake", "transfer_out")  # movements that can leave online orders short
REGISTRY_FLUSH_MS = 200
ORDER_EVENTS = (PickingStarted, OrderPicked, PickupCompleted, StaffDelivery)  # applied in turn within a batch
# A failed message is retried in place for as long as it fails for a passing reason (skipping it would lose
# events), backing off; one that fails this many times for a reason that will not pass is dead-lettered:
BATCH_RETRY_FIRST_S, BATCH_RETRY_MAX_S = 0.2, 5.0
PERMANENT_AFTER_FAILURES = 2
REASON_MAX_CHARS = 500
# the rows each batch records, one statement per table (cloud/messaging/bulk.py)
EDGE_EVENT_COLUMNS = (("event_id", "text"), ("store_id", "text"), ("seq", "bigint"), ("kind", "text"), ("wall_ms", "bigint"),
                      ("received_ms", "bigint"))
TILL_SALE_COLUMNS = (("sale_id", "text"), ("store_id", "text"), ("lane", "text"), ("total_fen", "bigint"),
                     ("lines", "jsonb"), ("payments", "jsonb"), ("member_id", "text"), ("offline", "boolean"),
                     ("wall_ms", "bigint"))
STOCK_MOVEMENT_COLUMNS = (("event_id", "text"), ("store_id", "text"), ("sku", "text"), ("delta", "bigint"),
                          ("reason", "text"), ("shrinkage_reason", "text"), ("reference", "text"), ("wall_ms", "bigint"))
STORE_STOCK_COLUMNS = (("store_id", "text"), ("sku", "text"), ("on_hand", "bigint"), ("updated_ms", "bigint"),
                       ("seq", "bigint"))
# Heartbeats come every second; a store sending far more is dropped (each is soft state the next one replaces), so
# that decoding its flood cannot take this process's loop from the events of every store.
HEARTBEAT_LIMITS = StoreRateLimits(events_per_s=10, events_burst=50, bytes_per_s=64 * 1024, bytes_burst=256 * 1024)
# What passes: the database or an actor not answering for a while. Anything else a single event raises (a value
# PostgreSQL refuses, an actor refusing the command, a bug met by this event's data) fails again on every retry.
TRANSIENT = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
             asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError, asyncpg.ConnectionDoesNotExistError,
             ActorsUnavailable, nats.errors.Error)
log = logging.getLogger("freshmesh.bridge")


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)



def member_money(event) -> bool:
    """A till sale that moves a member's stored value or points (its effects are judged against what came before)."""
    return isinstance(event, SaleCommitted) and bool(event.member_id) and any(
        p.method in ("stored_value", "points") for p in event.payments)


class Bridge:
    def __init__(self, cloud, orders=None) -> None:
        self.cloud, self.orders = cloud, orders  # orders: the process's Orders service (its payments, on_ready)
        self._picking = None
        self.js: JetStreamContext | None = None
        self._tasks: list[asyncio.Task] = []
        self._heartbeats: dict[str, dict] = {}
        self._lags: list[list] = []
        self._stores_with_consumer: set[str] = set()
        self.stats = {"events": 0, "duplicates": 0, "dead_letters": 0, "batches": 0, "refused": 0, "throttled": 0,
                      "heartbeats_dropped": 0}
        self.throttle = Throttle(StoreRateLimits.from_env(os.environ), self.stats)  # each store's rate and order
        self.heartbeat_rates = StoreRates(HEARTBEAT_LIMITS)
        self.cash_topup_day_cap_fen = STORE_CASH_TOPUP_DAY_CAP_FEN  # per store and chain day
        self._members = None
        self.new_balances = NewBalances()  # members whose stored value the batch changed: told after it
        # a store's own staff deliver: `Deliveries.by_staff` (cloud/services/deliveries.py), set by the services
        self.staff_deliveries: Callable[[StaffDelivery], Awaitable[None]] | None = None
        self.returns = TillReturns(cloud)  # returns at the tills: believed, applied, recorded
        self.receivings = Receivings(cloud)  # delivery notes, lot costs, losses: believed, recorded
        self.stocktakes = Stocktakes(cloud)  # stores' stocktake notes: believed, recorded
        self.transfers = BridgeTransfers(cloud)  # transfers between stores: believed, told, recorded
        self.restock = StoreRestock(cloud)  # restock alerts: believed, recorded; pre-sales woken by grants
        self.budgets = StoreBudgets(cloud)  # stores' offline shares of capped promotion budgets

    @property
    def members(self):
        """The members service: the bridge tells the stores a member's new balance after a till spend or top-up."""
        if self._members is None:
            from cloud.services.members import Members  # a service, made on first use
            self._members = Members(self.cloud)
        return self._members

    @property
    def picking(self):
        """Applies the stores' picking (cloud/services/picking.py), made on first use."""
        if self._picking is None:
            from cloud.services.orders import Orders
            from cloud.services.picking import Picking
            self._picking = Picking(self.cloud, self.orders or Orders(self.cloud))
        return self._picking

    async def start(self) -> Bridge:
        self.js = js = self.cloud.nats.jetstream()
        await streams.ensure_streams(js)
        for store_id in self.cloud.world.stores:
            await self.ensure_store(store_id)
        # the events: this instance's shards of the stores, shared with the other instances (bridge_shards.py)
        self.shards = await BridgeShards(js, self.cloud.actors.calls.database_url, self._handle_until_done).start()
        await self.cloud.nats.subscribe(subjects.HEARTBEATS_ALL, cb=self._on_heartbeat)
        self._tasks = [asyncio.create_task(self._registry_loop())]
        return self

    async def stop(self) -> None:
        await self.shards.stop()  # the batches in hand finish; the shards go to the other instances
        await self.budgets.stop()  # the shares it granted are told to their stores before the process ends
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def ensure_store(self, store_id: str) -> None:
        if store_id not in self._stores_with_consumer:
            await streams.ensure_store_consumer(self.js, store_id)
            self._stores_with_consumer.add(store_id)

    # ---- events ----------------------------------------------------------------------------------------
    async def _handle_until_done(self, msgs) -> None:
        """A failed batch is taken apart: its messages are handled one by one, in order, so one event that can never
        apply cannot hold up the others (it is dead-lettered, the store told) while one that fails for a while
        (PostgreSQL or an actor unavailable) is retried in place until it applies. Nothing overtakes a message
        still being retried: with AckPolicy.ALL a later ack would ack it too."""
        try:
            await self.handle(msgs)
            return
        except Exception as exc:  # noqa: BLE001 - which message, and whether it can ever apply, is found below
            log.warning("batch of %d events failed (%s: %s); handling them one by one", len(msgs),
                        type(exc).__name__, exc)
        for m in msgs:
            await self._handle_one_until_done(m)

    async def _handle_one_until_done(self, m) -> None:
        delay, failures = BATCH_RETRY_FIRST_S, 0
        while True:
            try:
                await self.handle([m])
                return
            except Exception as exc:  # noqa: BLE001 - classified: never applicable, or not yet
                failures += 1
                if isinstance(exc, refusals.RefusedEvent) or (not _transient(exc) and failures >= PERMANENT_AFTER_FAILURES):
                    try:
                        await self._refuse(m, str(exc) if isinstance(exc, refusals.RefusedEvent) else
                                           f"could not be applied: {type(exc).__name__}: {exc}")
                        return
                    except Exception as again:  # noqa: BLE001 - not even dead-lettered: the database is down
                        exc = again
                log.warning("event on %s failed (%s: %s); retrying it in %.1fs", m.subject, type(exc).__name__,
                            exc, delay)
                try:
                    await m.in_progress()  # keep JetStream from redelivering it meanwhile
                except Exception as ip:  # noqa: BLE001 - the retry below is what matters
                    log.debug("in_progress for %s failed: %s", m.subject, ip)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BATCH_RETRY_MAX_S)

    async def _refuse(self, m, reason: str) -> None:
        """Dead-letter one message (raw bytes and why), ack it, and tell its store the event will never apply."""
        reason = reason[:REASON_MAX_CHARS]
        await self.cloud.db.execute(refusals.INSERT_SQL, *refusals.dead_row(m.subject, reason, bytes(m.data),
                                                                            self.cloud.now_ms()))
        await m.ack()
        self.stats["dead_letters"] += 1
        log.error("dead letter on %s: %s", m.subject, reason)
        await self._tell_refused([(m, reason)])

    async def _tell_refused(self, refused: list) -> None:
        """A business ack `refused` for each dead-lettered message that names its event (the Nats-Msg-Id every store
        publishes with): the store sets it aside instead of re-sending it forever."""
        items = []
        for m, reason in refused:
            # the store's message id is the event id, with "~N" on its Nth re-send past the stream's dedupe
            event_id = ((m.headers or {}).get(subjects.MSG_ID_HEADER) or "").split("~", 1)[0]
            try:
                store_id = subjects.store_from_subject(m.subject)
            except ProtocolError:
                continue
            if not event_id or CONTROL_CHARACTERS.search(event_id) or len(event_id) > 64:
                continue  # (the subject's store is who published it: NATS lets a store publish only on its own)
            ack = Ack(event_id=event_id, seq=0, result="refused", detail=reason[:REASON_MAX_CHARS])
            items.append((store_id, lambda ack=ack, **env: BusinessAck(acks=(ack,), **env)))
        if items:
            try:
                for store_id in {store_id for store_id, _ in items}:  # a store all of whose events were refused so
                    await self.ensure_store(store_id)                  # far has no consumer yet
                await to_stores.send_many(self.cloud, items)
            except Exception as exc:  # noqa: BLE001 - dead-lettered all the same; a re-send is refused again
                log.warning("stores not told of %d refused events (%s)", len(items), exc)

    async def handle(self, msgs) -> None:
        now = self.cloud.now_ms()
        events, dead, dead_msgs = [], [], []
        msg_of: dict[str, object] = {}  # event id -> the (first) message that carried it
        for m in self.throttle.within_rates(msgs, now):
            try:
                event = codec.decode(m.data)
                owner = subjects.store_from_subject(m.subject)
                if event.store_id != owner:
                    raise ProtocolError(f"event for store {event.store_id} arrived on store {owner}'s subject")
                events.append(event)
                msg_of.setdefault(event.event_id, m)
            except ProtocolError as exc:
                reason = str(exc)[:REASON_MAX_CHARS]
                dead.append(refusals.dead_row(m.subject, reason, bytes(m.data), now))
                dead_msgs.append((m, reason))
        events = await self.throttle.in_order(events, now, self.cloud.db)  # a throttled store's in its order
        unique = list({e.event_id: e for e in events}.values())
        known = {r["event_id"] for r in await self.cloud.db.fetch(
            "select event_id from edge_events where event_id = any($1::text[])", [e.event_id for e in unique])}
        fresh = [e for e in unique if e.event_id not in known]
        new = await self._believed(fresh, msg_of, dead, dead_msgs, now)
        refused_ids = {e.event_id for e in fresh} - {e.event_id for e in new}
        dead += self.throttle.notes(now)
        for store_id in {e.store_id for e in new}:
            await self.ensure_store(store_id)
        # On-hand reports supersede each other: only the batch's last reportable one per (store, sku) is sent.
        last_move = {}
        for e in new:
            if isinstance(e, StockMoved) and e.reason in REPORTED_REASONS:
                last_move[(e.store_id, e.sku)] = e
        effects = [e for e in new if not isinstance(e, StockMoved) or last_move.get((e.store_id, e.sku)) is e]
        # All effects at once: the micro-batcher turns them into one Ray call per shard, in submission order.
        # An order's store events (picking started, picked, handed over) apply one after the other, in the store's
        # order: an offline store's backlog brings them in one batch, and a pickup must not fulfil what picking did.
        in_turn = [e for e in effects if isinstance(e, ORDER_EVENTS)]
        # A member's till sales paid with stored value or points apply one after the other too: each claim without a
        # hold is judged against the member's balance and the store's allowance used so far, which the one before
        # changes (two at once would both see the whole balance, and the ledger would refuse the later in full).
        by_member: dict[str, list] = {}
        for e in effects:
            if member_money(e):
                by_member.setdefault(e.member_id, []).append(e)
        await asyncio.gather(self._one_by_one(in_turn), *(self._one_by_one(sales) for sales in by_member.values()),
                             *(self._actor_effects(e) for e in effects
                               if not isinstance(e, ORDER_EVENTS) and not isinstance(e, AFTER_THE_OTHERS)
                               and not member_money(e)))
        for e in effects:  # after the sales and pickups of the batch they may return
            if isinstance(e, AFTER_THE_OTHERS):
                await self.returns.apply(e, self.new_balances)
                await self.budgets.returned(e, self.returns.verdicts.all_back.get(e.event_id, False))
        async with self.cloud.db.acquire() as conn, conn.transaction():
            await check_fence(conn)  # still this shard's holder: else nothing is recorded (cloud/messaging/shard_leases.py)
            if dead:
                await conn.executemany(refusals.INSERT_SQL, dead)
            if new:
                await insert_rows(conn, "edge_events", EDGE_EVENT_COLUMNS,
                                  [(e.event_id, e.store_id, e.seq, e.KIND, e.wall_ms, now) for e in new])
                await self._record(conn, new)
        # after the commit: the other store acts on a transfer step only once its row is there to judge it against
        # (a crash in between: `Transfers.resend` at start tells it, applied once there by the derived event id)
        await self.transfers.tell(new)
        if msgs and not msgs[-1].is_acked:
            await msgs[-1].ack()  # AckPolicy.ALL: one ack for the whole, fully applied batch
        if dead:
            await self._tell_refused([(m, reason) for m, reason in dead_msgs])
        self.stats["events"] += len(new)
        self.stats["duplicates"] += len(events) - len(fresh)
        self.stats["dead_letters"] += len(dead)
        self.stats["batches"] += 1
        for dl in dead:
            log.warning("dead letter on %s: %s", dl[0], dl[2])
        self._lags.extend([e.store_id, e.seq, e.wall_ms, now] for e in new)
        await self.new_balances.tell(self.members)  # before the acks: no moment with a spend settled, balance stale
        try:
            # a refused event was told `refused` above: no `exists` for it (the store would drop it as applied)
            await self._acks([e for e in events if e.event_id not in refused_ids], {e.event_id for e in new})
        except Exception as exc:  # noqa: BLE001 - the events are applied; the store re-sends and is acked then
            log.warning("business acks not sent (%s); the store will re-send and get them", exc)
        await self.restock.after(new)  # pre-sale orders reserved for where stock arrived (never raises)
        self.budgets.after(new)  # tills' shares of capped promotion budgets topped up, in the background

    async def _believed(self, events: list, msg_of: dict, dead: list, dead_msgs: list, now_ms: int) -> list:
        """The events the cloud believes (`protocol.store_facts`); each refused one joins the batch's dead letters
        with its reason (its store is told with them), and is not applied."""
        refused = judge(events, await refusals.known_for(self.cloud, events)) if events else {}
        cash = [e for e in events if isinstance(e, CashToppedUp) and e.event_id not in refused]
        if cash:  # the daily cap, against what is recorded (locked per store): a verdict like the others
            refused.update(await admit_cash_top_ups(self.cloud, cash, now_ms, self.cash_topup_day_cap_fen))
        refused.update(await self.returns.admit([e for e in events if e.event_id not in refused]))
        refused.update(await self.receivings.admit([e for e in events if e.event_id not in refused]))
        refused.update(await self.stocktakes.admit([e for e in events if e.event_id not in refused]))
        refused.update(await self.transfers.admit([e for e in events if e.event_id not in refused]))
        refused.update(await self.restock.admit([e for e in events if e.event_id not in refused]))
        refused.update(await coupons.admit(self.cloud, [e for e in events if e.event_id not in refused]))
        refused.update(await admit_budget_uses(self.cloud, [e for e in events if e.event_id not in refused]))
        refused.update(await admit_shift_reports(self.cloud, [e for e in events if e.event_id not in refused]))
        refused.update(await admit_stall_sales(self.cloud, [e for e in events if e.event_id not in refused]))
        if not refused:
            return events
        for event_id, reason in refused.items():
            m = msg_of[event_id]
            reason = reason[:REASON_MAX_CHARS]
            dead.append(refusals.dead_row(m.subject, reason, bytes(m.data), now_ms))
            dead_msgs.append((m, reason))
            log.warning("refused: %s", reason)
        self.stats["refused"] += len(refused)
        return [e for e in events if e.event_id not in refused]

    async def _record(self, conn, events) -> None:
        sales = [e for e in events if isinstance(e, SaleCommitted)]
        moves = [e for e in events if isinstance(e, StockMoved)]
        await insert_rows(conn, "till_sales", TILL_SALE_COLUMNS, [
            (e.sale_id, e.store_id, e.lane, e.total_fen,
             json.dumps([[line.sku, line.quantity.amount, line.quantity.unit, line.amount_fen] for line in e.lines]),
             json.dumps([[p.method, p.amount_fen, p.reference] for p in e.payments]), e.member_id, e.offline, e.wall_ms)
            for e in sales])
        if moves:
            await insert_rows(conn, "stock_movements", STOCK_MOVEMENT_COLUMNS,
                              [(e.event_id, e.store_id, e.sku, e.delta, e.reason, e.shrinkage_reason, e.reference, e.wall_ms)
                               for e in moves])
            latest: dict[tuple[str, str], tuple[int, int, int]] = {}
            for e in moves:  # the highest sequence per (store, sku) carries the current on-hand
                if (e.store_id, e.sku) not in latest or e.seq > latest[(e.store_id, e.sku)][2]:
                    latest[(e.store_id, e.sku)] = (e.on_hand_after, e.wall_ms, e.seq)
            await insert_rows(conn, "store_stock", STORE_STOCK_COLUMNS,
                              [(s, k, on_hand, at, seq) for (s, k), (on_hand, at, seq) in latest.items()],
                              tail="""on conflict (store_id, sku) do update set on_hand = excluded.on_hand,
                                      updated_ms = excluded.updated_ms, seq = excluded.seq
                                      where store_stock.seq <= excluded.seq""")
            await lots.record(conn, moves)
        await self.returns.record(conn, events)  # after the sales: a return may name one of the same batch
        await markdowns.record(conn, events)  # what markdowns gave away on the sales (cloud/messaging/markdowns.py)
        await promotion_uses.record_till(conn, events)  # every basket and its rules (cloud/messaging/promotion_uses.py)
        await self.receivings.record(conn, events)
        await self.stocktakes.record(conn, events)
        await self.transfers.record(conn, events)
        await self.restock.record(conn, events)
        await coupons.record(conn, events)  # coupons the till sales triggered (cloud/messaging/coupons.py)
        await return_promotions.record(conn, events)  # returns undo their sales' coupons (after the above)
        await self.budgets.record(conn, events)  # the tills' uses of capped promotion budgets
        await record_shift_reports(conn, events, self.cloud.now_ms())  # cashiers' shift reports (cash-ups)
        await record_stall_sales(conn, events)  # market stalls' sales (cloud/messaging/stall_sales.py)

    async def _actor_effects(self, event) -> None:
        """Actor commands carry the event id as their id: re-sending after a crash answers `exists`."""
        stock, ledger = self.cloud.actors.stock_pool, self.cloud.actors.member_ledger
        if isinstance(event, EscrowGranted):
            # a loan is the mall's (its order waits for it): the box says so, and a box from before it did not, but
            # the cloud's borrowing recorded the loan's grant (as it applies it too: the same command either way)
            loan = event.loan or bool(await self.cloud.db.fetchval(
                "select 1 from escrow_borrows where grant_event_id = $1", event.event_id))
            await stock.send(Grant(id=event.event_id, store=event.store_id, sku=event.sku, qty=event.qty,
                                   channel=MALL if loan else None))
        elif isinstance(event, EscrowReclaimRequested):
            r = (await stock.send(Reclaim(id=event.event_id, store=event.store_id, sku=event.sku, qty=event.qty))).settled
            reply = derived_id(event.event_id, "reclaimed")
            await to_stores.send(self.cloud, event.store_id, lambda **env: EscrowReclaimed(
                request_event_id=event.event_id, sku=event.sku, qty_returned=r.get("returned", 0),
                escrow_after=r.get("escrow", 0), **env), event_id=reply)
        elif isinstance(event, StockMoved) and event.reason in REPORTED_REASONS:
            await stock.send(ReportOnHand(id=event.event_id, store=event.store_id, sku=event.sku,
                                          on_hand=event.on_hand_after))
        elif isinstance(event, PickupCompleted):
            await self._pickup(event)
        elif isinstance(event, StaffDelivery):  # believed by `_believed`: a paid delivery order of this store
            if self.staff_deliveries is None:
                from cloud.services.deliveries import Deliveries  # no rider platform to withdraw from here
                self.staff_deliveries = Deliveries(self.cloud, None).by_staff
            await self.staff_deliveries(event)
        elif isinstance(event, (PickingStarted, OrderPicked)):  # believed by `_believed` (its store, its lines)
            await self.picking.apply(event)
        elif isinstance(event, BudgetUsed):  # debited from its store's share before the ack (cloud/messaging/budgets.py)
            await self.budgets.apply(event)
        elif isinstance(event, CashToppedUp):
            await apply_cash_top_up(self.cloud, event)  # believed by `_believed` (member, daily cap)
            self.new_balances.add(event.member_id, event.store_id)
        elif isinstance(event, SaleCommitted) and event.member_id:
            # A till sale is a fact (the goods left): an online one captures its hold, an offline one is spent within
            # the allowance; past what the ledger believes the store owes it (cloud/messaging/stored_value.py)
            if any(p.method == "stored_value" for p in event.payments):
                taken = await apply_sale_spends(self.cloud, event)
                self.new_balances.add(event.member_id, event.store_id, taken)
            if any(p.method == "points" for p in event.payments):  # a hold captured, or a claim believed within
                await apply_sale_points(self.cloud, event)  # the allowance (cloud/messaging/points_till.py)
                self.new_balances.add(event.member_id, event.store_id)  # the store's copy of the points follows
            others = sum(p.amount_fen for p in event.payments if p.method not in ("stored_value", "points"))
            if others:
                await ledger.send(RecordSpend(id=f"sale:{event.sale_id}", member=event.member_id, amount_fen=others))

    async def _one_by_one(self, events: list) -> None:
        for event in events:
            await self._actor_effects(event)

    async def _pickup(self, event: PickupCompleted) -> None:
        row = await self.cloud.db.fetchrow("select * from orders where order_id = $1", event.order_id)
        allocation = json.loads(row["allocation"]) if row is not None else {}
        if row is None or event.store_id not in allocation:  # (a flash order not assigned names its sale only)
            # Not reached: `_believed` refused such a pickup before (dead-lettered, the store told). Kept so that
            # no path can hand over another store's order.
            log.error("pickup of order %s by store %s passed judgement; ignored", event.order_id, event.store_id)
            return
        for line in allocation[event.store_id]:
            rid = line["reservation_id"]
            await self.cloud.actors.stock_pool.send(Fulfil(id=f"fulfil:{rid}", reservation_id=rid, sku=line["sku"]))
        # the store's part is handed over; the order follows once every part is (cloud/services/picking.py). A part
        # that cannot be (already picked up: the goods left, the order says so) is logged there
        await self.picking.handed_over(event)

    async def _acks(self, events, new_ids: set[str]) -> None:
        by_store: dict[str, list[Ack]] = {}
        for e in events:
            by_store.setdefault(e.store_id, []).append(
                Ack(event_id=e.event_id, seq=e.seq, result="ok" if e.event_id in new_ids else "exists", detail=""))
        items = []
        for store_id, acks in by_store.items():
            for i in range(0, len(acks), 500):  # keep each frame well under the size limit
                chunk = tuple(acks[i:i + 500])
                items.append((store_id, lambda chunk=chunk, **env: BusinessAck(acks=chunk, **env)))
        await to_stores.send_many(self.cloud, items)

    # ---- heartbeats and the registry -----------------------------------------------------------------------
    async def _on_heartbeat(self, msg) -> None:
        if not self.heartbeat_rates.admit(refusals.store_of(msg.subject), len(msg.data), self.cloud.now_ms()):
            self.stats["heartbeats_dropped"] += 1
            return
        try:
            hb = codec.decode(msg.data)
            if not isinstance(hb, Heartbeat) or hb.store_id != subjects.store_from_subject(msg.subject):
                raise ProtocolError(f"not a heartbeat of the subject's store: {hb.KIND} from {hb.store_id}")
        except ProtocolError as exc:
            log.warning("bad heartbeat on %s: %s", msg.subject, exc)
            return
        self._heartbeats[hb.store_id] = {
            "store_id": hb.store_id, "now_ms": self.cloud.now_ms(), "outbox_depth": hb.outbox_depth,
            "last_event_seq": hb.last_event_seq, "last_acked_seq": hb.last_acked_seq,
            "unacked_age_ms": hb.unacked_age_ms, "disk_free_bytes": hb.disk_free_bytes,
            "devices": {d.device: d.state for d in hb.devices}}
        self.budgets.heard(hb.store_id)  # a store that is up gets its shares of capped promotion budgets

    async def _registry_loop(self) -> None:
        while True:
            await asyncio.sleep(REGISTRY_FLUSH_MS / 1000)
            if self._heartbeats or self._lags:
                heartbeats, self._heartbeats = list(self._heartbeats.values()), {}
                lags, self._lags = self._lags, []
                try:
                    await self.cloud.actors.registry.report(heartbeats, lags)
                except Exception as exc:  # noqa: BLE001 - soft state: the next heartbeats refill it
                    log.warning("registry report failed: %s", exc)

