"""The back office's stock page arithmetic: rows filtered by SKU and category with what the till keeps and what
online holds; the ratio that applies to a SKU (its own, its category's, the default); ratios said as HQ says them."""
from __future__ import annotations

from dataclasses import dataclass

from cloud.office.stock_view import effective_ratios, stock_rows, till_online


@dataclass
class P:
    name: str
    category: str
    weighed: bool = False


PRODUCTS = {"APL-1": P("Apple", "fruit"), "PEAR-2": P("Pear", "fruit"), "FISH-3": P("Bass", "seafood", True)}
VIEW = {"store_id": "S072", "stock": [
    {"sku": "APL-1", "on_hand": 100, "escrow": 30, "reserved": 4, "confirmed": 2, "available_online": 24,
     "lots": [{"lot": "L1", "use_by": "2026-12-03", "on_hand": 60}, {"lot": "L2", "use_by": "2026-12-05",
                                                                      "on_hand": 40}], "in_transit": 5},
    {"sku": "PEAR-2", "on_hand": None, "escrow": 0, "reserved": 0, "confirmed": 0, "available_online": 0,
     "lots": [], "in_transit": 12},
    {"sku": "FISH-3", "on_hand": 5000, "escrow": 6000, "reserved": 0, "confirmed": 0, "available_online": 6000,
     "lots": [], "in_transit": 0}]}


def test_rows_say_what_the_till_keeps_and_what_online_holds():
    rows = {r["sku"]: r for r in stock_rows(VIEW, PRODUCTS)}
    apple = rows["APL-1"]
    assert (apple["till_share"], apple["reserved_online"], apple["in_transit"]) == (70, 6, 5)
    assert [x["lot"] for x in apple["lots"]] == ["L1", "L2"] and apple["name"] == "Apple"
    assert rows["PEAR-2"]["till_share"] is None  # never reported: unknown, not zero
    assert rows["FISH-3"]["till_share"] == 0 and rows["FISH-3"]["weighed"]  # escrow above on hand: nothing left


def test_filters_by_sku_text_and_category():
    assert [r["sku"] for r in stock_rows(VIEW, PRODUCTS, category_filter="fruit")] == ["APL-1", "PEAR-2"]
    assert [r["sku"] for r in stock_rows(VIEW, PRODUCTS, sku_filter="fish")] == ["FISH-3"]
    assert stock_rows(VIEW, PRODUCTS, sku_filter="APL", category_filter="seafood") == []


def test_a_skus_own_ratio_wins_over_its_category_and_the_default():
    allocations = [{"scope": "category", "category": "fruit", "ratio_bp": 2000},
                   {"scope": "sku", "sku": "PEAR-2", "ratio_bp": 3000}]
    got = effective_ratios([("APL-1", "fruit"), ("PEAR-2", "fruit"), ("FISH-3", "seafood")], allocations, 4000)
    assert got == {"APL-1": (2000, "category"), "PEAR-2": (3000, "sku"), "FISH-3": (4000, "default")}


def test_ratios_are_said_till_first():
    assert till_online(3000) == "70/30"
    assert till_online(0) == "100/0"
    assert till_online(3350) == "66.5/33.5"
