"""Pre-sale of out-of-stock items online (issue 16 item 7): an order no store can reserve now is accepted when
supply is due, with a later slot, and reserved for at its store once the stock arrives.

Guarantees:
- Supply is due at a store for a SKU when that store has an open restock alert for it (the store's projected stock
  is below its reorder point: an order to its supplier is suggested), due on the alert's chain day plus the
  supplier's lead time; or when a transfer to that store carrying it is in transit, due the day after it left.
  Only products with a supplier are pre-sold; every item of the order must be due at one store (the pickup store,
  or for delivery one of the stores that deliver there, nearest first).
- A pre-sale order is an ordinary order in the lifecycle (`reserved` -> `paid` -> ...): it holds no stock until
  its stock arrives, only its place in the slot (which must start no earlier than the due day), and carries the
  `presale` note on its timeline. An unpaid one expires like any order; however it ends, everything it holds goes
  back through the one give-back of every ending (`Orders.give_back_all`: its money, points, slot (its allocation
  names its store with no reservation), budget uses, coupons).
- It is priced like an order (`MemberPricing.price`): the member's level and the chain's budget-capped rules and
  per-member limits, consumed in the PromotionBudgets actor under its order id; expiring, cancelling or ending
  overdue gives them back (`give_back`, once; what a failure kept back the expiry loop's `sweep_given_back` gives).
  It gets no gift (`presale_coupons.no_gifts`): it holds no stock until its own comes, so a gift could be neither
  reserved nor handed over. It counts in the promotion-effect figures as any online order
  (`promotion_uses.record_online`).
- It takes coupons like any order (`cloud/services/presale_coupons.py`): checked, priced with, reserved with the
  order, redeemed when it is paid, back in the wallet when it expires, is cancelled or is ended overdue.
- When a store's escrow grows (a receiving granted it: the bridge calls `allocate` after applying the batch; a
  sweeper calls `allocate_due` for whatever that missed), its paid pre-sale orders are reserved for oldest first:
  each order whole or not at all (each try's reservation ids are its own, so a failed try leaves nothing held; a
  line short of the online share asks the store to lend from its shelf first, as any order does),
  confirmed, written into the order's allocation under its row lock only while it is still paid (else released),
  and then sent to the store to pick as an ordinary `OrderToFulfil`. Two runs at once (a bridge's trigger, another
  bridge's, the sweeper) reserve under different ids, but only the first to find the pre-sale still waiting under
  its row lock keeps them; the other releases its own.
- A paid pre-sale whose supply never comes does not wait forever: not reserved by its due day plus
  `PRESALE_GRACE_DAYS` (by the sweeper's clock), it is cancelled with the reason on its timeline and given back all it
  holds (`end_overdue`: refunded, its points, slot, budget uses and coupons; a step that fails neither stops the
  sweep nor is lost: the money sweeper refunds, the budget and coupon sweeps finish theirs).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from typing import Any

from actors.order_router import BookSlot
from actors.stock_pool import Cancel, Confirm, Reserve
from cloud.messaging import promotion_uses
from cloud.services import delivery_terms, presale_coupons
from cloud.services import order_journal as journal
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle
from protocol import restock as rules
from protocol.clock import parse_rfc3339, to_rfc3339
from protocol.errors import ProtocolError
from protocol.policy import chain_day

log = logging.getLogger("freshmesh.presale")
ALLOCATE_BATCH = 50  # waiting pre-sale orders tried per store and round


class Presales:
    def __init__(self, orders, lead_days: dict[str, int] | None = None) -> None:
        self.orders, self.cloud = orders, orders.cloud
        self.lead_days = lead_days or {}

    # ---- placing ------------------------------------------------------------------------------------------
    async def _due(self, stores: list[str], skus: list[str]) -> dict[str, int]:
        """store -> the ms its every SKU is due from (a chain day's start), for the stores where all are due: an open
        restock alert there, or a transfer in transit to it (`protocol.restock.supply_due`)."""
        catalogue = self.cloud.world.catalogue
        if not stores or any(s not in catalogue.by_sku or not catalogue.by_sku[s].supplier for s in skus):
            return {}
        alerts = await self.cloud.db.fetch(
            "select store_id, sku, min(raised_ms) as raised_ms from restock_alerts where cleared_ms is null "
            "and store_id = any($1::text[]) and sku = any($2::text[]) group by store_id, sku", stores, skus)
        transits = await self.cloud.db.fetch(
            "select t.to_store as store_id, l->>'sku' as sku, min(t.dispatched_ms) as dispatched_ms from transfers t, "
            "jsonb_array_elements(t.dispatched) l where t.status = 'dispatched' and t.to_store = any($1::text[]) "
            "and l->>'sku' = any($2::text[]) and (l->>'qty')::bigint > 0 group by t.to_store, l->>'sku'", stores, skus)
        due = rules.supply_due(
            [(r["store_id"], r["sku"], r["raised_ms"],
              rules.lead_days_of(catalogue.by_sku[r["sku"]].supplier, self.lead_days)) for r in alerts],
            [(r["store_id"], r["sku"], r["dispatched_ms"]) for r in transits])
        return {s: max(due[(s, k)] for k in skus) for s in stores if all((s, k) in due for k in skus)}

    async def _candidates(self, req, slot_ms: int) -> list[str]:
        if req.fulfilment == "pickup":
            return [req.store_id] if req.store_id in self.cloud.world.stores else []
        return list(await self.cloud.actors.router.nearby(req.location.lat, req.location.lon, "delivery", slot_ms))

    async def instead(self, req, member: str, key: str, order_id: str, refusal: Refusal) -> dict[str, Any]:
        """What an out-of-stock order gets instead of `refusal`: placed as a pre-sale if it asked for one (`presale`)
        and supply is due; else `refusal` again, offering `presale_available_from` (and its store) when it could be."""
        try:
            slot_ms = parse_rfc3339(req.slot_start, "slot_start")
        except ProtocolError:
            raise refusal from None
        skus = sorted(i.sku for i in req.items)
        due = await self._due(await self._candidates(req, slot_ms), skus)
        if not due:
            if req.presale:
                raise Refusal("out_of_stock", f"{refusal.detail}; no pre-sale either: no supply is due for "
                              f"{', '.join(skus)} at the store(s) that could serve it", **refusal.extra)
            raise refusal
        store = next(iter(due))
        offer = {"presale_available_from": to_rfc3339(due[store]), "presale_store": store}
        if not req.presale:
            raise Refusal(refusal.kind, f"{refusal.detail}; a pre-sale is possible with \"presale\": true and a slot "
                          f"from {offer['presale_available_from']} at store {store}", **refusal.extra, **offer)
        if slot_ms < due[store]:
            raise Refusal("slot", f"a pre-sale at store {store} is due from {offer['presale_available_from']}: "
                          f"slot_start must not be earlier", **offer)
        return await self._place(req, member, order_id, store, slot_ms, due[store])

    async def _place(self, req, member: str, order_id: str, store: str, slot_ms: int, due_ms: int) -> dict[str, Any]:
        cloud, orders = self.cloud, self.orders
        # the plan first, as `Orders._place` does: if this request dies half-way, the abandoned-order sweeper gives
        # the slot back (an empty part holds no stock)
        await cloud.db.execute("update orders set allocation = $2, slot_start_ms = $3, updated_ms = $4 "
                               "where order_id = $1 and status = 'pending'", order_id, json.dumps({store: []}),
                               slot_ms, cloud.now_ms())
        # the one pricing of online orders, at the member's level, with the chain's capped rules (consumed under
        # the order id like an order's, given back when it expires, is cancelled or ends overdue) and with the
        # order's coupons (`presale_coupons`), held before the slot is booked: a refusal from here on rejects the
        # order, and its codes and budget uses go back (`Orders.place`)
        priced, coupons = await presale_coupons.priced(orders, req, member, order_id, store)
        booked = await cloud.actors.router.send(BookSlot(id=f"slot:presale:{order_id}:{store}", store=store,
                                                         slot_start_ms=slot_ms, order_id=order_id))
        if not booked.succeeded:
            raise Refusal("slot", f"slot at {store} not available: {booked.settled.reason}")
        if req.fulfilment == "delivery":
            delivery_terms.add_fee(cloud.world, store, priced)
        now, due_day = cloud.now_ms(), chain_day(due_ms).isoformat()
        lines = [{"sku": i.sku, "qty": i.qty} for i in req.items]
        async with cloud.db.acquire() as conn, conn.transaction():
            await journal.advance(
                conn, order_id, "reserve", now, only_from=(lifecycle.PENDING,),
                detail={"stores": [store], "total_fen": priced["total_fen"], "presale": True, "due_day": due_day},
                fields={"member_id": member, "allocation": json.dumps({store: []}),
                        "lines": json.dumps(priced["lines"]), "total_fen": priced["total_fen"],
                        "pickup_code": f"{secrets.randbelow(10**8):08d}" if req.fulfilment == "pickup" else None,
                        "slot_start_ms": slot_ms, "allow_substitutions": req.allow_substitutions,
                        "location": json.dumps({"lat": req.location.lat, "lon": req.location.lon})
                        if req.location else None, "expires_ms": now + cloud.reservation_ttl_ms})
            await conn.execute("insert into presale_orders (order_id, store_id, due_day, lines, created_ms) "
                               "values ($1, $2, $3, $4, $5) on conflict do nothing", order_id, store, due_day,
                               json.dumps(lines), now)
            await journal.note(conn, order_id, "presale", now, store=store,
                               detail={"due_day": due_day, "lines": lines})
        # in the promotion-effect figures like any online order (once per order)
        await promotion_uses.record_online(cloud.db, order_id, store, member, priced["explain"], now)
        row = await cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
        return {**orders.as_json(row), "pricing": priced["explain"], "coupons": [c.code for c in coupons],
                "presale": {"store_id": store, "due_day": due_day, "available_from": to_rfc3339(due_ms)}}

    # ---- when the stock arrives ---------------------------------------------------------------------------
    async def allocate(self, store_id: str) -> int:
        """The store's waiting paid pre-sale orders reserved for, oldest first; how many were sent to the store."""
        rows = await self.cloud.db.fetch(
            "select p.order_id, p.lines, o.status from presale_orders p join orders o using (order_id) "
            "where p.store_id = $1 and p.allocated_ms is null order by p.created_ms, p.order_id limit $2",
            store_id, ALLOCATE_BATCH)
        sent = 0
        for r in rows:
            if lifecycle.is_final(r["status"]) or r["status"] not in (lifecycle.RESERVED, lifecycle.PAID):
                # ended (expired, cancelled) before its stock came: nothing to reserve, ever
                await self.cloud.db.execute("update presale_orders set allocated_ms = 0 where order_id = $1",
                                            r["order_id"])
                continue
            if r["status"] == lifecycle.PAID and await self._allocate_one(store_id, r["order_id"],
                                                                         json.loads(r["lines"])):
                sent += 1
        return sent

    async def _allocate_one(self, store: str, order_id: str, lines: list[dict]) -> bool:
        cloud, pool = self.cloud, self.cloud.actors.stock_pool
        attempt = await cloud.db.fetchval("update presale_orders set attempts = attempts + 1 where order_id = $1 "
                                          "and allocated_ms is null returning attempts", order_id)
        if attempt is None:
            return False
        held: list[tuple[str, str]] = []
        for line in lines:
            rid = f"presale:{order_id}:{attempt}:{line['sku']}"
            reserve = Reserve(id=f"reserve:{rid}", reservation_id=rid, order_id=order_id, store=store,
                              sku=line["sku"], qty=line["qty"], ttl_ms=cloud.reservation_ttl_ms)
            r = await pool.send(reserve)
            if not r.succeeded and r.settled.reason == "insufficient":
                # the stock came but the online share of it is short: the store may lend from its shelf, as for any
                # order (`cloud.services.borrowing`), and the reservation is tried once more under a new id
                short = line["qty"] - int(r.settled.get("available", 0))
                if await self.orders.borrowing.borrow(store, line["sku"], short, order_id) >= short:
                    rid = f"{rid}:lent"
                    r = await pool.send(dataclasses.replace(reserve, id=f"reserve:{rid}", reservation_id=rid))
            if not r.succeeded:
                await self._release(held)
                return False  # not all of it here yet: tried again when more arrives
            held.append((line["sku"], rid))
        for sku, rid in held:
            await pool.send(Confirm(id=f"confirm:{rid}", reservation_id=rid, sku=sku))
        allocation = {store: [{"sku": line["sku"], "qty": line["qty"], "reservation_id": rid}
                              for line, (_, rid) in zip(lines, held, strict=True)]}
        async with cloud.db.acquire() as conn, conn.transaction():
            status = await conn.fetchval("select status from orders where order_id = $1 for update", order_id)
            # another run (a bridge, the sweeper) may have reserved for it meanwhile under its own attempt's ids, or
            # the overdue sweep ended it: only the first to get here with the pre-sale still waiting keeps its
            # reservations; every other run releases its own (below), so nothing stays held in escrow
            waiting = await conn.fetchrow("select allocated_ms from presale_orders where order_id = $1 for update",
                                          order_id)
            mine = status == lifecycle.PAID and waiting is not None and waiting["allocated_ms"] is None
            if mine:  # a cancel flips the status under this lock first, then reads the allocation
                await conn.execute("update orders set allocation = $2, notified_ms = null where order_id = $1",
                                   order_id, json.dumps(allocation))
                await conn.execute("update presale_orders set allocated_ms = $2 where order_id = $1", order_id,
                                   cloud.now_ms())
                await journal.note(conn, order_id, "presale_reserved", cloud.now_ms(), store=store,
                                   detail={"lines": allocation[store]})
        if not mine:
            await self._release(held)
            return False
        await self.orders.notify_stores(await cloud.db.fetchrow("select * from orders where order_id = $1", order_id))
        return True

    async def _release(self, held: list[tuple[str, str]]) -> None:
        for sku, rid in held:
            await self.cloud.actors.stock_pool.send(Cancel(id=f"cancel:{rid}", reservation_id=rid, sku=sku))

    async def end_overdue(self, now_ms: int) -> int:
        """Paid pre-sales whose supply never came (not reserved by their due day + `PRESALE_GRACE_DAYS`, as of the
        sweeper's `now_ms`) cancelled, the reason on their timeline, refunded by the saga's refund and their slot
        given back; how many. Decided under the order's lock and then the pre-sale's (the order `_allocate_one`
        takes them in): a run reserving for it meanwhile either got there first (the order is not ended) or finds
        it ended and releases its own reservations. A crash after the cancel leaves the charge to the money
        sweeper's refund of ended orders."""
        cloud, today = self.cloud, chain_day(now_ms)
        rows = await cloud.db.fetch(
            "select p.order_id, p.due_day from presale_orders p join orders o using (order_id) where "
            "p.allocated_ms is null and o.status = $1 order by p.created_ms, p.order_id", lifecycle.PAID)
        ended = 0
        for r in rows:
            if not rules.presale_overdue(r["due_day"], today):
                continue
            reason = (f"pre-sale: its supply due on {r['due_day']} did not come within "
                      f"{rules.PRESALE_GRACE_DAYS} days' grace")
            async with cloud.db.acquire() as conn, conn.transaction():
                await conn.fetchval("select status from orders where order_id = $1 for update", r["order_id"])
                waiting = await conn.fetchval("select allocated_ms is null from presale_orders where order_id = $1 "
                                              "for update", r["order_id"])
                if not waiting:
                    continue
                try:
                    await journal.advance(conn, r["order_id"], "cancel", now_ms, only_from=(lifecycle.PAID,),
                                          detail={"reason": reason, "presale": True, "due_day": r["due_day"]})
                except lifecycle.IllegalTransition:
                    continue  # no longer paid: ended another way meanwhile
                await conn.execute("update presale_orders set allocated_ms = 0 where order_id = $1", r["order_id"])
            log.warning("pre-sale order %s: %s; cancelled and refunded", r["order_id"], reason)
            # everything back as for any ending (`Orders.give_back_all`): the refund, its points, its coupons, its
            # capped rules' uses, its slot; a step that fails does not stop the others or this loop (sweepers finish it)
            await self.orders.give_back_all(await cloud.db.fetchrow("select * from orders where order_id = $1",
                                                                    r["order_id"]))
            ended += 1
        return ended

    async def allocate_due(self) -> int:
        """Every store with waiting paid pre-sale orders tried again (what a missed trigger left)."""
        stores = [r["store_id"] for r in await self.cloud.db.fetch(
            "select distinct p.store_id from presale_orders p join orders o using (order_id) "
            "where p.allocated_ms is null and o.status = $1", lifecycle.PAID)]
        return sum([await self.allocate(s) for s in stores])
