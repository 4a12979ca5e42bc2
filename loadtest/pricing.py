"""`freshmesh load pricing`: price 30-line baskets against the reference 200-rule book, on one core.

Baskets and contexts are generated up front from the seed (mixed members, coupons, weighed and packed items);
the clock advances one minute every 1,000 baskets, as a busy chain's tills would see it. Reports baskets/s and
per-basket latency of the evaluator tills and the mall run (`baskets_per_s`, `latency_ms`), and, measured after it in
the same process for a shorter while, of the reference evaluator it is held equal to (`reference_baskets_per_s`,
`reference_latency_ms`). The first baskets are priced by both and compared before anything is measured.
"""
from __future__ import annotations

import random
import sys
import time

from loadtest.report import latency_ms
from protocol.pricing import BasketLine, PricingContext, price_basket, price_basket_reference
from simulators.world import LEVELS, reference_catalogue, reference_rule_book

LINES_PER_BASKET = 30
RULES = 200
DISTINCT_BASKETS = 2_000
BASKETS_PER_MINUTE = 1_000
START_MS = 1_767_229_200_000  # 09:00 in UTC+8
REFERENCE_SECONDS = 2.0  # the reference evaluator is measured for this long (at most --seconds)
CHECKED = 200  # baskets priced by both evaluators and compared before measuring


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


def _measure(price, catalogue, book, baskets, seconds: float, label: str) -> dict:
    """Price the baskets round and round with `price` for `seconds`: baskets, baskets/s, latency, discount."""
    priced, samples, saved = 0, [], 0
    started = time.perf_counter()
    next_progress = started + 1
    while True:
        lines, ctx = baskets[priced % len(baskets)]
        now_ms = START_MS + (priced // BASKETS_PER_MINUTE) * 60_000
        t0 = time.perf_counter()
        result = price(catalogue, book, lines, PricingContext(now_ms=now_ms, **ctx))
        samples.append(time.perf_counter() - t0)
        saved += result.discount_fen
        priced += 1
        now = time.perf_counter()
        if now >= next_progress:
            print(f"\r{label}: {priced} baskets, {priced / (now - started):,.0f}/s", end="", file=sys.stderr, flush=True)
            next_progress = now + 1
        if now - started >= seconds:
            break
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    return {"baskets": priced, "seconds": round(elapsed, 3), "baskets_per_s": round(priced / elapsed),
            "latency_ms": latency_ms(samples), "discount_fen_total": saved}


def run(seconds: float = 5.0, seed: int = 7) -> dict:
    """The fast evaluator (`price_basket`) for `seconds`, then the reference one it is held equal to
    (`price_basket_reference`) for a shorter while, in the same process: both figures come from the same box."""
    catalogue = reference_catalogue(seed)
    book = reference_rule_book(catalogue, rules=RULES, seed=seed)
    baskets = make_baskets(catalogue, book, seed)
    for lines, ctx in baskets[:CHECKED]:  # a wrong fast figure is worth nothing: the two must agree first
        context = PricingContext(now_ms=START_MS, **ctx)
        if price_basket(catalogue, book, lines, context) != price_basket_reference(catalogue, book, lines, context):
            raise AssertionError(f"the fast evaluator differs from the reference on {lines} in {context}")
    fast = _measure(price_basket, catalogue, book, baskets, seconds, "pricing")
    reference = _measure(price_basket_reference, catalogue, book, baskets, min(seconds, REFERENCE_SECONDS),
                         "pricing (reference)")
    return {
        "suite": "pricing",
        "baskets": fast["baskets"],
        "lines_per_basket": LINES_PER_BASKET,
        "rules": len(book.rules),
        "products": len(catalogue),
        "seconds": fast["seconds"],
        "baskets_per_s": fast["baskets_per_s"],
        "lines_per_s": round(fast["baskets_per_s"] * LINES_PER_BASKET),
        "latency_ms": fast["latency_ms"],
        "discount_fen_total": fast["discount_fen_total"],
        "reference_baskets_per_s": reference["baskets_per_s"],
        "reference_latency_ms": reference["latency_ms"],
        "speedup": round(fast["baskets_per_s"] / reference["baskets_per_s"], 2),
        "checked_against_reference": CHECKED,
        "cores": 1,
    }
