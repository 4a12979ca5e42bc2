"""What the back office's stock page shows, worked out from what the services answer: pure, unit-tested without
servers (tests/unit/test_office_stock_view.py).

- `stock_rows`: a store's stock view (`StockViews.store_view`) as one row per SKU that passes the SKU / category
  filter, with its lots (earliest use-by first), what is kept for the till (on hand less the online escrow), what
  online orders hold (reserved and confirmed) and what other stores have dispatched to it (in transit).
- `effective_ratios`: the online share that applies to each SKU at a store: the SKU's own allocation, else its
  category's, else the chain default (the same precedence `cloud.services.allocations` applies).
- `till_online`: a ratio in basis points as the words HQ uses ("70/30": till first, then online).
"""
from __future__ import annotations

from typing import Any

ROWS_MAX = 400  # a page shows at most this many rows; the filters narrow it


def till_online(ratio_bp: int) -> str:
    """3000 -> "70/30"; 3350 -> "66.5/33.5" (till share first, as HQ says it)."""
    def pct(bp: int) -> str:
        return f"{bp // 100}" if bp % 100 == 0 else f"{bp / 100:g}"
    return f"{pct(10_000 - ratio_bp)}/{pct(ratio_bp)}"


def wanted(sku: str, category: str, sku_filter: str | None, category_filter: str | None) -> bool:
    if sku_filter and sku_filter.lower() not in sku.lower():
        return False
    return not category_filter or category == category_filter


def stock_rows(view: dict[str, Any], products: dict[str, Any], sku_filter: str | None = None,
               category_filter: str | None = None) -> list[dict[str, Any]]:
    """One row per SKU of the store's view that passes the filters (`products`: sku -> Product)."""
    rows = []
    for item in view.get("stock", []):
        product = products.get(item["sku"])
        category = product.category if product is not None else ""
        if not wanted(item["sku"], category, sku_filter, category_filter):
            continue
        on_hand = item.get("on_hand")
        escrow = item.get("escrow", 0)
        rows.append({
            "store_id": view["store_id"], "sku": item["sku"], "name": product.name if product else item["sku"],
            "category": category, "weighed": bool(product and product.weighed), "on_hand": on_hand,
            "escrow": escrow, "available_online": item.get("available_online", 0),
            "reserved_online": item.get("reserved", 0) + item.get("confirmed", 0),
            "till_share": None if on_hand is None else max(on_hand - escrow, 0),
            "in_transit": item.get("in_transit", 0),
            "lots": [{"lot": x["lot"], "use_by": x["use_by"], "on_hand": x["on_hand"]} for x in item.get("lots", [])],
        })
    return rows


def effective_ratios(skus: list[tuple[str, str]], allocations: list[dict[str, Any]],
                     default_bp: int) -> dict[str, tuple[int, str]]:
    """sku -> (ratio_bp, where it comes from: "sku" | "category" | "default") for `skus` [(sku, category)]."""
    own = {a["sku"]: a["ratio_bp"] for a in allocations if a["scope"] == "sku"}
    by_category = {a["category"]: a["ratio_bp"] for a in allocations if a["scope"] == "category"}
    out = {}
    for sku, category in skus:
        if sku in own:
            out[sku] = (own[sku], "sku")
        elif category in by_category:
            out[sku] = (by_category[category], "category")
        else:
            out[sku] = (default_bp, "default")
    return out
