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
