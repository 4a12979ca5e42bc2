"""The demo's promotion and member programmes (issue 17), each from its own simulators/*_demo.py, through the
public HTTP APIs only: coupons (HQ's till-spend trigger and campaign, customers redeeming online), group buys
(groups that form and groups refunded when their window closes), member levels with a budget-capped rule and a
gift, points (part of orders and till sales, the points shop, the receipt's survey) and HQ's marketing desk
(segments recomputed, a win-back campaign to a segment, the promotion-effect report).

HQ's set-up runs first and in order (`prepare`): every programme that changes the promotion book reads the book in
force and publishes it with its own rules added, so they must not race each other; the coupon definitions that
later steps name (the points shop's offer, the win-back campaign's coupon) are made before anyone uses them.
`summary` reads each programme's figures from the cloud's database (`summary(db, since_ms)` of each module).
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from loadtest.http import LeanClients
from simulators import coupons_demo, groups_demo, levels_demo, points_demo, segments_demo

SUMMARIES = {"coupons": coupons_demo.summary, "group_buys": groups_demo.summary, "levels": levels_demo.summary,
             "points": points_demo.summary, "segments": segments_demo.summary}
POINTS_OFFER_RULE = "R0025"  # the book's "5% off from 50" coupon: what the points shop sells
WINBACK_RULE = "R0022"  # the book's coupon without a minimum spend: what the win-back campaign gives
SEGMENTS_AFTER_SHARE = 0.6  # of the run: HQ recomputes the segments and launches its campaign then
SEGMENTS_AFTER_S = 60.0  # when the run has no end


@dataclass
class Setting:
    """What the demo has when the programmes start."""
    cloud_url: str
    operator: dict[str, str]
    lanes: dict[str, str]  # store id -> its box's lane API
    phones: Any  # the simulated SMS provider's inbox (simulators/customer_auth.SimulatedPhones)
    wallet_url: str
    online_packed: list[dict]  # packed goods with a GTIN that sell online (traffic.Shelf.online)
    group_sku: str
    duration: float | None


async def prepare(http: LeanClients, s: Setting, rng: random.Random, counts: Counter,
                  stop: asyncio.Event) -> list[Any]:
    """HQ's set-up in order, then the programmes to run (each with `run(http)` until `stop`)."""
    levels = levels_demo.LevelsShoppers(s.cloud_url, s.operator, s.phones, s.lanes, rng, counts, stop,
                                        wallet_url=s.wallet_url)
    await levels.publish_rules(http)  # the budget-capped rule and the gift, into the book in force
    book = (await http.get(f"{s.cloud_url}/rule-book", headers=s.operator)).json()
    groups = groups_demo.GroupBuyers(s.cloud_url, s.operator, list(s.lanes), s.phones, s.wallet_url, rng, counts, stop,
                                     rule_book=book, sku=s.group_sku)
    groups.rule_id = await groups.publish_rule(http)  # ... and the group buy, on top of it
    await points_demo.define_points_offer(http, s.cloud_url, s.operator, POINTS_OFFER_RULE)
    winback = await http.post(f"{s.cloud_url}/operator/coupon-definitions", headers=s.operator, json={
        "definition_id": segments_demo.DEFINITION_ID, "rule_id": WINBACK_RULE, "name": "回归礼券 / Welcome back",
        "channels": ["online", "offline"], "valid_days": 14, "per_member_limit": 1})
    if winback.status_code in (200, 201):
        counts["programmes_winback_defined"] += 1
    act_after = s.duration * SEGMENTS_AFTER_SHARE if s.duration else SEGMENTS_AFTER_S
    return [
        coupons_demo.CouponCustomers(s.cloud_url, s.operator, s.phones, s.wallet_url, rng, counts, stop,
                                     stores=list(s.lanes), lanes=s.lanes, packed=s.online_packed),
        groups, levels,
        points_demo.PointsCustomers(s.cloud_url, s.lanes, s.online_packed, s.phones, s.wallet_url, rng, counts, stop),
        segments_demo.SegmentsDesk(s.cloud_url, s.operator, counts, stop, act_after_s=act_after),
    ]


async def summary(database_url: str, since_ms: int) -> dict:
    """Each programme's figures from the cloud's database."""
    import asyncpg
    conn = await asyncpg.connect(database_url)
    try:
        return {name: await figures(conn, since_ms) for name, figures in SUMMARIES.items()}
    finally:
        await conn.close()
