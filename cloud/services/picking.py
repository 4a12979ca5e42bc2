"""Applying a store's picking to its order (edge events `PickingStarted`, `OrderPicked`, believed by
`protocol.store_facts.judge_picking` before they get here): parts, stock, money, timeline.

Guarantees:
- a split order's parts (one per store, `order_parts`, migration 15) each follow the lifecycle; the order's status
  is `lifecycle.overall` of its parts and moves only through `order_journal.advance`, keyed by the store event's id,
  so a redelivered event changes nothing; a part's step the lifecycle refuses (a late start) is logged and skipped;
- stock: what was picked consumes the reservation (`Fulfil` of the picked units, by id); what the picked goods leave
  of it (a lighter weight, a substituted or short line) is cancelled back to the escrow, or - for short units -
  re-reserved at the nearest other store that has escrow (a new reservation, confirmed, added to the allocation
  with its own part, and that store is sent an `OrderToFulfil` for it);
- money (`protocol.picking.part_money`): a lighter weight and a cheaper substitute are refunded (`refund_part`, part
  `weight:<store>`, `sub:<store>:<sku>`), short units nobody else can serve too (`short:<store>:<sku>`); a
  heavier weight is charged to stored value up to the pre-authorised margin (`charge_extra`, `weight:<store>`), the
  rest - all of it for a wallet payment - absorbed by the store (a note). Every movement is by id: once (a long
  store id or sku is hashed in its part, `protocol.picking.money_part`, so the id fits the ledger's);
- a store's part is picked once: its first believed `OrderPicked` claims it under the order's lock before any effect
  (`pick_claims`), so a replay with a new event id, or one for a part picked or handed over already, moves nothing;
  the money is computed before the claim (an unknown product refuses the event whole, nothing half-applied);
- an `OrderPicked` of an order cancelled before it arrived applies its stock side only (`_unsold`): the picked units
  leave the cloud's escrow as they left the store's, so the two agree once the store restocks; no money moves;
- when a store's picked part leaves a delivery order ready (every part is), `Orders.on_ready(order_id)` is called
  (riders); also on a redelivered event, so a hook that failed gets another chance (it must be idempotent).
"""
from __future__ import annotations

import functools
import json
import logging
import math

from actors.stock_pool import Cancel, Confirm, Fulfil, Reclaim, Reserve
from cloud.messaging import to_stores
from cloud.messaging.refusals import RefusedEvent
from cloud.services import order_journal as journal
from cloud.services import pick_claims
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle
from protocol.errors import ProtocolError
from protocol.ids import derived_id
from protocol.messages import OrderLine, OrderPicked, OrderToFulfil, PickingStarted, PickupCompleted
from protocol.money_saga import charge_id
from protocol.picking import PartMoney, consumed, extra_to_charge, money_part, part_amount_fen, part_money
from protocol.pricing import PricingContext
from protocol.store_facts import PICKABLE

log = logging.getLogger("freshmesh.picking")
SLOT_MS = 3_600_000
# a part moved while the order waits for its other parts: the note on the timeline
PART_NOTES = {"start_picking": "part_picking", "picked": "part_ready", "pick_up": "part_picked_up"}


class Picking:
    def __init__(self, cloud, orders) -> None:
        self.cloud, self.orders = cloud, orders

    # ---- parts --------------------------------------------------------------------------------------------------
    async def _step_part(self, order_id: str, store: str, event: str, key: str, detail: dict) -> journal.Step | None:
        """Move the store's part; the order follows when its overall status changes (else a note says the part
        moved). None when the part cannot take the event (already past it)."""
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select status, fulfilment, allocation from orders where order_id = $1 for update",
                                      order_id)
            if row is None:
                raise LookupError(f"no order {order_id}")
            await self._ensure_parts(conn, order_id, row["status"], json.loads(row["allocation"]), now)
            part = await conn.fetchval("select status from order_parts where order_id = $1 and store_id = $2 "
                                       "for update", order_id, store)
            try:
                after = lifecycle.step(row["fulfilment"], part, event)
            except lifecycle.IllegalTransition as exc:
                log.info("order %s part at %s: %s", order_id, store, exc)
                return None
            await conn.execute("update order_parts set status = $3, updated_ms = $4 where order_id = $1 "
                               "and store_id = $2", order_id, store, after, now)
            parts = [r["status"] for r in await conn.fetch("select status from order_parts where order_id = $1",
                                                           order_id)]
            target = lifecycle.overall(parts)
            # the order takes the same event when that brings it to its parts' overall status (never past it)
            if (target != row["status"] and lifecycle.can(row["fulfilment"], row["status"], event)
                    and lifecycle.step(row["fulfilment"], row["status"], event) == target):
                return await journal.advance(conn, order_id, event, now, store=store, key=key, detail=detail)
            note = PART_NOTES[event]
            return await journal.note(conn, order_id, note, now, store=store, key=key, detail=detail)

    @staticmethod
    async def _ensure_parts(conn, order_id: str, status: str, allocation: dict, now: int) -> None:
        """Parts are made on an order's first store event, each at the order's status (all alike until then)."""
        await conn.executemany("insert into order_parts (order_id, store_id, status, updated_ms) values ($1, $2, $3, $4) "
                               "on conflict do nothing", [(order_id, s, status, now) for s in allocation])

    async def apply(self, e: PickingStarted | OrderPicked) -> None:
        await (self.started(e) if isinstance(e, PickingStarted) else self.picked(e))

    async def started(self, e: PickingStarted) -> None:
        await self._step_part(e.order_id, e.store_id, "start_picking", e.event_id, {})

    async def handed_over(self, e: PickupCompleted) -> None:
        """The customer collected the store's part at its till (the stock pool was told by the bridge)."""
        await self._step_part(e.order_id, e.store_id, "pick_up", e.event_id, {"lane": e.lane})

    # ---- picked -------------------------------------------------------------------------------------------------
    async def picked(self, e: OrderPicked) -> None:
        """Claim the part (once, `pick_claims`), then its effects - each by an id derived from the event, so a
        redelivery finishes what a crash interrupted and repeats nothing."""
        order = await self.cloud.db.fetchrow("select * from orders where order_id = $1", e.order_id)
        try:  # the money first, before any effect: a line it cannot price (an unknown substitute) refuses it whole
            money = self._part_money(e, order)
        except ProtocolError as exc:
            raise RefusedEvent(f"picked lines of order {e.order_id}: {exc}") from None
        if await pick_claims.claim(self.cloud.db, e, self.cloud.now_ms()):
            await self._unsold(e, json.loads(order["allocation"]))
            return
        part = await self.cloud.db.fetchval("select status from order_parts where order_id = $1 and store_id = $2",
                                            e.order_id, e.store_id)
        if part in (None, lifecycle.PAID):  # its start may be in this batch, or never sent: started now
            await self._step_part(e.order_id, e.store_id, "start_picking", f"{e.event_id}:start", {})
        allocation = json.loads(order["allocation"])
        rids = {line["sku"]: line["reservation_id"] for line in allocation.get(e.store_id, [])}
        gifts = {line["sku"] for line in allocation.get(e.store_id, []) if line.get("gift")}  # cloud/services/order_gifts
        stock = self.cloud.actors.stock_pool
        rerouted: dict[str, str] = {}
        for line in e.lines:
            rid = rids[line.sku]
            if consumed(line):
                done = await stock.send(Fulfil(id=derived_id(e.event_id, f"pick:{rid}"), reservation_id=rid, sku=line.sku,
                                               qty=consumed(line)))
                if not done.succeeded:  # (a reservation the till handed over already, say): the stock pool says so
                    log.warning("order %s: fulfil of %s at %s: %s", e.order_id, rid, e.store_id, done.settled.reason)
            if consumed(line) < line.ordered:  # what the goods leave of the reservation goes back to the escrow
                await stock.send(Cancel(id=derived_id(e.event_id, f"unpicked:{rid}"), reservation_id=rid, sku=line.sku))
            if line.short and line.sku not in gifts:  # a gift short at its store is not given, not sent for elsewhere
                to = await self._reroute(e, order, line.sku, line.short, set(rerouted.values()))
                if to:
                    rerouted[line.sku] = to
        await self._money(e, order, money, rerouted)
        detail = {"lines": [{"sku": p.sku, "ordered": p.ordered, "picked": p.picked, "short": p.short,
                             **({"substitute_sku": p.substitute_sku, "substitute_qty": p.substitute_qty}
                                if p.substitute_sku else {})} for p in e.lines]}
        await self._step_part(e.order_id, e.store_id, "picked", e.event_id, detail)
        now = await self.cloud.db.fetchval("select status from orders where order_id = $1", e.order_id)
        if now == lifecycle.READY and order["fulfilment"] == "delivery":  # (again on a redelivery: hooks are idempotent)
            await self._ready(e.order_id)

    async def _unsold(self, e: OrderPicked, allocation: dict) -> None:
        """The order was cancelled before this store's picking arrived. The store lowered its escrow by the units it
        picked and, told of the cancel, puts the goods back on its shelf keeping its escrow as it is
        (`edge.core.picking.restock`); the cloud's cancel gave the reservation back to its escrow. So the picked units
        leave the cloud's escrow now (a reclaim, by id) and the two agree again. No money moves: the cancel refunded."""
        stock = self.cloud.actors.stock_pool
        for line in e.lines:
            for rid in [r["reservation_id"] for r in allocation.get(e.store_id, []) if r["sku"] == line.sku]:
                await stock.send(Cancel(id=derived_id(e.event_id, f"unpicked:{rid}"), reservation_id=rid, sku=line.sku))
            if consumed(line):
                r = (await stock.send(Reclaim(id=derived_id(e.event_id, f"picked:{line.sku}"), store=e.store_id,
                                              sku=line.sku, qty=consumed(line)))).settled
                if r.get("returned", 0) < consumed(line):  # reserved by other orders meanwhile: said, not hidden
                    log.warning("order %s cancelled, picked late at %s: %d of %d %s left the cloud's escrow (the rest "
                                "is reserved)", e.order_id, e.store_id, r.get("returned", 0), consumed(line), line.sku)

    async def _ready(self, order_id: str) -> None:
        hook = getattr(self.orders, "on_ready", None)
        if hook is None:
            return
        try:
            await hook(order_id)
        except Exception:  # noqa: BLE001 - the picking stands; a redelivered event calls the hook again
            log.exception("on_ready hook failed for order %s", order_id)

    # ---- shortage: another store, or the money back -------------------------------------------------------------
    async def _reroute(self, e: OrderPicked, order, sku: str, qty: int, taken: set[str]) -> str | None:
        """Reserve the short units at the nearest other store with escrow for them (confirmed: the order is paid),
        add that store's part, and tell it; None when no store can. A store already in the order (or `taken` by
        another line of this event) is not chosen: a store's part reaches it as one order to fulfil."""
        if order["kind"] == "marketplace":  # the platform's rider collects at its shop only: the money goes back
            return None
        allocation = json.loads(order["allocation"])
        for store, lines in allocation.items():  # this event re-routed them before (a redelivery): the same store
            rid = derived_id(e.event_id, f"reroute:{sku}:{store}")
            if any(line["reservation_id"] == rid for line in lines):
                return await self._hand_to(e, order, store, sku, qty, rid)  # told again: once, by its id
        here = self.cloud.world.stores[e.store_id]
        others = sorted((s for s in self.cloud.world.stores if s != e.store_id and s not in allocation
                         and s not in taken),
                        key=lambda s: math.dist((here.lat, here.lon), (self.cloud.world.stores[s].lat,
                                                                       self.cloud.world.stores[s].lon)))
        if not others:
            return None
        free = await self.cloud.actors.stock_pool.availability(others, [sku])
        stock = self.cloud.actors.stock_pool
        for store in others:
            if free.get(store, {}).get(sku, 0) < qty:
                continue
            rid = derived_id(e.event_id, f"reroute:{sku}:{store}")  # ids fit the actors' 64 characters
            reserved = await stock.send(Reserve(id=derived_id(rid, "reserve"), reservation_id=rid, order_id=e.order_id,
                                                store=store, sku=sku, qty=qty, ttl_ms=self.cloud.reservation_ttl_ms))
            if not reserved.succeeded:
                continue  # taken meanwhile: the next store
            await stock.send(Confirm(id=derived_id(rid, "confirm"), reservation_id=rid, sku=sku))
            return await self._hand_to(e, order, store, sku, qty, rid)
        return None

    async def _hand_to(self, e: OrderPicked, order, store: str, sku: str, qty: int, rid: str) -> str | None:
        """The re-routed units join the order as `store`'s part, and that store is told (each step idempotent); None
        (the reservation released) when the order is no longer paid or picking."""
        amount = part_amount_fen(json.loads(order["lines"]), sku, qty)  # of the whole line, not of the short part
        if not await self._add_part(e.order_id, store, {"sku": sku, "qty": qty, "reservation_id": rid}):
            # cancelled meanwhile: its cancel released the reservations it saw, not this one - released here
            await self.cloud.actors.stock_pool.send(Cancel(id=derived_id(rid, "cancel"), reservation_id=rid, sku=sku))
            return None
        await to_stores.send(self.cloud, store, functools.partial(
            OrderToFulfil, order_id=e.order_id, fulfilment=order["fulfilment"],
            lines=(OrderLine(sku=sku, qty=qty, amount_fen=amount),), total_fen=amount,
            pickup_code=order["pickup_code"] or "", slot_start_ms=order["slot_start_ms"] or 0,
            slot_end_ms=(order["slot_start_ms"] or 0) + SLOT_MS, member_id=order["member_id"],
            allow_substitutions=bool(order["allow_substitutions"])), event_id=derived_id(rid, "fulfil"))
        await journal.note(self.cloud.db, e.order_id, "rerouted", self.cloud.now_ms(), store=e.store_id,
                           key=f"{e.event_id}:rerouted:{sku}", detail={"sku": sku, "qty": qty, "to_store": store})
        return store

    async def _add_part(self, order_id: str, store: str, line: dict) -> bool:
        """The new store's line joins the allocation (its reservation with it) and its part starts where the order
        is now: the order stays as advanced as it was until that store has picked. Under the order's row lock, and
        only while the order is paid or picking (False otherwise): a cancel flips the status under the same lock
        and then reads the allocation again, so either it sees this store's reservation and releases it, or this
        refuses and the caller releases it - never a confirmed reservation left behind for a cancelled order."""
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select status, allocation from orders where order_id = $1 for update", order_id)
            if row is None or row["status"] not in PICKABLE:
                log.warning("order %s is %s: the re-route to %s is given back", order_id,
                            row and row["status"], store)
                return False
            allocation = json.loads(row["allocation"])
            await self._ensure_parts(conn, order_id, row["status"], allocation, self.cloud.now_ms())
            if store not in allocation:
                allocation[store] = [line]
                await conn.execute("update orders set allocation = $2 where order_id = $1", order_id,
                                   json.dumps(allocation))
            await self._ensure_parts(conn, order_id, row["status"], allocation, self.cloud.now_ms())
            return True

    # ---- money ---------------------------------------------------------------------------------------------------
    def _part_money(self, e: OrderPicked, order) -> PartMoney:
        """Pure (it raises ProtocolError for a product the catalogue does not know): computed before any effect."""
        ctx = PricingContext(channel="online", store_id=next(iter(json.loads(order["allocation"]))),
                             now_ms=order["created_ms"])
        return part_money(json.loads(order["lines"]), e.lines, self.cloud.world.catalogue, self.cloud.world.rule_book,
                          ctx)

    async def _money(self, e: OrderPicked, order, money: PartMoney, rerouted: dict[str, str]) -> None:
        payments, db, now = self.orders.payments, self.cloud.db, self.cloud.now_ms()
        store, oid = e.store_id, e.order_id
        weight_part = money_part("weight", oid, store)

        async def note(event: str, tag: str, detail: dict) -> None:
            await journal.note(db, oid, event, now, store=store, key=f"{e.event_id}:{tag}", detail=detail)

        for sku, (ordered_g, picked_g) in money.weighed.items():
            await note("weighed", f"weighed:{sku}", {"sku": sku, "ordered_g": ordered_g, "picked_g": picked_g})
        if money.weight_diff_fen < 0:
            await self._refund(oid, weight_part, -money.weight_diff_fen, "picked lighter than ordered", note)
        elif money.weight_diff_fen > 0:
            charge = await payments.get(charge_id(oid))
            charged, absorbed = extra_to_charge(money.weight_diff_fen, money.margin_fen,
                                                charge is not None and charge["method"] == "stored_value")
            if charged:
                moved = await payments.charge_extra(oid, weight_part, charged, "picked heavier than ordered")
                if moved["state"] != "done":
                    charged, absorbed = 0, money.weight_diff_fen
                else:
                    await note("charged_extra", "charged", {"part": weight_part, "amount_fen": charged})
            if absorbed:
                await note("absorbed", "absorbed", {"part": weight_part, "amount_fen": absorbed,
                                                    "why": "not charged to the customer (wallet payment, past the "
                                                           "pre-authorised margin, or the balance)"})
        for line in e.lines:
            if line.substitute_sku:
                await note("substituted", f"substituted:{line.sku}",
                           {"sku": line.sku, "substitute_sku": line.substitute_sku, "qty": line.substitute_qty})
            if line.short:
                await note("short", f"short:{line.sku}", {"sku": line.sku, "short": line.short,
                                                          "rerouted_to": rerouted.get(line.sku)})
        for sku, fen in money.substitute_refunds.items():
            await self._refund(oid, money_part("sub", oid, store, sku), fen, f"substitute for {sku} costs less", note)
        for sku, fen in money.short_refunds.items():
            if sku not in rerouted:
                await self._refund(oid, money_part("short", oid, store, sku), fen,
                                   f"{sku} short at {store}; no store has it", note)

    async def _refund(self, order_id: str, part: str, amount_fen: int, reason: str, note) -> None:
        try:
            moved = await self.orders.payments.refund_part(order_id, part, amount_fen, reason)
        except Refusal as refusal:  # e.g. nothing paid to refund (a free basket): said on the timeline
            log.warning("order %s: refund %s of %d fen not made: %s", order_id, part, amount_fen, refusal.detail)
            await note("refunded_part", f"refund:{part}", {"part": part, "amount_fen": 0, "refused": refusal.detail})
            return
        await note("refunded_part", f"refund:{part}", {"part": part, "amount_fen": amount_fen, "reason": reason,
                                                       "state": moved["state"]})
