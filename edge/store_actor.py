"""StoreActor: the one place a store's state changes - lanes, stock, sales, cloud messages. A thin shell around
the pure core (edge.core): it loads the state a decision needs from the StoreDb, asks the core, and executes the
Outcome - effects in one SQLite transaction, then the after-effects.

Guarantees:
- One mailbox (bounded: a full mailbox answers Busy at once rather than queueing without end), processed one
  message at a time, so there is no shared mutable state across tasks; carts are bounded too (MAX_OPEN_CARTS).
- A sale commits with its stock movements and outbox rows in one SQLite transaction **before** its receipt
  prints: a printed receipt always has a durable sale behind it.
- Cloud messages apply once (their event id goes into `inbox` in the same transaction as their effect).
- Event seqs are kept in memory (the actor is their only writer), recovered at start as the highest seq ever
  committed, and adopted only after a commit: they never go back and leave no gap.
- The till never waits on the network; selling past the offline share asks the cloud for escrow back.
- Escrow follows HQ's ratio for the SKU (else its category's, else the box's default): grants on receiving, the
  rebalance when a new ratio arrives, and loans to the cloud (`edge.core.lending`), each committed with its
  outbox event in one transaction.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import replace

from edge import (
    allocations,
    budget_db,
    coupon_ops,
    gs1_scan,
    limit_ops,
    markdowns_api,
    markdowns_db,
    picking_db,
    receiving_db,
    restock_db,
    shift_ops,
    transfer_steps,
)
from edge.back_room import BackRoom
from edge.core import budget_allowance, cashiers, cloud_messages, escrow, lending, picking, selling, stall_lanes, stock
from edge.core.cart import Cart, cart_json, price, weighed_line
from edge.core.gifts import gift_skus
from edge.core.markdowns import label_line as markdown_line
from edge.core.outcome import ForgetCart, Outcome, PrintTicket, Refused, UseBooks
from edge.core.receiving import Note, receive_note, write_off
from edge.core.state import Books, EventStamp, Moment
from edge.stocktake_ops import StocktakeOps
from edge.store_db import StoreDb
from edge.till import lines as till_lines
from protocol import phones
from protocol.barcodes import DEFAULT_LAYOUTS
from protocol.budget_messages import BudgetAllowanceGranted, BudgetShareReclaimed
from protocol.errors import ProtocolError
from protocol.escrow_messages import AllocationSet, EscrowBorrowAnswered, EscrowBorrowRequested
from protocol.lots import chain_day
from protocol.messages import BusinessAck, OrderCancelled
from protocol.policy import (
    CASH_TOPUP_MAX_FEN,
    DEFAULT_ONLINE_RATIO_BP,
    OFFLINE_ALLOWANCE_FEN,
    STORE_CASH_TOPUP_DAY_CAP_FEN,
    chain_day_start_ms,
)
from protocol.pricing import Catalogue, load_rule_book
from protocol.restock_messages import ReorderPointsSet
from protocol.transfer_messages import CLOUD_TRANSFER_MESSAGES

MAILBOX_MAX = 1_000
MAX_OPEN_CARTS = 256  # lanes with a cart in progress; a lane name past this is refused, not remembered
log = logging.getLogger("freshmesh.edge")

__all__ = ["Busy", "Refused", "StoreActor"]


class Busy(RuntimeError):
    """The mailbox is full: the caller should retry shortly."""


class StoreActor(BackRoom):
    def __init__(self, store_id: str, db: StoreDb, clock, ids, printer=None, layouts=DEFAULT_LAYOUTS,
                 ratio_bp: int = DEFAULT_ONLINE_RATIO_BP, floor_limit_fen: int = OFFLINE_ALLOWANCE_FEN,
                 member_lookup_key: bytes | None = None,
                 cash_topup_day_cap_fen: int = STORE_CASH_TOPUP_DAY_CAP_FEN) -> None:
        self.store_id, self.db, self.clock, self.ids = store_id, db, clock, ids
        self.member_lookup_key = member_lookup_key  # this store's key of phone hashes (None: member codes only)
        self.survey: tuple[bytes | None, str] = (None, "")  # the receipts' survey key and base URL (set by the box)
        self.show_jin = False  # receipts show jin too (the store's config, set by the box)
        self.stall_lanes: dict[str, str] = {}  # lane -> its market stall (edge/core/stall_lanes.py; set by the box)
        self.printer, self.layouts, self.ratio_bp, self.floor_limit_fen = printer, layouts, ratio_bp, floor_limit_fen
        self.mailbox: asyncio.Queue = asyncio.Queue(maxsize=MAILBOX_MAX)
        self.carts: dict[str, Cart] = {}
        self.on_duty: dict[str, cashiers.OnDuty] = {}  # lane -> the cashier signed in there (none after a restart)
        self.cash_topup_day_cap_fen = cash_topup_day_cap_fen
        self.books = Books()
        self.last_seq = 0  # the highest event seq committed; recovered by load()
        self.online = False  # set by the sync task: can the store reach the cloud right now?
        self.on_outbox = asyncio.Event()  # the relay waits on this
        self.on_books: Callable[[Books], None] | None = None  # told of new books (the box's label scales follow)
        self.stats = {"sales": 0, "cloud_messages": 0, "duplicates": 0}
        self.stocktakes = StocktakeOps(self)  # count sessions (edge/stocktake_ops.py), run in this mailbox
        self.coupon_releases: list[tuple[str, str]] = []  # (code, hold id) the shell gives back (edge/coupons.py)

    @property
    def catalogue(self) -> Catalogue | None:  # as sold here now: the store's own and scheduled prices applied
        return self.books.catalogue.at(self.clock.now_ms()) if self.books.catalogue is not None else None

    @property
    def rule_book(self):
        return self.books.rule_book

    # ---- mailbox ---------------------------------------------------------------------------------------
    async def ask(self, op: str, **kwargs):
        fut = asyncio.get_running_loop().create_future()
        try:
            self.mailbox.put_nowait((op, kwargs, fut))
        except asyncio.QueueFull:
            raise Busy("the store is busy; retry in a moment") from None
        return await fut

    async def run(self) -> None:
        while True:
            op, kwargs, fut = await self.mailbox.get()
            try:
                result = await getattr(self, f"_{op}")(**kwargs)
            except Exception as exc:  # noqa: BLE001 - the asker gets the error; the actor goes on
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(result)

    async def load(self, world: dict | None = None) -> None:
        """The seq to continue from; the books from the store's copy (last received), else from a bootstrap world
        file's catalogue and rule book."""
        self.last_seq = await self.db.recover_seq()
        catalogue = await self.db.get_meta("catalogue")
        rules = await self.db.get_meta("rule_book")
        if catalogue is None and world is not None:
            catalogue, rules = json.dumps(world["catalogue"]), json.dumps(world["rule_book"])
        if catalogue is not None:
            parsed = Catalogue.from_data(json.loads(catalogue))
            book = load_rule_book(json.loads(rules or '{"version": 1, "rules": []}'), parsed)
            versions = [int(await self.db.get_meta(f"{key}_version") or 0) for key in ("catalogue", "rule_book")]
            self.books = Books(parsed, book, versions[0], versions[1])
            await self._budgets()
            await self._gift_stock()

    async def _budgets(self) -> None:
        """What the tills may still give under capped rules: this store's shares left (edge/core/budget_allowance.py)."""
        left = budget_allowance.budgets_left(self.books.rule_book, await budget_db.allowances(self.db.reader))
        self.books = replace(self.books, budgets_left=left)

    # ---- running the core's decisions -----------------------------------------------------------------------
    def _moment(self) -> Moment:
        return Moment(self.clock.now_ms(), self.clock.monotonic_ms())

    def _stamp(self) -> EventStamp:
        return EventStamp(self.store_id, self.last_seq, self._moment(), self.ids.new)

    async def _execute(self, outcome: Outcome):
        await self.db.apply(shift_ops.with_shifts(self.on_duty, outcome.effects))  # sales and returns: their shift
        if outcome.last_seq is not None:
            self.last_seq = outcome.last_seq
        if outcome.publishes:
            self.on_outbox.set()
        for note in outcome.notes:
            log.warning("store %s: %s", self.store_id, note)
        for after in outcome.after:
            if isinstance(after, PrintTicket):
                if self.printer is not None:
                    await self.printer.print(after.ticket)
            elif isinstance(after, ForgetCart):
                self.carts.pop(after.lane, None)
            elif isinstance(after, UseBooks):
                self.books = after.books
                if self.on_books is not None:
                    self.on_books(after.books)
        if budget_allowance.changes(outcome):  # a grant, a sale's use of a share, or a new book
            await self._budgets()
        if moved := restock_db.moved_skus(outcome.effects):
            await self._restock(moved)
        if set(moved) & gift_skus(self.books) or any(isinstance(a, UseBooks) for a in outcome.after):
            await self._gift_stock()  # the cart view says which gifts cannot be given (edge/core/gifts.py)
        return outcome.reply

    async def _gift_stock(self) -> None:
        levels = await self.db.stock_levels(gift_skus(self.books))
        self.books = replace(self.books, gift_stock={sku: lv.on_hand for sku, lv in levels.items()})

    async def _restock(self, skus: list[str]) -> None:
        """A restock alert raised or cleared for each SKU whose projected stock or point changed (edge.core.restock),
        once the change committed, in a transaction of its own right after the movement's. A crash in between, or a
        failure here (logged), leaves the change standing and the alert to the next movement of that SKU, which
        re-checks from the stock as it is then (see `edge.core.restock`)."""
        for sku in skus:
            try:
                if (outcome := await restock_db.check(self.db, self.books, sku, self._stamp())) is not None:
                    await self._execute(outcome)
            except Exception:  # noqa: BLE001 - see the docstring
                log.exception("store %s: restock check of %s failed", self.store_id, sku)

    # ---- lanes -----------------------------------------------------------------------------------------
    def _catalogue(self) -> Catalogue:
        if self.books.catalogue is None:
            raise Refused(503, "no catalogue yet: the store has not received one from the cloud")
        return self.books.catalogue.at(self.clock.now_ms())

    def _cart(self, lane: str, keep: bool = True) -> Cart:
        """The lane's cart; a lane without one gets a new one, remembered only when something goes into it."""
        self._catalogue()
        cart = self.carts.get(lane)
        if cart is None:
            if not keep:
                return Cart()
            if len(self.carts) >= MAX_OPEN_CARTS:
                raise Refused(409, f"{MAX_OPEN_CARTS} lanes already have a cart open: finish or void one first")
            cart = self.carts[lane] = Cart()
        return cart

    def _priced(self, lane: str) -> dict:
        cart = self._cart(lane, keep=False)
        return cart_json(cart, price(cart, self.books, self.store_id, self.clock.now_ms()))

    def _added(self, lane: str, sku: str) -> dict:
        cart = self._priced(lane)
        return {"line": next(line for line in reversed(cart["lines"]) if line["sku"] == sku), "cart": cart}

    async def _scan(self, lane: str, code: str, key: str | None = None) -> dict:
        cart = self._cart(lane)  # refuses when there is no catalogue yet
        if (sku := cart.scanned(key)) is not None:  # the same scan retried (its Idempotency-Key): added once
            return self._added(lane, sku)
        label = await markdowns_db.label_for(self.db.writer, code, self.clock.now_ms())  # printed here today
        # else GS1 codes with their lot and use-by (an expired one refused: edge/gs1_scan.py), else as before
        line = markdown_line(label, self.clock.now_ms()) if label else await gs1_scan.scanned_line(self, code)
        stall_lanes.check_line(self.stall_lanes, self.books.catalogue, lane, line.sku)  # a stall lane: its goods only
        cart.add(line, key)
        return self._added(lane, line.sku)

    async def _weighed(self, lane: str, sku: str, grams: int, key: str | None = None) -> dict:
        if self.books.catalogue is None:
            raise Refused(404, f"unknown product {sku!r}")
        if self._cart(lane).scanned(key) is None:  # a weighing retried with its Idempotency-Key: added once
            line = weighed_line(self.books.catalogue, sku, grams)  # an unknown product: 404 first
            stall_lanes.check_line(self.stall_lanes, self.books.catalogue, lane, sku)  # a stall lane: its goods only
            self._cart(lane).add(line, key)
        return self._added(lane, sku)

    async def _member(self, lane: str, phone: str | None = None, member_code: str | None = None) -> dict:
        """Identify the lane's member by a typed phone (normalised, then found by its hash under this store's key:
        the cache holds no numbers) or by member code. Answers and refusals show the phone masked only."""
        phone_hash = None
        if phone is not None:
            try:
                phone = phones.normalise(phone)  # as the cloud hashes it: one spelling per number
            except ProtocolError as exc:
                raise Refused(422, str(exc)) from None
            if self.member_lookup_key is None:
                raise Refused(409, "this store box has no member lookup key (no store credentials): use the member code")
            phone_hash = phones.lookup_hash(self.member_lookup_key, phone)
        member = await self.db.member(phone_hash=phone_hash, member_code=member_code)
        if member is None:
            what = f"phone {phones.masked(phone)}" if phone else f"member_code {member_code}"
            raise Refused(404, f"no member with {what} in this store's member cache")
        coupon_ops.member_changed(self, self._cart(lane), member)  # another member: the coupons held go back
        await limit_ops.identified(self, self._cart(lane))  # this store's counts of their limited rules' uses
        return self._priced(lane)

    async def _coupon(self, action: str, **kw):  # scanned coupons and the members' snapshots: edge/coupon_ops.py
        return await coupon_ops.run(self, action, **kw)

    async def _member_limits(self, lane: str, answer) -> dict:  # the cloud's count of the member's uses
        return await limit_ops.answered(self, lane, answer)

    async def _cart_view(self, lane: str) -> dict:
        return self._priced(lane)

    async def _till_line(self, action: str, lane: str, **kw) -> dict:  # the till page's line edits: edge/till/lines.py
        edit = till_lines.set_qty if action == "set_qty" else till_lines.delete
        edit(self._cart(lane, keep=False), **kw)
        return self._priced(lane)

    async def _void(self, lane: str) -> dict:
        """The cashier voids the transaction: the lane's cart is dropped (nothing was sold, nothing to record)."""
        cart = self.carts.pop(lane, None)
        return {"lane": lane, "voided_lines": len(cart.lines) if cart else 0}

    def _till(self) -> selling.Till:
        return selling.Till(self.store_id, self.online, self.floor_limit_fen, *self.survey, show_jin=self.show_jin)

    async def _stored_value_quote(self, lane: str) -> dict:
        """Who pays how much by stored value at the lane: what the shell asks the cloud to hold before paying."""
        return selling.quote(self._cart(lane, keep=False), self.books, self._till(), self.clock.now_ms())

    async def _pay(self, lane: str, method: str, tendered_fen: int = 0,
                   authorisation: selling.Authorisation | None = None, points: selling.PointsAuth | None = None,
                   first: selling.Tender | None = None) -> dict:  # first: a split's first tender (edge/split_pay.py)
        cart = self._cart(lane, keep=False)
        unused = await coupon_ops.run(self, "check_pay", lane=lane)  # offline ones within the allowance; unused holds
        if cart.member is not None:  # the unsettled spends as they are now, not when the member was identified
            cart.member = await self.db.member(member_id=cart.member.member_id) or cart.member
            await limit_ops.refresh(self, cart)  # another lane may have sold to the member meanwhile
        skus = {line.sku for line in cart.lines} | gift_skus(self.books)  # a gift leaves stock with the sale
        levels = await self.db.stock_levels(skus)
        lots = {sku: await self.db.lot_levels(sku) for sku in skus}  # named lots: capped
        request = selling.PayRequest(lane, method, tendered_fen, authorisation, points, first,  # + who is on the receipt
                                     getattr(self.on_duty.get(lane), "cashier_id", ""),
                                     stall_lanes.stall_of(self.stall_lanes, lane))
        outcome = selling.pay(cart, self.books, request, self._till(), self.ids.new(), levels, self._stamp(), lots)
        reply = await self._execute(outcome)
        self.stats["sales"] += 1
        self.coupon_releases += unused  # the sold cart's holds whose rule did not apply: the shell gives them back
        return reply

    # ---- cashiers and cash top-ups --------------------------------------------------------------------------
    async def _sign_in(self, lane: str, cashier_id: str, pin_ok: bool) -> dict:  # a shift continues or is reported
        return await shift_ops.sign_in(self, lane, cashier_id, pin_ok)  # edge/shift_ops.py

    async def _sign_out(self, lane: str) -> dict:  # the shift closes, reported uncounted (edge/shift_ops.py)
        return await shift_ops.sign_out(self, lane)

    async def _top_up(self, lane: str, amount_fen: int) -> dict:
        cart = self.carts.get(lane)
        member = await self.db.member(member_id=cart.member.member_id) if cart and cart.member else None
        now = self.clock.now_ms()
        taken = await self.db.topped_up_since(chain_day_start_ms(now))
        outcome = cashiers.top_up(lane, self.on_duty.get(lane), member, amount_fen, taken, self.cash_topup_day_cap_fen,
                                  CASH_TOPUP_MAX_FEN, self.ids.new(), self._stamp())
        return await self._execute(outcome)

    async def _shift(self, action: str, lane: str, **kw):  # floats, voids, cash-up and close: edge/shift_ops.py
        return await shift_ops.run(self, action, lane, **kw)

    # ---- pickups and stock ------------------------------------------------------------------------------
    async def _pickup(self, pickup_code: str, lane: str = "1") -> dict:
        order = await self.db.pending_order(pickup_code)
        levels = await self.db.stock_levels(sku for sku, _ in order.lines) if order else {}
        return await self._execute(stock.pickup(order, pickup_code, lane, levels, self._stamp()))

    async def _ratio_of(self, sku: str) -> int:
        """HQ's online share for this SKU here (`edge.core.escrow.ratio_for`)."""
        by_sku, by_category = await allocations.ratios(self.db)
        product = self.books.product(sku)
        return escrow.ratio_for(sku, product.category if product else None, by_sku, by_category, self.ratio_bp)

    async def _receive(self, sku: str, qty: int, lot: str = "", use_by: str = "") -> dict:
        level = await self.db.stock_level(sku)
        ratio = await self._ratio_of(sku)
        return await self._execute(stock.receive(sku, qty, self.books, level, ratio, self._stamp(), lot, use_by))

    async def _lend(self, request: EscrowBorrowRequested) -> EscrowBorrowAnswered:
        """The cloud asks for escrow for a short online order: lend from the offline share (`edge.core.lending`)."""
        level = await self.db.stock_level(request.sku)
        seen = await self.db.seen_cloud_message(request.borrow_id)
        in_carts = sum(line.quantity.amount for cart in self.carts.values() for line in cart.lines
                       if line.sku == request.sku)
        known = self.books.catalogue is None or request.sku in self.books.catalogue
        outcome = lending.lend(request, seen, known, level, await self._ratio_of(request.sku), in_carts, self._stamp())
        answer: EscrowBorrowAnswered = await self._execute(outcome)
        return answer

    async def _allocation(self, message: AllocationSet) -> str:
        seen = await self.db.seen_cloud_message(message.event_id)
        by_sku, by_category = await allocations.ratios(self.db)
        kept = await allocations.kept_version(self.db, message.scope, message.key)
        catalogue = self.books.catalogue
        categories = {sku: p.category for sku, p in catalogue.by_sku.items()} if catalogue is not None else {}
        levels = await self.db.stock_levels()
        outcome = lending.apply_allocation(message, seen, kept, by_sku, by_category, categories, levels, self.ratio_bp,
                                           self._stamp())
        reply: str = await self._execute(outcome)
        return reply

    async def _shrink(self, sku: str, qty: int | None, reason: str, lot: str | None = None, recorded_by: str = "",
                      note: str = "", shrinkage_id: str | None = None) -> dict:
        """Staff write stock off by lot (`edge.core.receiving.write_off`); a known shrinkage id answers its first result."""
        if shrinkage_id and (done := await receiving_db.shrinkage_done(self.db.writer, shrinkage_id)) is not None:
            return done
        level, lots = await self.db.stock_level(sku), await self.db.lot_levels(sku)
        return await self._execute(write_off(sku, qty, reason, lot, recorded_by or "staff", note, shrinkage_id or
                                             self.ids.new(), self.books, level, lots, chain_day(self.clock.now_ms()),
                                             self._stamp()))

    async def _receive_note(self, note: Note) -> dict:
        """A supplier's delivery note, booked whole by lot (`edge.core.receiving.receive_note`), once per note."""
        done = await receiving_db.by_note(self.db.writer, note.supplier, note.note_no)
        skus = {line.sku for line in note.lines if self.books.product(line.sku) is not None}
        ratios = {sku: await self._ratio_of(sku) for sku in skus}
        lots = {sku: await self.db.lot_levels(sku) for sku in skus}
        return await self._execute(receive_note(note, done, self.books, await self.db.stock_levels(skus), ratios,
                                                chain_day(self.clock.now_ms()), self.ids.new(), self._stamp(), lots))

    async def _markdowns(self, what: str, **kw) -> dict:  # labels and what is marked down: edge/markdowns_api.py
        return await markdowns_api.run(self, what, **kw)

    async def _scale_label(self, label) -> None:  # a label scale printed at a markdown price: edge/label_scales.py
        try:
            await markdowns_db.record_labels(self.db.writer, label, 1, "label_scale", self.clock.now_ms())
        except Refused as exc:  # already printed: the first one keeps the code today
            log.warning("label scale: markdown label not registered: %s", exc)

    async def _stocktake(self, action: str, **kwargs):
        return await getattr(self.stocktakes, action)(**kwargs)

    async def _transfer(self, step: str, **kwargs):
        """Transfers between stores (edge/transfer_steps.py, decided by edge/core/transfers.py)."""
        return await transfer_steps.STEPS[step](self, **kwargs)

    # ---- cloud messages ---------------------------------------------------------------------------------
    async def _cloud_message(self, message) -> str:
        if isinstance(message, CLOUD_TRANSFER_MESSAGES):
            return await self._transfer("cloud_message", message=message)
        if isinstance(message, BusinessAck):  # acks only drop outbox rows: idempotent by nature
            rows = await self.db.acked_rows([a.event_id for a in message.acks])
            return await self._execute(cloud_messages.apply_ack(message, rows, self._moment().wall_ms))
        if isinstance(message, AllocationSet):  # decided with the store's stock and ratios (edge.core.lending)
            return await self._allocation(message)
        if isinstance(message, BudgetAllowanceGranted):  # a share of a capped rule's budget (edge.core.budget_allowance)
            granted: str = await self._execute(budget_allowance.apply_grant(message))
            return granted
        if isinstance(message, BudgetShareReclaimed):  # the unused share taken back: the till stops using it
            reclaimed: str = await self._execute(budget_allowance.apply_reclaim(message))
            return reclaimed
        if isinstance(message, ReorderPointsSet):  # HQ's restock points (edge.core.restock)
            points = await restock_db.apply_points(self.db, message, self._moment().wall_ms, self.store_id)
            applied: str = await self._execute(points)
            return applied
        seen = await self.db.seen_cloud_message(message.event_id)
        outcome = cloud_messages.apply_cloud_message(message, seen, self.books, self._moment())
        if isinstance(message, OrderCancelled) and not seen:  # a picked order's goods go back on the shelf
            order = await picking_db.pick_order(self.db, message.order_id)
            if order is not None and order.status == "picked":
                skus = [s for p in order.picks.values() for s in (p.sku, p.substitute_sku) if s]
                outcome = picking.restock(order, outcome, await self.db.stock_levels(skus), self._stamp())
        reply = await self._execute(outcome)
        self.stats["duplicates" if reply == "duplicate" else "cloud_messages"] += 1
        return reply
