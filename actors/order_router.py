"""OrderRouter: which store serves an online order.

- Stores have a location, a pickup and a delivery radius, opening hours (local time) and a capacity per slot.
- A grid index (cells of ~5 km) finds the stores around a point without scanning the chain, so routing among
  thousands of stores stays well under a millisecond.
- Delivery: the nearest store that can reserve the whole basket (open at the slot, capacity left, within its
  delivery radius); else a split across the fewest nearest stores; else the missing quantities, reported.
- Pickup: the chosen store if it can serve; else the nearest alternatives that can.
- Slot bookings are commands (`book_slot` / `release_slot`, idempotent by id) so capacity survives a restart.
Availability of stock is passed in (the StockPool shards own it): routing stays pure.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from actors.base import Command, CommandError, IdempotentActor, Query, Result, ok, rejected
from protocol.policy import CHAIN_UTC_OFFSET_MIN
from protocol.schema import record, require

CELL_DEG = 0.05
EARTH_RADIUS_M = 6_371_000
MAX_SPLIT_STORES = 3
ALTERNATIVES = 3


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(slots=True)
class StoreSite:
    store_id: str
    lat: float
    lon: float
    pickup_radius_m: int
    delivery_radius_m: int
    opens_min: int  # minutes after local midnight
    closes_min: int
    slot_minutes: int
    slot_capacity: int
    open: bool = True  # closed by HQ: never offered a slot, never routed to (snapshots of old carry no flag)


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return int(math.floor(lat / CELL_DEG)), int(math.floor(lon / CELL_DEG))


def _hhmm(value: str, field: str) -> int:
    try:
        h, m = value.split(":")
        minutes = int(h) * 60 + int(m)
    except (ValueError, AttributeError):
        raise CommandError(f"upsert_store: {field} must be HH:MM") from None
    if not 0 <= minutes <= 24 * 60:
        raise CommandError(f"upsert_store: {field} out of range")
    return minutes


@record
class UpsertStore(Command):
    """Add or change a store: where it is, how far it serves, its hours (local HH:MM) and slot grid."""
    OP: ClassVar[str] = "upsert_store"
    store: str
    lat: float
    lon: float
    pickup_radius_m: int
    delivery_radius_m: int
    opens: str = "07:00"
    closes: str = "22:00"
    slot_minutes: int = 60
    slot_capacity: int = 20
    open: bool = True  # False: closed by HQ, no slot is offered and no order routed to it

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(math.isfinite(self.lat) and math.isfinite(self.lon), "upsert_store: lat and lon must be numbers")
        require(self.slot_minutes > 0 and self.slot_capacity >= 0, "upsert_store: bad slot grid")


@record
class BookSlot(Command):
    """Take one place in a store's slot for an order; rejected with the reason when closed or full."""
    OP: ClassVar[str] = "book_slot"
    store: str
    slot_start_ms: int
    order_id: str


@record
class ReleaseSlot(Command):
    """Give an order's place in a slot back."""
    OP: ClassVar[str] = "release_slot"
    store: str
    slot_start_ms: int
    order_id: str


@record
class NearbyQuery(Query):
    """Stores that could serve this point at this slot, nearest first: [(store, metres)]."""
    lat: float
    lon: float
    fulfilment: str
    slot_start_ms: int

    def answer(self, actor: Any) -> Any:
        return actor.nearby(self.lat, self.lon, self.fulfilment, self.slot_start_ms)


@record
class PlanQuery(Query):
    """Delivery: the nearest store with everything, else a split, else what is missing."""
    items: tuple[tuple[str, int], ...]
    candidates: tuple[str, ...]
    availability: dict[str, Any]

    def answer(self, actor: Any) -> Any:
        return actor.plan(dict(self.items), list(self.candidates), self.availability)


@record
class PickupPlanQuery(Query):
    """Pickup at the chosen store, else the nearest alternatives that can serve."""
    store: str
    items: tuple[tuple[str, int], ...]
    slot_start_ms: int
    lat: float
    lon: float
    availability: dict[str, Any]

    def answer(self, actor: Any) -> Any:
        return actor.plan_pickup(self.store, dict(self.items), self.slot_start_ms, self.lat, self.lon, self.availability)


@record
class SlotsLeftQuery(Query):
    """Places left in some of a store's slots: [[slot start ms, places left]] (what a checkout shows before booking)."""
    store: str
    slot_starts_ms: tuple[int, ...]

    def answer(self, actor: Any) -> Any:
        return actor.slots_left(self.store, list(self.slot_starts_ms))


class OrderRouter(IdempotentActor):
    COMMANDS = (UpsertStore, BookSlot, ReleaseSlot)

    def __init__(self, utc_offset_min: int = CHAIN_UTC_OFFSET_MIN) -> None:
        super().__init__()
        self.utc_offset_min = utc_offset_min
        self.stores: dict[str, StoreSite] = {}
        self.grid: dict[tuple[int, int], list[str]] = {}
        self.bookings: dict[tuple[str, int], dict[str, int]] = {}  # (store, slot start) -> order id -> booked at
        self.max_radius_m = {"delivery": 0, "pickup": 0}

    # ---- commands ------------------------------------------------------------------------------------
    def op_upsert_store(self, c: UpsertStore, now_ms: int) -> Result:
        site = StoreSite(c.store, c.lat, c.lon, c.pickup_radius_m, c.delivery_radius_m, _hhmm(c.opens, "opens"),
                         _hhmm(c.closes, "closes"), c.slot_minutes, c.slot_capacity, c.open)
        if not (-90 <= site.lat <= 90 and -180 <= site.lon <= 180) or site.opens_min >= site.closes_min:
            raise CommandError("upsert_store: bad location or opening hours")
        self._index(site)
        return ok(store=site.store_id)

    def _index(self, site: StoreSite) -> None:
        old = self.stores.get(site.store_id)
        if old is not None:
            self.grid[_cell(old.lat, old.lon)].remove(old.store_id)
        self.stores[site.store_id] = site
        self.grid.setdefault(_cell(site.lat, site.lon), []).append(site.store_id)
        self.max_radius_m["delivery"] = max(self.max_radius_m["delivery"], site.delivery_radius_m)
        self.max_radius_m["pickup"] = max(self.max_radius_m["pickup"], site.pickup_radius_m)

    def _slot_ok(self, site: StoreSite, slot_start_ms: int) -> str | None:
        if not site.open:  # one check for booking, routing and pickup plans: a closed store takes no online order
            return "the store is closed by head office"
        local = (slot_start_ms // 60_000 + self.utc_offset_min) % (24 * 60)
        if local % site.slot_minutes or not site.opens_min <= local < site.closes_min:
            return "the store is closed or the slot is not on the store's slot grid"
        if len(self.bookings.get((site.store_id, slot_start_ms), {})) >= site.slot_capacity:
            return "the slot is full"
        return None

    def op_book_slot(self, c: BookSlot, now_ms: int) -> Result:
        store, slot, order_id = c.store, c.slot_start_ms, c.order_id
        site = self.stores.get(store)
        if site is None:
            raise CommandError(f"book_slot: unknown store {store}")
        booked = self.bookings.setdefault((store, slot), {})
        if order_id in booked:
            return ok(store=store, slot_start_ms=slot)
        why = self._slot_ok(site, slot)
        if why:
            return rejected(why)
        booked[order_id] = now_ms
        return ok(store=store, slot_start_ms=slot, left=site.slot_capacity - len(booked))

    def op_release_slot(self, c: ReleaseSlot, now_ms: int) -> Result:
        self.bookings.get((c.store, c.slot_start_ms), {}).pop(c.order_id, None)
        return ok()

    def op_expire(self, c: Command, now_ms: int) -> Result:
        old = [k for k in self.bookings if k[1] < now_ms - 24 * 3600 * 1000]
        for key in old:
            del self.bookings[key]
        return Result(status="ok", noop=not (old or self.forget_old_ids(now_ms)))

    # ---- routing (pure reads) -------------------------------------------------------------------------------
    def nearby(self, lat: float, lon: float, fulfilment: str, slot_start_ms: int) -> list[tuple[str, float]]:
        """Stores that could serve this point at this slot, nearest first: [(store, metres)]."""
        reach = self.max_radius_m[fulfilment]
        coslat = max(math.cos(math.radians(lat)), 0.01)
        dlat = reach / 111_000 / CELL_DEG
        dlon = reach / (111_000 * coslat) / CELL_DEG
        ci, cj = _cell(lat, lon)
        # Cheap box test before the exact distance: most stores in the cells around are out of reach.
        box_lat, box_lon = reach / 110_000, reach / (110_000 * coslat)
        found = []
        for i in range(ci - math.ceil(dlat), ci + math.ceil(dlat) + 1):
            for j in range(cj - math.ceil(dlon), cj + math.ceil(dlon) + 1):
                for sid in self.grid.get((i, j), ()):
                    site = self.stores[sid]
                    if abs(site.lat - lat) > box_lat or abs(site.lon - lon) > box_lon:
                        continue
                    d = distance_m(lat, lon, site.lat, site.lon)
                    radius = site.delivery_radius_m if fulfilment == "delivery" else site.pickup_radius_m
                    if d <= radius and self._slot_ok(site, slot_start_ms) is None:
                        found.append((sid, d))
        found.sort(key=lambda x: (x[1], x[0]))
        return found

    def slots_left(self, store: str, slot_starts_ms: list[int]) -> list[list[int]]:
        """Places left in each slot (capacity minus bookings, never below 0); an unknown or closed store has none."""
        site = self.stores.get(store)
        if site is None or not site.open:
            return [[start, 0] for start in slot_starts_ms]
        return [[start, max(0, site.slot_capacity - len(self.bookings.get((store, start), {})))]
                for start in slot_starts_ms]

    def plan(self, items: dict[str, int], candidates: list[str], availability: dict[str, dict[str, int]]) -> dict[str, Any]:
        """Single nearest store with everything; else the fewest nearest stores; else what is missing."""
        for sid in candidates:
            have = availability.get(sid, {})
            if all(have.get(sku, 0) >= q for sku, q in items.items()):
                return {"kind": "single", "allocation": {sid: dict(items)}}
        left = {sku: q for sku, q in items.items() if q > 0}
        allocation: dict[str, dict[str, int]] = {}
        while left and len(allocation) < MAX_SPLIT_STORES:
            best, best_units = None, 0
            for sid in candidates:  # nearest first, so ties go to the nearer store
                if sid in allocation:
                    continue
                units = sum(min(q, availability.get(sid, {}).get(sku, 0)) for sku, q in left.items())
                if units > best_units:
                    best, best_units = sid, units
            if best is None:
                break
            take = {sku: min(q, availability[best].get(sku, 0)) for sku, q in left.items()}
            allocation[best] = {sku: q for sku, q in take.items() if q > 0}
            left = {sku: q - take[sku] for sku, q in left.items() if q - take[sku] > 0}
        if left:
            return {"kind": "missing", "missing": left, "allocation": allocation}
        return {"kind": "split", "allocation": allocation}

    def plan_pickup(self, store: str, items: dict[str, int], slot_start_ms: int, lat: float, lon: float,
                    availability: dict[str, dict[str, int]]) -> dict[str, Any]:
        site = self.stores.get(store)
        why = "unknown store" if site is None else self._slot_ok(site, slot_start_ms)
        have = availability.get(store, {})
        if why is None and all(have.get(sku, 0) >= q for sku, q in items.items()):
            return {"kind": "single", "allocation": {store: dict(items)}}
        alternatives = [sid for sid, _ in self.nearby(lat, lon, "pickup", slot_start_ms)
                        if sid != store and all(availability.get(sid, {}).get(k, 0) >= q for k, q in items.items())]
        return {"kind": "unavailable", "reason": why or "not enough stock at the chosen store",
                "alternatives": alternatives[:ALTERNATIVES]}

    # ---- snapshots -------------------------------------------------------------------------------------------
    def state_snapshot(self) -> dict[str, Any]:
        return {"offset": self.utc_offset_min,
                "stores": [[s.store_id, s.lat, s.lon, s.pickup_radius_m, s.delivery_radius_m, s.opens_min, s.closes_min,
                            s.slot_minutes, s.slot_capacity, s.open] for s in self.stores.values()],
                "bookings": [[s, t, orders] for (s, t), orders in self.bookings.items()]}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.utc_offset_min = state["offset"]
        self.stores, self.grid, self.max_radius_m = {}, {}, {"delivery": 0, "pickup": 0}
        for row in state["stores"]:
            self._index(StoreSite(*row))
        self.bookings = {(s, t): dict(orders) for s, t, orders in state["bookings"]}
