"""The demo's marketing desk (simulators/segments_demo.py) against a real cloud: it recomputes, launches a campaign
through the public API, and its counts agree with what the cloud's database says (`summary`)."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import httpx
import pytest
import pytest_asyncio

from cloud.services.segments import Segments
from loadtest.http import LeanClients
from protocol.messages import Payment, Quantity, SaleCommitted, SaleLine
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
