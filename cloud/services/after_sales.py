"""After-sales requests online: a customer asks for a refund of some lines of a handed-over order (with or without
returning the goods); the store decides - its staff on the store box, or an operator of that store (or HQ) in the
cloud - and an approval refunds through the order's original payment.

Guarantees:
- Only the order's own member asks, only for a handed-over order (`lifecycle.HANDED_OVER_STATUSES`), only within
  `AFTER_SALES_WINDOW_MS` of the hand-over, and only for what the stores handed over (after picking: never the short
  units, the picked weight, a substitute under its own SKU) less what was returned or asked for already
  (`cloud.services.returned_view`: till returns, requests still open or approved), judged under the order's row lock
  so two requests cannot both take the same goods; the amount is the cloud's own figure for those lines, each line
  naming the store part it is taken from. Each request is journaled on the order's timeline
  (`after_sales_requested`) and the store is told (`AfterSalesRequested`). The same Idempotency-Key again answers
  the first request.
- A decision is taken once: the same decision again answers the request as it is; the other decision after it is
  refused (409). It is taken under the order's and the request's row locks, the status moved in the same transaction
  as the refund is journaled; an approval re-judges the lines first (a till return since may have taken them: then
  it is refused, nothing refunded). An approval refunds `refund:<order>:as:<request>` through the original payment,
  then steps the order `refund_part` (or `refund` once every line is back, the full refund giving back what the
  parts left), keyed by the request, so a retry after a crash refunds nothing twice. An order paid partly with points
  gets back points and money in the proportion it was paid (`cloud/services/points_refunds.py`: the points through
  the ledger, once), never more than was paid in either. A refusal is a timeline note with its reason.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cloud.messaging import to_stores
from cloud.services import order_journal as journal
from cloud.services import points_refunds, returned_view
from cloud.services.verdicts import Refusal
from protocol import handed_over as ho
from protocol import order_lifecycle as lifecycle
from protocol import returns as rules
from protocol.clock import to_rfc3339
from protocol.ids import derived_id
from protocol.money_saga import charge_id
from protocol.return_messages import AfterSalesLine, AfterSalesRequested

AFTER_SALES_WINDOW_MS = 7 * 24 * 3600 * 1000  # after the goods were handed over
HANDED_OVER_EVENTS = ("pick_up", "deliver")
log = logging.getLogger("freshmesh.after_sales")


def refund_part_name(request_id: str) -> str:
    return f"as:{request_id}"  # refund:<order>:as:<request>: 63 characters, within the wallet's 64


def view(row) -> dict:
    body = {"request_id": row["request_id"], "order_id": row["order_id"], "store_id": row["store_id"],
            "lines": json.loads(row["lines"]), "amount_fen": row["amount_fen"], "reason": row["reason"],
            "with_return": row["with_return"], "status": row["status"], "created_at": to_rfc3339(row["created_ms"])}
    if row["status"] != "requested":
        body.update(decided_by=row["decided_by"], decided_at=to_rfc3339(row["decided_ms"]))
        if row["decision_reason"]:
            body["decision_reason"] = row["decision_reason"]
    return body


class AfterSales:
    def __init__(self, cloud, payments) -> None:
        self.cloud, self.payments = cloud, payments
        # called with each request once decided (a marketplace's is told to the platform: marketplace_orders.py)
        self.on_decided: Callable[[Any], Awaitable[None]] | None = None

    async def _order(self, order_id: str, member: str | None):
        row = await self.cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
        if row is None or (member is not None and row["member_id"] != member):
            raise Refusal("not_found", f"no order {order_id}")
        return row

    async def _view(self, conn, order, **kw) -> returned_view.ReturnsView:
        return await returned_view.order_view(conn, self.cloud.world.catalogue, order, **kw)

    async def request(self, order_id: str, member: str | None, lines: tuple[AfterSalesLine, ...], reason: str,
                      with_return: bool, key: str | None) -> tuple[dict, bool]:
        """(the request, made now); a Refusal says exactly what is wrong."""
        # a marketplace's request (no member of ours) comes with a key of its own (`mkt:<marketplace>:<refund>`)
        idem = (f"{member}:{key}" if member is not None else key) if key else None
        if idem is not None:
            done = await self.cloud.db.fetchrow("select * from after_sales where idempotency_key = $1", idem)
            if done is not None:
                return view(done), False
        order = await self._order(order_id, member)
        if order["status"] not in lifecycle.HANDED_OVER_STATUSES:
            raise Refusal("order_state", f"order {order_id} is {order['status']}: after-sales is for orders picked "
                                         "up or delivered")
        handed = await self.cloud.db.fetchrow(
            "select at_ms, store_id from order_events where order_id = $1 and event = any($2::text[]) order by seq "
            "limit 1", order_id, list(HANDED_OVER_EVENTS))
        now = self.cloud.now_ms()
        if handed is None or now - handed["at_ms"] > AFTER_SALES_WINDOW_MS:
            raise Refusal("order_state", f"order {order_id}: the after-sales window of "
                                         f"{AFTER_SALES_WINDOW_MS // 86_400_000} days after the hand-over has closed")
        store = handed["store_id"] or sorted(json.loads(order["allocation"]))[0]
        request_id = self.cloud.ids.new()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            # judged under the order's lock: a till return or another request of the same lines waits, then sees it
            order = await returned_view.lock_order(conn, order_id)
            seen = await self._view(conn, order, requests=("requested", "approved"))
            try:
                given = ho.allocate(seen.parts, seen.before, [(x.sku, x.qty) for x in lines])
            except rules.ReturnRefused as exc:
                raise Refusal("invalid", f"order {order_id}: {exc}") from None
            amount = sum(fen for *_, fen in given)
            body = [{"sku": sku, "qty": qty, "amount_fen": fen, "store": s} for s, sku, qty, fen in given]
            made = await conn.fetchrow(
                """insert into after_sales (request_id, order_id, member_id, store_id, lines, amount_fen, reason,
                       with_return, status, created_ms, idempotency_key)
                   values ($1, $2, $3, $4, $5, $6, $7, $8, 'requested', $9, $10)
                   on conflict (idempotency_key) do nothing returning *""",
                request_id, order_id, member, store, json.dumps(body), amount, reason, with_return, now, idem)
            if made is None:  # the same key, made meanwhile by a concurrent retry
                return view(await conn.fetchrow("select * from after_sales where idempotency_key = $1", idem)), False
            await journal.note(conn, order_id, "after_sales_requested", now, store=store, key=f"as:{request_id}",
                               detail={"request_id": request_id, "amount_fen": amount, "lines": body,
                                       "with_return": with_return, "reason": reason})
        await self._tell_store(made)
        return view(made), True

    async def _tell_store(self, row) -> None:
        """The store is told of the request, and again once it is decided (its list shows it decided)."""
        try:
            await to_stores.send(self.cloud, row["store_id"], lambda **env: AfterSalesRequested(
                request_id=row["request_id"], order_id=row["order_id"], amount_fen=row["amount_fen"],
                lines=tuple(AfterSalesLine(sku=x["sku"], qty=x["qty"]) for x in json.loads(row["lines"])),
                reason=row["reason"][:500], with_return=row["with_return"], status=row["status"], **env),
                event_id=derived_id(row["request_id"], f"to-store:{row['status']}"))
        except Exception as exc:  # noqa: BLE001 - an operator of the store can still decide it in the cloud
            log.warning("store %s not told of after-sales request %s: %s", row["store_id"], row["request_id"], exc)

    async def for_order(self, order_id: str, member: str) -> list[dict]:
        await self._order(order_id, member)
        rows = await self.cloud.db.fetch("select * from after_sales where order_id = $1 order by created_ms",
                                         order_id)
        return [view(r) for r in rows]

    async def get(self, request_id: str):
        row = await self.cloud.db.fetchrow("select * from after_sales where request_id = $1", request_id)
        if row is None:
            raise Refusal("not_found", f"no after-sales request {request_id}")
        return row

    async def decide(self, request_id: str, approved: bool, reason: str, by: str) -> dict:
        """Approve (refund) or refuse (with `reason`) a request; see the module's guarantees. Decided in one
        transaction holding the order's row lock and the request's: the status moves and the refund is journaled
        together, so a refusal racing an approval cannot leave money refunded on a request marked refused."""
        row = await self.get(request_id)
        want = "approved" if approved else "refused"
        if row["status"] == want:
            if approved:
                await self._after_approval(row)  # a retry after a crash finishes what the approval began
            return view(row)
        if row["status"] != "requested":
            raise Refusal("order_state", f"after-sales request {request_id} was {row['status']} already")
        if not approved and not reason.strip():
            raise Refusal("invalid", "reason: a refusal says why")
        now = self.cloud.now_ms()
        detail = {"request_id": request_id, "by": by, **({"reason": reason} if reason else {})}
        async with self.cloud.db.acquire() as conn, conn.transaction():
            order = await returned_view.lock_order(conn, row["order_id"])
            row = await conn.fetchrow("select * from after_sales where request_id = $1 for update", request_id)
            if row["status"] != "requested":  # decided meanwhile: the first decision stands
                if row["status"] == want:
                    return view(row)
                raise Refusal("order_state", f"after-sales request {request_id} was {row['status']} already")
            if approved:
                await self._journal_refund(conn, order, row)
            else:
                await journal.note(conn, row["order_id"], "after_sales_refused", now, store=row["store_id"],
                                   key=f"as-decided:{request_id}", detail=detail)
            done = await conn.fetchrow(
                """update after_sales set status = $2, decided_by = $3, decision_reason = $4, decided_ms = $5
                   where request_id = $1 and status = 'requested' returning *""", request_id, want, by, reason, now)
        if approved:
            await self._after_approval(done, detail)
        if not by.startswith(f"store {row['store_id']}"):
            await self._tell_store(done)  # decided in the cloud: the store's copy shows it
        if self.on_decided is not None:
            try:
                await self.on_decided(done)
            except Exception:  # noqa: BLE001 - decided all the same; the marketplace's sweeper tells it again
                log.exception("after-sales %s: decision not passed on yet", request_id)
        return view(done)

    async def _journal_refund(self, conn, order, row) -> None:
        """Under the order's lock: the request's lines are still returnable (a till return or another approval since
        it was asked may have taken them: then the approval is refused, nothing refunded), and its refund is
        journaled in this transaction."""
        seen = await self._view(conn, order, skip_request=row["request_id"])
        try:
            ho.allocate(seen.parts, seen.before, [(x["sku"], x["qty"]) for x in json.loads(row["lines"])])
        except rules.ReturnRefused as exc:
            raise Refusal("order_state", f"after-sales request {row['request_id']} can no longer be approved: "
                                         f"{exc}") from None
        if row["amount_fen"] > 0:
            charge = await self.payments.get(charge_id(row["order_id"]))
            await points_refunds.journal(conn, self.payments, order, charge, refund_part_name(row["request_id"]),
                                         row["amount_fen"],
                                         f"after-sales request {row['request_id']}: {row['reason']}"[:500])

    async def _after_approval(self, row, detail: dict | None = None) -> None:
        """The approved request's refund carried out and the order stepped (each by id: once, also on a retry)."""
        if row["amount_fen"] > 0:  # money and points, each as journaled
            await points_refunds.finish(self.payments, row["order_id"], refund_part_name(row["request_id"]))
        async with self.cloud.db.acquire() as conn:
            order = await conn.fetchrow("select * from orders where order_id = $1", row["order_id"])
            seen = await self._view(conn, order, skip_request=row["request_id"])
        mine = [(x.get("store", row["store_id"]), x["sku"], x["qty"], x["amount_fen"]) for x in json.loads(row["lines"])]
        step = "refund" if ho.all_back(seen.parts, seen.before, mine) else "refund_part"
        detail = {**(detail or {"request_id": row["request_id"], "by": row["decided_by"]}),
                  "amount_fen": row["amount_fen"], "lines": json.loads(row["lines"])}
        try:
            await journal.advance(self.cloud.db, row["order_id"], step, self.cloud.now_ms(), store=row["store_id"],
                                  key=f"as-decided:{row['request_id']}", detail=detail)
        except lifecycle.IllegalTransition as exc:  # refunded whole meanwhile (or stepped before): the money stands
            log.info("after-sales %s of order %s: %s", row["request_id"], row["order_id"], exc)
        if step == "refund":
            await self.payments.refund(row["order_id"])  # what the parts left of the charge (usually nothing)
