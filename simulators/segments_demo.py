"""The demo's marketing desk at HQ (issue 17 items 6 and 7), through the cloud's public operator API only:

- near the end of the run (`act_after_s`, or at once when the demo stops first), HQ recomputes the segments
  (`POST /operator/segments/recompute`), reads them (`GET /operator/segments`), looks at a member of the campaign's
  segment (`GET /operator/members/{id}/profile`) and launches a campaign of a coupon definition to one segment
  (`POST /operator/campaigns`): the largest of the segments worth winning back that has members;
- until the demo stops it then reads the promotion-effect report (`GET /operator/reports/promotions`) now and then.

Counts go into the demo's Counter under `segments_*`; a refused request counts as `segments_refused:<status>`
and never stops the rest. `summary(db, since_ms)` counts the results from the cloud's database.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

from loadtest.http import CLIENT_ERRORS, LeanClients
from protocol.order_lifecycle import PAID_STATUSES
from protocol.policy import chain_day

ACT_AFTER_S = 60.0  # how far into the run HQ recomputes and launches (the lead sets it near the end)
REPORT_EVERY_S = 15.0
DEFINITION_ID = "CD-DEMO-WINBACK"  # the coupon definition the campaign issues (the coupons part's demo definition)
TARGETS = ("lapsed", "important_develop", "general", "general_value", "new", "important_value")  # in preference


class SegmentsDesk:
    def __init__(self, cloud_url: str, operator: dict, counts: Counter, stop: asyncio.Event,
                 act_after_s: float = ACT_AFTER_S, definition_id: str = DEFINITION_ID,
                 report_every_s: float = REPORT_EVERY_S) -> None:
        self.url, self.operator, self.counts, self.stop = cloud_url.rstrip("/"), operator, counts, stop
        self.act_after_s, self.definition_id, self.report_every_s = act_after_s, definition_id, report_every_s
        self.campaign: dict[str, Any] | None = None
        self.segments: dict[str, int] = {}  # members per segment, as HQ's last recompute answered

    async def run(self, http: LeanClients) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), self.act_after_s)
        await self._step(self._campaign_round(http))
        while not self.stop.is_set():
            await self._step(self._read_report(http))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.report_every_s)

    async def _step(self, work) -> None:
        try:
            await work
        except CLIENT_ERRORS:
            self.counts["segments_refused:unreachable"] += 1

    def _refused(self, r) -> bool:
        if r.status_code >= 400:
            self.counts[f"segments_refused:{r.status_code}"] += 1
            return True
        return False

    async def _campaign_round(self, http: LeanClients) -> None:
        r = await http.post(f"{self.url}/operator/segments/recompute", headers=self.operator)
        if self._refused(r):
            return
        self.counts["segments_recomputed"] += 1
        sizes = self.segments = r.json()["segments"]
        target = next((s for s in TARGETS if sizes.get(s)), None)
        if target is None:
            self.counts["segments_no_members"] += 1
            return
        page = await http.get(f"{self.url}/operator/segments", params={"segment": target, "limit": 5},
                              headers=self.operator)
        if not self._refused(page) and page.json()["members"]:
            member = page.json()["members"][0]["member_id"]
            profile = await http.get(f"{self.url}/operator/members/{member}/profile", headers=self.operator)
            if not self._refused(profile):
                self.counts["segments_profiles_read"] += 1
        r = await http.post(f"{self.url}/operator/campaigns", json={"definition_id": self.definition_id,
                                                                      "segment": target}, headers=self.operator)
        if self._refused(r):
            return
        self.campaign = r.json()
        self.counts["segments_campaigns"] += 1
        self.counts["segments_campaign_members"] += self.campaign["members"]
        if self.campaign["issue"] and self.campaign["issue"].get("issued") is not None:
            self.counts["segments_coupons_issued"] += self.campaign["issue"]["issued"]

    async def _read_report(self, http: LeanClients) -> None:
        today = str(chain_day(time.time_ns() // 1_000_000))
        r = await http.get(f"{self.url}/operator/reports/promotions", params={"from": today, "to": today},
                           headers=self.operator)
        if not self._refused(r):
            self.counts["segments_reports_read"] += 1


async def summary(db, since_ms: int, stores: list[str] | None = None) -> dict:
    """From the cloud's database (an asyncpg connection or pool): members per segment (the last recompute),
    campaigns launched since `since_ms` and the members they targeted, and promotion uses since then by channel
    (an online order's only once paid), of `stores` only when given (the demo: every store)."""
    segments = {r["segment"]: r["n"] for r in await db.fetch(
        "select segment, count(*) as n from member_segments group by segment")}
    campaigns = await db.fetchrow("select count(*) as n, coalesce(sum(members), 0)::bigint as members "
                                  "from campaigns where created_ms >= $1", since_ms)
    uses = {r["channel"]: {"uses": r["uses"], "discount_fen": r["discount_fen"]} for r in await db.fetch(
        """select b.channel, count(*) as uses, sum(u.saving_fen)::bigint as discount_fen
           from promotion_uses u join promotion_baskets b using (basket_id)
                left join orders o on b.channel = 'online' and o.order_id = b.ref
           where b.at_ms >= $1 and (b.channel = 'till' or o.status = any($2::text[]))
             and ($3::text[] is null or b.store_id = any($3::text[]))
           group by b.channel""", since_ms, list(PAID_STATUSES), stores)}
    return {"members_per_segment": segments, "campaigns_launched": campaigns["n"],
            "campaign_members": campaigns["members"],
            "promotion_uses_by_channel": {c: uses.get(c, {"uses": 0, "discount_fen": 0}) for c in ("till", "online")}}

