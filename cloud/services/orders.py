"""Online orders: price, route, reserve, pay, cancel, expire - against the actors, recorded in PostgreSQL.

Ids derive from the Idempotency-Key (reservation and slot-booking ids), so two concurrent requests with the same
key reserve once: the actors answer the second with `exists`. A reservation that cannot be completed (a race for
the last units, a full slot) is undone before refusing; nothing is left half-made. Refusals are `Refusal`s (the
HTTP layer gives them their status) and are stored with the key, so a retry gets the same answer.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from actors.order_router import BookSlot
from actors.stock_pool import Cancel, Reserve, cancel_id
from cloud.messaging import promotion_uses, to_stores
from cloud.services import delivery_terms
from cloud.services import order_journal as journal
from cloud.services.borrowing import Borrowing
from cloud.services.coupons import Coupons
from cloud.services.flash_stores import FlashStores, assigned
from cloud.services.member_pricing import MemberPricing
from cloud.services.order_endings import OrderEndings
from cloud.services.order_gifts import OrderGifts
from cloud.services.order_request import OrderRequest
from cloud.services.order_rows import allocation_of, key_id, order_json, request_hash
from cloud.services.order_saga import OrderSaga
from cloud.services.payments import Payments, payment_json
from cloud.services.points_pay import PointsPay
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle
from protocol.clock import parse_rfc3339
from protocol.errors import ProtocolError
from protocol.ids import derived_id
from protocol.messages import OrderLine, OrderToFulfil
from protocol.money_saga import charge_id
from protocol.pricing import BasketLine, PricingContext, price_basket

CLAIM_WAIT_MS = 8_000  # a duplicate request waits this long for the first to finish
CLAIM_STALE_MS = 30_000  # a claim untouched this long belonged to a request that died: take it over
CLAIM_POLL_S = 0.05
log = logging.getLogger("freshmesh.orders")
SLOT_AHEAD_MS = 30 * 86_400_000  # how far ahead a slot may be booked
SLOT_PAST_MS = 3_600_000  # a slot that began within the hour may still be booked (the store decides if it can serve)


class Orders(OrderEndings):
    def __init__(self, cloud, wallet=None) -> None:
        self.cloud = cloud
        self.payments = Payments(cloud, wallet)
        self.borrowing = Borrowing(cloud)  # asks a store short of escrow to lend from its offline share
        self.saga = OrderSaga(self)
        self.coupons = Coupons(cloud)  # codes checked, reserved with the order, redeemed or released as it goes
        self.points = PointsPay(self)  # points paying part of an order, given back when it ends unserved
        self.flash = FlashStores(cloud)  # flash orders of stores: assigned, and their units given back
        self.member_pricing = MemberPricing(cloud)  # the member's level and the chain's promotion budgets
        self.gifts = OrderGifts(cloud)  # gift rules reached: reserved lines at 0 fen
        self._holding: set[str] = set()  # orders being placed that already hold (or may hold) stock or slots
        self.presales: Any = None  # cloud/services/presale.py (set by the services): out of stock but due
        self.groups: Any = None  # cloud/services/group_buys.py (set by the services): orders held until a group forms
        self.as_json = order_json
        self.payments.on_charge_done = self.saga.complete_quietly  # a provider's word came: serve the order or refund
        # called when a delivery order was picked and is ready at the store: it goes to a rider (cloud/wiring.py)
        self.on_ready: Callable[[str], Awaitable[None]] | None = None
        # called when a delivery order was cancelled after it was paid: a rider on the way is withdrawn
        self.on_cancelled: Callable[[str], Awaitable[None]] | None = None

    # ---- create -----------------------------------------------------------------------------------
    async def create(self, req: OrderRequest, member: str, key: str, raw: dict) -> dict:
        """The member's order. Claim the key (a 'pending' row), then route, reserve, book and price; a concurrent or
        later request with the same key waits for and returns the same outcome, refusals included. Keys are the
        member's own: another member's request with the same key is another order."""
        digest, key = request_hash(raw), f"{member}/{key}"
        order_id = await self._claim(req, member, key, digest)
        if isinstance(order_id, dict):
            return order_id  # the outcome of an earlier request with this key
        try:
            body = await self._place(req, member, key, order_id)
        except Refusal as refused:
            refusal = refused
            if refusal.kind == "out_of_stock" and self.presales is not None:  # a pre-sale instead, if stock is due
                try:
                    return await self.presales.instead(req, member, key, order_id, refusal)
                except Refusal as instead:
                    refusal = instead
                except Exception:  # not a refusal: ended now, what it held given back (not left pending 5 minutes)
                    await self._fail(order_id)
                    raise
            await self.member_pricing.give_back(order_id)  # a refusal after pricing: its budget uses come back
            try:
                await journal.advance(self.cloud.db, order_id, "reject", self.cloud.now_ms(),
                                      detail={"reason": refusal.detail}, fields={"problem": json.dumps(refusal.to_record())})
            except lifecycle.IllegalTransition as exc:  # the sweeper took it as abandoned meanwhile: it says so
                log.warning("order %s not rejected: %s", order_id, exc)
            await self.coupons.settle(order_id)  # a code it held goes back to the wallet
            raise refusal from None
        except Exception:  # not a refusal: a backend failed half-way (`_place` gave back the stock and slots)
            if order_id in self._holding:  # it held something: ended, as a retry of its key cannot redo the holds
                await self._fail(order_id)
            raise  # before anything was held: left pending, a retry of the key takes it over (`_claim`)
        finally:
            self._holding.discard(order_id)
        return body

    async def _fail(self, order_id: str) -> None:
        """An order whose placing failed with an error (not a refusal): ended as rejected, so the lapse sweeps and a
        retry of its key see that nothing of it is kept, and what it held goes back (budgets, coupons)."""
        refusal = Refusal("order_state", "this order could not be placed (an internal error while placing it) and "
                                         "nothing of it was kept; place it again with a new Idempotency-Key")
        try:
            await journal.advance(self.cloud.db, order_id, "reject", self.cloud.now_ms(), only_from=(lifecycle.PENDING,),
                                  detail={"reason": "failed while placing"},
                                  fields={"problem": json.dumps(refusal.to_record())})
            row = await self.cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
        except lifecycle.IllegalTransition as exc:  # a concurrent retry reserved it, or the sweeper took it
            log.warning("order %s not rejected: %s", order_id, exc)
            return
        except Exception:  # the database is failing too: the abandoned-order sweeper finishes it
            log.exception("order %s: not rejected; the abandoned-order sweeper will", order_id)
            return
        await self._give_back_plan(row)  # all its plan may hold (`_place` let go what it knew of): stock, slots,
        # budget uses, codes

    async def _claim(self, req: OrderRequest, member: str, key: str, digest: bytes) -> str | dict:
        """This request's order id (it placed the claim, or takes over a dead one), or the earlier outcome."""
        db, deadline = self.cloud.db, self.cloud.now_ms() + CLAIM_WAIT_MS
        while True:
            row = await db.fetchrow("select * from orders where idempotency_key = $1", key)
            if row is None:
                now = self.cloud.now_ms()
                claimed = await db.fetchval(
                    """insert into orders (order_id, idempotency_key, request_hash, kind, fulfilment, status, member_id,
                           allocation, lines, total_fen, created_ms, updated_ms)
                       values ($1, $2, $3, $4, $4, 'pending', $6, '{}', '[]', 0, $5, $5)
                       on conflict (idempotency_key) do nothing returning order_id""",
                    self.cloud.ids.new(), key, digest, req.fulfilment, now, member)
                if claimed:
                    await journal.note(db, claimed, "created", now, detail={"fulfilment": req.fulfilment})
                    return claimed
                continue
            if bytes(row["request_hash"]) != digest:
                raise Refusal("key_reused", "Idempotency-Key was already used with a different body")
            if row["status"] == "rejected":
                raise Refusal.from_record(json.loads(row["problem"]))
            if row["status"] != "pending":
                return order_json(row)
            if self.cloud.now_ms() - row["updated_ms"] > CLAIM_STALE_MS:
                # its first request died half-way: finish it (every step is idempotent), claiming it first so the
                # abandoned-order sweeper and another retry leave it alone
                taken = await db.fetchval("update orders set updated_ms = $3 where order_id = $1 and status = 'pending' "
                                          "and updated_ms = $2 returning order_id", row["order_id"], row["updated_ms"],
                                          self.cloud.now_ms())
                if taken:
                    return taken
                continue
            if self.cloud.now_ms() > deadline:
                raise Refusal("in_progress", "an earlier request with this Idempotency-Key is still in progress; retry")
            await asyncio.sleep(CLAIM_POLL_S)

    async def _place(self, req: OrderRequest, member: str, key: str, order_id: str) -> dict:
        cloud = self.cloud
        try:
            slot_ms = parse_rfc3339(req.slot_start, "slot_start")
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        if not cloud.now_ms() - SLOT_PAST_MS <= slot_ms <= cloud.now_ms() + SLOT_AHEAD_MS:
            raise Refusal("invalid", f"slot_start: must be within the next {SLOT_AHEAD_MS // 86_400_000} days")
        items = self._items(req)
        if req.fulfilment == "delivery" and req.location is not None:
            delivery_terms.check_cutoff_near(cloud.world, req.location.lat, req.location.lon, slot_ms, cloud.now_ms())
        plan = await self._route(req, items, slot_ms, order_id)
        if req.fulfilment == "delivery":  # before anything is held: a closed slot refuses cleanly
            delivery_terms.check_cutoff(cloud.world, plan, slot_ms, cloud.now_ms())
        kid, store = key_id(key), next(iter(plan))
        coupons = await self.checked_coupons(req, member, store, order_id)  # codes, before anything is held
        # The plan is written before anything is held, so that if this request dies half-way the sweeper knows
        # what to give back (`sweep_abandoned`).
        await cloud.db.execute("update orders set allocation = $2, slot_start_ms = $3, updated_ms = $4 "
                               "where order_id = $1 and status = 'pending'", order_id,
                               json.dumps(allocation_of(kid, plan)), slot_ms, cloud.now_ms())
        self._holding.add(order_id)  # from here an error ends the order (`_fail`): its holds' ids are used
        reserved = await self._reserve(kid, order_id, plan)
        await self._book_slots(kid, order_id, plan, slot_ms, reserved)
        try:
            await self.coupons.hold(order_id, member, store, coupons)  # all codes or none, atomically
        except Refusal:  # another order or a till took a code meanwhile: nothing of this order is kept
            await self._release(reserved, kid)
            await self._unbook(kid, order_id, list(plan), slot_ms)
            raise
        allocation = allocation_of(kid, plan)  # the gifts' lines are added to it as they are reserved
        try:  # a refusal or an error before the order is reserved: nothing of it is kept
            priced, coupons, not_applied = await self._priced(req, member, order_id, kid, plan, store, coupons,
                                                              allocation)
        except Exception:
            held = {rid: sku for sku, rid in reserved}
            held.update({line["reservation_id"]: line["sku"] for lines in allocation.values() for line in lines})
            await self._release([(sku, rid) for rid, sku in held.items()], kid)
            await self._unbook(kid, order_id, list(plan), slot_ms)
            raise
        now = cloud.now_ms()
        code = f"{secrets.randbelow(10**8):08d}" if req.fulfilment == "pickup" else None
        try:
            await journal.advance(cloud.db, order_id, "reserve", now, only_from=(lifecycle.PENDING,),
                                  detail={"stores": sorted(plan), "total_fen": priced["total_fen"]},
                                  fields={"member_id": member, "allocation": json.dumps(allocation),
                                          "lines": json.dumps(priced["lines"]), "total_fen": priced["total_fen"],
                                          "pickup_code": code, "slot_start_ms": slot_ms,
                                          "allow_substitutions": req.allow_substitutions,
                                          "location": json.dumps({"lat": req.location.lat, "lon": req.location.lon})
                                          if req.location else None, "expires_ms": now + cloud.reservation_ttl_ms})
        except lifecycle.IllegalTransition as exc:  # a concurrent retry of this key finished it first
            log.info("order %s: %s", order_id, exc)
        await promotion_uses.record_online(cloud.db, order_id, next(iter(plan)), member, priced["explain"], now)
        row = await cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
        body = order_json(row)
        body["pricing"] = priced["explain"]
        body["coupons"] = [c.code for c in coupons]
        if not_applied:  # held by the preview, but the real pricing did not use them: back in the wallet
            body["coupons_not_applied"] = not_applied
        return body

    async def _priced(self, req: OrderRequest, member: str, order_id: str, kid: str, plan: dict, store: str,
                      coupons: list, allocation: dict) -> tuple[dict, list, list[dict]]:
        """The held order priced (budgets consumed), its gifts reserved, and the codes that gave nothing let go:
        (priced, the codes it uses, [{code, reason}] of those let go)."""
        priced, not_applied = await self.price_held(req, member, order_id, store, coupons)
        if req.fulfilment == "delivery":
            delivery_terms.add_fee(self.cloud.world, next(iter(plan)), priced)
        await self.gifts.reserve(kid, order_id, plan, priced, allocation)  # zero-priced lines, reserved like any
        return priced, [c for c in coupons if c.rule_id in priced["coupons_used"]], not_applied

    async def checked_coupons(self, req, member: str, store: str, order_id: str,
                              context: Callable[[list], PricingContext] | None = None) -> list:
        """The request's codes checked (`Coupons.check`) and each giving its discount on the order priced with what
        the budgets have left now (read, not consumed: a budget-capped coupon rule applies); a Refusal naming the
        code and why otherwise. Nothing is held. `context(coupons)`: the pricing context (default `_context`)."""
        coupons = await self.coupons.check(req.coupons, member, store, order_id)
        if coupons:
            ctx = context(coupons) if context else self._context(req, store, coupons)
            preview = await self.member_pricing.with_level(member, ctx, budgets=True)
            self.coupons.unused(coupons, self._price(req, store, preview)["coupons_used"])
        return coupons

    async def price_held(self, req, member: str, order_id: str, store: str, coupons: list,
                         ctx: PricingContext | None = None) -> tuple[dict, list[dict]]:
        """The order priced with its held codes, the member's level and the chain's budgets (consumed under its id,
        given back if it ends unserved); the codes the real pricing (with the budgets actually left) did not use are
        let go (issued again, never redeemed with it): (priced, [{code, reason}] of those let go)."""
        priced = await self.member_pricing.price(member, order_id, ctx or self._context(req, store, coupons),
                                                 functools.partial(self._price, req, store))
        return priced, await self.coupons.release_unused(order_id, coupons, priced["coupons_used"])

    def _items(self, req: OrderRequest) -> dict[str, int]:
        for item in req.items:
            product = self.cloud.world.catalogue.by_sku.get(item.sku)
            if product is None:
                raise Refusal("invalid", f"items: unknown sku {item.sku!r}")
            if "online" not in product.channels:
                raise Refusal("invalid", f"items: {item.sku} ({product.name}) is not sold online")
        return {i.sku: i.qty for i in req.items}

    async def _route(self, req: OrderRequest, items: dict[str, int], slot_ms: int,
                     order_id: str = "") -> dict[str, dict[str, int]]:
        router, stock = self.cloud.actors.router, self.cloud.actors.stock_pool
        if req.fulfilment == "pickup":
            if req.store_id not in self.cloud.world.stores:
                raise Refusal("invalid", f"store_id: unknown store {req.store_id!r}")
            loc = req.location or self.cloud.world.stores[req.store_id]
            near = await router.nearby(loc.lat, loc.lon, "pickup", slot_ms)
            availability = await stock.availability(sorted({req.store_id, *near}), list(items))
            availability = await self.borrowing.fill([req.store_id] if req.store_id else [], items, availability, order_id)
            plan = await router.plan_pickup(req.store_id, items, slot_ms, loc.lat, loc.lon, availability)
            if plan["kind"] != "single":
                raise Refusal("out_of_stock", f"pickup at {req.store_id} is not possible: {plan['reason']}",
                              alternatives=plan["alternatives"])
            return plan["allocation"]
        if req.location is None:  # not reached: OrderRequest already requires it for delivery
            raise Refusal("invalid", "location: required for delivery")
        near = await router.nearby(req.location.lat, req.location.lon, "delivery", slot_ms)
        if not near:
            raise Refusal("no_store", "no store delivers to this location in this slot")
        availability = await stock.availability(near, list(items))
        plan = await router.plan(items, near, availability)
        if plan["kind"] != "single":  # no one store holds it all online: the short ones may lend from their shelves
            plan = await router.plan(items, near, await self.borrowing.fill(near, items, availability, order_id))
        if plan["kind"] == "missing":
            raise Refusal("out_of_stock", f"out of stock nearby: missing {plan['missing']}", missing=plan["missing"])
        return plan["allocation"]

    async def _reserve(self, kid: str, order_id: str, plan: dict) -> list[tuple[str, str]]:
        """Every line reserved, or none: [(sku, reservation id)]."""
        wanted = [Reserve(id=f"reserve:{kid}:{store}:{sku}", reservation_id=f"{kid}:{store}:{sku}", order_id=order_id,
                          store=store, sku=sku, qty=qty, ttl_ms=self.cloud.reservation_ttl_ms)
                  for store, lines in plan.items() for sku, qty in lines.items()]
        results = [await self.cloud.actors.stock_pool.send(c) for c in wanted]
        done = [(c.sku, c.reservation_id) for c, r in zip(wanted, results, strict=True) if r.succeeded]
        if len(done) < len(wanted):
            await self._release(done, kid)
            raise Refusal("out_of_stock", "out of stock: the last units were just taken; try again")
        return done

    async def _release(self, reservations: list[tuple[str, str]], tag: str) -> None:
        for sku, rid in reservations:
            await self.cloud.actors.stock_pool.send(Cancel(id=cancel_id(tag, rid), reservation_id=rid, sku=sku))

    async def _book_slots(self, kid: str, order_id: str, plan: dict, slot_ms: int, reserved) -> None:
        booked: list[str] = []
        for store in plan:
            r = await self.cloud.actors.router.send(BookSlot(id=f"slot:{kid}:{store}", store=store, slot_start_ms=slot_ms,
                                                             order_id=order_id))
            if not r.succeeded:
                await self._release(reserved, kid)
                await self._unbook(kid, order_id, booked, slot_ms)  # a split order's other stores' places go back too
                raise Refusal("slot", f"slot at {store} not available: {r.settled.reason}")
            booked.append(store)

    def _context(self, req: OrderRequest, store: str, coupons=()) -> PricingContext:
        """The order's own part of its pricing context (member level and budgets: `MemberPricing`)."""
        return PricingContext(channel="online", store_id=store, now_ms=self.cloud.now_ms(),
                              coupons=tuple(c.rule_id for c in coupons),  # of codes that passed `Coupons.check`
                              new_member=any(c.new_member_only for c in coupons),
                              formed_groups=getattr(req, "formed_groups", ()))  # only a group-buy's own request has it

    def _price(self, req: OrderRequest, store: str, ctx: PricingContext) -> dict:
        catalogue = self.cloud.world.catalogue
        lines = [BasketLine(sku=i.sku, weight_g=i.qty) if catalogue.get(i.sku).weighed else BasketLine(sku=i.sku, qty=i.qty)
                 for i in req.items]
        result = price_basket(catalogue, self.cloud.world.rule_book, lines, ctx)
        return {"total_fen": result.total_fen, "coupons_used": result.coupons_used,
                "lines": [{"sku": line.sku, "name": line.name, "qty": line.qty or line.weight_g,
                           "weighed": bool(line.weight_g), "list_fen": line.list_fen, "amount_fen": line.amount_fen}
                          for line in result.lines],
                "gifts": [{"rule_id": g.rule_id, "sku": g.sku, "qty": g.qty, "value_fen": g.value_fen}
                          for g in result.gifts],
                "explain": {"subtotal_fen": result.subtotal_fen, "discount_fen": result.discount_fen,
                            "applied": [{"rule_id": a.rule_id, "name": a.name, "saving_fen": a.saving_fen}
                                        for a in result.applied],
                            "almost": [n.message for n in result.near_misses],
                            "rule_book_version": result.rule_book_version}}

    # ---- read, pay, cancel, expire ---------------------------------------------------------------------
    async def get(self, order_id: str, member: str | None):
        """The order, when `member` placed it (None: any order, for the cloud's own callers). Another member's
        order answers exactly as an unknown one (not_found), so order ids cannot be probed."""
        row = await self.cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
        if row is None or (member is not None and row["member_id"] != member):
            raise Refusal("not_found", f"no order {order_id}")
        if row["status"] == "reserved" and row["expires_ms"] is not None and row["expires_ms"] <= self.cloud.now_ms():
            await self.expire_one(row)
            row = await self.cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
        return row

    async def view(self, order_id: str, member: str | None) -> dict:
        """The order as its member sees it: a payment still in progress (a wallet payment to pay) shows too."""
        row = await self.get(order_id, member)
        body = order_json(row)
        body["timeline"] = await journal.timeline(self.cloud.db, order_id)
        if self.groups is not None:  # "group forming (2/3)" and its group, for an order holding a place
            body.update(await self.groups.views.shown_part(row))
        if body["payment"] is None:
            charge = await self.payments.get(charge_id(order_id))
            if charge is not None:
                body["payment"] = payment_json(charge)
        return body

    def reservations(self, row) -> list[tuple[str, str]]:
        if row["kind"] == "flash" and not assigned(row):  # sold by the gate, not (yet) an order of a store
            return []
        return [(line["sku"], line["reservation_id"]) for lines in json.loads(row["allocation"]).values() for line in lines]

    async def pay(self, order_id: str, member: str | None, method: str) -> dict:
        """Pay the order: the money saga (`cloud/services/order_saga.py`)."""
        return await self.saga.pay(order_id, member, method)

    async def sweep_money(self) -> int:
        return await self.saga.sweep() + await self.points.sweep()

    async def notify_stores(self, row) -> None:
        if row["kind"] == "flash" and not assigned(row):
            return
        if row["group_held"]:  # its group has not formed: the group buys send it when it does
            return await self.groups.held(row)
        allocation = json.loads(row["allocation"])
        prices: dict[str, int] = {}
        for line in json.loads(row["lines"]):  # a gift of a bought sku is a second line of it, at 0 fen
            prices[line["sku"]] = prices.get(line["sku"], 0) + line["amount_fen"]
        for store, lines in allocation.items():
            if not lines:  # a pre-sale's store before its stock came: told once it is reserved (presale.py)
                continue
            order_lines = tuple(OrderLine(sku=line["sku"], qty=line["qty"], amount_fen=prices.get(line["sku"], 0))
                                for line in lines)
            await to_stores.send(self.cloud, store, functools.partial(
                OrderToFulfil, order_id=row["order_id"], fulfilment=row["fulfilment"], lines=order_lines,
                total_fen=sum(line.amount_fen for line in order_lines), pickup_code=row["pickup_code"] or "",
                slot_start_ms=row["slot_start_ms"] or 0, slot_end_ms=(row["slot_start_ms"] or 0) + 3_600_000,
                member_id=row["member_id"], allow_substitutions=bool(row["allow_substitutions"])),
                event_id=derived_id(row["order_id"], f"fulfil:{store}"))
        # only once every store was told: until then the money sweeper tells them again (`tell_stores_again`)
        await self.cloud.db.execute("update orders set notified_ms = $2 where order_id = $1 and notified_ms is null",
                                    row["order_id"], self.cloud.now_ms())
