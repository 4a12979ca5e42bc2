"""`freshmesh load pricing`: price 30-line baskets against the reference 200-rule book, on one core.

Baskets and contexts are generated up front from the seed (mixed members, coupons, weighed and packed items);
the clock advances one minute every 1,000 baskets, as a busy chain's tills would see it. Reports baskets/s and
per-basket latency.
"""
from __future__ import annotations

import random
import sys
import time

from loadtest.report import latency_ms
from protocol.pricing import BasketLine, PricingContext, price_basket
from simulators.world import LEVELS, reference_catalogue, reference_rule_book

LINES_PER_BASKET = 30
RULES = 200
DISTINCT_BASKETS = 2_000
BASKETS_PER_MINUTE = 1_000
START_MS = 1_767_229_200_000  # 09:00 in UTC+8


def make_baskets(catalogue, book, seed: int) -> list[tuple[list[BasketLine], dict]]:
    rng = random.Random(seed)
    skus = sorted(catalogue.by_sku)
    coupons = [r.id for r in book.rules if r.TYPE == "coupon"]
    groups = [r.id for r in book.rules if r.TYPE == "group_buy"]
    out = []
    for _ in range(DISTINCT_BASKETS):
        lines = []
        channel = rng.choice(["offline", "online"])
        sellable = [s for s in skus if channel in catalogue.get(s).channels]
        for sku in rng.choices(sellable, k=LINES_PER_BASKET):
            p = catalogue.get(sku)
            if p.weighed:
                lines.append(BasketLine(sku=sku, weight_g=rng.randint(150, 2500)))
            else:
                lines.append(BasketLine(sku=sku, qty=rng.randint(1, 4)))
        member = rng.random() < 0.6
        ctx = dict(channel=channel, store_id=f"S{rng.randint(1, 50):03d}",
                   member_level=rng.choice(LEVELS) if member else None, new_member=member and rng.random() < 0.1,
                   coupons=tuple(rng.sample(coupons, 2)) if member else (),
                   formed_groups=tuple(rng.sample(groups, 1)) if member and rng.random() < 0.2 else ())
        out.append((lines, ctx))
    return out


def run(seconds: float = 5.0, seed: int = 7) -> dict:
    catalogue = reference_catalogue(seed)
    book = reference_rule_book(catalogue, rules=RULES, seed=seed)
    baskets = make_baskets(catalogue, book, seed)
    priced, samples, saved = 0, [], 0
    started = time.perf_counter()
    next_progress = started + 1
    while True:
        lines, ctx = baskets[priced % len(baskets)]
        now_ms = START_MS + (priced // BASKETS_PER_MINUTE) * 60_000
        t0 = time.perf_counter()
        result = price_basket(catalogue, book, lines, PricingContext(now_ms=now_ms, **ctx))
        samples.append(time.perf_counter() - t0)
        saved += result.discount_fen
        priced += 1
        now = time.perf_counter()
        if now >= next_progress:
            print(f"\rpricing: {priced} baskets, {priced / (now - started):,.0f}/s", end="", file=sys.stderr, flush=True)
            next_progress = now + 1
        if now - started >= seconds:
            break
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    return {
        "suite": "pricing",
        "baskets": priced,
        "lines_per_basket": LINES_PER_BASKET,
        "rules": len(book.rules),
        "products": len(catalogue),
        "seconds": round(elapsed, 3),
        "baskets_per_s": round(priced / elapsed),
        "lines_per_s": round(priced * LINES_PER_BASKET / elapsed),
        "latency_ms": latency_ms(samples),
        "discount_fen_total": saved,
        "cores": 1,
    }
