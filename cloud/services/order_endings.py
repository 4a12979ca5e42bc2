"""How an online order ends unserved, and everything it holds is given back: a cancel (customer or operator), an
expiry (not paid in time), an abandoned request (pending, never retried). A mixin of `Orders` (its holds, payments,
coupons, budgets and groups), kept apart so that placing an order and ending one read each on their own.

Guarantees:
- The status flips first, atomically (`order_journal.advance` with `only_from`), and only the caller that flipped it
  gives anything back; every give-back is idempotent by id (reservations, slot bookings, coupons, budget uses,
  points), so a sweeper finishing what a crash left cannot give twice.
- Money goes back before stock: a crash after the flip leaves a charge that the money sweeper refunds.
- One give-back for every ending (`give_back_all`: cancel, expiry, a failed or abandoned request, a pre-sale ended
  overdue): money, points, stock or flash units, budget uses, slots, coupons, group place. A step that fails does
  not stop the others; the sweepers finish it (money: `Orders.sweep_money`; points: `PointsPay.sweep`; coupons:
  `Coupons.settle()`; budget uses: `sweep_given_back`, all in the cloud's background loops).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from actors.order_router import ReleaseSlot
from cloud.messaging import to_stores
from cloud.services import order_journal as journal
from cloud.services.flash_stores import assigned
from cloud.services.order_rows import key_id, order_json
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle
from protocol.ids import derived_id
from protocol.messages import OrderCancelled

log = logging.getLogger("freshmesh.orders")
ABANDONED_MS = 5 * 60_000  # a pending order untouched this long (10x the claim take-over time) was abandoned


class OrderEndings:
    """Mixed into `Orders`: uses its `cloud`, `payments`, `points`, `flash`, `coupons`, `member_pricing`, `groups`,
    `on_cancelled`, `get`, `reservations` and `_release`."""

    cloud: Any
    payments: Any
    points: Any
    flash: Any
    coupons: Any
    member_pricing: Any
    groups: Any
    on_cancelled: Callable[[str], Awaitable[None]] | None

    async def get(self, order_id: str, member: str | None) -> Any:
        raise NotImplementedError  # Orders.get

    def reservations(self, row) -> list[tuple[str, str]]:
        raise NotImplementedError  # Orders.reservations

    async def _release(self, reservations: list[tuple[str, str]], tag: str) -> None:
        raise NotImplementedError  # Orders._release

    async def cancel(self, order_id: str, member: str | None, reason: str) -> dict:
        """Flip the status first, atomically, and act on what it was; then give the money back before anything
        else (journaled first: a crash or a frozen actor after the flip leaves a charge the sweeper refunds), then
        the stock and the slots. A concurrent pay sees 'cancelled' and refunds its own charge (same refund id)."""
        row = await self.get(order_id, member)
        if row["status"] == "cancelled":
            return order_json(row)
        try:
            step = await journal.advance(self.cloud.db, order_id, "cancel", self.cloud.now_ms(), detail={"reason": reason},
                                         only_from=lifecycle.CUSTOMER_CANCELLABLE if member is not None else None)
        except lifecycle.IllegalTransition as exc:
            if exc.status == "cancelled":
                return order_json(await self.cloud.db.fetchrow("select * from orders where order_id = $1", order_id))
            raise Refusal("order_state", f"order {order_id} is {exc.status}; it cannot be cancelled") from None
        was = step.before
        # read again after the flip: a shortage re-routed meanwhile may have added a store (and its reservation) to
        # the allocation; after the flip no one can (`Picking._add_part` checks the status under the same lock)
        row = await self.cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
        await self.give_back_all(row)
        if was in lifecycle.PAID_STATUSES and (row["kind"] != "flash" or assigned(row)) and not row["group_held"]:
            for store in json.loads(row["allocation"]):
                await to_stores.send(self.cloud, store, lambda **env: OrderCancelled(order_id=order_id, reason=reason,
                                                                                    **env),
                                    event_id=derived_id(order_id, f"cancel:{store}"))
        if row["fulfilment"] == "delivery" and was in lifecycle.IN_STORE_STATUSES and self.on_cancelled is not None:
            await self.on_cancelled(order_id)
        return order_json(await self.cloud.db.fetchrow("select * from orders where order_id = $1", order_id))

    async def release_slots(self, row) -> None:
        if row["kind"] == "flash":
            return
        await self._unbook(row["order_id"], row["order_id"], list(json.loads(row["allocation"])), row["slot_start_ms"])

    async def _unbook(self, tag: str, order_id: str, stores: list[str], slot_ms: int) -> None:
        """Give the order's places in the slot back at these stores (idempotent by `tag` and store)."""
        for store in stores:
            await self.cloud.actors.router.send(ReleaseSlot(id=f"unslot:{tag}:{store}", store=store,
                                                            slot_start_ms=slot_ms, order_id=order_id))

    async def expire_one(self, row, reason: str = "not paid in time") -> None:
        """The order ends unserved, and everything it holds is given back: its slots and every reservation.
        The StockPool expires only PENDING reservations itself; a payment racing this expiry may have confirmed
        some just before the status changed (`OrderSaga.complete` confirms, then loses the race and refunds), and
        nobody else would ever release those. Cancel releases pending and confirmed alike, after the status flip:
        a Confirm arriving later finds the reservation cancelled and fails."""
        try:
            await journal.advance(self.cloud.db, row["order_id"], "expire", self.cloud.now_ms(),
                                  detail={"reason": reason}, only_from=(lifecycle.RESERVED,))
        except lifecycle.IllegalTransition:
            return  # paid, cancelled or expired meanwhile
        await self.give_back_all(row, money=False)

    async def sweep_abandoned(self) -> int:
        """Orders whose request died half-way and was never retried (`pending` for `ABANDONED_MS`): refused, and
        whatever the plan they wrote may hold given back (reservations, slot bookings: every release is idempotent
        by id, so one that was never taken costs nothing)."""
        refusal = Refusal("order_state", "this order's request was abandoned half-way and nothing of it was kept; "
                                         "place it again with a new Idempotency-Key")
        rows = []
        for candidate in await self.cloud.db.fetch("select order_id from orders where status = 'pending' "
                                                   "and updated_ms < $1 limit 100", self.cloud.now_ms() - ABANDONED_MS):
            async with self.cloud.db.acquire() as conn, conn.transaction():
                # still untouched, under its lock (a retry taking it over touches it first)
                row = await conn.fetchrow("select * from orders where order_id = $1 and status = 'pending' "
                                          "and updated_ms < $2 for update", candidate["order_id"],
                                          self.cloud.now_ms() - ABANDONED_MS)
                if row is None:
                    continue
                await journal.advance(conn, row["order_id"], "reject", self.cloud.now_ms(),
                                      detail={"reason": "abandoned half-way"},
                                      fields={"problem": json.dumps(refusal.to_record())})
            rows.append(row)
        for row in rows:
            await self._give_back_plan(row)
            log.warning("order %s abandoned half-way: given back what its plan held", row["order_id"])
        return len(rows)

    async def _give_back_plan(self, row) -> None:
        """What a pending order's written plan may hold, given back (every release is idempotent by id, under the
        ids its request used): its reservations and slots, budget uses, coupons."""
        await self.give_back_all(row, key_id(row["idempotency_key"]))

    async def give_back_all(self, row, tag: str | None = None, money: bool = True) -> list[str]:
        """Everything an order that ended unserved holds, given back, in this order: its money (a done charge
        refunded, journaled first; a wallet payment still open closed), its points, its stock (a flash order's units
        to their sale, else every reservation of its allocation), its budget uses, its places in the slot, its
        coupons, its group place. The ONE routine of every ending (cancel, expiry, a pre-sale ended overdue, a
        failed or abandoned request). Every step is idempotent by id, so running it again (a retry, a sweeper)
        gives nothing twice; a step that fails is logged and the others still run: the money sweeper refunds, the
        points sweep, the coupon settle and the budget sweep (`sweep_given_back`) finish theirs. `tag`: the ids a
        pending order's request used for its holds (its key id); None for a placed order's own. `money`: False for
        an expiry (an unpaid order: no provider is called from the expiry sweep, so a slow provider cannot stall
        it). Answers the steps that failed."""
        order_id, failed = row["order_id"], []

        async def step(name: str, call: Callable[[], Awaitable[Any]]) -> None:
            try:
                await call()
            except Exception:  # noqa: BLE001 - the others still go back; a sweeper finishes this one
                log.exception("order %s: %s not given back yet (a sweeper retries)", order_id, name)
                failed.append(name)

        if money:  # an expiry holds no charge: a payment racing it is refunded when its money comes (OrderSaga)
            await step("money", lambda: self.payments.refund(order_id))
            await step("payment", lambda: self.payments.close_unpaid(order_id))
        await step("points", lambda: self.points.give_back(order_id))
        if row["kind"] == "flash":  # its units go back to the sale (and its carved units to the sale's block)
            await step("flash units", lambda: self.flash.give_back(order_id))
        else:
            await step("stock", lambda: self._release(self.reservations(row), tag or "order"))
        await step("budgets", lambda: self.member_pricing.give_back(order_id))
        if row["slot_start_ms"] is not None:
            await step("slots", lambda: self.release_slots(row) if tag is None else
                       self._unbook(tag, order_id, list(json.loads(row["allocation"])), row["slot_start_ms"]))
        await step("coupons", lambda: self.coupons.settle(order_id))  # its coupons back in the wallet
        if row["group_held"] and self.groups is not None:  # its group's other places see one place free again
            await step("group place", lambda: self.groups.place_freed(order_id))
        return failed

    async def sweep_given_back(self) -> int:
        """The budget uses of orders that ended unserved and were never given back (a give-back that failed, a
        crash after the status flip), given back now; how many orders. (Their coupons: `Coupons.settle()`.)"""
        rows = await self.cloud.db.fetch(
            "select distinct u.order_id from budget_uses u join orders o using (order_id) "
            "where u.given_back_ms is null and o.status = any($1::text[]) limit 100", list(lifecycle.UNSERVED_STATUSES))
        for r in rows:
            await self.member_pricing.give_back(r["order_id"])
        return len(rows)

    async def expire_due(self) -> int:
        rows = await self.cloud.db.fetch("select * from orders where status = 'reserved' and expires_ms <= $1 limit 500",
                                         self.cloud.now_ms())
        for row in rows:
            await self.expire_one(row)
        return len(rows)

