"""Restock, computed identically by the cloud and the store box (issue 16 item 7): reorder points and targets,
their defaults from sales velocity, when a store raises (and clears) a restock alert, the suggested order per
supplier, and when a pre-sale's goods are due.

Pure: quantities are integers in the SKU's stock unit (pieces, or grams of a product sold by the kg), money is
integer fen, days are ISO dates of the chain's business day; nothing here reads a clock or a database.

Guarantees:
- `default_point` rounds up: a SKU that sold anything in the window gets a point of at least 1, so it is watched.
- `crossing` raises an alert once per crossing below the point (not again while below) and clears it only when the
  projected stock is back at or above the point: a store sees one alert per shortage, and another after a restock.
- `suggested_qty` never suggests less than what brings the projected stock to the target, rounded up to whole packs.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from protocol.policy import chain_day_start_ms

DAY_MS = 86_400_000
VELOCITY_WINDOW_DAYS = 7  # sales velocity: the average daily units sold over this many days
DEFAULT_LEAD_DAYS = 2  # days from ordering to the goods on the shelf, when a supplier has no lead time of its own
DEFAULT_COVER_DAYS = 3  # what an order should cover beyond the lead time: the target is velocity x (lead + cover)
LEAD_DAYS_MAX = 60
PRESALE_GRACE_DAYS = 2  # a paid pre-sale not reserved by its due day + this many days is cancelled and refunded
POINT_MAX = 100_000_000  # one SKU at one store, in its stock unit (as protocol.store_facts.STOCK_QTY_MAX)
ITEMS_MAX = 500  # reorder points in one HQ request (and in one cloud message)
GRAMS_PER_KG = 1_000

Crossing = Literal["raise", "clear"]


@dataclass(frozen=True, slots=True)
class Point:
    """A store's reorder point and target for one SKU (projected stock below the point: restock up to the target)."""
    sku: str
    reorder_point: int
    target: int


def check_point(reorder_point: int, target: int, path: str) -> str:
    """Why this (point, target) cannot be, or "" when it can."""
    for name, value in (("reorder_point", reorder_point), ("target", target)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= POINT_MAX:
            return f"{path}.{name}: an integer 0..{POINT_MAX} (pieces, or grams if sold by the kg)"
    if target < reorder_point:
        return f"{path}: target {target} is below reorder_point {reorder_point} (restocking would not lift it)"
    return ""


def default_point(sold_in_window: int, lead_days: int = DEFAULT_LEAD_DAYS, cover_days: int = DEFAULT_COVER_DAYS,
                  window_days: int = VELOCITY_WINDOW_DAYS) -> tuple[int, int]:
    """(reorder point, target) from the units sold over the window: velocity = sold / window per day, point =
    velocity x lead days, target = velocity x (lead + cover) days, each rounded up (integer arithmetic)."""
    if sold_in_window <= 0:
        return 0, 0
    point = -(-sold_in_window * lead_days // window_days)
    target = -(-sold_in_window * (lead_days + cover_days) // window_days)
    return min(point, POINT_MAX), min(max(target, point), POINT_MAX)


def velocity_per_day(sold_in_window: int, window_days: int = VELOCITY_WINDOW_DAYS) -> float:
    """For people reading the defaults: the average units sold per day over the window."""
    return round(sold_in_window / window_days, 2)


def sold_by_sku(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Σ units sold per SKU from (sku, qty) lines (till sale lines and online order lines alike)."""
    out: dict[str, int] = {}
    for sku, qty in lines:
        if qty > 0:
            out[sku] = out.get(sku, 0) + qty
    return out


def projected(on_hand: int, owed: int) -> int:
    """What the shelf will hold once the online orders the store must still pick are picked."""
    return on_hand - owed


def crossing(projected_qty: int, point: Point | None, alert_open: bool) -> Crossing | None:
    """"raise" when the projected stock fell below the point and no alert is open; "clear" when an open alert's
    SKU is back at or above its point (or has no point any more); None otherwise (still below: already raised)."""
    if point is None or point.reorder_point <= 0:
        return "clear" if alert_open else None
    below = projected_qty < point.reorder_point
    if below and not alert_open:
        return "raise"
    if not below and alert_open:
        return "clear"
    return None


def suggested_qty(target: int, projected_qty: int, pack: int = 0) -> int:
    """Units to order: up to the target, rounded up to whole packs (`pack` 0 or 1: any quantity)."""
    short = max(target - projected_qty, 0)
    if pack > 1 and short:
        short = -(-short // pack) * pack
    return short


def value_at_cost(qty: int, cost_fen: int, weighed: bool) -> int:
    """`qty` valued at the standard unit cost (per kg for weighed goods, rounded half up; per piece otherwise)."""
    return (qty * cost_fen + GRAMS_PER_KG // 2) // GRAMS_PER_KG if weighed else qty * cost_fen


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of a suggested order: what a store should buy of a SKU."""
    store_id: str
    sku: str
    supplier: str
    qty: int
    value_fen: int


def by_supplier(lines: Iterable[OrderLine]) -> dict[str, list[OrderLine]]:
    """The suggested order per supplier ("" for products with none), each supplier's lines by store then SKU."""
    out: dict[str, list[OrderLine]] = {}
    for line in sorted(lines, key=lambda x: (x.supplier, x.store_id, x.sku)):
        if line.qty > 0:
            out.setdefault(line.supplier, []).append(line)
    return out


def due_day(raised_day: str, lead_days: int = DEFAULT_LEAD_DAYS) -> str:
    """The business day a restock raised on `raised_day` is due on the shelf (the supplier's lead time later)."""
    return (date.fromisoformat(raised_day) + timedelta(days=lead_days)).isoformat()


def lead_days_of(supplier: str, configured: Mapping[str, int]) -> int:
    return configured.get(supplier, configured.get("*", DEFAULT_LEAD_DAYS))


def parse_lead_days(text: str) -> dict[str, int]:
    """"sup-a=3,sup-b=1,*=2" -> {supplier: days} (for FRESHMESH_SUPPLIER_LEAD_DAYS); a bad entry raises ValueError
    naming it."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, days = part.partition("=")
        if not name or not days.isdigit() or not 0 <= int(days) <= LEAD_DAYS_MAX:
            raise ValueError(f"supplier lead days: {part!r} is not <supplier>=<0..{LEAD_DAYS_MAX}>")
        out[name.strip()] = int(days)
    return out


def supply_due(alerts: Iterable[tuple[str, str, int, int]], transits: Iterable[tuple[str, str, int]]
               ) -> dict[tuple[str, str], int]:
    """(store, sku) -> the epoch ms from which supply is due there (the start of a chain day): an open restock alert
    (store, sku, raised_ms, supplier lead days) is due its lead time after the day it was raised; a transfer in
    transit to the store (store, sku, dispatched_ms) the day after it left. The earliest wins."""
    due: dict[tuple[str, str], int] = {}
    found = [((store, sku), chain_day_start_ms(at_ms) + lead * DAY_MS) for store, sku, at_ms, lead in alerts]
    found += [((store, sku), chain_day_start_ms(at_ms) + DAY_MS) for store, sku, at_ms in transits]
    for key, at in found:
        due[key] = min(at, due.get(key, at))
    return due


def presale_overdue(due_day: str, today: date, grace_days: int = PRESALE_GRACE_DAYS) -> bool:
    """A pre-sale whose supply was due on `due_day` (YYYY-MM-DD) and has not come by `today` (a chain day) is given
    up once the grace is over: it waits through `due_day + grace_days`, and ends the day after."""
    return today > date.fromisoformat(due_day) + timedelta(days=grace_days)
