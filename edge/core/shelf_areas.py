"""A store's shelf areas, as pure decisions (issue 16 item 4: a stocktake "by category or area"). The catalogue is
the chain's; where a product stands is the store's own: a map sku -> area ("果蔬A区", "冷柜2") that the store's
manager sets on the box, so a count can walk one area of the shop at a time.

Guarantees:
- Only a manager sets the map (a cashier of the box's config with the manager role, PIN checked by the shell):
  401 an unknown cashier or wrong PIN, 403 anyone else; nothing changes on a refusal.
- A PUT replaces the whole map in ONE effect (one SQLite transaction): the map is exactly what the manager sent,
  never half of it, and sending the same map again changes nothing but who set it last and when.
- Every SKU must be a product of the catalogue and every area a short printable name; the first bad item is named
  (404 an unknown SKU, 422 a bad area) and nothing is written.
- A SKU stands in one area (a map, not a relation): a stocktake by areas counts each SKU once.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from edge.core.outcome import Outcome, Refused, SetShelfAreas
from edge.core.state import Books

AREA_MAX_CHARS = 32  # "果蔬A区", "冷柜2", "Aisle 3 left": what a shelf label says
AREAS_MAX = 5_000  # SKUs with an area in one store (a large format store's whole range)


@dataclass(frozen=True, slots=True)
class Manager:
    """Who sets the map, as the shell found them: `pin_ok` (the PIN matched a configured cashier), their role."""
    cashier_id: str
    pin_ok: bool
    role: str


def check_area(area: object, path: str) -> str:
    """Why `area` cannot be an area's name, or "" when it can: 1-32 printable characters, not only spaces."""
    if not isinstance(area, str) or not 0 < len(area) <= AREA_MAX_CHARS or not area.strip():
        return f"{path}: an area is 1-{AREA_MAX_CHARS} characters"
    if any(unicodedata.category(c)[0] == "C" for c in area):
        return f"{path}: {area[:AREA_MAX_CHARS]!r} has control characters"
    return ""


def check_manager(manager: Manager) -> None:
    if not manager.pin_ok:
        raise Refused(401, f"{manager.cashier_id} could not be verified: unknown cashier or wrong PIN")
    if manager.role != "manager":
        raise Refused(403, f"{manager.cashier_id} is a {manager.role}, not a manager: only a manager sets the "
                           "store's shelf areas")


def set_areas(areas: Mapping[str, object], manager: Manager, books: Books, now_ms: int) -> Outcome:
    """Replace the store's map with `areas` (sku -> area name); see the module's guarantees."""
    check_manager(manager)
    if books.catalogue is None:
        raise Refused(503, "no catalogue yet: the store has not received one from the cloud")
    if len(areas) > AREAS_MAX:
        raise Refused(422, f"areas: at most {AREAS_MAX} SKUs")
    for sku, area in areas.items():
        if books.product(sku) is None:
            raise Refused(404, f"areas.{sku[:40]}: unknown product")
        why = check_area(area, f"areas.{sku}")
        if why:
            raise Refused(422, why)
    kept = {sku: str(area).strip() for sku, area in sorted(areas.items())}
    return Outcome(reply=areas_json(kept, books, manager.cashier_id, now_ms),
                   effects=(SetShelfAreas(tuple(kept.items()), manager.cashier_id, now_ms),))


def areas_json(areas: Mapping[str, str], books: Books, set_by: str = "", set_ms: int = 0) -> dict:
    """The map as the lane API shows it: per area its SKUs (with names), and who set it last."""
    by_area: dict[str, list[dict]] = {}
    for sku, area in sorted(areas.items(), key=lambda kv: (kv[1], kv[0])):
        product = books.product(sku)
        by_area.setdefault(area, []).append({"sku": sku, "name": product.name if product else sku})
    return {"areas": [{"area": a, "skus": skus} for a, skus in by_area.items()], "skus": len(areas),
            "set_by": set_by, "set_ms": set_ms}
