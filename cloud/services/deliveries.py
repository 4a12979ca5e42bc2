"""Delivery orders carried by riders: dispatch a ready order to the rider platform - a rider per store part, as a
split order's goods wait at each of its stores - apply the callbacks to that part and the order to its parts'
overall status (`delivery_parts`), find another rider once, and when that fails too give that part's money back
and its goods to its store (the whole order's, when no other part is left).

Guarantees:
- one delivery per try: a try is a `deliveries` row keyed by (order, attempt) with its store (attempts are numbered
  over the whole order, so a split order's stores never share one), journaled before the platform is asked, and
  the platform dedupes a create by our order id and the attempt, so a retried or repeated dispatch (the hook called
  twice, a retry after a timeout, the sweeper) never makes two deliveries;
- a split delivery is out for delivery only when every part left with its rider, and delivered only when every
  part was delivered;
- a callback is believed only when signed by the platform within ±5 min (`cloud/services/riders.py`), and applied
  once: its own id is the timeline key (`order_journal.advance(key=)`), so a duplicate changes nothing;
- callbacks never move an order backwards: a status the order has passed is refused by the lifecycle
  (IllegalTransition is logged and the callback acknowledged, so the platform stops sending it). They do move it
  forwards over a lost step: `delivered` (or `delivering`) while the order is still `ready` hands it to the rider
  first (`delivery.implied_events`), since the goods did leave; callbacks of a
  try that was superseded (the first rider, after the redispatch) or has ended (delivered, failed, withdrawn when
  the order was cancelled or left with the store's staff) are acknowledged and ignored;
- the rider's name, masked phone and position are timeline notes (`rider`): `GET /orders/{id}` and its event
  stream show them; the rider's phone is never kept or shown in clear;
- a failed try leads to one redispatch of its part (`redispatch` then a new try); a second failure refunds that
  part (`Payments.refund_part`, its share less what picking refunded of it; the order ends `partially_refunded`
  when the other parts are delivered), or, when it was the last part left, the order in full (`refund` +
  `Payments.refund`, reservations and slot given back); its store is told (`DeliveryReturned`) so that staff book
  the goods back on hand or to shrinkage. The sweeper (`sweep`) finishes any of these steps a
  crash or an unreachable platform interrupted: ready orders without a live try (never dispatched, not made at the
  platform, redispatched without the new try), failed orders not yet redispatched, give-ups not yet finished; and
  it asks the platform (`query`) about live tries it has heard nothing of for `STALE_TRY_MS`, applying the answer
  as a callback, so lost callbacks do not leave an order ready or out for delivery forever.
"""
from __future__ import annotations

import functools
import json
import logging

from cloud.messaging import to_stores
from cloud.services import delivery_parts as parts
from cloud.services import order_journal as journal
from cloud.services.riders import BadCallback, Callback, RidersRefused, RidersUnavailable, callback_from_query
from cloud.services.verdicts import Refusal
from protocol import delivery
from protocol import order_lifecycle as lifecycle
from protocol.delivery_messages import DeliveryReturned, StaffDelivery
from protocol.ids import derived_id
from protocol.messages import OrderLine
from protocol.money_saga import part_refund_id

log = logging.getLogger("freshmesh.deliveries")
PIECE_WEIGHT_G = 500  # the platform wants a weight; a piece's own weight is not in the catalogue, so this guess
SWEEP_AFTER_MS = 5_000  # a try or a failed order untouched this long had its request die half-way: finish it
SWEEP_BATCH_MAX = 50
STALE_TRY_MS = 60_000  # a live try without word from the platform this long: the platform is asked (query)
SLOT_MS = 3_600_000
_RANK = {s: i for i, s in enumerate(("requested", "created", *delivery.STATUSES))}


class Deliveries:
    def __init__(self, cloud, orders, platform=None) -> None:
        self.cloud, self.orders, self.platform = cloud, orders, platform

    # ---- dispatch -----------------------------------------------------------------------------------------------
    async def on_ready(self, order_id: str) -> None:
        """The hook `Orders.on_ready`: the order was picked and waits at the store."""
        try:
            await self.dispatch(order_id)
        except (RidersUnavailable, RidersRefused) as exc:  # the try is journaled: the sweeper asks again
            log.warning("order %s: rider platform not reached (%s); the sweeper tries again", order_id, exc)

    async def dispatch(self, order_id: str) -> dict | None:
        """Make a try at the platform (quote, then create) for each store part of a ready order waiting for a rider:
        a split delivery has a rider per store, as its goods are at each store. The last try's row, or None when the
        order is not a delivery waiting for a rider. Safe to call any number of times."""
        db = self.cloud.db
        row = await db.fetchrow("select * from orders where order_id = $1", order_id)
        if row is None or row["fulfilment"] != "delivery" or row["status"] != lifecycle.READY \
                or row["kind"] == "marketplace":  # the marketplace's own rider collects it
            return None
        if self.platform is None:
            log.warning("order %s is ready but no rider platform is configured: the store's staff deliver it",
                        order_id)
            return None
        made = None
        for store, status in (await parts.statuses(db, order_id)).items():
            if status == lifecycle.READY:
                made = await self._dispatch_part(row, store)
        return made

    async def _dispatch_part(self, row, store: str) -> dict:
        """The store part's current try: its live one, or a new one journaled before the platform is asked. Tries are
        numbered over the whole order (the platform's idempotency key is our order id and the attempt)."""
        db, order_id = self.cloud.db, row["order_id"]
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("select 1 from orders where order_id = $1 for update", order_id)  # one numbering
            latest = await conn.fetchrow("select attempt, status from deliveries where order_id = $1 and store_id = $2 "
                                         "and platform <> 'own_staff' order by attempt desc limit 1", order_id, store)
            attempt = latest["attempt"] if latest is not None else 0
            # a new try when there is none or the last ended (its redispatch was cut short by a crash)
            if latest is None or latest["status"] in (delivery.FAILED, delivery.CANCELLED):
                attempt = await conn.fetchval("select coalesce(max(attempt), 0) + 1 from deliveries where order_id = $1",
                                              order_id)
                await conn.execute("""insert into deliveries (order_id, attempt, store_id, platform, status, created_ms,
                                      updated_ms) values ($1, $2, $3, $4, 'requested', $5, $5) on conflict do nothing""",
                                   order_id, attempt, store, self.platform.name, self.cloud.now_ms())
        try_row = await db.fetchrow("select * from deliveries where order_id = $1 and attempt = $2", order_id, attempt)
        if try_row["platform_order_id"]:
            return dict(try_row)
        body = self._request(row, store, attempt)
        quote = await self.platform.quote(body)
        made = await self.platform.create(body)
        await db.execute("""update deliveries set platform_order_id = $3, fee_fen = $4, status = 'created',
                            updated_ms = $5 where order_id = $1 and attempt = $2 and platform_order_id is null""",
                         order_id, attempt, str(made["platform_order_id"]), int(quote["fee_fen"]), self.cloud.now_ms())
        await journal.note(db, order_id, "rider", self.cloud.now_ms(), store=store, key=f"dispatch:{attempt}",
                           detail={"status": "dispatched", "attempt": attempt, "platform": self.platform.name,
                                   "platform_order_id": str(made["platform_order_id"]), "fee_fen": int(quote["fee_fen"]),
                                   "distance_m": quote.get("distance_m")})
        return dict(await db.fetchrow("select * from deliveries where order_id = $1 and attempt = $2", order_id, attempt))

    def _request(self, row, store_id: str, attempt: int) -> dict:
        """The delivery as the platform wants it: pickup at the store, drop-off at the customer, slot, goods."""
        store = self.cloud.world.stores[store_id]
        location = json.loads(row["location"]) if row["location"] else {"lat": store.lat, "lon": store.lon}
        allocation = json.loads(row["allocation"])
        lines = parts.part_lines(json.loads(row["lines"]), allocation.get(store_id, []), len(allocation) == 1)
        weight = sum(line["qty"] if line.get("weighed") else line["qty"] * PIECE_WEIGHT_G for line in lines)
        value = row["total_fen"] if len(allocation) == 1 else sum(line["amount_fen"] for line in lines)
        slot = row["slot_start_ms"] or self.cloud.now_ms()
        return {"origin_id": row["order_id"], "attempt": attempt,
                "pickup": {"name": store.name, "address": f"{store.name} ({store.store_id})", "lat": store.lat,
                           "lon": store.lon, "contact": store.store_id},
                "dropoff": {"lat": location["lat"], "lon": location["lon"]},
                "slot": {"start_ms": slot, "end_ms": slot + SLOT_MS},
                "cargo": {"value_fen": value, "weight_g": weight, "items": len(lines)}}

    # ---- callbacks ----------------------------------------------------------------------------------------------
    async def notified(self, headers, body: bytes) -> tuple[int, str]:
        """(HTTP status, message) for a platform callback: 200 when handled (applied now, before, or ignored as
        late), 401 not believed, 400 unreadable, 404 no such delivery. Nothing changes unless it is 200."""
        if self.platform is None:
            return 404, "no rider platform is configured"
        try:
            callback = self.platform.read_callback(headers, body)
        except BadCallback as bad:
            log.warning("rider callback refused (%s): %s", bad.status, bad.detail)
            return bad.status, bad.detail
        return await self.apply(callback)

    async def apply(self, cb: Callback) -> tuple[int, str]:
        db = self.cloud.db
        try_row = await db.fetchrow("select * from deliveries where order_id = $1 and attempt = $2", cb.origin_id,
                                    cb.attempt)
        if try_row is None or try_row["platform_order_id"] != cb.platform_order_id:
            return 404, f"no delivery {cb.platform_order_id} of order {cb.origin_id} (try {cb.attempt})"
        if await db.fetchval("select 1 from order_events where order_id = $1 and event_key = $2", cb.origin_id,
                             f"rider:{cb.callback_id}"):
            return 200, "duplicate"  # (advance would say so too; this answers it before the try is looked at)
        current = await db.fetchval("select max(attempt) from deliveries where order_id = $1 and store_id = $2 "
                                    "and platform <> 'own_staff'", cb.origin_id, try_row["store_id"])
        if cb.attempt != current:
            log.info("order %s: callback %s of superseded try %d ignored", cb.origin_id, cb.status, cb.attempt)
            return 200, "superseded try: ignored"
        if try_row["status"] in delivery.ENDED:  # late word of a try that ended (or that we withdrew)
            log.info("order %s: callback %s after try %d ended (%s) ignored", cb.origin_id, cb.status, cb.attempt,
                     try_row["status"])
            return 200, f"try {cb.attempt} has ended ({try_row['status']}): ignored"
        event = delivery.lifecycle_event(cb.status)
        detail: dict = {"status": cb.status, "attempt": cb.attempt, "platform_order_id": cb.platform_order_id}
        if cb.rider_name or cb.rider_phone:
            detail["rider"] = {"name": cb.rider_name, "phone": delivery.mask_phone(cb.rider_phone)}
        if cb.lat is not None:
            detail["position"] = {"lat": cb.lat, "lon": cb.lon}
        if cb.reason:
            detail["reason"] = cb.reason
        store, now = try_row["store_id"], self.cloud.now_ms()
        try:
            part = (await parts.statuses(db, cb.origin_id)).get(store, "")
            for implied in delivery.implied_events(part, cb.status):  # `picked_up` lost or overtaken
                await parts.step(db, cb.origin_id, store, implied, now, key=f"rider:{cb.callback_id}:{implied}",
                                 detail={**detail, "implied_by": cb.status})
            if event == "rider":
                step = await journal.note(db, cb.origin_id, "rider", now, store=store, detail=detail,
                                          key=f"rider:{cb.callback_id}")
            else:
                step = await parts.step(db, cb.origin_id, store, event, now, key=f"rider:{cb.callback_id}",
                                        detail=detail)
        except lifecycle.IllegalTransition as exc:  # late or out of order: the order does not move back
            log.info("order %s: rider callback %s not applied: %s", cb.origin_id, cb.callback_id, exc)
            return 200, f"not applied: {exc}"
        if step.duplicate:
            return 200, "duplicate"
        await self._record(cb, detail)
        if event == "fail_delivery":
            await self.after_failure(cb.origin_id, store, cb.reason or cb.status)
        return 200, "applied"

    async def _record(self, cb: Callback, detail: dict) -> None:
        """The try's row follows the platform forwards only (a late `accepted` does not undo `picked_up`)."""
        row = await self.cloud.db.fetchrow("select status from deliveries where order_id = $1 and attempt = $2",
                                           cb.origin_id, cb.attempt)
        status = cb.status if _RANK[cb.status] >= _RANK.get(row["status"], 0) else row["status"]
        await self.cloud.db.execute(
            """update deliveries set status = $3, reason = coalesce($4, reason), rider = coalesce($5, rider),
                   position = coalesce($6, position), updated_ms = $7 where order_id = $1 and attempt = $2""",
            cb.origin_id, cb.attempt, status, cb.reason or None,
            json.dumps(detail["rider"]) if "rider" in detail else None,
            json.dumps(detail["position"]) if "position" in detail else None, self.cloud.now_ms())

    # ---- after a failed try -------------------------------------------------------------------------------------
    async def after_failure(self, order_id: str, store: str, reason: str) -> None:
        """Another rider once for the store's part; then that part is refunded and its goods go back to its store
        (the whole order, when no other part is left)."""
        db = self.cloud.db
        latest = await db.fetchrow("select * from deliveries where order_id = $1 and store_id = $2 and platform <> "
                                   "'own_staff' order by attempt desc limit 1", order_id, store)
        if latest is None:
            return
        tries = await db.fetchval("select count(*) from deliveries where order_id = $1 and store_id = $2 and "
                                  "platform <> 'own_staff'", order_id, store)
        if delivery.next_step_after_failure(tries) == "redispatch":
            try:
                await parts.step(db, order_id, store, "redispatch", self.cloud.now_ms(),
                                 detail={"after": reason, "attempt": latest["attempt"]},
                                 key=f"redispatch:{latest['attempt']}")
            except lifecycle.IllegalTransition as exc:
                log.info("order %s part at %s not redispatched: %s", order_id, store, exc)
                return
            await self.on_ready(order_id)  # a new try for the part (numbered over the order)
            return
        await self.give_up_part(order_id, store, reason)

    async def give_up_part(self, order_id: str, store: str, reason: str) -> None:
        """The store's part failed twice: refunded. The last part left takes the whole order with it (`give_up`);
        otherwise its share of the money goes back (`refund_part`, less what picking refunded of that store's part
        already), its reservations are released and its goods go back to its store, and the order follows the other
        parts (ending `partially_refunded` once they are delivered)."""
        db = self.cloud.db
        try:
            await parts.step(db, order_id, store, "refund", self.cloud.now_ms(), key=f"delivery:give_up:{store}",
                             detail={"reason": f"not delivered: {reason}"})
        except lifecycle.IllegalTransition as exc:
            if exc.status != lifecycle.REFUNDED:
                log.warning("order %s part at %s not refunded after its delivery failed: %s", order_id, store, exc)
                return
        row = await db.fetchrow("select * from orders where order_id = $1", order_id)
        if row["status"] == lifecycle.REFUNDED:
            await self.give_up(order_id, reason)
            return
        allocation = json.loads(row["allocation"])
        share = sum(line["amount_fen"] for line in parts.part_lines(json.loads(row["lines"]), allocation[store], False))
        before = await db.fetchval(
            "select coalesce(sum(amount_fen), 0)::bigint from money_movements where order_id = $1 and kind = 'refund' "
            "and movement_id like $2 and state <> 'failed'", order_id, part_refund_id(order_id, f"%:{store}%"))
        if share - before > 0:
            try:
                await self.orders.payments.refund_part(order_id, f"delivery:{store}", share - before,
                                                       f"not delivered from {store}: {reason}")
            except Refusal as refusal:
                log.warning("order %s: part refund for %s not made: %s", order_id, store, refusal.detail)
        rids = {line["reservation_id"] for line in allocation[store]}
        for sku, rid in self.orders.reservations(row):
            if rid in rids:
                await self.orders._release([(sku, rid)], "order")  # noqa: SLF001 - as a cancel does, same ids
        await self._send_back(order_id, store, allocation[store], reason)
        await journal.note(db, order_id, "returned", self.cloud.now_ms(), key=f"delivery:returned:{store}",
                           detail={"reason": reason, "stores": [store], "refunded_fen": max(share - before, 0)})

    async def _send_back(self, order_id: str, store: str, lines: list[dict], reason: str) -> None:
        order_lines = tuple(OrderLine(sku=line["sku"], qty=line["qty"], amount_fen=0) for line in lines)
        await to_stores.send(self.cloud, store, functools.partial(
            DeliveryReturned, order_id=order_id, lines=order_lines, reason=reason[:200]),
            event_id=derived_id(order_id, f"returned:{store}"))

    async def give_up(self, order_id: str, reason: str) -> None:
        """No rider could deliver: the money back in full, the reservations and slot freed, the store told."""
        db = self.cloud.db
        try:
            await journal.advance(db, order_id, "refund", self.cloud.now_ms(), key="delivery:give_up",
                                  detail={"reason": f"not delivered: {reason}"})
        except lifecycle.IllegalTransition as exc:
            if exc.status != lifecycle.REFUNDED:
                log.warning("order %s not refunded after its delivery failed: %s", order_id, exc)
                return
        row = await db.fetchrow("select * from orders where order_id = $1", order_id)
        await self.orders.payments.refund(order_id)
        for sku, rid in self.orders.reservations(row):
            await self.orders._release([(sku, rid)], "order")  # noqa: SLF001 - as a cancel does, same ids
        await self.orders.release_slots(row)
        for store, lines in json.loads(row["allocation"]).items():  # (a part given up before: the same id, once)
            await self._send_back(order_id, store, lines, reason)
        await journal.note(db, order_id, "returned", self.cloud.now_ms(), key="delivery:returned",
                           detail={"reason": reason, "stores": sorted(json.loads(row["allocation"]))})

    # ---- the store's own staff ----------------------------------------------------------------------------------
    async def by_staff(self, event: StaffDelivery) -> None:
        """The store's staff took the order out (`out`) or handed it over (`delivered`), instead of a rider: the
        same lifecycle events as a rider's callbacks, once (the store event's id is the timeline key). Taking it out
        withdraws an open rider try at the platform, so that no rider comes for goods that left."""
        db, order_id = self.cloud.db, event.order_id
        if event.step == "out":
            await self._withdraw_rider(order_id, store=event.store_id)
            attempt = await db.fetchval("select coalesce(max(attempt), 0) + 1 from deliveries where order_id = $1 "
                                        "and platform <> 'own_staff'", order_id)
            await db.execute(
                """insert into deliveries (order_id, attempt, store_id, platform, status, rider, created_ms, updated_ms)
                   select $1, $2, $3, 'own_staff', 'picked_up', $4, $5, $5
                   where not exists (select 1 from deliveries where order_id = $1 and platform = 'own_staff')""",
                order_id, attempt, event.store_id, json.dumps({"name": event.staff_id, "staff": True}),
                self.cloud.now_ms())
        event_name = "hand_to_rider" if event.step == "out" else "deliver"
        try:  # the store's own part: a split order's other stores deliver theirs
            await parts.step(db, order_id, event.store_id, event_name, self.cloud.now_ms(), key=event.event_id,
                             detail={"by": "own_staff", "staff_id": event.staff_id})
        except (lifecycle.IllegalTransition, LookupError) as exc:  # e.g. a rider picked it up first
            log.warning("order %s: staff delivery %s of store %s not applied: %s", order_id, event.step,
                        event.store_id, exc)
            return
        if event.step == "delivered":
            await db.execute("update deliveries set status = 'delivered', updated_ms = $2 where order_id = $1 "
                             "and platform = 'own_staff'", order_id, self.cloud.now_ms())

    async def on_cancelled(self, order_id: str) -> None:
        """The hook `Orders.on_cancelled`: a cancelled order's open rider try is withdrawn at the platform."""
        await self._withdraw_rider(order_id, "cancelled_by_merchant")

    async def _withdraw_rider(self, order_id: str, why: str = "own_staff", store: str | None = None) -> None:
        """Every open rider try of the order (of `store`'s part only, when given) is withdrawn at the platform."""
        rows = await self.cloud.db.fetch(
            """select * from deliveries where order_id = $1 and platform <> 'own_staff' and platform_order_id is not null
               and status in ('requested', 'created', 'accepted', 'arrived_at_store')
               and ($2::text is null or store_id = $2)""", order_id, store)
        for row in rows:
            if self.platform is not None:
                try:
                    await self.platform.cancel(row["platform_order_id"], "cancelled_by_merchant")
                except (RidersUnavailable, RidersRefused) as exc:  # the rider may still come: the store sends them away
                    log.warning("order %s: rider try %s not withdrawn (%s)", order_id, row["platform_order_id"], exc)
            await self.cloud.db.execute("update deliveries set status = 'cancelled', reason = $4, updated_ms = $3 "
                                        "where order_id = $1 and attempt = $2", order_id, row["attempt"],
                                        self.cloud.now_ms(), why)

    # ---- the sweeper --------------------------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Finish what a crash or an unreachable platform left half-done; returns how many it touched."""
        db, before = self.cloud.db, self.cloud.now_ms() - SWEEP_AFTER_MS
        touched = 0
        # ready deliveries without a try the platform took: never asked (the hook was lost), asked but unreachable,
        # or redispatched without the new try made
        ready = [] if self.platform is None else await db.fetch(
            """select o.order_id from orders o where o.status = 'ready' and o.fulfilment = 'delivery'
                   and o.kind <> 'marketplace' and o.updated_ms < $1 and (
                       exists (select 1 from order_parts p where p.order_id = o.order_id and p.status = 'ready'
                               and not exists (select 1 from deliveries d where d.order_id = o.order_id
                                               and d.store_id = p.store_id and d.platform_order_id is not null
                                               and d.status not in ('failed', 'cancelled')))
                       or (not exists (select 1 from order_parts p where p.order_id = o.order_id)
                           and not exists (select 1 from deliveries d where d.order_id = o.order_id
                                           and d.platform_order_id is not null
                                           and d.status not in ('failed', 'cancelled'))))
               limit $2""", before, SWEEP_BATCH_MAX)
        for row in ready:
            await self.on_ready(row["order_id"])
            touched += 1
        touched += await self._ask_about_stale_tries()
        # failed parts not redispatched nor given up (a part without a row: an order failed before parts were kept)
        for row in await db.fetch("""select o.order_id, d.store_id, max(d.reason) as reason
                                     from orders o join deliveries d using (order_id)
                                     where o.status = 'delivery_failed' and o.updated_ms < $1
                                         and d.platform <> 'own_staff' and not exists (
                                             select 1 from order_parts p where p.order_id = o.order_id
                                             and p.store_id = d.store_id and p.status <> 'delivery_failed')
                                     group by o.order_id, d.store_id limit $2""", before, SWEEP_BATCH_MAX):
            await self.after_failure(row["order_id"], row["store_id"], row["reason"] or "failed")
            touched += 1
        # given up, but the money, the reservations or the store's word may not have followed (every step again is
        # idempotent: the refund by its movement id, releases by theirs, the store's message by its event id)
        for row in await db.fetch("""select distinct o.order_id from orders o join order_events g
                                         on g.order_id = o.order_id and g.event_key like 'delivery:give_up%'
                                     where o.status = 'refunded' and o.updated_ms < $1 and not exists (
                                         select 1 from order_events r where r.order_id = o.order_id
                                         and r.event_key = 'delivery:returned') limit $2""", before, SWEEP_BATCH_MAX):
            await self.give_up(row["order_id"], "not delivered")
            touched += 1
        for row in await db.fetch("""select p.order_id, p.store_id from order_parts p join orders o using (order_id)
                                     where p.status = 'refunded' and o.status <> 'refunded' and o.updated_ms < $1
                                         and exists (select 1 from order_events g where g.order_id = p.order_id
                                                     and g.event_key = 'delivery:give_up:' || p.store_id)
                                         and not exists (select 1 from order_events r where r.order_id = p.order_id
                                                          and r.event_key = 'delivery:returned:' || p.store_id)
                                     limit $2""", before, SWEEP_BATCH_MAX):
            await self.give_up_part(row["order_id"], row["store_id"], "not delivered")
            touched += 1
        return touched

    async def _ask_about_stale_tries(self) -> int:
        """Live tries the platform has not called back about for a while: their callbacks may have been lost (the
        platform gave up pushing) or refused; the platform is asked and what it says is applied like a callback
        (forwards only, once per status: `riders.callback_from_query`). Without this an order whose `picked_up` and
        `delivered` never arrived stays out for delivery, or ready with a live try, forever."""
        if self.platform is None:
            return 0
        rows = await self.cloud.db.fetch(
            """select d.order_id, d.attempt, d.platform_order_id from deliveries d join orders o using (order_id)
               where d.platform <> 'own_staff' and d.platform_order_id is not null
                   and d.status not in ('delivered', 'failed', 'cancelled') and d.updated_ms < $1
                   and o.status in ('ready', 'out_for_delivery')
               order by d.updated_ms limit $2""", self.cloud.now_ms() - STALE_TRY_MS, SWEEP_BATCH_MAX)
        for row in rows:
            try:
                view = await self.platform.query(row["platform_order_id"])
            except (RidersUnavailable, RidersRefused) as exc:
                log.warning("order %s: rider try %d not queried (%s)", row["order_id"], row["attempt"], exc)
                continue
            cb = callback_from_query(view)
            if cb is None or cb.origin_id != row["order_id"] or cb.attempt != row["attempt"]:
                # nothing to tell yet: looked at again after another while, not on every sweep
                await self.cloud.db.execute("update deliveries set updated_ms = $3 where order_id = $1 and attempt = $2",
                                            row["order_id"], row["attempt"], self.cloud.now_ms())
                continue
            code, said = await self.apply(cb)
            log.info("order %s: rider try %d queried: %s -> %s %s", row["order_id"], row["attempt"], cb.status, code,
                     said)
            if code == 200:
                await self.cloud.db.execute("update deliveries set updated_ms = $3 where order_id = $1 and attempt = $2",
                                            row["order_id"], row["attempt"], self.cloud.now_ms())
        return len(rows)
