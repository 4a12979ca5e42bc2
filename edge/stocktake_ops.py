"""The StoreActor's stocktake operations (`actor.ask("stocktake", action=..., ...)`): the shell around the pure core
`edge.core.stocktake` (and `edge.core.shelf_areas`, the map a count by area reads). They run in the actor's one
mailbox, like a sale, so a count's book quantity is exactly the books between the sales before it and the sales
after it; each loads what the decision needs (the session
from `edge.stocktake_db`, lots and levels from the StoreDb's writer connection) and executes its Outcome in one
SQLite transaction.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from edge import shelf_areas_db, stocktake_db
from edge.core import shelf_areas, stocktake
from edge.core.stocktake import Approver, Scope
from protocol.lots import LotLevel

if TYPE_CHECKING:
    from edge.store_actor import StoreActor


class StocktakeOps:
    def __init__(self, actor: StoreActor) -> None:
        self.actor = actor

    async def _lots(self, skus) -> dict[str, list[LotLevel]]:
        return {sku: await self.actor.db.lot_levels(sku) for sku in skus}

    async def open(self, scope: Scope, opened_by: str, stocktake_id: str | None = None) -> dict:
        a = self.actor
        sid = stocktake_id or a.ids.new()
        existing = await stocktake_db.stocktake(a.db.writer, sid)
        areas = await shelf_areas_db.areas(a.db.writer)
        skus = [p.sku for p in stocktake.scoped_products(scope, a.books, areas)] if existing is None else []
        outcome = stocktake.open_count(sid, scope, opened_by, a.books, await self._lots(skus),
                                       await stocktake_db.busy_skus(a.db.writer), existing, a.clock.now_ms(), areas)
        reply: dict = await a._execute(outcome)
        return reply

    async def count(self, stocktake_id: str, sku: str, lot: str, counted: int, counted_by: str) -> dict:
        a = self.actor
        st = await stocktake_db.stocktake(a.db.writer, stocktake_id)
        outcome = stocktake.count(st, stocktake_id, sku, lot, counted, counted_by, await a.db.lot_levels(sku),
                                  a.clock.now_ms())
        reply: dict = await a._execute(outcome)
        return reply

    async def view(self, stocktake_id: str) -> dict:
        a = self.actor
        st = await stocktake_db.stocktake(a.db.writer, stocktake_id)
        costs = await stocktake_db.lot_costs(a.db.writer, stocktake.scoped_skus(st)) if st else {}
        return stocktake.review(st, stocktake_id, a.books, costs)

    async def sheet(self, stocktake_id: str) -> dict:
        a = self.actor
        st = await stocktake_db.stocktake(a.db.writer, stocktake_id)
        if st is None:
            raise stocktake.Refused(404, f"no stocktake {stocktake_id} at this store")
        return stocktake.sheet_json(st, a.books, await shelf_areas_db.areas(a.db.writer))

    async def listed(self, status: str | None = None) -> dict:
        return {"stocktakes": await stocktake_db.listed(self.actor.db.writer, status)}

    async def approve(self, stocktake_id: str, approver: Approver, zero_uncounted: bool) -> dict:
        a = self.actor
        st = await stocktake_db.stocktake(a.db.writer, stocktake_id)
        skus = list(stocktake.scoped_skus(st)) if st is not None and st.status == "open" else []
        lots = await self._lots(skus)
        levels = await a.db.stock_levels(skus)
        ratios = {sku: await a._ratio_of(sku) for sku in skus}
        costs = await stocktake_db.lot_costs(a.db.writer, skus)
        outcome = stocktake.approve(st, stocktake_id, approver, zero_uncounted, a.books, lots, levels, ratios, costs,
                                    a._stamp())
        reply: dict = await a._execute(outcome)
        return reply

    async def cancel(self, stocktake_id: str, by: str) -> dict:
        a = self.actor
        st = await stocktake_db.stocktake(a.db.writer, stocktake_id)
        reply: dict = await a._execute(stocktake.cancel(st, stocktake_id, by, a.clock.now_ms()))
        return reply

    # ---- the store's shelf areas (edge.core.shelf_areas): in this mailbox, so a count opens on one whole map ----
    async def areas(self) -> dict:
        a = self.actor
        return shelf_areas.areas_json(await shelf_areas_db.areas(a.db.writer), a.books,
                                      *await shelf_areas_db.set_by(a.db.writer))

    async def set_areas(self, areas: dict, manager: shelf_areas.Manager) -> dict:
        a = self.actor
        reply: dict = await a._execute(shelf_areas.set_areas(areas, manager, a.books, a.clock.now_ms()))
        return reply
