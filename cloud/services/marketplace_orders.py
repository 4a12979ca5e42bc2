"""Orders from the marketplaces (issue 23): the platform's webhooks taken in, each of its orders made an order of the
shop's store, served from the marketplace's own share of the store's online escrow, and its status told back.

- `order.created`: an order of kind `marketplace` (fulfilment `delivery`: the platform's rider carries it) of the
  store the shop is (shop id = store id). Each line is reserved from the marketplace's channel (`mkt:<id>`) of the
  StockPool, never from the mall's share nor the store's till share; a line that cannot be reserved rejects the
  whole order at the platform (`reject`: the platform refunds its customer and offers the units again), and nothing
  of it is kept. A reserved order is paid by the platform: a `marketplace` charge recorded `done` (the platform
  took the customer's money; we never ask for it), then the money saga's `complete` confirms the reservations, moves
  the order `paid` and sends it to the store to be picked, like a mall order; then the platform is told `confirm`.
- Picked (`ready`): the platform is told `ready` and its rider collects it, never our rider platform;
  `order.picked_up` and `order.delivered` move it `out_for_delivery` and `delivered`.
- `order.cancelled` (the customer before packing, the platform's confirm timeout, or our own reject coming back):
  the order is cancelled and everything it holds goes back (`OrderEndings.cancel`: the charge refunded as the
  platform refunds, the reservations released into the marketplace's share). An order we cancel ourselves (the
  store could not pick it, an operator) is rejected at the platform.
- `refund.requested` after delivery: an after-sales request of the order (`cloud/services/after_sales.py`), decided
  by the store like a member's; the decision is told to the platform (`agree_refund` / `reject_refund`).
- A line the store could not pack is refunded at picking like a mall order's (never sent for at another store: the
  platform's rider collects at its shop only), and the platform is asked to give that part back (`part_refund`).

Guarantees:
- The platform is believed about its own orders: the lines' prices and the total are what its customer paid (its
  own promotions included), checked only to add up; the shop must be one of our stores, each SKU ours and sold by
  the piece, each named once.
- Each webhook is believed only when signed by the platform (`marketplace_api.read_webhook`), and applied once: its
  event id is recorded with the outcome (`marketplace_events`), and every step is idempotent by id besides (the
  order's idempotency key is `mkt:<marketplace>/<platform order id>`, its reservation, charge and journal ids derive
  from it), so a duplicate, a resend after a timeout or two deliveries at once make one order.
- A webhook that could not be handled now (an actor or the database failing, the order still being taken by a
  concurrent delivery) answers 503 and changes nothing the next delivery cannot finish; the platform resends.
- A cancel that overtakes its `order.created` is remembered: the order is then never taken (and one taken in the
  meantime is cancelled).
- What the platform must be told (confirm, ready, reject, a refund decision) is recorded when told; the sweeper
  (`sweep`) tells it again what a failure left untold.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from actors.stock_pool import Reserve
from cloud.services import delivery_parts as parts
from cloud.services import order_journal as journal
from cloud.services.marketplace_api import (
    HttpMarketplace,
    MarketplaceRefused,
    MarketplaceUnavailable,
    Webhook,
)
from cloud.services.order_rows import allocation_of, key_id
from cloud.services.partner_http import BadCallback
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle
from protocol.money_saga import charge_id
from protocol.return_messages import AfterSalesLine

log = logging.getLogger("freshmesh.marketplace")
SWEEP_AFTER_MS = 5_000  # what a failure left untold this long is told again
SWEEP_BATCH_MAX = 50
RIDER_STALE_MS = 120_000  # packed this long with no word of its rider: the platform is asked
TOLD = ("confirmed_ms", "ready_ms", "rejected_ms")  # what the platform was told, and when
PAST_CONFIRMED = ("confirmed", "ready", "picked_up", "delivered", "cancelled")  # the platform's order statuses
PAST_READY = ("ready", "picked_up", "delivered", "cancelled")
TAKEN = (lifecycle.PAID, *lifecycle.IN_STORE_STATUSES, lifecycle.DELIVERED, lifecycle.COMPLETED,
         lifecycle.PARTIALLY_REFUNDED, lifecycle.REFUNDED)

MIGRATION_52 = (52, "orders from the marketplaces (cloud/services/marketplace_orders.py)", """
    create table if not exists marketplace_orders (
        marketplace       text not null,
        platform_order_id text not null,
        order_id          text unique,             -- ours, once claimed
        store_id          text not null,
        confirmed_ms      bigint,                  -- the platform was told we take it
        ready_ms          bigint,                  -- ... that it is packed
        rejected_ms       bigint,                  -- ... that we cannot serve it
        cancelled_ms      bigint,                  -- the platform cancelled it (maybe before we heard of it)
        cancel_reason     text,
        created_ms        bigint not null,
        updated_ms        bigint not null,
        primary key (marketplace, platform_order_id)
    );
    create table if not exists marketplace_events (
        marketplace text not null,
        event_id    text not null,
        event       text not null,
        platform_order_id text not null,
        outcome     text not null,
        at_ms       bigint not null,
        primary key (marketplace, event_id)
    );
    create table if not exists marketplace_refunds (
        marketplace text not null,
        refund_id   text not null,
        order_id    text not null,
        request_id  text,                          -- the after-sales request it became
        decision    text,                          -- agreed | rejected (its request decided); ours (we gave back)
        reason      text,
        told_ms     bigint,
        created_ms  bigint not null,
        updated_ms  bigint,                        -- last tried (the sweeper comes back after SWEEP_AFTER_MS)
        primary key (marketplace, refund_id)
    );
    create unique index if not exists marketplace_refunds_request on marketplace_refunds (request_id);
    -- an after-sales request a marketplace asked for on its customer's behalf has no member of ours
    alter table after_sales alter column member_id drop not null;
""")


class Retry(RuntimeError):
    """Not handled now (in progress elsewhere, or a backend failing): answered 503, the platform resends."""


@dataclass(frozen=True)
class Outcome:
    status: int
    message: str


class MarketplaceOrders:
    def __init__(self, cloud, orders, after_sales, markets: dict[str, HttpMarketplace]) -> None:
        self.cloud, self.orders, self.after_sales, self.markets = cloud, orders, after_sales, markets

    # ---- the webhook ---------------------------------------------------------------------------------------------
    async def notified(self, marketplace: str, headers, body: bytes) -> Outcome:
        """One webhook: 200 when handled (now, before, or acknowledged without effect), 401/400 not believed or
        unreadable, 404 no such marketplace, 503 try again later. Nothing is kept of one not answered 200."""
        market = self.markets.get(marketplace)
        if market is None:
            return Outcome(404, f"no marketplace {marketplace!r} is configured")
        try:
            hook = market.read_webhook(headers, body)
        except BadCallback as bad:
            log.warning("marketplace %s: webhook refused (%s): %s", marketplace, bad.status, bad.detail)
            return Outcome(bad.status, bad.detail)
        db = self.cloud.db
        try:
            seen = await db.fetchval("select outcome from marketplace_events where marketplace = $1 and "
                                     "event_id = $2", marketplace, hook.event_id)
            if seen is not None:
                return Outcome(200, f"duplicate: {seen}")
            said = await self.apply(market, hook)
            # recorded only once handled: a webhook answered 503 is applied again when it comes again (every step
            # is idempotent), and one recorded is answered as a duplicate
            await db.execute("insert into marketplace_events (marketplace, event_id, event, platform_order_id, "
                             "outcome, at_ms) values ($1, $2, $3, $4, $5, $6) on conflict do nothing", marketplace,
                             hook.event_id, hook.event, hook.order_id, said[:200], self.cloud.now_ms())
        except Retry as retry:
            return Outcome(503, str(retry))
        except Exception as exc:  # noqa: BLE001 - one order's trouble: the platform resends it, the others go on
            log.exception("marketplace %s: webhook %s (%s of %s) not handled", marketplace, hook.event_id, hook.event,
                          hook.order_id)
            return Outcome(503, f"not handled now ({type(exc).__name__}); resend later")
        return Outcome(200, said)

    async def apply(self, market: HttpMarketplace, hook: Webhook) -> str:
        if hook.event == "order.created":
            return await self.take(market, hook)
        if hook.event == "order.cancelled":
            return await self.cancelled(market, hook)
        if hook.event in ("order.picked_up", "order.delivered"):
            return await self.rider(market, hook)
        if hook.event == "refund.requested":
            return await self.refund_requested(market, hook)
        return "noted"  # refund.decided: the platform's echo of our own decision

    # ---- order.created -------------------------------------------------------------------------------------------
    async def take(self, market: HttpMarketplace, hook: Webhook) -> str:
        db, now, m = self.cloud.db, self.cloud.now_ms(), market.marketplace
        store = hook.shop_id
        await db.execute("""insert into marketplace_orders (marketplace, platform_order_id, store_id, created_ms,
                                updated_ms) values ($1, $2, $3, $4, $4) on conflict do nothing""",
                         m, hook.order_id, store, now)
        link = await self._link(m, hook.order_id)
        if link["cancelled_ms"] is not None and link["order_id"] is None:
            return "cancelled by the platform before it was taken: not taken"
        problem = self._problem(hook)
        if problem:  # nothing to reserve: refused at the platform, nothing kept (no order: the sweeper cannot
            if not await self._reject(market, hook.order_id, problem):  # tell it later, so the platform resends)
                raise Retry(f"rejected ({problem}) but the platform was not reached: resend")
            return f"rejected: {problem}"
        key = f"mkt:{m}/{hook.order_id}"
        kid = key_id(key)
        plan = {store: {line.sku: line.qty for line in hook.lines}}
        allocation = allocation_of(kid, plan)
        catalogue = self.cloud.world.catalogue
        lines = [{"sku": line.sku, "name": catalogue.get(line.sku).name, "qty": line.qty, "weighed": False,
                  "list_fen": line.qty * line.price_fen, "amount_fen": line.qty * line.price_fen} for line in hook.lines]
        order_id = await db.fetchval(
            """insert into orders (order_id, idempotency_key, kind, fulfilment, status, member_id, allocation, lines,
                   total_fen, slot_start_ms, created_ms, updated_ms)
               values ($1, $2, 'marketplace', 'delivery', 'pending', null, $3, $4, $5, $6, $6, $6)
               on conflict (idempotency_key) do nothing returning order_id""",
            self.cloud.ids.new(), key, json.dumps(allocation), json.dumps(lines), hook.total_fen, now)
        if order_id is not None:
            await journal.note(db, order_id, "created", now, detail={
                "fulfilment": "delivery", "marketplace": m, "platform_order_id": hook.order_id,
                "customer": hook.customer})
        row = await db.fetchrow("select * from orders where idempotency_key = $1", key)
        order_id = row["order_id"]
        await db.execute("update marketplace_orders set order_id = $3, updated_ms = $4 where marketplace = $1 "
                         "and platform_order_id = $2 and order_id is null", m, hook.order_id, order_id, now)
        if row["status"] in (lifecycle.REJECTED, lifecycle.EXPIRED):
            await self._reject(market, hook.order_id, "out of stock")  # told again: the first telling may be lost
            return f"rejected before: {row['status']}"
        if row["status"] == lifecycle.PENDING:
            if not await self._reserve(market, order_id, allocation, store):
                try:
                    await journal.advance(db, order_id, "reject", self.cloud.now_ms(), only_from=(lifecycle.PENDING,),
                                          detail={"reason": f"{m}: not enough in the marketplace's share"})
                except lifecycle.IllegalTransition as exc:  # a concurrent delivery of the webhook did
                    log.info("marketplace order %s: %s", order_id, exc)
                await self._reject(market, hook.order_id, "out of stock")
                return "rejected: out of stock"
            try:
                await journal.advance(db, order_id, "reserve", self.cloud.now_ms(), only_from=(lifecycle.PENDING,),
                                      detail={"stores": [store], "total_fen": hook.total_fen, "marketplace": m},
                                      fields={"expires_ms": self.cloud.now_ms() + self.cloud.reservation_ttl_ms})
            except lifecycle.IllegalTransition as exc:
                log.info("marketplace order %s: %s", order_id, exc)
        row = await db.fetchrow("select * from orders where order_id = $1", order_id)
        if row["status"] == lifecycle.RESERVED:
            await self._paid_by_platform(row, hook.order_id)
            try:
                await self.orders.saga.complete(order_id)  # reservations confirmed, `paid`, the store told
            except Refusal as refusal:  # a reservation lapsed meanwhile: ended, refunded, rejected
                await self._reject(market, hook.order_id, "out of stock")
                return f"rejected: {refusal.detail}"
        row = await db.fetchrow("select * from orders where order_id = $1", order_id)
        link = await self._link(m, hook.order_id)
        if link["cancelled_ms"] is not None:  # the platform's cancel came while it was being taken
            await self._cancel(row, link["cancel_reason"] or "cancelled by the platform")
            return "cancelled by the platform while it was taken"
        if row["status"] in TAKEN:
            await self._confirm(market, hook.order_id)
            return f"taken: order {order_id}"
        return f"order {order_id} is {row['status']}"

    def _problem(self, hook: Webhook) -> str:
        """Why the order cannot be served at all (before anything is held), or ''."""
        if hook.shop_id not in self.cloud.world.stores:
            return f"unknown shop {hook.shop_id}"
        catalogue, seen = self.cloud.world.catalogue, set()
        for line in hook.lines:
            product = catalogue.by_sku.get(line.sku)
            if product is None:
                return f"unknown sku {line.sku}"
            if product.weighed:
                return f"{line.sku} is sold by weight, not on marketplaces"
            if line.sku in seen:
                return f"{line.sku} named twice"
            seen.add(line.sku)
        if hook.total_fen != sum(line.qty * line.price_fen for line in hook.lines):
            return "total_fen is not the sum of the lines"
        return ""

    async def _reserve(self, market: HttpMarketplace, order_id: str, allocation: dict, store: str) -> bool:
        """Every line from the marketplace's channel, or none (those taken are released)."""
        pool = self.cloud.actors.stock_pool
        wanted = [Reserve(id=f"reserve:{line['reservation_id']}", reservation_id=line["reservation_id"],
                          order_id=order_id, store=store, sku=line["sku"], qty=line["qty"],
                          ttl_ms=self.cloud.reservation_ttl_ms, channel=market.channel) for line in allocation[store]]
        results = [await pool.send(c) for c in wanted]
        if all(r.succeeded for r in results):
            return True
        await self.orders._release([(c.sku, c.reservation_id) for c, r in zip(wanted, results, strict=True)
                                    if r.succeeded], "order")
        return False

    async def _paid_by_platform(self, row, platform_order_id: str) -> None:
        """The platform took the customer's money: our charge records it, `done` at once (never asked for)."""
        now = self.cloud.now_ms()
        await self.cloud.db.execute(
            """insert into money_movements (movement_id, kind, order_id, member_id, method, amount_fen, state,
                   provider_txn_id, created_ms, updated_ms)
               values ($1, 'charge', $2, null, 'marketplace', $3, 'done', $4, $5, $5)
               on conflict (movement_id) do nothing""",
            charge_id(row["order_id"]), row["order_id"], row["total_fen"], platform_order_id, now)

    # ---- telling the platform ------------------------------------------------------------------------------------
    async def _tell(self, market: HttpMarketplace, platform_order_id: str, column: str, call) -> bool:
        """`call()` at the platform, then `column` recorded (True). Unreachable: the row is touched, and the sweeper
        tells it again after a while (False). Refused (4xx): the platform's own view of the order decides - it
        has moved past what we meant to tell (a cancelled order, one confirmed or packed already): recorded; it has
        not (told `ready` before `confirm`): left for the sweeper."""
        assert column in TOLD, column  # one of our own column names, never outside input
        try:
            await call()
        except MarketplaceUnavailable as exc:
            log.warning("marketplace %s: order %s not told yet (%s): the sweeper tells it", market.marketplace,
                        platform_order_id, exc)
            await self._touch(market.marketplace, platform_order_id)
            return False
        except MarketplaceRefused as refused:
            if not await self._moved_past(market, platform_order_id, column, refused):
                await self._touch(market.marketplace, platform_order_id)
                return False
        await self.cloud.db.execute(f"update marketplace_orders set {column} = coalesce({column}, $3), "  # noqa: S608
                                    "updated_ms = $3 where marketplace = $1 and platform_order_id = $2",
                                    market.marketplace, platform_order_id, self.cloud.now_ms())
        return True

    async def _moved_past(self, market: HttpMarketplace, platform_order_id: str, column: str,
                          refused: MarketplaceRefused) -> bool:
        """Whether the platform's order is already where telling `column` would put it, or past it."""
        if refused.status == 404 and refused.code == "ORDER_NOT_EXIST":  # no such order (forged, foreign): nothing
            return True  # to tell
        try:
            status = (await market.order(platform_order_id)).get("status")
        except (MarketplaceUnavailable, MarketplaceRefused) as exc:
            log.warning("marketplace %s: order %s: %s refused (%s) and not read back: %s", market.marketplace,
                        platform_order_id, column, refused, exc)
            return False
        if status == "cancelled":  # its cancel may have been lost on the way: the sweeper cancels ours
            await self.cloud.db.execute(
                "update marketplace_orders set cancelled_ms = coalesce(cancelled_ms, $3), cancel_reason = "
                "coalesce(cancel_reason, 'cancelled (read back from the platform)') where marketplace = $1 and "
                "platform_order_id = $2", market.marketplace, platform_order_id, self.cloud.now_ms())
        past = {"confirmed_ms": PAST_CONFIRMED, "ready_ms": PAST_READY, "rejected_ms": ("cancelled",)}[column]
        if status in past:
            return True
        if column == "rejected_ms":  # packed and collected already: the platform serves it though we ended it
            log.error("marketplace %s: order %s is %s at the platform; our order ended and it could not be rejected "
                      "(%s): the store must settle it by hand", market.marketplace, platform_order_id, status, refused)
            return True  # telling again cannot change it; the error above is for people
        log.warning("marketplace %s: order %s is %s at the platform; %s refused: %s", market.marketplace,
                    platform_order_id, status, column, refused)
        return False

    async def _touch(self, marketplace: str, platform_order_id: str) -> None:
        """Looked at now: the sweeper comes back to it after SWEEP_AFTER_MS, not on every round."""
        await self.cloud.db.execute("update marketplace_orders set updated_ms = $3 where marketplace = $1 and "
                                    "platform_order_id = $2", marketplace, platform_order_id, self.cloud.now_ms())

    async def _confirm(self, market: HttpMarketplace, platform_order_id: str) -> bool:
        return await self._tell(market, platform_order_id, "confirmed_ms", lambda: market.confirm(platform_order_id))

    async def _reject(self, market: HttpMarketplace, platform_order_id: str, reason: str) -> bool:
        return await self._tell(market, platform_order_id, "rejected_ms", lambda: market.reject(platform_order_id, reason))

    async def _link(self, marketplace: str, platform_order_id: str):
        return await self.cloud.db.fetchrow("select * from marketplace_orders where marketplace = $1 and "
                                            "platform_order_id = $2", marketplace, platform_order_id)

    async def _link_of(self, order_id: str):
        return await self.cloud.db.fetchrow("select * from marketplace_orders where order_id = $1", order_id)

    async def ready(self, order_id: str) -> bool:
        """The hook for a picked marketplace order (the services route `Orders.on_ready` here for these): the
        platform is told it is packed, and its rider comes. False when the order is not a marketplace's."""
        link = await self._link_of(order_id)
        if link is None:
            return False
        market = self.markets.get(link["marketplace"])
        if market is None:
            log.error("order %s is of marketplace %s, which is not configured", order_id, link["marketplace"])
            return True
        pid = link["platform_order_id"]
        if link["confirmed_ms"] is None and not await self._confirm(market, pid):  # packed before confirmed: the
            return True  # platform takes `ready` only once confirmed (the sweeper does both later)
        await self._tell(market, pid, "ready_ms", lambda: market.ready(pid))
        return True

    async def ended_here(self, order_id: str) -> bool:
        """The hook for a marketplace order we cancelled (the store could not serve it, an operator): rejected at
        the platform, unless the platform cancelled it itself. False when the order is not a marketplace's."""
        link = await self._link_of(order_id)
        if link is None:
            return False
        market = self.markets.get(link["marketplace"])
        if market is not None and link["cancelled_ms"] is None:
            await self._reject(market, link["platform_order_id"], "the store cannot serve it")
        return True

    # ---- order.cancelled, picked_up, delivered --------------------------------------------------------------------
    async def cancelled(self, market: HttpMarketplace, hook: Webhook) -> str:
        db, now, m = self.cloud.db, self.cloud.now_ms(), market.marketplace
        await db.execute(
            """insert into marketplace_orders (marketplace, platform_order_id, store_id, cancelled_ms, cancel_reason,
                   created_ms, updated_ms) values ($1, $2, $3, $4, $5, $4, $4)
               on conflict (marketplace, platform_order_id) do update
                   set cancelled_ms = coalesce(marketplace_orders.cancelled_ms, $4),
                       cancel_reason = coalesce(marketplace_orders.cancel_reason, $5), updated_ms = $4""",
            m, hook.order_id, hook.shop_id or "", now, hook.reason or "cancelled")
        link = await self._link(m, hook.order_id)
        if link["order_id"] is None:
            return "not taken: it never will be"
        row = await db.fetchrow("select * from orders where order_id = $1", link["order_id"])
        if row["status"] == lifecycle.PENDING:  # being taken now: that request sees the cancel, or a resend does
            raise Retry(f"order {row['order_id']} is being taken; resend")
        if row["status"] in lifecycle.UNSERVED_STATUSES:
            return f"already {row['status']}"
        return await self._cancel(row, f"{m}: {hook.reason or 'cancelled'}")

    async def _cancel(self, row, reason: str) -> str:
        try:
            done = await self.orders.cancel(row["order_id"], None, reason)
        except Refusal as refusal:  # handed to the rider already: the platform's refund flow follows
            return f"not cancelled: {refusal.detail}"
        return f"cancelled: order {row['order_id']} is {done['status']}"

    async def rider(self, market: HttpMarketplace, hook: Webhook) -> str:
        link = await self._link(market.marketplace, hook.order_id)
        if link is None or link["order_id"] is None:
            return "no order of ours: ignored"
        order_id, store = link["order_id"], link["store_id"]
        events = ["hand_to_rider"] if hook.event == "order.picked_up" else ["hand_to_rider", "deliver"]
        detail = {"marketplace": market.marketplace, "platform_order_id": hook.order_id, "status": hook.event}
        done = []
        for event in events:  # `picked_up` lost or overtaken: the goods did leave
            try:
                await parts.step(self.cloud.db, order_id, store, event, self.cloud.now_ms(),
                                 key=f"mkt:{hook.event_id}:{event}", detail=detail)
                done.append(event)
            except lifecycle.IllegalTransition as exc:
                # handed over already (a resent `picked_up` came first): `deliver` still applies; any other step
                # late or out of order: the order does not move back
                if event == "hand_to_rider" and exc.status in (lifecycle.OUT_FOR_DELIVERY, lifecycle.DELIVERED):
                    continue
                return f"not applied: {exc}"
        return f"order {order_id}: {' then '.join(done) or 'nothing new'}"

    # ---- refunds -------------------------------------------------------------------------------------------------
    async def refund_requested(self, market: HttpMarketplace, hook: Webhook) -> str:
        db, m = self.cloud.db, market.marketplace
        link = await self._link(m, hook.order_id)
        if link is None or link["order_id"] is None:
            if not await self._decide_at_platform(market, hook.refund_id, "rejected", "no such order"):
                raise Retry("refused (no such order) but the platform was not reached: resend")
            return "no order of ours: refused"
        status = await db.fetchval("select status from orders where order_id = $1", link["order_id"])
        if status in (lifecycle.READY, lifecycle.OUT_FOR_DELIVERY):  # its `delivered` is still on the way to us
            raise Retry(f"order {link['order_id']} is {status} here: resend once it is delivered")
        await db.execute("insert into marketplace_refunds (marketplace, refund_id, order_id, created_ms) values "
                         "($1, $2, $3, $4) on conflict do nothing", m, hook.refund_id, link["order_id"],
                         self.cloud.now_ms())
        try:
            request, _ = await self.after_sales.request(
                link["order_id"], None, tuple(AfterSalesLine(sku=x.sku, qty=x.qty) for x in hook.lines),
                f"{m} refund {hook.refund_id}: {hook.reason}"[:500], False, f"mkt:{m}:{hook.refund_id}")
        except Refusal as refusal:  # nothing to refund (not delivered, past the window, more than was handed over)
            await db.execute("update marketplace_refunds set decision = 'rejected', reason = $3 where marketplace = $1 "
                             "and refund_id = $2 and decision is null", m, hook.refund_id, refusal.detail[:200])
            await self._decide_at_platform(market, hook.refund_id, "rejected", refusal.detail)
            return f"refused: {refusal.detail}"
        await db.execute("update marketplace_refunds set request_id = $3 where marketplace = $1 and refund_id = $2",
                         m, hook.refund_id, request["request_id"])
        return f"after-sales request {request['request_id']}"

    async def refund_decided(self, row) -> None:
        """The hook `AfterSales.on_decided`: a decided request the marketplace asked for is told to it."""
        refund = await self.cloud.db.fetchrow("select * from marketplace_refunds where request_id = $1",
                                              row["request_id"])
        if refund is None or row["status"] not in ("approved", "refused"):
            return
        decision = "agreed" if row["status"] == "approved" else "rejected"
        await self.cloud.db.execute("update marketplace_refunds set decision = $2, reason = $3 where request_id = $1 "
                                    "and decision is null", row["request_id"], decision, row["decision_reason"] or "")
        market = self.markets.get(refund["marketplace"])
        if market is not None:
            await self._decide_at_platform(market, refund["refund_id"], decision, row["decision_reason"] or "")

    async def _decide_at_platform(self, market: HttpMarketplace, refund_id: str, decision: str, reason: str) -> bool:
        """The decision told (True), or not reached (False: tried again after SWEEP_AFTER_MS)."""
        await self.cloud.db.execute("update marketplace_refunds set updated_ms = $3 where marketplace = $1 and "
                                    "refund_id = $2", market.marketplace, refund_id, self.cloud.now_ms())
        try:
            if decision == "agreed":
                await market.agree_refund(refund_id)
            else:
                await market.reject_refund(refund_id, reason or "refused")
        except MarketplaceUnavailable as exc:
            log.warning("marketplace %s: refund %s decision not told yet (%s)", market.marketplace, refund_id, exc)
            return False
        except MarketplaceRefused as refused:
            log.warning("marketplace %s: refund %s decision refused: %s", market.marketplace, refund_id, refused)
        await self.cloud.db.execute("update marketplace_refunds set told_ms = $3 where marketplace = $1 and "
                                    "refund_id = $2", market.marketplace, refund_id, self.cloud.now_ms())
        return True

    # ---- the sweeper ---------------------------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Finish what a failure left half-way, each row looked at again only after SWEEP_AFTER_MS (a platform that is
        down is not asked every second), one row's trouble never stopping the others: confirms of taken orders,
        readies of packed ones, rejects of those we ended, cancels the platform made that did not go through here,
        rider steps whose webhooks were lost (read back from the platform), refund decisions and our part refunds
        not told. Returns how many rows it looked at."""
        db, now, markets = self.cloud.db, self.cloud.now_ms(), sorted(self.markets)
        if not markets:
            return 0
        before = now - SWEEP_AFTER_MS
        cancellable = [lifecycle.PAID, lifecycle.PICKING, lifecycle.READY]  # (out for delivery: the rider has it)
        rows = await db.fetch(
            """select l.*, o.status from marketplace_orders l join orders o using (order_id)
               where l.marketplace = any($5::text[]) and l.updated_ms < $1 and (
                   (l.cancelled_ms is null and (
                       (l.confirmed_ms is null and l.rejected_ms is null and o.status = any($2::text[]))
                       or (l.ready_ms is null and o.status = 'ready')
                       or (l.rejected_ms is null and o.status = any($3::text[]))
                       or (l.ready_ms < $7 and l.updated_ms < $7 and o.status in ('ready', 'out_for_delivery'))))
                   or (l.cancelled_ms is not null and o.status = any($6::text[])))
               order by l.updated_ms limit $4""",
            before, list(TAKEN), list(lifecycle.UNSERVED_STATUSES), SWEEP_BATCH_MAX, markets, cancellable,
            now - RIDER_STALE_MS)
        for row in rows:
            await self._each(row["platform_order_id"], self._sweep_order(row))
        # refund requests decided here (the hook may have failed, or come before the request was linked)
        decided = await db.fetch(
            """select r.marketplace, r.refund_id, a.request_id, a.status, a.decision_reason
               from marketplace_refunds r join after_sales a
                   on a.idempotency_key = 'mkt:' || r.marketplace || ':' || r.refund_id
               where r.marketplace = any($3::text[]) and r.told_ms is null and a.status in ('approved', 'refused')
                   and coalesce(r.updated_ms, r.created_ms) < $1
               order by coalesce(r.updated_ms, r.created_ms) limit $2""", before, SWEEP_BATCH_MAX, markets)
        for refund in decided:
            await self._each(refund["refund_id"], self._sweep_decided(refund))
        # refused before any request was made (not delivered, past the window): the refusal not told yet
        refused = await db.fetch(
            """select * from marketplace_refunds where marketplace = any($3::text[]) and told_ms is null
                   and decision = 'rejected' and request_id is null and coalesce(updated_ms, created_ms) < $1
               order by coalesce(updated_ms, created_ms) limit $2""", before, SWEEP_BATCH_MAX, markets)
        for refund in refused:
            await self._each(refund["refund_id"], self._decide_at_platform(
                self.markets[refund["marketplace"]], refund["refund_id"], "rejected", refund["reason"] or "refused"))
        return len(rows) + len(decided) + len(refused) + await self._tell_our_part_refunds()

    @staticmethod
    async def _each(name: str, step) -> None:
        try:
            await step
        except Exception:  # noqa: BLE001 - one row's trouble never stops the others; the next round tries again
            log.exception("marketplace sweep: %s not finished this round", name)

    async def _sweep_order(self, row) -> None:
        market, pid = self.markets[row["marketplace"]], row["platform_order_id"]
        await self._touch(row["marketplace"], pid)
        if row["cancelled_ms"] is not None:  # the platform's cancel did not go through when it came
            order = await self.cloud.db.fetchrow("select * from orders where order_id = $1", row["order_id"])
            log.warning("order %s: cancelled at %s, still %s here: cancelled now", row["order_id"],
                        row["marketplace"], order["status"])
            await self._cancel(order, f"{row['marketplace']}: {row['cancel_reason'] or 'cancelled'}")
        elif row["status"] in lifecycle.UNSERVED_STATUSES:
            await self._reject(market, pid, "the store cannot serve it")
        elif row["status"] == lifecycle.READY and row["ready_ms"] is None:
            await self.ready(row["order_id"])  # (confirms first when it was never confirmed)
        elif row["confirmed_ms"] is None:
            await self._confirm(market, pid)
        else:  # with its rider for long, and no word: the platform is asked, and what it says applied
            await self._read_back_rider(market, pid)

    async def _read_back_rider(self, market: HttpMarketplace, pid: str) -> None:
        seen = (await market.order(pid)).get("status")
        if seen in ("picked_up", "delivered"):
            log.warning("marketplace %s: order %s is %s at the platform, its webhook never came: applied",
                        market.marketplace, pid, seen)
            await self.rider(market, Webhook(event_id=f"readback-{pid}-{seen}", event=f"order.{seen}", order_id=pid))
        elif seen == "cancelled":
            await self._moved_past(market, pid, "ready_ms", MarketplaceRefused(409, "READ_BACK", "read back"))

    async def _sweep_decided(self, refund) -> None:
        decision = "agreed" if refund["status"] == "approved" else "rejected"
        await self.cloud.db.execute(
            "update marketplace_refunds set request_id = coalesce(request_id, $3), decision = $4, reason = $5 "
            "where marketplace = $1 and refund_id = $2", refund["marketplace"], refund["refund_id"],
            refund["request_id"], decision, refund["decision_reason"] or "")
        await self._decide_at_platform(self.markets[refund["marketplace"]], refund["refund_id"], decision,
                                       refund["decision_reason"] or "")

    async def _tell_our_part_refunds(self) -> int:
        """Part refunds we made (a short line at picking: `refund:<order>:<part>`, done at once as the platform holds
        the money) are asked of the platform, once each by the movement's id; an after-sales refund was the
        platform's own request (agreed instead)."""
        rows = await self.cloud.db.fetch(
            """select m.movement_id, m.amount_fen, m.detail, l.marketplace, l.platform_order_id, l.order_id
               from money_movements m join marketplace_orders l using (order_id)
               where m.kind = 'refund' and m.method = 'marketplace' and m.state = 'done'
                   and m.movement_id like 'refund:%:%' and m.movement_id not like 'refund:%:as:%'
                   and not exists (select 1 from marketplace_refunds r where r.marketplace = l.marketplace
                                   and r.refund_id = m.movement_id and r.told_ms is not null)
               limit $1""", SWEEP_BATCH_MAX)
        for row in rows:
            market = self.markets.get(row["marketplace"])
            if market is None:
                continue
            try:
                await market.part_refund(row["platform_order_id"], row["movement_id"], row["amount_fen"],
                                         row["detail"] or "not packed")
            except MarketplaceUnavailable as exc:
                log.warning("marketplace %s: part refund %s not asked yet (%s)", row["marketplace"],
                            row["movement_id"], exc)
                continue
            except MarketplaceRefused as refused:  # cancelled meanwhile (refunded whole): nothing more to ask
                log.warning("marketplace %s: part refund %s refused: %s", row["marketplace"], row["movement_id"],
                            refused)
            await self.cloud.db.execute(
                """insert into marketplace_refunds (marketplace, refund_id, order_id, decision, told_ms, created_ms)
                   values ($1, $2, $3, 'ours', $4, $4) on conflict (marketplace, refund_id) do update
                   set told_ms = $4""", row["marketplace"], row["movement_id"], row["order_id"], self.cloud.now_ms())
        return len(rows)
