"""The StoreActor's back-room operations: goods of undelivered orders booked back, deliveries by the store's own
staff, returns at the tills, after-sales decisions and picking online orders. A mixin of `edge.store_actor.StoreActor`
(run in its one mailbox, like every operation): each loads what the decision needs, asks the pure core
(`edge.core.deliveries`, `returns`, `after_sales`, `picking`) and executes the outcome in one transaction.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge import picking_db, returns_db
from edge.core import after_sales, deliveries, picking, returns
from edge.core.outcome import Outcome, Refused

if TYPE_CHECKING:
    from edge.core.state import Books, EventStamp
    from edge.store_db import StoreDb
    from protocol.pricing import Catalogue


class BackRoom:
    """Operations the StoreActor mixes in; they use its db, books, ids, `_stamp` and `_execute`."""

    if TYPE_CHECKING:  # what the StoreActor provides
        store_id: str
        db: StoreDb
        books: Books
        ids: Any

        @property
        def catalogue(self) -> Catalogue | None: ...

        def _stamp(self) -> EventStamp: ...

        async def _execute(self, outcome: Outcome) -> Any: ...

    # ---- deliveries -------------------------------------------------------------------------------------
    async def _book_returned(self, order_id: str, to: str, reason: str) -> dict:
        found = await self.db.order(order_id)
        status = found[0] if found else None
        picked = await picking_db.pick_order(self.db, order_id)  # what left the shelf, not what was ordered
        lines = deliveries.returned_lines(picked.picks.values() if picked else ())
        levels = await self.db.stock_levels(sku for sku, _ in lines) if lines else {}
        return await self._execute(deliveries.book_returned(order_id, status, lines, to, reason, levels,
                                                            self._stamp()))

    async def _staff_delivery(self, order_id: str, step: str, staff_id: str) -> dict:
        found = await self.db.order(order_id)
        status, payload = found if found else (None, {})
        return await self._execute(deliveries.staff_delivery(order_id, status, payload.get("fulfilment"), step,
                                                             staff_id, self._stamp()))

    # ---- returns (edge.core.returns) ----------------------------------------------------------------------
    async def _return_goods(self, lane: str, kind: str, ref: str, asked: list, return_id: str | None = None,
                            keep_gifts: bool = False) -> dict:
        """`kind`: "sale" | "order" | "pickup" (a pickup code); a known `return_id` answers its first result;
        `keep_gifts`: a gift the return takes the reason away from is kept and paid out of the refund."""
        if return_id is not None and (done := await returns_db.existing(self.db.writer, return_id)) is not None:
            return returns.reply_of(done, self.store_id)
        if kind == "sale":
            source = await returns_db.sale_source(self.db.writer, ref, self.books)
        else:
            source = await returns_db.order_source(self.db.writer, unit_of=self._unit_of,
                                                   **{"order_id" if kind == "order" else "pickup_code": ref})
        before = await returns_db.earlier(self.db.writer, source.key) if source else {}
        levels = await self.db.stock_levels(a.sku for a in asked)
        what = f"{'sale' if kind == 'sale' else 'order'} {'with pickup code ' if kind == 'pickup' else ''}{ref}"
        return await self._execute(returns.take(source, what, before, asked, levels, return_id or self.ids.new(),
                                                lane, self._stamp(), keep_gifts))

    def _unit_of(self, sku: str) -> str:
        product = self.catalogue.by_sku.get(sku) if self.catalogue is not None else None
        return "g" if product is not None and product.weighed else "piece"

    async def _after_sales_decide(self, request_id: str, approved: bool, reason: str = "", staff: str = "",
                                  disposition: str = "resaleable") -> dict:
        request = await returns_db.after_sales_one(self.db.writer, request_id)
        levels = await self.db.stock_levels(x["sku"] for x in request["lines"]) if request else {}
        return await self._execute(after_sales.decide(request, request_id, approved, reason, staff, self._stamp(),
                                                      levels, disposition))

    # ---- picking in the back room (edge/core/picking.py) --------------------------------------------------------
    async def _pick_list(self) -> dict:
        return {"orders": [picking.order_json(o, self.books) for o in await picking_db.orders_to_pick(self.db)]}

    async def _pick_view(self, order_id: str) -> dict:
        order = await picking_db.pick_order(self.db, order_id)
        if order is None:
            raise Refused(404, f"no order {order_id} at this store")
        return picking.order_json(order, self.books)

    async def _pick_start(self, order_id: str) -> dict:
        order = await picking_db.pick_order(self.db, order_id)
        return await self._execute(picking.start(order, order_id, self.books, self._stamp()))

    async def _pick_line(self, order_id: str, sku: str, request: picking.PickRequest) -> dict:
        order = await picking_db.pick_order(self.db, order_id)
        return await self._execute(picking.record(order, order_id, sku, request, self.books))

    async def _pick_done(self, order_id: str) -> dict:
        order = await picking_db.pick_order(self.db, order_id)
        skus = [*(p.sku for p in order.picks.values()), *(p.substitute_sku for p in order.picks.values())] if order else []
        levels = await self.db.stock_levels(s for s in skus if s)
        return await self._execute(picking.finish(order, order_id, levels, self.books, self._stamp()))

