"""The demo's simulated back-room staff record lines the box accepts: a catch weight inside the product's range, a
substitute only where allowed and for units not picked, a short line one unit short; the summary's readable lines
say what the JSON says."""
from __future__ import annotations

import asyncio
import random
from collections import Counter

from protocol.messages import PickedLine
from protocol.picking import check_line
from simulators.demo import digest
from simulators.store_staff import StoreStaff

TOLERANCE_BP = 1000


def staff(seed: int = 3) -> StoreStaff:
    return StoreStaff(fleet=None, substitutes=["SUB-1", "SUB-2", "PIECE-1"], rng=random.Random(seed),
                      counts=Counter(), stop=asyncio.Event())


def as_picked(line: dict, body: dict) -> PickedLine:
    """What the box would make of the body (edge/core/picking.py `record`), to judge it by the shared rule."""
    picked = body.get("weight_g", body.get("qty", 0))
    short = 0 if "weight_range_g" in line or body.get("substitute_sku") else line["qty"] - picked
    return PickedLine(sku=line["sku"], ordered=line["qty"], picked=picked, short=short,
                      substitute_sku=body.get("substitute_sku", ""), substitute_qty=body.get("substitute_qty", 0))


def test_catch_weights_stay_in_the_products_range_and_are_mostly_off_the_ordered_grams():
    line = {"sku": "KG-1", "qty": 1200, "weight_range_g": [1080, 1320]}
    s = staff()
    kinds = Counter()
    for _ in range(300):
        body, kind = s.line_body(line, may_substitute=True)
        kinds[kind] += 1
        assert set(body) == {"weight_g"} and 1080 <= body["weight_g"] <= 1320
        assert (kind == "exact") == (body["weight_g"] == 1200)
        assert check_line(as_picked(line, body), True, TOLERANCE_BP, True) == ""
    assert kinds["weight"] > 250  # a weighed line is never substituted or shorted by these pickers


def test_piece_lines_are_picked_whole_short_by_one_or_one_unit_substituted_only_when_allowed():
    line = {"sku": "PIECE-1", "qty": 3}
    s = staff()
    seen = Counter()
    for allowed in (True, False):
        for _ in range(400):
            body, kind = s.line_body(line, may_substitute=allowed)
            seen[(allowed, kind)] += 1
            assert check_line(as_picked(line, body), False, 0, allowed) == "", (body, kind)
            if kind == "substitute":
                assert body == {"qty": 2, "substitute_sku": body["substitute_sku"], "substitute_qty": 1}
                assert body["substitute_sku"] in ("SUB-1", "SUB-2")  # never the product itself
            elif kind == "short":
                assert body == {"qty": 2}
            else:
                assert body == {"qty": 3}
    assert seen[(False, "substitute")] == 0
    assert seen[(True, "substitute")] > 0 and seen[(True, "short")] > 0 and seen[(False, "short")] > 0


def test_the_readable_summary_names_what_ended_what_waits_and_the_riders():
    summary = {
        "orders_by_final_state": {"delivered": 4, "refunded": 1},
        "orders_open": {"count": 1, "waiting_for": {"picked: waiting for a rider": 1}},
        "riders": {"tries": 6, "tries_by_status": {"delivered": 4, "failed": 2}, "failed_by_reason": {"no_rider": 2},
                   "redispatched": 2},
        "picking": {"orders_picked": 7, "weight_adjusted": 3, "substituted": 1, "short": 1,
                    "goods_booked_back": {"stock": 1, "shrinkage": 0}},
        "returns": {"till": {"count": 2, "fen": 990}, "online": {"count": 1, "fen": 500}},
        "after_sales": {"approved": 1, "refused": 1},
        "flash_sale": {"sold": 50, "quantity": 50, "paid": 50, "picked_up": 49, "expired": 3, "bought_again": 3,
                       "oversold": 0},
        "marketplace": {"orders": 12, "by_status": {"delivered": 10, "cancelled": 2}, "placed_on_platform": 13,
                        "sold_out": 1, "cancelled_by_customers": 2},
    }
    text = digest(summary)
    assert "orders ended: delivered 4, refunded 1" in text
    assert "orders open: 1 (waiting for: 1x picked: waiting for a rider)" in text
    assert "riders: 6 tries" in text and "'no_rider': 2" in text and "redispatched 2" in text
    assert "returns: till 2 (990 fen), online 1 (500 fen)" in text
    assert "flash sale: 50/50 sold, 50 paid, 49 picked up, 3 expired, 3 bought again, oversold 0" in text
    assert "marketplace: 12 orders taken {'delivered': 10, 'cancelled': 2}, 13 placed on the platform, 1 sold out, " \
           "2 cancelled by customers" in text
