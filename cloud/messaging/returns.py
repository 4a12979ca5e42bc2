"""Returns from the tills, on the cloud's side: believed (`protocol.return_facts`), applied once, recorded.

Guarantees:
- A `GoodsReturned` is believed only for a till sale of the store that sends it, or an online order picked up at
  that store (or delivered: each store of it for its own part); only for what was sold - for an order, what that
  store handed over after picking, paid for what picking left (`cloud.services.returned_view`) - and not returned
  before (counting the returns earlier in the batch and, for an order, approved after-sales) and for at most what
  `protocol.returns` gives back for those lines. An order's return is judged again under the order's row lock when
  it is applied, and recorded with its refund journaled in that transaction (after-sales is judged under the same
  lock), so a till return and an after-sales approval are never both believed for the same goods. Anything else is
  refused with the reason through the bridge's normal path (dead-lettered, the store told `refused`), and the rest
  of the batch applies.
- Applied once: the effects are commands with ids derived from the return id - a stored-value refund is the ledger
  transfer `till-return:<return id>` (never the `return:` prefix of the money saga, which means provider money
  nothing credits), an order's refund is `Payments.refund_part(order, "ret:<return id>")` and its step in the
  lifecycle is keyed by the event id - so a redelivery, or a retry after a crash, changes nothing more. The return
  is recorded (`till_returns`, and the till sale's `returned_fen`) in the bridge's transaction with the event id.
- An online order returned at a till: `refund_part` with the cloud's own figure for those lines (through the
  original payment: the ledger or the wallet provider), then the order steps `refund_part` (partially refunded) or,
  once every line of it is back, `refund` (refunded) and the full refund gives back whatever the parts left. An
  order paid partly with points gets back points and money in the proportion it was paid
  (`cloud/services/points_refunds.py`), never more than was paid in either.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from actors.member_ledger import Refund
from cloud.messaging import return_promotions
from cloud.messaging.refusals import RefusedEvent
from cloud.services import order_journal as journal
from cloud.services import points_refunds, returned_view
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle
from protocol.messages import Message, PickupCompleted, SaleCommitted
from protocol.money_saga import charge_id
from protocol.return_facts import OrderFacts, ReturnsKnown, SaleFacts, Verdicts, judge_returns, named, source_key
from protocol.return_messages import AfterSalesDecided, GoodsReturned

AFTER_THE_OTHERS = (GoodsReturned, AfterSalesDecided)  # applied one by one, after the batch's other effects

log = logging.getLogger("freshmesh.returns")


def ledger_refund_id(return_id: str) -> str:
    return f"till-return:{return_id}"


def order_refund_part(return_id: str) -> str:
    """The part of an order's charge a return gives back: `refund:<order>:ret:<return id>` is 64 characters with
    ids of 26, the longest refund number the wallet provider takes ("return:" would make it 67: refused)."""
    return f"ret:{return_id}"


class TillReturns:
    """Held by the bridge: `admit` judges a batch's returns, `apply` carries out a believed one, `record` writes it."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.payments: Any = None  # set by the services (cloud.wiring): an order's refund goes through them
        self.after_sales: Any = None  # set by the services: a store's after-sales decision is carried out by it
        self.verdicts = Verdicts()

    async def admit(self, events: list[Message]) -> dict[str, str]:
        """event id -> why, for the batch's returns (and after-sales decisions) the cloud does not believe."""
        refused = await self._admit_decisions([e for e in events if isinstance(e, AfterSalesDecided)])
        if not any(isinstance(e, GoodsReturned) for e in events):
            return refused
        verdicts = judge_returns(events, await self._known(events))
        for name in ("amounts", "all_back", "lines"):
            getattr(self.verdicts, name).update(getattr(verdicts, name))
        return {**refused, **verdicts.refused}

    async def _admit_decisions(self, events: list[AfterSalesDecided]) -> dict[str, str]:
        """A store decides only the after-sales requests of its own orders (those it was asked about)."""
        if not events:
            return {}
        rows = {r["request_id"]: r for r in await self.cloud.db.fetch(
            "select request_id, store_id, order_id from after_sales where request_id = any($1::text[])",
            [e.request_id for e in events])}
        refused = {}
        for e in events:
            row = rows.get(e.request_id)
            why = (f"no after-sales request {e.request_id}" if row is None else
                   f"after-sales request {e.request_id} is store {row['store_id']}'s to decide"
                   if row["store_id"] != e.store_id else
                   f"after-sales request {e.request_id} is of order {row['order_id']}, not {e.order_id}"
                   if row["order_id"] != e.order_id else "")
            if why:
                refused[e.event_id] = f"store {e.store_id} {e.KIND} refused: {why}"
        return refused

    async def _known(self, events: list[Message]) -> ReturnsKnown:
        sale_ids, order_ids, return_ids = named(events)
        known = ReturnsKnown()
        db = self.cloud.db
        for r in await db.fetch("select sale_id, store_id, lines, payments, member_id, total_fen from till_sales "
                                "where sale_id = any($1::text[])", list(sale_ids)):
            lines = tuple(tuple(x) for x in json.loads(r["lines"]))
            paid = tuple((p[0], p[1]) for p in json.loads(r["payments"]))
            known.sales[r["sale_id"]] = SaleFacts(r["sale_id"], r["store_id"], lines, r["total_fen"],
                                                  tuple(m for m, _ in paid), r["member_id"], paid)
        for e in events:  # a sale and its return in one batch (a catch-up): the sale is believed the same way
            if isinstance(e, SaleCommitted) and e.sale_id in sale_ids and e.sale_id not in known.sales:
                known.sales[e.sale_id] = SaleFacts(
                    e.sale_id, e.store_id, tuple((x.sku, x.quantity.amount, x.quantity.unit, x.amount_fen) for x in e.lines),
                    e.total_fen, tuple(p.method for p in e.payments), e.member_id,
                    tuple((p.method, p.amount_fen) for p in e.payments))
        for r in await db.fetch("select return_id, event_id, sale_id, order_id, lines, method, amount_fen, refunds "
                                "from till_returns "
                                "where sale_id = any($1::text[]) or order_id = any($2::text[]) or "
                                "return_id = any($3::text[])", list(sale_ids), list(order_ids), list(return_ids)):
            known.used_ids[r["return_id"]] = r["event_id"]
            if r["sale_id"]:  # an order's returns are in its view (below), with its after-sales
                known.earlier.setdefault(f"sale:{r['sale_id']}", []).extend(tuple(x) for x in json.loads(r["lines"]))
                known.refunded.setdefault(r["sale_id"], []).extend(  # by tender (migration 43; before: its one method)
                    [(m, fen) for m, fen in json.loads(r["refunds"])] if r["refunds"] is not None
                    else [(r["method"], r["amount_fen"])])
        batch_pickups = {(e.order_id, e.store_id) for e in events if isinstance(e, PickupCompleted)}
        # a return of this batch recorded before (applied, then the batch failed): judged again as if it were not
        mine = {e.return_id for e in events
                if isinstance(e, GoodsReturned) and known.used_ids.get(e.return_id) == e.event_id}
        for r in await db.fetch("select * from orders where order_id = any($1::text[])", list(order_ids)):
            await self._order_facts(db, r, known, {s for o, s in batch_pickups if o == r["order_id"]}, mine)
        return known

    async def _order_facts(self, conn, order, known: ReturnsKnown, batch_pickups: set[str], skip: set[str]) -> None:
        """The order's facts and what was returned of it so far (`cloud.services.returned_view`: what each store
        handed over after picking, less till returns and approved after-sales), into `known`."""
        oid = order["order_id"]
        stores = {r["store_id"] for r in await conn.fetch(
            "select store_id from order_events where order_id = $1 and event = 'pick_up' and store_id is not null",
            oid)} | batch_pickups
        status = order["status"]
        if status in lifecycle.PAID_STATUSES and status not in lifecycle.HANDED_OVER_STATUSES and stores:
            status = lifecycle.PICKED_UP  # picked up in this very batch: applied before the returns
        if order["fulfilment"] == "delivery" and status in lifecycle.HANDED_OVER_STATUSES:
            # delivered: each store whose part it was may take its own part back (bounded by what it handed over)
            stores |= {s for s, part in (json.loads(order["allocation"]) or {}).items() if isinstance(part, list)}
        seen = await returned_view.order_view(conn, self.cloud.world.catalogue, order, skip_returns=skip)
        known.orders[oid] = OrderFacts(oid, status, frozenset(stores),
                                       {s: tuple((x.sku, x.qty, x.unit, x.paid_fen) for x in skus.values())
                                        for s, skus in seen.parts.items()})
        for store, back in seen.before.items():
            known.earlier[f"order:{oid}@{store}"] = [(sku, b.qty, b.fen) for sku, b in back.items()]

    async def apply(self, event: GoodsReturned | AfterSalesDecided, new_balances) -> None:
        """The money of a believed return, or a store's after-sales decision, once (see the module's guarantees)."""
        if isinstance(event, AfterSalesDecided):
            await self._decided(event)
            return
        if event.sale_id:
            paid_back = sum(p.amount_fen for p in event.refunds if p.method == "stored_value")
            if paid_back and event.member_id:
                result = await self.cloud.actors.member_ledger.send(Refund(
                    id=ledger_refund_id(event.return_id), member=event.member_id, amount_fen=paid_back))
                if not result.succeeded:
                    raise RuntimeError(f"stored-value refund of return {event.return_id}: "
                                       f"{result.settled.status} {result.settled.reason}")
                new_balances.add(event.member_id, event.store_id)
            if await return_promotions.give_points(self.cloud, event):  # a sale paid partly with points
                new_balances.add(event.member_id, event.store_id)
            return
        await self._refund_order(event)

    async def _decided(self, event: AfterSalesDecided) -> None:
        """The cloud's first decision stands: a store deciding a request an operator decided otherwise is logged."""
        by = f"store {event.store_id}" + (f" ({event.staff})" if event.staff else "")
        try:
            await self.after_sales.decide(event.request_id, event.approved, event.reason, by)
        except Refusal as exc:
            log.warning("after-sales decision of store %s: %s", event.store_id, exc.detail)

    async def _refund_order(self, event: GoodsReturned) -> None:
        """Judged again under the order's row lock, and recorded in that transaction with its refund journaled: an
        after-sales approval (or another bridge's return) for the same goods waits, then sees this one. A return
        that lost such a race is refused (dead-lettered, the store told) with nothing refunded."""
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            order = await returned_view.lock_order(conn, event.order_id)
            known = ReturnsKnown()
            for r in await conn.fetch("select return_id, event_id from till_returns where return_id = $1",
                                      event.return_id):
                known.used_ids[r["return_id"]] = r["event_id"]
            if order is not None:
                await self._order_facts(conn, order, known, set(), {event.return_id})
            verdicts = judge_returns([event], known)
            if event.event_id in verdicts.refused:
                raise RefusedEvent(verdicts.refused[event.event_id])
            for name in ("amounts", "all_back", "lines"):
                getattr(self.verdicts, name).update(getattr(verdicts, name))
            amount, all_back = verdicts.amounts[event.event_id], verdicts.all_back[event.event_id]
            lines = verdicts.lines[event.event_id]
            if amount > 0:
                assert self.payments is not None, "the bridge needs the payments service to refund an order"
                charge = await self.payments.get(charge_id(event.order_id))
                await points_refunds.journal(conn, self.payments, order, charge, order_refund_part(event.return_id),
                                             amount, f"returned at store {event.store_id}, lane {event.lane}")
            await self._insert(conn, [event], now, keep=True)
        if amount > 0:  # money and points, each as journaled
            await points_refunds.finish(self.payments, event.order_id, order_refund_part(event.return_id))
        detail = {"return_id": event.return_id, "amount_fen": amount, "lane": event.lane,
                  "lines": [{"sku": sku, "qty": qty, "amount_fen": fen} for sku, qty, fen in lines]}
        step = "refund" if all_back else "refund_part"
        try:
            await journal.advance(self.cloud.db, event.order_id, step, now, store=event.store_id, key=event.event_id,
                                  detail=detail)
        except lifecycle.IllegalTransition as exc:  # e.g. refunded whole meanwhile: the money above still stands
            log.warning("return %s of order %s: %s", event.return_id, event.order_id, exc)
            await journal.note(self.cloud.db, event.order_id, "returned", now, store=event.store_id,
                               key=event.event_id, detail=detail)
        if step == "refund" and self.payments is not None:
            await self.payments.refund(event.order_id)  # whatever the parts left of the charge (usually nothing)

    async def record(self, conn, events: list[Message]) -> None:
        """The believed returns, in the bridge's transaction (with their event ids)."""
        rows = [e for e in events if isinstance(e, GoodsReturned)]
        if not rows:
            return
        await self._insert(conn, rows, self.cloud.now_ms())
        await conn.executemany("update till_sales set returned_fen = returned_fen + $2 where sale_id = $1",
                               [(e.sale_id, e.total_fen) for e in rows if e.sale_id])

    async def _insert(self, conn, rows: list[GoodsReturned], now: int, keep: bool = False) -> None:
        """The returns' rows (once: a return recorded under its order's lock is not recorded again). `keep`: the
        verdicts stay for `record`, which runs later in the bridge's transaction."""
        take = (lambda d, k, default: d.get(k, default)) if keep else (lambda d, k, default: d.pop(k, default))
        await conn.executemany(
            """insert into till_returns (return_id, event_id, store_id, sale_id, order_id, lane, lines, method,
                   amount_fen, member_id, wall_ms, received_ms, refunds)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) on conflict do nothing""",
            [(e.return_id, e.event_id, e.store_id, e.sale_id or None, e.order_id or None, e.lane,
              json.dumps(take(self.verdicts.lines, e.event_id, None)
                         or [[x.sku, x.quantity.amount, x.amount_fen] for x in e.lines]),
              e.refunds[0].method if e.refunds else ("original_payment" if e.order_id else "none"),
              take(self.verdicts.amounts, e.event_id, e.total_fen), e.member_id, e.wall_ms, now,
              json.dumps([[p.method, p.amount_fen] for p in e.refunds]))
             for e in rows])
        if not keep:
            for e in rows:
                self.verdicts.all_back.pop(e.event_id, None)


__all__ = ["TillReturns", "ledger_refund_id", "order_refund_part", "source_key"]
