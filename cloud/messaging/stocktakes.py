"""Stocktakes from the stores, on the cloud's side: believed (`protocol.stocktake_facts`), recorded once.

Guarantees:
- A `StocktakePosted` is believed only from its own store's subject (the bridge), for catalogue products, within
  the message's bounds, once per stocktake id, and with variances equal to the stock its own stocktake movements
  moved (recorded before, or earlier in the same batch); anything else is refused with the reason through the bridge's
  normal path (dead-lettered, the store told `refused`), and the rest of the batch applies.
- Recorded once: the note and its lines are written in the bridge's transaction with the event id
  (`stocktakes`, `stocktake_lines`, migration 22), with each line's variance valued at cost (the lot's unit cost
  the store sent when within COST_OVER_PRICE_MAX times the list price, else the catalogue's standard cost) and at
  the catalogue's list price (never the price the store sent). The stock itself moves by the stocktake's
  own `StockMoved` events, which the bridge applies like any other movement.
"""
from __future__ import annotations

from protocol.messages import Message
from protocol.pricing.catalogue import Product
from protocol.receiving_facts import COST_OVER_PRICE_MAX
from protocol.stocktake_facts import judge_stocktakes, stocktake_moves
from protocol.stocktake_messages import StocktakeLine, StocktakePosted

MIGRATION_22 = """
    create table if not exists stocktakes (
        stocktake_id       text primary key,
        store_id           text not null,
        event_id           text not null unique,
        scope              text not null,
        opened_by          text not null,
        approved_by        text not null,
        opened_ms          bigint not null,
        posted_ms          bigint not null,
        zero_uncounted     boolean not null,
        uncounted          int not null,
        lines              int not null,
        variance_cost_fen  bigint not null,   -- sum of the lines' variance valued at cost
        variance_price_fen bigint not null
    );
    create index if not exists stocktakes_store on stocktakes (store_id, posted_ms desc);
    create table if not exists stocktake_lines (
        stocktake_id       text not null references stocktakes (stocktake_id),
        sku                text not null,
        lot                text not null,
        unit               text not null,
        counted            bigint not null,
        book               bigint not null,     -- the store's book at the moment of counting
        variance           bigint not null,     -- counted - book: what was posted
        unit_cost_fen      bigint not null,     -- as valued (the lot's cost, else the product's standard cost)
        variance_cost_fen  bigint not null,
        variance_price_fen bigint not null,
        counted_by         text not null,
        primary key (stocktake_id, sku, lot)
    );
    -- a note is believed against the movements of its stocktake (`Stocktakes.admit`)
    create index if not exists stock_movements_stocktake on stock_movements (reference) where reason = 'stocktake';
"""


def value_fen(qty: int, unit_fen: int, weighed: bool) -> int:
    """`qty` (pieces, or grams) at `unit_fen` (per piece, or per kg), to the fen, sign kept (edge.core.stocktake)."""
    per = 1000 if weighed else 1
    sign = -1 if qty < 0 else 1
    return sign * ((abs(qty) * unit_fen + per // 2) // per)


def valued(line: StocktakeLine, product: Product | None) -> tuple[int, int, int]:
    """(unit cost used, variance at cost, variance at price), valued by the cloud, not by what the store says: at the
    catalogue's list price, and at the unit cost the store sent only within reason (at most COST_OVER_PRICE_MAX
    times the list price, as receiving's lot costs are believed), else the catalogue's standard cost."""
    if product is None:
        return 0, 0, 0
    price = product.price_fen
    sent = line.unit_cost_fen
    cost = sent if 0 < sent <= COST_OVER_PRICE_MAX * price else product.cost_fen
    weighed = product.weighed
    return cost, value_fen(line.variance, cost, weighed), value_fen(line.variance, price, weighed)


class Stocktakes:
    """Held by the bridge: `admit` judges a batch's stocktake notes, `record` writes the believed ones."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def admit(self, events: list[Message]) -> dict[str, str]:
        notes = [e for e in events if isinstance(e, StocktakePosted)]
        if not notes:
            return {}
        recorded = {r["stocktake_id"]: (r["store_id"], r["event_id"]) for r in await self.cloud.db.fetch(
            "select stocktake_id, store_id, event_id from stocktakes where stocktake_id = any($1::text[])",
            [e.stocktake_id for e in notes])}
        moved = stocktake_moves(events)  # this batch's, and those recorded before
        for r in await self.cloud.db.fetch(
                "select store_id, reference, sku, sum(delta)::bigint as moved from stock_movements "
                "where reason = 'stocktake' and reference = any($1::text[]) group by store_id, reference, sku",
                [e.stocktake_id for e in notes]):
            key = (r["store_id"], r["reference"], r["sku"])
            moved[key] = moved.get(key, 0) + r["moved"]
        return judge_stocktakes(notes, recorded, frozenset(self.cloud.world.catalogue.by_sku), moved)

    async def record(self, conn, events: list[Message]) -> None:
        catalogue = self.cloud.world.catalogue.by_sku
        for e in events:
            if not isinstance(e, StocktakePosted):
                continue
            rows = [(e.stocktake_id, x.sku, x.lot, x.unit, x.counted, x.book, x.variance,
                     *valued(x, catalogue.get(x.sku)), x.counted_by) for x in e.lines]
            inserted = await conn.fetchval(
                """insert into stocktakes (stocktake_id, store_id, event_id, scope, opened_by, approved_by, opened_ms,
                   posted_ms, zero_uncounted, uncounted, lines, variance_cost_fen, variance_price_fen)
                   values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                   on conflict (stocktake_id) do nothing returning 1""",
                e.stocktake_id, e.store_id, e.event_id, e.scope, e.opened_by, e.approved_by, e.opened_ms, e.wall_ms,
                e.zero_uncounted, e.uncounted, len(rows), sum(r[8] for r in rows), sum(r[9] for r in rows))
            if inserted:
                await conn.executemany(
                    """insert into stocktake_lines (stocktake_id, sku, lot, unit, counted, book, variance, unit_cost_fen,
                       variance_cost_fen, variance_price_fen, counted_by)
                       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""", rows)


async def listed(db, store_id: str | None, limit: int = 100) -> list[dict]:
    """The newest stocktakes posted (of one store, if given), each with its lines and variances."""
    heads = await db.fetch("select * from stocktakes where $1::text is null or store_id = $1 "
                           "order by posted_ms desc, stocktake_id desc limit $2", store_id, limit)
    lines: dict[str, list[dict]] = {}
    for r in await db.fetch("select * from stocktake_lines where stocktake_id = any($1::text[]) order by sku, lot",
                            [h["stocktake_id"] for h in heads]):
        lines.setdefault(r["stocktake_id"], []).append(
            {k: r[k] for k in ("sku", "lot", "unit", "counted", "book", "variance", "unit_cost_fen",
                               "variance_cost_fen", "variance_price_fen", "counted_by")})
    return [{**{k: h[k] for k in ("stocktake_id", "store_id", "event_id", "scope", "opened_by", "approved_by",
                                  "opened_ms", "posted_ms", "zero_uncounted", "uncounted", "variance_cost_fen",
                                  "variance_price_fen")},
             "lines": lines.get(h["stocktake_id"], [])} for h in heads]
