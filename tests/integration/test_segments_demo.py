"""The demo's marketing desk (simulators/segments_demo.py) against a real cloud: it recomputes, launches a campaign
through the public API, and its counts agree with what the cloud's database says (`summary`)."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import asyncpg
import httpx
import pytest
import pytest_asyncio

from cloud.services.promotion_report import PromotionReport
from cloud.services.segments import Segments
from loadtest.http import LeanClients
from protocol.messages import Payment, Quantity, SaleCommitted, SaleLine
from protocol.policy import chain_day
from protocol.promotion_uses import RuleUse
from simulators.segments_demo import SegmentsDesk, summary
from tests.integration.harness import StoreLink, customer, eventually, operator_headers, running_cloud

pytestmark = pytest.mark.integration
STORE = "S027"  # this area's own store (tests/integration/test_segments.py uses it too, for its own sales)


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"segd{uuid.uuid4().hex[:6]}-") as (services, url):
        yield services, url


async def test_the_desk_counts_what_the_cloud_recorded(world, stack):
    services, url = world
    since = time.time_ns() // 1_000_000 - 1
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        member = await customer(services, client)  # a member with one till sale today: the new segment has one
    sale_id = f"segd-{uuid.uuid4().hex[:10]}"
    async with StoreLink(stack, STORE) as link:
        await link.publish(SaleCommitted(**link.next_envelope(), sale_id=sale_id, lane="1",
                                         lines=(SaleLine(sku="FRU-FUJI-0057", quantity=Quantity.pieces(1),
                                                         amount_fen=2_000),),
                                         total_fen=2_000, payments=(Payment(method="cash", amount_fen=2_000,
                                                                            reference=""),),
                                         member_id=member.member_id, offline=False,
                                         promotions=(RuleUse(rule_id="R0009", saving_fen=222),)))

    async def applied():
        return await services.cloud.db.fetchval("select count(*) from promotion_baskets where ref = $1", sale_id)
    assert await eventually(applied, timeout_s=20)
    counts: Counter = Counter()
    stop = asyncio.Event()
    async with LeanClients(timeout=20) as http:
        desk = SegmentsDesk(url, await operator_headers(services), counts, stop, act_after_s=0.2, report_every_s=0.3)
        task = asyncio.create_task(desk.run(http))

        async def launched():
            return counts["segments_campaigns"] and counts["segments_reports_read"]
        assert await eventually(launched, timeout_s=30), counts
        stop.set()
        await asyncio.wait_for(task, 30)
    assert not [k for k in counts if k.startswith("segments_refused")], counts
    got = await summary(services.cloud.db, since)
    assert got["campaigns_launched"] == counts["segments_campaigns"] == 1
    assert got["campaign_members"] == counts["segments_campaign_members"] == desk.campaign["members"] >= 1
    assert {k: v for k, v in got["members_per_segment"].items() if v} == {k: v for k, v in desk.segments.items() if v}
    assert got["promotion_uses_by_channel"]["till"] == {"uses": 1, "discount_fen": 222}
    assert counts["segments_recomputed"] == 1 and counts["segments_profiles_read"] == 1


async def test_the_schedule_recomputes_when_the_last_run_is_old_enough(world):
    """The background loop (as the cloud's background process runs it): with runs due every 0 ms it makes a new
    run by itself; with a long interval right after a run it makes none."""
    services, _ = world
    db = services.cloud.db
    newest = "select coalesce(max(version), 0) from segment_runs where by_name = 'schedule' and computed_ms is not null"
    before = await db.fetchval(newest)
    due = asyncio.create_task(Segments(services.cloud, every_ms=0).run_schedule())
    try:
        async def ran():
            return await db.fetchval(newest) > before
        assert await eventually(ran, timeout_s=20), "the schedule never recomputed"
    finally:
        due.cancel()
        await asyncio.gather(due, return_exceptions=True)
    after = await db.fetchval("select max(version) from segment_runs")
    not_due = asyncio.create_task(Segments(services.cloud, every_ms=3_600_000).run_schedule())
    await asyncio.sleep(1.0)  # its first look is at once: the last run is seconds old, so it leaves it
    not_due.cancel()
    await asyncio.gather(not_due, return_exceptions=True)
    assert await db.fetchval("select max(version) from segment_runs") == after


async def test_coupons_issued_and_redeemed_are_read_from_the_coupons_table_when_it_exists(world):
    """The coupons part's table (migration 26: code, definition_id, member_id, status, channel, store_id, issued_ms)
    is made here as a temporary table on one connection, so the report's coupon queries run against those names
    without touching the shared database; coupons issued to the campaign's members after its launch are its own."""
    services, _ = world
    token = (await operator_headers(services))["Authorization"].split()[1]
    operator = await services.operators.session(token)
    await services.segments.recompute("test")
    sizes = {r["segment"]: r["n"] for r in await services.cloud.db.fetch(
        "select segment, count(*) as n from member_segments group by segment")}
    segment = max(sizes, key=lambda s: sizes[s])
    campaign_id = f"segc-{uuid.uuid4().hex[:8]}"
    definition = f"CD-{campaign_id}"
    campaign, made = await services.segments.campaign_to_segment(services, definition, segment,
                                                                 f"campaign:{campaign_id}", operator, campaign_id)
    assert made and campaign["issue"]["issued"] is None  # no coupons part in this build: said, not pretended
    members = [r["member_id"] for r in await services.cloud.db.fetch(
        "select member_id from campaign_members where campaign_id = $1 order by member_id limit 3", campaign_id)]
    now = time.time_ns() // 1_000_000
    conn = await asyncpg.connect(services.cloud.actors.calls.database_url)
    try:
        await conn.execute("""create temporary table coupons (code text primary key, definition_id text not null,
                                  member_id text, status text not null, channel text, store_id text,
                                  issued_ms bigint not null)""")
        rows = [(f"K{i}-{campaign_id}", definition, m, "redeemed" if i == 0 else "issued",
                 "till" if i == 0 else None, STORE if i == 0 else None, now) for i, m in enumerate(members)]
        rows.append((f"KX-{campaign_id}", definition, "someone-else", "redeemed", "online", "S001", now))
        await conn.executemany("insert into coupons values ($1, $2, $3, $4, $5, $6, $7)", rows)

        class Cloud:
            db, world = conn, services.cloud.world
        today = str(chain_day(now))
        answer = await PromotionReport(Cloud()).report(today, today, None, None)
        mine = next(c for c in answer["campaigns"] if c["campaign_id"] == campaign_id)
        assert (mine["coupons_issued"], mine["coupons_redeemed"]) == (len(members), 1)
        (by_definition,) = [d for d in answer["coupons"]["by_definition"] if d["definition_id"] == definition]
        assert answer["coupons"]["available"] and by_definition == {"definition_id": definition,
                                                                    "issued": len(members) + 1, "redeemed": 2}
        at_store = await PromotionReport(Cloud()).report(today, today, STORE, "till")
        (here,) = [d for d in at_store["coupons"]["by_definition"] if d["definition_id"] == definition]
        assert here["redeemed"] == 1  # only the one redeemed at this store's till
    finally:
        await conn.close()
