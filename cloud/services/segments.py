"""Member profiles, RFM segments and campaigns to a segment (issue 17 item 6), over the cloud's own records.

A member's history is read from what the cloud believes: their till sales (`till_sales`, as the bridge applied
them) and their paid online orders (`orders` in a paid status, at the time they were placed). Each line's spend falls
on its product's category (the world's catalogue). The pure core (protocol/segments.py) makes the profile, the RFM
scores and the segment.

Guarantees:
- A recompute is one run with its own version (`segment_runs`): every member's profile and segment row carries the
  version that wrote it; members are done in batches (`BATCH_MEMBERS`), each batch in one transaction; rows of
  members no longer there (erased) are removed at the end. Only one recompute runs at a time in the whole cloud (a
  PostgreSQL advisory lock, held by the run's connection): a second one asked meanwhile is refused (`in_progress`).
- The schedule (`run_schedule`, in the one background process) recomputes when the last finished run is older
  than `every_ms`: restarts do not recompute more often, and an operator's run counts as one.
- A profile shows personal data masked only (the member's masked phone); it is computed live from the history, so
  it is never stale, and shows the segment of the last run beside it.
- A campaign records which members its segment had (the snapshot it targeted), audited in the same transaction, and
  issues through the coupons authority (`Coupons.issue_to_members`, cloud/services/coupons.py) with an issue id of
  its own: retried (same campaign id) it records and issues nothing more.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections import defaultdict
from typing import Any

from cloud.services.coupons import Coupons
from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal
from protocol.clock import to_rfc3339
from protocol.order_lifecycle import PAID_STATUSES
from protocol.segments import DAY_MS, SEGMENT_NAMES, SEGMENTS, Profile, Rfm, RfmRules, Visit, assign

log = logging.getLogger("freshmesh.segments")
BATCH_MEMBERS = 500
HISTORY_DAYS = 400  # a profile covers this much history (more than the RFM window and the lapsed threshold)
EVERY_MS = int(os.environ.get("FRESHMESH_SEGMENTS_EVERY_S", str(6 * 3600))) * 1000  # scheduled recompute
SCHEDULE_CHECK_S = 30.0
PAGE_MAX = 200
LOCK_WAIT_S = 10.0  # an operator's recompute waits this long for a running one before it is refused
_LOCK_KEY = 0x53454753  # "SEGS": one recompute at a time, chain-wide
ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

TILL_SQL = """select member_id, store_id, wall_ms as at_ms, total_fen, lines from till_sales
              where member_id = any($1::text[]) and wall_ms >= $2"""
ONLINE_SQL = """select member_id, allocation, created_ms as at_ms, total_fen, lines from orders
                where member_id = any($1::text[]) and created_ms >= $2 and status = any($3::text[])"""


def visits_of(till_rows, online_rows, categories: dict[str, str]) -> dict[str, list[Visit]]:
    """Each member's visits: till sales (lines [sku, amount, unit, fen]) and paid online orders (lines [{sku,
    amount_fen}]; the store: the first of its allocation). A SKU no longer in the catalogue counts as "other"."""
    out: dict[str, list[Visit]] = defaultdict(list)
    for r in till_rows:
        cats = _by_category(((line[0], line[3]) for line in json.loads(r["lines"])), categories)
        out[r["member_id"]].append(Visit(r["at_ms"], "till", r["store_id"], r["total_fen"], cats))
    for r in online_rows:
        lines = json.loads(r["lines"])
        cats = _by_category(((line["sku"], line.get("amount_fen", 0)) for line in lines), categories)
        store = next(iter(json.loads(r["allocation"])), "")
        out[r["member_id"]].append(Visit(r["at_ms"], "online", store, r["total_fen"], cats))
    return out


def _by_category(lines, categories: dict[str, str]) -> tuple[tuple[str, int], ...]:
    sums: dict[str, int] = defaultdict(int)
    for sku, fen in lines:
        sums[categories.get(sku, "other")] += int(fen)
    return tuple(sorted(sums.items()))


def profile_json(p: Profile, score: Rfm) -> dict[str, Any]:
    return {"channels": list(p.channels), "visits_by_channel": p.by_channel, "visits": p.visits,
            "spend_fen": p.spend_fen, "avg_ticket_fen": p.avg_ticket_fen,
            "favourite_categories": list(p.favourite_categories),
            "first_visit": to_rfc3339(p.first_visit_ms) if p.first_visit_ms is not None else None,
            "last_visit": to_rfc3339(p.last_visit_ms) if p.last_visit_ms is not None else None,
            "rfm": {"recency_days": score.recency_days, "frequency": score.frequency,
                    "monetary_fen": score.monetary_fen, "r": score.r, "f": score.f, "m": score.m}}


class Segments:
    def __init__(self, cloud, rules: RfmRules | None = None, every_ms: int = EVERY_MS) -> None:
        self.cloud, self.rules, self.every_ms = cloud, rules or RfmRules(), every_ms

    def _categories(self) -> dict[str, str]:
        return {sku: p.category for sku, p in self.cloud.world.catalogue.by_sku.items()}

    async def _history(self, conn, member_ids: list[str], now_ms: int) -> dict[str, list[Visit]]:
        since = now_ms - HISTORY_DAYS * DAY_MS
        till = await conn.fetch(TILL_SQL, member_ids, since)
        online = await conn.fetch(ONLINE_SQL, member_ids, since, list(PAID_STATUSES))
        return visits_of(till, online, self._categories())

    # ---- recompute -------------------------------------------------------------------------------------
    async def recompute(self, by_name: str = "schedule", by: Operator | None = None) -> dict[str, Any]:
        """Every member's profile and segment, as of now; one run at a time (else `in_progress`)."""
        db = self.cloud.db
        async with db.acquire() as lock_conn:
            deadline = asyncio.get_running_loop().time() + LOCK_WAIT_S  # a scheduled run ends in seconds: wait it out
            while not await lock_conn.fetchval("select pg_try_advisory_lock($1)", _LOCK_KEY):
                if asyncio.get_running_loop().time() > deadline:
                    raise Refusal("in_progress", "segments are being recomputed right now; ask again when it is done")
                await asyncio.sleep(0.2)
            try:
                return await self._run(self.cloud.now_ms(), by_name, by)
            finally:
                await lock_conn.execute("select pg_advisory_unlock($1)", _LOCK_KEY)

    async def _run(self, now: int, by_name: str, by: Operator | None) -> dict[str, Any]:
        db = self.cloud.db
        version = await db.fetchval("insert into segment_runs (started_ms, by_name) values ($1, $2) "
                                    "returning version", now, by_name)
        counts: dict[str, int] = defaultdict(int)
        after, members = "", 0
        while True:
            batch = await db.fetch("select member_id, created_ms from members where erased_ms is null and "
                                   "member_id > $1 order by member_id limit $2", after, BATCH_MEMBERS)
            if not batch:
                break
            after = batch[-1]["member_id"]
            async with db.acquire() as conn, conn.transaction():
                history = await self._history(conn, [r["member_id"] for r in batch], now)
                profiles, segments = [], []
                for r in batch:
                    p, score, seg = assign(history.get(r["member_id"], []), r["created_ms"], now, self.rules)
                    counts[seg] += 1
                    profiles.append(_profile_row(r["member_id"], p, score, now, version))
                    segments.append((r["member_id"], seg, now, version))
                await conn.executemany(PROFILE_UPSERT, profiles)
                await conn.executemany(
                    """insert into member_segments (member_id, segment, computed_ms, version) values ($1, $2, $3, $4)
                       on conflict (member_id) do update set segment = excluded.segment,
                           computed_ms = excluded.computed_ms, version = excluded.version""", segments)
            members += len(batch)
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("delete from member_segments where version < $1", version)  # erased since
            await conn.execute("delete from member_profiles where version < $1", version)
            await conn.execute("update segment_runs set computed_ms = $2, members = $3 where version = $1",
                               version, self.cloud.now_ms(), members)
            if by is not None:
                await record(conn, self.cloud.now_ms(), by, "segments.recompute", f"segments/v{version}", None,
                             {"version": version, "members": members, "segments": dict(counts)})
        log.info("segments v%d: %d members %s", version, members, dict(counts))
        return {"version": version, "members": members, "computed_at": to_rfc3339(now),
                "segments": {s: counts.get(s, 0) for s in SEGMENTS}}

    async def run_schedule(self) -> None:
        """Recompute whenever the last finished run is older than `every_ms` (the background process runs this)."""
        while True:
            try:
                last = await self.cloud.db.fetchval("select max(computed_ms) from segment_runs")
                if last is None or self.cloud.now_ms() - last >= self.every_ms:
                    await self.recompute("schedule")
            except Refusal:
                pass  # an operator's run is going on: it counts
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("segment recompute failed: %s", exc)
            await asyncio.sleep(SCHEDULE_CHECK_S)

    # ---- reads -----------------------------------------------------------------------------------------
    async def latest_run(self):
        return await self.cloud.db.fetchrow("select * from segment_runs where computed_ms is not null "
                                            "order by version desc limit 1")

    async def segment_members(self, segment: str) -> list[str]:
        """The members of `segment` as of the last finished recompute (the coupons part targets these)."""
        check_segment(segment)
        rows = await self.cloud.db.fetch("select member_id from member_segments where segment = $1 "
                                         "order by member_id", segment)
        return [r["member_id"] for r in rows]

    async def overview(self, segment: str | None, after: str, limit: int) -> dict[str, Any]:
        run = await self.latest_run()
        body: dict[str, Any] = {"version": run["version"] if run else None,
                                "computed_at": to_rfc3339(run["computed_ms"]) if run else None}
        counts = {r["segment"]: r["n"] for r in await self.cloud.db.fetch(
            "select segment, count(*) as n from member_segments group by segment")}
        body["segments"] = [{"segment": s, "name": SEGMENT_NAMES[s], "members": counts.get(s, 0)} for s in SEGMENTS]
        if segment is None:
            return body
        check_segment(segment)
        rows = await self.cloud.db.fetch(
            """select s.member_id, m.phone_masked, p.visits, p.spend_fen, p.avg_ticket_fen, p.last_visit_ms,
                      p.r, p.f, p.m from member_segments s join members m using (member_id)
                      left join member_profiles p using (member_id)
               where s.segment = $1 and s.member_id > $2 order by s.member_id limit $3""", segment, after, limit)
        body["segment"] = segment
        body["members"] = [{"member_id": r["member_id"], "phone": r["phone_masked"], "visits": r["visits"],
                            "spend_fen": r["spend_fen"], "avg_ticket_fen": r["avg_ticket_fen"],
                            "last_visit": to_rfc3339(r["last_visit_ms"]) if r["last_visit_ms"] else None,
                            "rfm": [r["r"], r["f"], r["m"]]} for r in rows]
        body["next_after"] = rows[-1]["member_id"] if len(rows) == limit else None
        return body

    async def profile(self, member_id: str) -> dict[str, Any]:
        """One member's profile, computed now from their history; masked phone only."""
        db, now = self.cloud.db, self.cloud.now_ms()
        member = await db.fetchrow("select member_id, phone_masked, created_ms, erased_ms from members "
                                   "where member_id = $1", member_id)
        if member is None or member["erased_ms"] is not None:
            raise Refusal("not_found", f"no member {member_id[:64]}")
        async with db.acquire() as conn:
            history = await self._history(conn, [member_id], now)
        p, score, seg = assign(history.get(member_id, []), member["created_ms"], now, self.rules)
        stored = await db.fetchrow("select segment, computed_ms, version from member_segments where member_id = $1",
                                   member_id)
        return {"member_id": member_id, "phone": member["phone_masked"], "joined": to_rfc3339(member["created_ms"]),
                **profile_json(p, score), "segment_now": seg,
                "segment": None if stored is None else {"segment": stored["segment"], "version": stored["version"],
                                                        "computed_at": to_rfc3339(stored["computed_ms"])}}

    # ---- campaigns -------------------------------------------------------------------------------------
    async def campaign_to_segment(self, definition_id: str, segment: str, issue_id: str, by: Operator,
                                  campaign_id: str) -> tuple[dict[str, Any], bool]:
        """Record a campaign of coupon definition `definition_id` to the members `segment` has now (audited), then
        issue one coupon to each through the coupons authority (`Coupons.issue_to_members`) with `issue_id`. Returns
        (campaign, made now)."""
        check_segment(segment)
        if not ID_RE.fullmatch(definition_id):
            raise Refusal("invalid", "definition_id: 1-64 letters, digits, '_', '.', ':' or '-'")
        db, now = self.cloud.db, self.cloud.now_ms()
        run = await self.latest_run()
        if run is None:
            raise Refusal("order_state", "segments were never computed: POST /operator/segments/recompute first")
        async with db.acquire() as conn, conn.transaction():
            # the same campaign asked twice at once: the second waits for the first and then finds it
            await conn.execute("select pg_advisory_xact_lock($1, hashtext($2))", _LOCK_KEY, campaign_id)
            old = await conn.fetchrow("select * from campaigns where campaign_id = $1", campaign_id)
            if old is not None:
                if (old["definition_id"], old["segment"]) != (definition_id, segment):
                    raise Refusal("key_reused", f"campaign {campaign_id} was made with another definition or segment")
                made = False
                members = [r["member_id"] for r in await conn.fetch(
                    "select member_id from campaign_members where campaign_id = $1 order by member_id", campaign_id)]
            else:
                made = True
                members = [r["member_id"] for r in await conn.fetch(
                    "select member_id from member_segments where segment = $1 order by member_id", segment)]
                await conn.execute(
                    """insert into campaigns (campaign_id, definition_id, segment, segment_version, issue_id, members,
                           created_ms, created_by) values ($1, $2, $3, $4, $5, $6, $7, $8)""",
                    campaign_id, definition_id, segment, run["version"], issue_id, len(members), now, by.username)
                await conn.executemany("insert into campaign_members (campaign_id, member_id) values ($1, $2)",
                                       [(campaign_id, m) for m in members])
                await record(conn, now, by, "campaign.launch", f"campaign/{campaign_id}", None,
                             {"definition_id": definition_id, "segment": segment, "members": len(members),
                              "segment_version": run["version"], "issue_id": issue_id})
        old_issue = None if old is None or old["issue"] is None else json.loads(old["issue"])
        if old_issue is not None and old_issue.get("issued") is not None:
            issue = old_issue
        else:
            try:
                issue = await Coupons(self.cloud).issue_to_members(definition_id, members, issue_id, by)
            except Refusal as exc:
                issue = {"issued": None, "refused": exc.kind, "detail": exc.detail}
            await db.execute("update campaigns set issue = $2 where campaign_id = $1", campaign_id, json.dumps(issue))
        row = await db.fetchrow("select * from campaigns where campaign_id = $1", campaign_id)
        return campaign_json(row), made

    async def campaigns(self) -> list[dict[str, Any]]:
        return [campaign_json(r) for r in await self.cloud.db.fetch(
            "select * from campaigns order by created_ms desc limit 200")]


def campaign_json(row) -> dict[str, Any]:
    return {"campaign_id": row["campaign_id"], "definition_id": row["definition_id"], "segment": row["segment"],
            "segment_version": row["segment_version"], "issue_id": row["issue_id"], "members": row["members"],
            "issue": None if row["issue"] is None else json.loads(row["issue"]),
            "created_at": to_rfc3339(row["created_ms"]), "created_by": row["created_by"]}


def check_segment(segment: str) -> None:
    if segment not in SEGMENTS:
        raise Refusal("invalid", f"segment: one of {', '.join(SEGMENTS)}")


PROFILE_UPSERT = """
    insert into member_profiles (member_id, channels, by_channel, visits, spend_fen, avg_ticket_fen,
        favourite_categories, first_visit_ms, last_visit_ms, recency_days, frequency, monetary_fen, r, f, m,
        computed_ms, version)
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
    on conflict (member_id) do update set channels = excluded.channels, by_channel = excluded.by_channel,
        visits = excluded.visits, spend_fen = excluded.spend_fen, avg_ticket_fen = excluded.avg_ticket_fen,
        favourite_categories = excluded.favourite_categories, first_visit_ms = excluded.first_visit_ms,
        last_visit_ms = excluded.last_visit_ms, recency_days = excluded.recency_days, frequency = excluded.frequency,
        monetary_fen = excluded.monetary_fen, r = excluded.r, f = excluded.f, m = excluded.m,
        computed_ms = excluded.computed_ms, version = excluded.version"""


def _profile_row(member_id: str, p: Profile, score: Rfm, now: int, version: int) -> tuple:
    return (member_id, json.dumps(list(p.channels)), json.dumps(p.by_channel), p.visits, p.spend_fen,
            p.avg_ticket_fen, json.dumps(list(p.favourite_categories)), p.first_visit_ms, p.last_visit_ms,
            score.recency_days, score.frequency, score.monetary_fen, score.r, score.f, score.m, now, version)
