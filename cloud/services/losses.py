"""The loss report: what the stores lost, valued at cost and at price, by reason:
- every write-off (each shrinkage movement's `loss_lines`), under its own reason (spoiled, damaged, expired, ...);
- reason "stocktake": the unknown loss, every negative stocktake variance (`stocktake_lines`, on the chain's day
  of posting), valued like a write-off (lot cost, else standard cost; list price);
- reason "markdown": what markdowns gave away at the tills (`markdowns_given`, the same rows the markdown report
  adds up in `cloud.services.markdown_report`, here per SKU so that category grouping works), at price only (the
  goods were sold: their cost is not lost, value_at_cost 0; no quantity).

Guarantees:
- Valued per lot: at the lot's unit cost as it was received (`lot_costs`), else the product's standard cost
  (`cost_fen`); at the product's list price. Quantities are pieces or grams depending on the SKU, so a group adds
  pieces and grams apart and only the values add across SKUs (per piece, or per kg x grams / 1000).
- A SKU no longer in the catalogue is counted (`unpriced_lines`), never silently valued at 0.
- Grouped by reason, category, store or the chain's day; totals over the whole selection; CSV has the same rows.
- A store manager sees only their own store (the HTTP layer scopes the query to it).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocol.money import weighed_amount_fen
from protocol.policy import CHAIN_UTC_OFFSET_MIN

GROUPS = ("reason", "category", "store", "day")
RANGE_DAYS_MAX = 366
# one row per (store, sku, lot, reason, day), the lot's cost beside it: the database sums, Python values
LOSS_SQL = """select l.store_id, l.sku, l.lot, l.reason, l.day::text as day, count(*) as lines,
                     sum(l.qty)::bigint as qty, c.unit_cost_fen as lot_cost_fen
              from loss_lines l left join lot_costs c using (store_id, sku, lot)
              where l.day between $1::text::date and $2::text::date and ($3::text is null or l.store_id = $3)
              group by 1, 2, 3, 4, 5, c.unit_cost_fen"""
# the unknown loss: negative stocktake variances, on the chain's day of posting ($4: the chain's UTC offset, in ms)
STOCKTAKE_SQL = """select t.store_id, l.sku, l.lot, 'stocktake' as reason, d.day::text as day, count(*) as lines,
                          sum(-l.variance)::bigint as qty, c.unit_cost_fen as lot_cost_fen
                   from stocktake_lines l join stocktakes t using (stocktake_id)
                   cross join lateral (select date '1970-01-01' + ((t.posted_ms + $4) / 86400000)::int as day) d
                   left join lot_costs c on c.store_id = t.store_id and c.sku = l.sku and c.lot = l.lot
                   where l.variance < 0 and d.day between $1::text::date and $2::text::date
                     and ($3::text is null or t.store_id = $3)
                   group by 1, 2, 3, 4, 5, c.unit_cost_fen"""
# what markdowns gave away, per SKU (for the category grouping; markdown_report.markdown_totals has no SKU)
MARKDOWN_SQL = """select store_id, sku, 'markdown' as reason, day::text as day, count(*) as lines,
                         sum(saving_fen)::bigint as given_fen
                  from markdowns_given
                  where day between $1::text::date and $2::text::date and ($3::text is null or store_id = $3)
                  group by 1, 2, 3, 4"""
# one row per (reason, sku, lot cost); `events` counts the distinct write-offs of the (reason, sku) across all its
# cost groups (two write-offs from lots of two costs are two events, one over two lots is one)
TODAY_SQL = """with t as (select coalesce(nullif(l.reason, ''), 'unspecified') as reason, l.sku, l.lot, l.store_id,
                                 l.event_id, l.qty
                          from loss_lines l where l.wall_ms >= $1),
                    ev as (select reason, sku, count(distinct event_id) as events from t group by reason, sku)
               select t.reason, t.sku, ev.events, sum(t.qty)::bigint as qty, c.unit_cost_fen as lot_cost_fen
               from t join ev using (reason, sku) left join lot_costs c using (store_id, sku, lot)
               group by t.reason, t.sku, ev.events, c.unit_cost_fen"""


@dataclass(frozen=True)
class Priced:
    """What a product's loss is valued with: per piece, or per kg (`weighed`)."""
    category: str
    weighed: bool
    cost_fen: int
    price_fen: int


def value(qty: int, unit_fen: int, weighed: bool) -> int:
    return weighed_amount_fen(qty, unit_fen) if weighed else qty * unit_fen


def report(rows: list[dict[str, Any]], products: dict[str, Priced], group_by: str) -> dict[str, Any]:
    """The loss rows grouped by `group_by`, each with quantity (pieces and grams apart) and its value at cost and
    at price, biggest cost first, and the totals. A row with `given_fen` (a markdown) is valued at that, at price
    only, with no quantity."""
    groups: dict[str, dict[str, Any]] = {}
    total = _empty("total")
    for r in rows:
        product = products.get(r["sku"])
        key = {"reason": r["reason"], "store": r["store_id"], "day": r["day"],
               "category": product.category if product else "(not in the catalogue)"}[group_by]
        for agg in (groups.setdefault(key, _empty(key)), total):
            agg["lines"] += r["lines"]
            if "given_fen" in r:
                agg["value_at_price_fen"] += r["given_fen"]
                continue
            if product is None:
                agg["unpriced_lines"] += r["lines"]
                continue
            agg["grams" if product.weighed else "pieces"] += r["qty"]
            cost = r["lot_cost_fen"] if r["lot_cost_fen"] is not None else product.cost_fen
            agg["value_at_cost_fen"] += value(r["qty"], cost, product.weighed)
            agg["value_at_price_fen"] += value(r["qty"], product.price_fen, product.weighed)
    out = sorted(groups.values(), key=lambda g: (-g["value_at_cost_fen"], -g["value_at_price_fen"], g["key"]))
    return {"group_by": group_by, "rows": out, "totals": total}


def _empty(key: str) -> dict[str, Any]:
    return {"key": key, "lines": 0, "pieces": 0, "grams": 0, "value_at_cost_fen": 0, "value_at_price_fen": 0,
            "unpriced_lines": 0}


def as_csv(answer: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    columns = ["key", "lines", "pieces", "grams", "value_at_cost_fen", "value_at_price_fen", "unpriced_lines"]
    writer.writerow([answer["group_by"], *columns[1:]])
    for row in [*answer["rows"], answer["totals"]]:
        writer.writerow([row[c] for c in columns])
    return out.getvalue()


def check_range(start: str, end: str) -> str | None:
    """Why the day range is not one (None: it is)."""
    try:
        a, b = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError:
        return "from and to: days YYYY-MM-DD"
    if b < a:
        return "to is before from"
    if (b - a).days >= RANGE_DAYS_MAX:
        return f"at most {RANGE_DAYS_MAX} days at once"
    return None


def priced(catalogue) -> dict[str, Priced]:
    return {sku: Priced(p.category, p.weighed, getattr(p, "cost_fen", 0), p.price_fen)
            for sku, p in catalogue.by_sku.items()}


class Losses:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def report(self, start: str, end: str, store_id: str | None, group_by: str) -> dict[str, Any]:
        db = self.cloud.db
        rows = [dict(r) for r in await db.fetch(LOSS_SQL, start, end, store_id)]
        rows += [dict(r) for r in await db.fetch(STOCKTAKE_SQL, start, end, store_id, CHAIN_UTC_OFFSET_MIN * 60_000)]
        rows += [dict(r) for r in await db.fetch(MARKDOWN_SQL, start, end, store_id)]
        answer = report(rows, priced(self.cloud.world.catalogue), group_by)
        return {"from": start, "to": end, "store": store_id, **answer}


async def today_rows(conn, day_start_ms: int, catalogue) -> list[dict[str, Any]]:
    """Today's shrinkage per (reason, sku) for the console: events, quantity, and its value at cost (per lot)."""
    products = priced(catalogue)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in await conn.fetch(TODAY_SQL, day_start_ms):
        row = out.setdefault((r["reason"], r["sku"]),
                             {"reason": r["reason"], "sku": r["sku"], "events": r["events"], "qty": 0, "cost_fen": 0})
        row["qty"] += r["qty"]
        product = products.get(r["sku"])
        if product is not None:
            cost = r["lot_cost_fen"] if r["lot_cost_fen"] is not None else product.cost_fen
            row["cost_fen"] += value(r["qty"], cost, product.weighed)
    return list(out.values())
