"""What the mall's browse pages show, worked out from the world (catalogue, rule book, stores) and figures passed
in: shelves, scenes, promotion zones, search, a product's prices for a member level, its availability, stores by
distance. Pure (the moment and positions are passed in): unit-tested without a cloud.

Scenes are a small configured list (cloud/data/mall_scenes.json): each names how many online products of which
categories make the kit, so a scene always shows products the catalogue sells online.
"""
from __future__ import annotations

import json
import math
from importlib import resources

from cloud.mall.i18n import SHELVES, shelf_of

LOW_STOCK_UNITS = 5  # pieces (or kg worth of grams for weighed goods) at which a product shows "few left"
SEARCH_MAX = 60
# each shelf's colour: tiles and pictures are drawn from it and the name's first letter (no image files, no emoji
# font needed: many boxes and phones draw emoji as empty boxes)
COLOURS = {"vegetables": "#2e7d32", "fruit": "#e65100", "meat": "#b71c1c", "seafood": "#0277bd",
           "eggs_dairy": "#f9a825", "packed": "#6d4c41"}


def online(catalogue) -> list:
    return [p for p in catalogue.by_sku.values() if "online" in p.channels]


def on_shelf(catalogue, shelf: str) -> list:
    cats = SHELVES.get(shelf, ())
    return sorted((p for p in online(catalogue) if p.category in cats), key=lambda p: p.name)


def tile(product, level: str | None) -> dict:
    """A product as a tile: its price per kg or per piece, and the member price for `level` when lower."""
    member = product.price_for(level) if level else product.price_fen
    return {"sku": product.sku, "name": product.name, "unit": product.unit, "plu": product.plu,
            "price_fen": product.price_fen, "member_fen": member if member < product.price_fen else None,
            "shelf": shelf_of(product.category), "colour": COLOURS.get(shelf_of(product.category) or "", "#1f6b3a"),
            "letter": product.name[:1].upper(),
            "weighed": product.weighed}


def load_scenes() -> list[dict]:
    text = resources.files("cloud.data").joinpath("mall_scenes.json").read_text(encoding="utf-8")
    return list(json.loads(text)["scenes"])


def scene_products(catalogue, scene: dict) -> list:
    """The scene's products: the first n online products of each category it names (by SKU: the same every time)."""
    chosen = []
    for category, n in scene["pick"]:
        of = sorted((p for p in online(catalogue) if p.category == category), key=lambda p: p.sku)
        chosen.extend(of[:n])
    return chosen


def _active_daily(rule: dict, minute_of_day: int) -> bool | None:
    """None: no daily window; else whether one window holds `minute_of_day`."""
    windows = rule.get("daily")
    if not windows:
        return None
    for window in windows:
        start, end = window.split("-")
        a, b = (int(t[:2]) * 60 + int(t[3:]) for t in (start, end))
        if a <= minute_of_day < b:
            return True
    return False


def zones(rule_data: dict, catalogue, minute_of_day: int) -> dict[str, list[dict]]:
    """The promotion book's online rules as zones: time-limited item deals (with their daily window, active now or
    later), spend-X tiers, and group buys. Coupons and markdowns are not zones (a coupon is in a wallet; a
    markdown is the store's, offline)."""
    out: dict[str, list[dict]] = {"time_limited": [], "spend_x": [], "group_buys": []}
    for rule in rule_data.get("rules", []):
        if "online" not in rule.get("channels", ["online", "offline"]):
            continue
        skus = [s for s in rule.get("skus", []) if s in catalogue.by_sku and "online" in catalogue.by_sku[s].channels]
        base = {"id": rule["id"], "name": rule.get("name", rule["id"]), "skus": skus[:6],
                "windows": rule.get("daily", []), "active": _active_daily(rule, minute_of_day)}
        if rule["type"] == "item_discount" and rule.get("daily") and skus:
            out["time_limited"].append(base)
        elif rule["type"] == "spend_threshold":
            out["spend_x"].append({**base, "tiers": rule.get("tiers", []), "categories": rule.get("categories", [])})
        elif rule["type"] == "group_buy" and skus:
            out["group_buys"].append({**base, "group_price_fen": rule.get("group_price_fen"),
                                      "group_size": rule.get("group_size")})
    out["time_limited"].sort(key=lambda z: (not z["active"], z["id"]))
    return out


def initials(name: str) -> str:
    """The first letter of each word ('Bok choy' -> 'bc'): what a customer types to find a name fast (the world's
    names are romanised, so this is their pinyin-initials search)."""
    return "".join(word[0] for word in name.lower().replace("-", " ").split() if word)


def search(catalogue, query: str) -> list:
    """Online products whose name holds the query, whose PLU or SKU starts with it, or whose initials start with it;
    name matches first."""
    q = query.strip().lower()
    if not q:
        return []
    hits = []
    for p in online(catalogue):
        name = p.name.lower()
        if q in name:
            hits.append((0, p.name, p))
        elif (p.plu and p.plu.startswith(q)) or p.sku.lower().startswith(q) or (
                q.isalpha() and initials(p.name).startswith(q)):
            hits.append((1, p.name, p))
    return [p for _, _, p in sorted(hits, key=lambda h: (h[0], h[1]))][:SEARCH_MAX]


def availability(row: dict | None, product) -> str:
    """`row`: the store's stock row for the product (GET /stores/{id}/stock?sku=): 'in_stock', 'low_stock', or
    'presale' when none is available online now (a pre-sale order is taken if supply is due)."""
    left = row.get("available_online", 0) if row else 0
    if left <= 0:
        return "presale"
    unit = 1000 if product.weighed else 1
    return "low_stock" if left < LOW_STOCK_UNITS * unit else "in_stock"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), metres."""
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def stores_by_distance(stores, lat: float | None, lon: float | None) -> list[dict]:
    """The stores, nearest first when a position is given (else by id), each with its distance."""
    rows = []
    for s in stores:
        d = distance_m(lat, lon, s.lat, s.lon) if lat is not None and lon is not None else None
        rows.append({"store": s, "distance_m": None if d is None else int(d)})
    return sorted(rows, key=lambda r: (r["distance_m"] if r["distance_m"] is not None else 0, r["store"].store_id))


def weight_steps(product) -> list[int]:
    """The weights a weighed product is bought in (grams): 250 g, then 500 g steps up to 3 kg."""
    return [250, 500, 1000, 1500, 2000, 2500, 3000] if product.weighed else []
