"""StoreActor: the one place a store's state changes - lanes, stock, sales, cloud commands.

Guarantees:
- One mailbox (bounded: a full mailbox answers Busy at once rather than queueing without end), processed one
  message at a time, so there is no shared mutable state across tasks.
- A sale commits with its stock movements and outbox rows in one SQLite transaction **before** its receipt
  prints: a printed receipt always has a durable sale behind it.
- Cloud commands apply once (their event id goes into `inbox` in the same transaction as their effect).
- The till never waits on the network; selling past the offline share asks the cloud for escrow back.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from edge import escrow
from edge.cart import Cart, cart_json, line_for_code, price
from edge.devices.escpos import Ticket
from edge.shard import Shard
from protocol import codec
from protocol.barcodes import DEFAULT_LAYOUTS
from protocol.errors import ProtocolError
from protocol.messages import (BusinessAck, CatalogueUpdated, EscrowGranted, EscrowReclaimed, EscrowReclaimRequested,
                               MemberUpdated, OrderCancelled, OrderToFulfil, Payment, PickupCompleted, RuleBookUpdated,
                               SaleCommitted, SaleLine, StockMoved)
from protocol.money import format_fen
from protocol.pricing import BasketLine, Catalogue, load_rule_book

MAILBOX_MAX = 1_000
OFFLINE_FLOOR_LIMIT_FEN = 5_000
log = logging.getLogger("freshmesh.edge")


class Busy(RuntimeError):
    """The mailbox is full: the caller should retry shortly."""


class Refused(ValueError):
    """A business refusal with an HTTP-ish status (409 not enough paid, 404 unknown pickup code, ...)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class StoreActor:
    def __init__(self, store_id: str, shard: Shard, clock, ids, printer=None, layouts=DEFAULT_LAYOUTS,
                 ratio_bp: int = escrow.DEFAULT_ONLINE_RATIO_BP, floor_limit_fen: int = OFFLINE_FLOOR_LIMIT_FEN) -> None:
        self.store_id, self.shard, self.clock, self.ids = store_id, shard, clock, ids
        self.printer, self.layouts, self.ratio_bp, self.floor_limit_fen = printer, layouts, ratio_bp, floor_limit_fen
        self.mailbox: asyncio.Queue = asyncio.Queue(maxsize=MAILBOX_MAX)
        self.carts: dict[str, Cart] = {}
        self.catalogue: Catalogue | None = None
        self.rule_book = None
        self.online = False  # set by the sync task: can the store reach the cloud right now?
        self.on_outbox = asyncio.Event()  # the relay waits on this
        self.stats = {"sales": 0, "commands": 0, "duplicates": 0}

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
        """From the shard (last received), else from a bootstrap world file's catalogue and rule book."""
        catalogue = await self.shard.get_meta("catalogue")
        rules = await self.shard.get_meta("rule_book")
        if catalogue is None and world is not None:
            catalogue, rules = json.dumps(world["catalogue"]), json.dumps(world["rule_book"])
        if catalogue is not None:
            self.catalogue = Catalogue.from_data(json.loads(catalogue))
            self.rule_book = load_rule_book(json.loads(rules), self.catalogue)

    def _envelope(self, seq: int) -> dict:
        return {"event_id": self.ids.new(), "store_id": self.store_id, "seq": seq, "wall_ms": self.clock.now_ms(),
                "mono_ms": self.clock.monotonic_ms()}

    async def _emit(self, tx, cls, **body):
        message = cls(**self._envelope(await tx.next_seq()), **body)
        await tx.outbox(message, codec.encode(message))
        if isinstance(message, StockMoved):
            await tx.journal(message)
        return message

    async def _moved(self, tx, sku: str, delta: int, reason: str, reference: str, escrow_delta: int = 0,
                     shrinkage_reason: str = ""):
        on_hand, held = await tx.move(sku, delta, escrow_delta)
        await self._emit(tx, StockMoved, sku=sku, delta=delta, reason=reason, shrinkage_reason=shrinkage_reason,
                         on_hand_after=on_hand, reference=reference)
        return on_hand, held

    # ---- lanes -----------------------------------------------------------------------------------------
    def _cart(self, lane: str) -> Cart:
        if self.catalogue is None:
            raise Refused(503, "no catalogue yet: the store has not received one from the cloud")
        return self.carts.setdefault(lane, Cart())

    def _priced(self, lane: str) -> dict:
        cart = self._cart(lane)
        return cart_json(cart, price(cart, self.catalogue, self.rule_book, self.store_id, self.clock.now_ms()))

    async def _scan(self, lane: str, code: str) -> dict:
        cart = self._cart(lane)  # refuses when there is no catalogue yet
        line = line_for_code(code, self.catalogue, self.layouts)
        cart.add(line)
        cart = self._priced(lane)
        added = next(l for l in reversed(cart["lines"]) if l["sku"] == line.sku)
        return {"line": added, "cart": cart}

    async def _weighed(self, lane: str, sku: str, grams: int) -> dict:
        product = self.catalogue.by_sku.get(sku) if self.catalogue else None
        if product is None:
            raise Refused(404, f"unknown product {sku!r}")
        if not product.weighed:
            raise Refused(422, f"{product.name} is sold by the piece; scan it")
        if grams <= 0:
            raise Refused(409, "the scale reads zero: put the item on the scale")
        self._cart(lane).add(BasketLine(sku=sku, weight_g=grams))
        cart = self._priced(lane)
        return {"line": next(l for l in reversed(cart["lines"]) if l["sku"] == sku), "cart": cart}

    async def _member(self, lane: str, phone: str | None = None, member_code: str | None = None) -> dict:
        column, value = ("phone", phone) if phone else ("member_code", member_code)
        async with self.shard.db.execute(f"select member_id, phone, member_code, level, stored_value_fen, points, "  # noqa: S608
                                         f"offline_spent_fen from members where {column} = ?", (value,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise Refused(404, f"no member with {column} {value} in this store's member cache")
        member = dict(zip(("member_id", "phone", "member_code", "level", "stored_value_fen", "points", "offline_spent_fen"), row))
        self._cart(lane).member = member
        return self._priced(lane)

    async def _cart_view(self, lane: str) -> dict:
        return self._priced(lane)

    async def _void(self, lane: str) -> dict:
        """The cashier voids the transaction: the lane's cart is dropped (nothing was sold, nothing to record)."""
        cart = self.carts.pop(lane, None)
        return {"lane": lane, "voided_lines": len(cart.lines) if cart else 0}

    async def _pay(self, lane: str, method: str, tendered_fen: int = 0) -> dict:
        cart = self._cart(lane)
        if not cart.lines:
            raise Refused(409, "the cart is empty")
        priced = price(cart, self.catalogue, self.rule_book, self.store_id, self.clock.now_ms())
        total, member = priced.total_fen, cart.member
        change, reference = 0, ""
        sale_id = self.ids.new()
        if method == "cash":
            if tendered_fen < total:
                raise Refused(409, f"cash tendered {format_fen(tendered_fen)} is less than the total {format_fen(total)}")
            change = tendered_fen - total
        elif method == "stored_value":
            if member is None:
                raise Refused(409, "stored value needs a member: identify the member first")
            left = member["stored_value_fen"] - member["offline_spent_fen"] - total
            floor = 0 if self.online else -self.floor_limit_fen
            if left < floor:
                raise Refused(409, f"stored value short: balance after the sale would be {format_fen(left)} "
                                   f"(limit {format_fen(floor)}{' while offline' if not self.online else ''})")
            reference = f"sv:{sale_id}"
        else:
            reference = f"sim-{sale_id}"  # the simulated wallet provider approves
        payments = (Payment(method=method, amount_fen=total, reference=reference),) if total else ()
        await self._commit_sale(sale_id, lane, priced, payments, member, method, total)
        self.carts.pop(lane, None)
        await self._print_receipt(sale_id, priced, method, tendered_fen, change)
        return {"sale_id": sale_id, "total_fen": total, "change_fen": change, "offline": not self.online}

    async def _commit_sale(self, sale_id, lane, priced, payments, member, method, total) -> None:
        lines = tuple(SaleLine(sku=l.sku, qty=l.weight_g or l.qty or 1, weighed=bool(l.weight_g), amount_fen=l.amount_fen)
                      for l in priced.lines)
        async with await self.shard.transaction() as tx:
            await tx.execute("insert into sales (sale_id, lane, total_fen, lines, payments, member_id, offline, at_ms) "
                             "values (?, ?, ?, ?, ?, ?, ?, ?)",
                             (sale_id, lane, total, json.dumps([[l.sku, l.qty, l.weighed, l.amount_fen] for l in lines]),
                              json.dumps([[p.method, p.amount_fen, p.reference] for p in payments]),
                              member["member_id"] if member else None, int(not self.online), self.clock.now_ms()))
            await self._emit(tx, SaleCommitted, sale_id=sale_id, lane=lane, lines=lines, total_fen=total,
                             payments=payments, member_id=member["member_id"] if member else None, offline=not self.online)
            for line in lines:
                on_hand, held = await self._moved(tx, line.sku, -line.qty, "sale", sale_id)
                ask = escrow.reclaim_needed(on_hand, held)
                if ask:
                    await self._emit(tx, EscrowReclaimRequested, sku=line.sku, qty=ask)
            if method == "stored_value" and member:
                await tx.execute("update members set offline_spent_fen = offline_spent_fen + ? where member_id = ?",
                                 (total, member["member_id"]))
        self.stats["sales"] += 1
        self.on_outbox.set()

    async def _print_receipt(self, sale_id, priced, method, tendered, change) -> None:
        if self.printer is None:
            return
        t = Ticket().text(f"FreshMesh {self.store_id}", bold=True, size=2, align="center").text(f"Sale {sale_id}")
        for l in priced.lines:
            t.columns(l.name[:20], format_fen(l.amount_fen))
        for a in priced.applied:
            t.columns(a.name[:20], "-" + format_fen(a.saving_fen))
        t.columns("TOTAL", format_fen(priced.total_fen)).text(f"Paid by {method}")
        if method == "cash":
            t.columns("Tendered", format_fen(tendered)).columns("Change", format_fen(change))
        await self.printer.print(t.qr(f"SALE:{sale_id}").cut())

    # ---- pickups and stock ------------------------------------------------------------------------------
    async def _pickup(self, pickup_code: str, lane: str = "1") -> dict:
        async with self.shard.db.execute("select order_id, status, payload from orders where pickup_code = ?",
                                         (pickup_code,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise Refused(404, f"no order with pickup code {pickup_code}")
        order_id, status, payload = row
        if status == "picked_up":
            return {"order_id": order_id, "status": status}
        if status != "to_pick":
            raise Refused(409, f"order {order_id} is {status}")
        async with await self.shard.transaction() as tx:
            for line in json.loads(payload)["lines"]:
                await self._moved(tx, line["sku"], -line["qty"], "pickup", order_id, escrow_delta=-line["qty"])
            await self._emit(tx, PickupCompleted, order_id=order_id, pickup_code=pickup_code, lane=lane)
            await tx.execute("update orders set status = 'picked_up' where order_id = ?", (order_id,))
        self.on_outbox.set()
        return {"order_id": order_id, "status": "picked_up"}

    async def _receive(self, sku: str, qty: int) -> dict:
        if self.catalogue is not None and sku not in self.catalogue:
            raise Refused(404, f"unknown product {sku!r}")
        async with await self.shard.transaction() as tx:
            on_hand, held = await self._moved(tx, sku, qty, "receiving", "")
            grant = escrow.grant_after_receiving(on_hand, held, self.ratio_bp)
            if grant:
                await tx.move(sku, 0, grant)
                await self._emit(tx, EscrowGranted, sku=sku, qty=grant, escrow_after=held + grant)
        self.on_outbox.set()
        return {"sku": sku, "on_hand": on_hand, "escrow": held + grant}

    async def _shrink(self, sku: str, qty: int, reason: str) -> dict:
        async with await self.shard.transaction() as tx:
            on_hand, held = await self._moved(tx, sku, -qty, "shrinkage", "", shrinkage_reason=reason)
            ask = escrow.reclaim_needed(on_hand, held)
            if ask:
                await self._emit(tx, EscrowReclaimRequested, sku=sku, qty=ask)
        self.on_outbox.set()
        return {"sku": sku, "on_hand": on_hand}

    # ---- cloud commands -----------------------------------------------------------------------------------
    async def _command(self, message) -> str:
        if await self.shard.seen_command(message.event_id):
            self.stats["duplicates"] += 1
            return "duplicate"
        if isinstance(message, BusinessAck):  # acks only drop outbox rows: idempotent by nature
            await self.shard.drop_acked([a.event_id for a in message.acks], self._settled_stored_value)
            return "acked"
        printed = None
        async with await self.shard.transaction() as tx:
            await tx.mark_command(message.event_id, message.KIND, self.clock.now_ms())
            if isinstance(message, OrderToFulfil):
                payload = {"lines": [{"sku": l.sku, "qty": l.qty} for l in message.lines], "fulfilment": message.fulfilment,
                           "total_fen": message.total_fen, "slot_start_ms": message.slot_start_ms}
                await tx.execute("insert into orders (order_id, pickup_code, status, payload) values (?, ?, 'to_pick', ?) "
                                 "on conflict (order_id) do nothing", (message.order_id, message.pickup_code or None,
                                                                       json.dumps(payload)))
                printed = message
            elif isinstance(message, OrderCancelled):
                await tx.execute("update orders set status = 'cancelled' where order_id = ? and status = 'to_pick'",
                                 (message.order_id,))
            elif isinstance(message, EscrowReclaimed):
                await tx.move(message.sku, 0, -message.qty_returned)
            elif isinstance(message, MemberUpdated):
                # offline_spent_fen stays: it counts this store's spends the cloud has not acked yet, which the
                # snapshot cannot include (commands and acks share one ordered stream, so a snapshot sent after a
                # spend was applied arrives after that spend's ack).
                await tx.execute("""insert into members (member_id, phone, member_code, level, stored_value_fen, points)
                                    values (?, ?, ?, ?, ?, ?) on conflict (member_id) do update set phone = excluded.phone,
                                    member_code = excluded.member_code, level = excluded.level, points = excluded.points,
                                    stored_value_fen = excluded.stored_value_fen""",
                                 (message.member_id, message.phone, message.member_code, message.level,
                                  message.stored_value_fen, message.points))
            elif isinstance(message, (CatalogueUpdated, RuleBookUpdated)):
                await self._replace_book(tx, message)
        self.stats["commands"] += 1
        if printed is not None:
            await self._print_pick_ticket(printed)
        return "applied"

    @staticmethod
    def _settled_stored_value(frame: bytes) -> tuple[str, int] | None:
        """For an acked sale paid by stored value: (member, amount) the cloud now holds."""
        sale = codec.decode(frame)
        if isinstance(sale, SaleCommitted) and sale.member_id:
            amount = sum(p.amount_fen for p in sale.payments if p.method == "stored_value")
            if amount:
                return sale.member_id, amount
        return None

    async def _replace_book(self, tx, message) -> None:
        key = "catalogue" if isinstance(message, CatalogueUpdated) else "rule_book"
        row = await tx.fetchone("select value from meta where key = ?", (f"{key}_version",))
        if row is not None and int(row[0]) > message.version:
            return  # an older book arriving late never replaces a newer one
        text = message.payload.decode()
        try:
            catalogue = Catalogue.from_data(json.loads(text)) if key == "catalogue" else self.catalogue
            book = load_rule_book(json.loads(text), catalogue) if key == "rule_book" else self.rule_book
        except (ProtocolError, ValueError) as exc:
            log.error("refused %s version %s from the cloud: %s", key, message.version, exc)
            return
        for k, v in ((key, text), (f"{key}_version", str(message.version))):
            await tx.execute("insert into meta (key, value) values (?, ?) on conflict (key) do update set value = "
                             "excluded.value", (k, v))
        self.catalogue, self.rule_book = catalogue, book

    async def _print_pick_ticket(self, order: OrderToFulfil) -> None:
        if self.printer is None:
            return
        t = Ticket().text("PICK TICKET", bold=True, size=2, align="center").text(f"Order {order.order_id}")
        t.text(f"{order.fulfilment} slot {time.strftime('%H:%M', time.localtime(order.slot_start_ms / 1000))}")
        for line in order.lines:
            t.columns(line.sku, str(line.qty))
        if order.pickup_code:
            t.qr(f"PICKUP:{order.pickup_code}")
        await self.printer.print(t.cut())
