"""The money saga of an online order: pay, complete, and the sweeper that finishes or undoes a half-done one.

Guarantees (with `cloud/services/payments.py`, decisions in `protocol/money_saga.py`):
- the charge is journaled (`money_movements`) before it is attempted, and the order becomes `paid` only after its
  charge is done; a charge that can no longer be matched by a paid order (the order expired or was cancelled
  meanwhile, a reservation lapsed) is refunded, journaled the same way;
- every step is idempotent by id (ledger transfer ids, the provider's out_trade_no, the stock pool's confirm ids),
  so the request, its retry, a provider's notification and the sweeper may all run it: the result is the same;
- `sweep` (every second, in the background process) finishes what a crash or the request deadline left half-way,
  once its request has certainly ended (`SAGA_GRACE_MS`): then `/audit`'s "every charge is matched by a paid
  order or a refund" holds.
"""
from __future__ import annotations

import json
import logging

from actors.stock_pool import Confirm
from cloud.services import order_journal as journal
from cloud.services.money_resolver import MovementResolver
from cloud.services.payments import movement, payment_json
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle
from protocol.money_saga import PAID_STATUSES, SAGA_GRACE_MS, charge_id, next_step, store_notice_due

log = logging.getLogger("freshmesh.orders")


class OrderSaga:
    def __init__(self, orders) -> None:
        self.orders, self.cloud, self.payments = orders, orders.cloud, orders.payments
        self.resolver = MovementResolver(self.payments)

    async def pay(self, order_id: str, member: str | None, method: str) -> dict:
        """Pay the order, as a saga journaled in `money_movements`: the charge is recorded before it is attempted,
        the order is paid only after its charge is done, and a charge that cannot be matched by a paid order is
        refunded (here, or by the sweeper after a crash: `sweep`). A wallet payment answers with the order
        still `reserved` and what the customer must pay; the provider's verified notification completes it."""
        row = await self.orders.get(order_id, member)
        if row["status"] in PAID_STATUSES:
            if row["status"] == "paid":
                await self.orders.notify_stores(row)  # a retry after a failed notify: the store drops duplicates
            return self.orders.as_json(row)  # paying twice answers with the first payment
        if row["status"] != "reserved":
            raise Refusal("order_state", f"order {order_id} is {row['status']}; it cannot be paid")
        if row["kind"] == "flash":
            await self.orders.flash.payable(row)
        charge = await self.payments.charge(row, method)
        if charge["state"] == "failed":
            raise Refusal("payment", f"payment refused: {charge['detail']}")
        if charge["state"] == "requested":  # a provider payment: the customer pays it in their wallet
            return {**self.orders.as_json(row), "payment": payment_json(charge)}
        return self.orders.as_json(await self.complete(order_id))

    async def complete(self, order_id: str):
        """The order paid once its charge is done: its reservations confirmed and the stores told; when that can no
        longer be (the order expired or was cancelled meanwhile, a reservation lapsed) the charge is refunded and
        the answer is a Refusal. Every step is idempotent by id, so any number of calls (the request, a retry, a
        provider's notification, the sweeper) end the same."""
        cloud = self.cloud
        row = await cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
        charge = await self.payments.get(charge_id(order_id))
        assert charge is not None and charge["state"] == "done", f"order {order_id} completed without a done charge"
        if row["status"] in PAID_STATUSES:
            return row
        if row["status"] == "reserved":
            confirmed = True
            for sku, rid in self.orders.reservations(row):
                r = await cloud.actors.stock_pool.send(Confirm(id=f"confirm:{rid}", reservation_id=rid, sku=sku))
                if not r.succeeded:
                    confirmed = False
                    await self.orders.expire_one(row, reason=f"reservation of {sku} lapsed before the payment completed")
                    break
            if confirmed:
                paid = None
                try:
                    await journal.advance(cloud.db, order_id, "pay", cloud.now_ms(), only_from=(lifecycle.RESERVED,),
                                          detail={"method": charge["method"], "amount_fen": charge["amount_fen"]},
                                          fields={"payment": json.dumps(payment_json(charge))})
                    paid = await cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
                except lifecycle.IllegalTransition:
                    pass  # ended or paid meanwhile: decided below
                if paid is not None:
                    await self.orders.coupons.settle(order_id)  # its coupons redeemed (the sweeper, after a crash)
                    await self.payments.record_spend(paid)
                    await self.orders.notify_stores(paid)
                    return paid
        # Not made paid here: either it ended while the money was coming (give it back) or a concurrent completion
        # made it paid. `refund` tells them apart under the order's row lock and refunds only an ended order.
        await self.payments.refund(order_id)
        latest = await cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
        now = latest["status"]
        if now in PAID_STATUSES:  # a concurrent completion won the race: nothing was refunded
            return latest
        log.warning("order %s is %s but its charge was done: refunded", order_id, now)
        raise Refusal("order_state", f"order {order_id} became {now} before its payment completed; refunded")

    async def complete_quietly(self, order_id: str) -> None:
        try:
            await self.complete(order_id)
        except Refusal as refusal:
            log.info("order %s not completed: %s", order_id, refusal.detail)

    async def sweep(self) -> int:
        """Finish or undo every half-done money saga: movements still `requested` are asked about again, an order
        whose charge is done but which is not paid is completed (its reservations confirmed) or refunded, and a
        paid order whose stores were never told is told again. Only steps older than the saga's grace time (their
        request has certainly ended)."""
        await self.resolver.resolve_due()
        await self.tell_stores_again()
        rows = await self.cloud.db.fetch(
            """select o.order_id, o.status from money_movements c join orders o on o.order_id = c.order_id
               left join money_movements r on r.movement_id = 'refund:' || c.order_id
               where c.kind = 'charge' and c.state = 'done' and o.status <> all($2::text[])
                 and r.movement_id is null and c.updated_ms < $1 limit 100""",
            self.cloud.now_ms() - SAGA_GRACE_MS, list(PAID_STATUSES))
        for row in rows:
            charge = await self.payments.get(charge_id(row["order_id"]))
            step = next_step(row["status"], movement(charge), None)
            log.warning("order %s is %s with its charge done (%s): %s", row["order_id"], row["status"],
                        charge["method"], step)
            if step == "complete_order":
                await self.complete_quietly(row["order_id"])
            elif step == "refund":
                await self.payments.refund(row["order_id"])
        return len(rows)

    async def tell_stores_again(self) -> int:
        """Paid orders whose request died between `paid` and telling the stores (nothing else re-sends: the
        provider's repeated notification is a duplicate): OrderToFulfil again. The event ids derive from the order,
        so a store that did receive it drops the repeat."""
        now = self.cloud.now_ms()
        rows = await self.cloud.db.fetch("select * from orders where status = 'paid' and notified_ms is null "
                                         "and not (allocation ? 'sale') and not group_held and updated_ms < $1 "
                                         "order by updated_ms limit 100",
                                         now - SAGA_GRACE_MS)
        told = 0
        for row in rows:
            # (a flash order here is one assigned to its store: the query leaves out the others)
            kind = row["fulfilment"] if row["kind"] == "flash" else row["kind"]
            if not store_notice_due(row["status"], kind, row["notified_ms"], row["updated_ms"], now):
                continue
            log.warning("order %s is paid but its stores were never told: telling them again", row["order_id"])
            try:
                await self.orders.notify_stores(row)
                told += 1
            except Exception:  # noqa: BLE001 - one store's outage must not stop the other orders; next round retries
                log.exception("order %s: its stores could not be told yet", row["order_id"])
        return told

