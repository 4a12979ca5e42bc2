"""The demo's marketing desk (simulators/segments_demo.py) against a real cloud: it recomputes, launches a campaign
through the public API, and its counts agree with what the cloud's database says (`summary`)."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import pytest_asyncio

from cloud.services.promotion_report import PromotionReport
from cloud.services.segments import Segments
from loadtest.http import LeanClients
from protocol.coupon_messages import CouponRedeemed
from protocol.messages import EscrowGranted, Payment, Quantity, SaleCommitted, SaleLine, StockMoved
from protocol.policy import chain_day
from protocol.promotion_uses import RuleUse
from simulators.segments_demo import SegmentsDesk, summary
from tests.integration.harness import StoreLink, customer, eventually, operator_headers, pay_by_wallet, running_cloud

pytestmark = pytest.mark.integration
ONLINE_STORE, ONLINE_SKU = "S004", "VEG-ONION-0052"  # onions no other module sells, ordered online
CN = timezone(timedelta(hours=8))
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
    # the till figures of this module's own store only: the database is the session's, and till sales of other
    # stores stamped after `since` (a box still sending its backlog) are not this test's
    got = await summary(services.cloud.db, since, [STORE])
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


async def test_the_report_counts_coupons_issued_and_redeemed_online_and_at_the_till(world, stack):
    """Coupons of a definition made through the operator API (the book's R0025, 5% off from 50 yuan), issued to a
    member, one redeemed with a paid online order and one at a till (its CouponRedeemed edge event through the
    bridge): the report's figures per definition and by channel are what was done; a campaign of the definition to
    a segment counts its own issues."""
    services, url = world
    run = uuid.uuid4().hex[:6]
    definition = f"segr-{run}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        op = await operator_headers(services)
        body = {"definition_id": definition, "rule_id": "R0025", "name": "5% off from 50 yuan", "valid_days": 30,
                "per_member_limit": 10}
        r = await http.post("/operator/coupon-definitions", json=body, headers=op)
        assert r.status_code == 201, r.text
        member = await customer(services, http)
        r = await http.post(f"/operator/coupon-definitions/{definition}/issue", headers=op,
                            json={"batch_id": uuid.uuid4().hex, "member_ids": [member.member_id]})
        online_code = r.json()["issued"][0]["code"]
        r = await http.post(f"/operator/coupon-definitions/{definition}/issue", headers=op,
                            json={"batch_id": uuid.uuid4().hex, "member_ids": [member.member_id]})
        till_code = r.json()["issued"][0]["code"]
        async with StoreLink(stack, ONLINE_STORE) as store:  # onions of this module's own to order online
            await store.publish(StockMoved(**store.next_envelope(), sku=ONLINE_SKU, delta=100_000, reason="receiving",
                                           shrinkage_reason="", on_hand_after=100_000, reference=""))
            await store.publish(EscrowGranted(**store.next_envelope(), sku=ONLINE_SKU, qty=80_000,
                                              escrow_after=80_000))
        slot = (datetime.now(CN) + timedelta(days=2)).replace(hour=11, minute=0, second=0, microsecond=0)

        async def ordered():
            r = await http.post("/orders", headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers},
                                json={"fulfilment": "pickup", "store_id": ONLINE_STORE,
                                      "slot_start": slot.isoformat(), "coupons": [online_code],
                                      "items": [{"sku": ONLINE_SKU, "qty": 10_000}]})
            return r if r.status_code == 201 else None
        placed = await eventually(ordered, timeout_s=20)
        assert placed, "the online order was never placed"
        await pay_by_wallet(services, http, member, placed.json()["order_id"])
    async with StoreLink(stack, STORE) as link:
        await link.publish(CouponRedeemed(**link.next_envelope(), code=till_code, sale_id=f"segr-{run}", lane="1",
                                          member_id=member.member_id, hold_id="", offline=True, rule_id="R0025",
                                          saving_fen=300))

    async def both_redeemed():
        return await services.cloud.db.fetchval(
            "select count(*) = 2 from coupons where definition_id = $1 and status = 'redeemed'", definition)
    assert await eventually(both_redeemed, timeout_s=20)
    today = str(chain_day(time.time_ns() // 1_000_000))
    report = PromotionReport(services.cloud)

    async def figures(store: str | None, channel: str | None) -> dict:
        answer = await report.report(today, today, store, channel)
        assert answer["coupons"]["available"]
        (mine,) = [d for d in answer["coupons"]["by_definition"] if d["definition_id"] == definition]
        return mine
    assert await figures(None, None) == {"definition_id": definition, "issued": 2, "redeemed": 2,
                                         "redeemed_by_channel": {"till": 1, "online": 1}}
    assert (await figures(None, "till"))["redeemed_by_channel"] == {"till": 1, "online": 0}
    assert (await figures(None, "till"))["redeemed"] == 1
    assert (await figures(STORE, "till"))["redeemed"] == 1
    assert (await figures(None, "online"))["redeemed"] == 1
    assert (await figures(ONLINE_STORE, "online"))["redeemed"] == 1

    token = (await operator_headers(services))["Authorization"].split()[1]
    operator = await services.operators.session(token)
    await services.segments.recompute("test")
    sizes = {r["segment"]: r["n"] for r in await services.cloud.db.fetch(
        "select segment, count(*) as n from member_segments group by segment")}
    segment = max(sizes, key=lambda s: sizes[s])
    campaign_id = f"segc-{run}"
    campaign, made = await services.segments.campaign_to_segment(definition, segment,
                                                                 f"campaign:{campaign_id}", operator, campaign_id)
    members = await services.cloud.db.fetchval(
        "select count(*) from campaign_members where campaign_id = $1", campaign_id)
    issued = await services.cloud.db.fetchval(
        "select count(*) - 2 from coupons where definition_id = $1", definition)  # all but the two above
    assert made and members >= 1 and campaign["issue"]["issued"] == issued >= 1
    answer = await report.report(today, today, None, None)
    (mine,) = [c for c in answer["campaigns"] if c["campaign_id"] == campaign_id]
    assert (mine["coupons_issued"], mine["coupons_redeemed"]) == (issued, 0)
    assert mine["coupons_redeemed_by_channel"] == {"till": 0, "online": 0}
