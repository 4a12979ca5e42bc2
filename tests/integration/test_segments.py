"""Member profiles, RFM segments, campaigns and the promotion-effect report on a generated history: till sales
through the bridge (a store of this module's own, S027, speaking as a box does, with sales from the past as an
offline box would send them) and online orders through the API, for members whose behaviour the test chose."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import pytest_asyncio

from protocol import codec
from protocol.messages import EscrowGranted, OrderToFulfil, Payment, Quantity, SaleCommitted, SaleLine, StockMoved
from protocol.policy import chain_day
from protocol.promotion_uses import RuleUse
from protocol.schema import to_wire
from tests.integration.harness import (
    StoreLink,
    customer,
    eventually,
    operator_headers,
    pay_by_wallet,
    running_cloud,
)

pytestmark = pytest.mark.integration
STORE = "S027"  # provisioned by the test stack, sold from by no other module
ONLINE_STORE, ONLINE_SKU = "S001", "DAI-YOGHUR-0182"  # a dairy SKU no other module orders
FRUIT, SEAFOOD, MEAT = "FRU-FUJI-0057", "SEA-SHRIMP-0144", "MEA-BEEF-0115"
DAY_MS = 86_400_000
CN = timezone(timedelta(hours=8))


def next_slot(hour: int = 11) -> str:
    """Tomorrow at 11:00 in the chain's zone: on every store's slot grid, within opening hours."""
    day = datetime.now(CN) + timedelta(days=1)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0).isoformat()


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"seg{uuid.uuid4().hex[:6]}-") as (services, url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield services, http


class Sent:
    """What this test sent: each till sale as (member, days ago, total, promotions), to compute the figures from."""

    def __init__(self) -> None:
        self.sales: list[tuple[str, int, int, tuple[RuleUse, ...]]] = []


async def till_sales(stack, sent: Sent, member: str, days_ago: list[int], lines: list[tuple[str, int]],
                     promotions: tuple[RuleUse, ...] = ()) -> None:
    """One till sale per day in `days_ago` at STORE, of `lines` [(sku, fen)], sent as the store's box would."""
    now = time.time_ns() // 1_000_000
    async with StoreLink(stack, STORE) as link:
        for d in days_ago:
            env = link.next_envelope()
            env["wall_ms"] = now - d * DAY_MS - 3_600_000  # an hour earlier: never "in the future" of the cloud
            total = sum(fen for _, fen in lines)
            sale = SaleCommitted(**env, sale_id=f"seg-{uuid.uuid4().hex[:12]}", lane="1",
                                 lines=tuple(SaleLine(sku=s, quantity=Quantity.pieces(1), amount_fen=fen)
                                             for s, fen in lines),
                                 total_fen=total, payments=(Payment(method="cash", amount_fen=total, reference=""),),
                                 member_id=member, offline=True, promotions=promotions)
            await link.publish(sale)
            sent.sales.append((member, d, total, promotions))


async def online_order(services, http, member, qty: int, pay: bool = True) -> dict:
    body = {"fulfilment": "pickup", "store_id": ONLINE_STORE, "slot_start": next_slot(),
            "items": [{"sku": ONLINE_SKU, "qty": qty}]}
    r = await http.post("/orders", json=body, headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert r.status_code == 201, r.text
    order = r.json()
    if pay:
        await pay_by_wallet(services, http, member, order["order_id"])
    return order


async def report(http, op, **q) -> dict:
    today = chain_day(time.time_ns() // 1_000_000)
    params = {"from": str(today - timedelta(days=120)), "to": str(today), **q}
    r = await http.get("/operator/reports/promotions", params=params, headers=op)
    assert r.status_code == 200, r.text
    return r.json()


def online_rows(answer: dict) -> dict[str, dict]:
    return {r["rule_id"]: r for r in answer["rows"] if r["channel"] == "online" and r["store_id"] == ONLINE_STORE}


async def test_generated_history_segments_profiles_campaign_and_report(world, stack):
    services, http = world
    hq, viewer = await operator_headers(services), await operator_headers(services, "viewer")
    manager = await operator_headers(services, "store_manager", store_id="S002")
    # the online store holds the SKU for the cloud (received, then escrow granted), as a box would
    async with StoreLink(stack, ONLINE_STORE) as link:
        await link.publish(StockMoved(**link.next_envelope(), sku=ONLINE_SKU, delta=40, reason="receiving",
                                      shrinkage_reason="", on_hand_after=40, reference=""))
        await link.publish(EscrowGranted(**link.next_envelope(), sku=ONLINE_SKU, qty=30, escrow_after=30))

    async def granted():
        stock = (await http.get(f"/stores/{ONLINE_STORE}/stock")).json()["stock"]
        return any(r["sku"] == ONLINE_SKU and r["escrow"] >= 30 for r in stock)
    assert await eventually(granted, timeout_s=20)
    before_online = online_rows(await report(http, hq, channel="online", store=ONLINE_STORE))
    before_baskets = {(b["channel"], b["store_id"]): b for b in (await report(http, hq))["baskets"]}

    members = {name: await customer(services, http) for name in
               ("frequent_high", "infrequent_high", "frequent_low", "lapsed", "new", "rare_low")}
    ids = {name: m.member_id for name, m in members.items()}
    sent = Sent()
    deal, coupon = RuleUse(rule_id="R0009", saving_fen=389), RuleUse(rule_id="R0022", saving_fen=1000)
    # weekly, 150 yuan mostly fruit, the deal on each
    await till_sales(stack, sent, ids["frequent_high"], [1, 8, 15, 22, 35], [(FRUIT, 11_000), (MEAT, 4_000)], (deal,))
    await till_sales(stack, sent, ids["infrequent_high"], [40, 45], [(SEAFOOD, 20_000)], (deal, coupon))
    await till_sales(stack, sent, ids["frequent_low"], [2, 9, 16, 23, 37], [(MEAT, 2_500)])
    await till_sales(stack, sent, ids["lapsed"], [70, 75, 80, 85], [(SEAFOOD, 30_000)], (coupon,))
    await till_sales(stack, sent, ids["rare_low"], [5, 45], [(FRUIT, 3_000)])
    # online: the frequent one also buys online; the new one's only purchase is online; an unpaid order never counts
    orders = [await online_order(services, http, members["frequent_high"], 2),
              await online_order(services, http, members["new"], 1)]
    unpaid = await online_order(services, http, members["new"], 3, pay=False)
    r = await http.post(f"/orders/{unpaid['order_id']}/cancel", headers=members["new"].headers)
    assert r.status_code == 200, r.text
    async with StoreLink(stack, ONLINE_STORE) as link:  # leave no pick order of ours for a later module's box
        last = {o["order_id"] for o in orders}
        await link.commands(want=10_000, timeout_s=10, until=lambda c: isinstance(c, OrderToFulfil)
                            and last.discard(c.order_id) is None and not last)

    async def all_applied():
        n = await services.cloud.db.fetchval("select count(*) from till_sales where store_id = $1", STORE)
        return n == len(sent.sales)
    # (generous: the bridge shares the box with the other tests' clouds; it returns as soon as all are in)
    assert await eventually(all_applied, timeout_s=60), "the bridge did not apply every till sale"

    # ---- segments after a recompute ----
    assert (await http.post("/operator/segments/recompute", headers=viewer)).status_code == 403
    r = await http.post("/operator/segments/recompute", headers=hq)
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    expected = {"frequent_high": "important_value", "infrequent_high": "important_develop",
                "frequent_low": "general_value", "lapsed": "lapsed", "new": "new", "rare_low": "general"}
    for name, segment in expected.items():
        page = await _members_of(http, viewer, segment)
        assert ids[name] in page, f"{name} is not in {segment}"
    overview = (await http.get("/operator/segments", headers=viewer)).json()
    assert overview["version"] == version and {s["segment"] for s in overview["segments"]} == set(expected.values())

    # ---- a profile: masked phone, channels, average ticket, favourites (computed from what was sent) ----
    assert (await http.get(f"/operator/members/{ids['frequent_high']}/profile", headers=manager)).status_code == 403
    r = await http.get(f"/operator/members/{ids['frequent_high']}/profile", headers=viewer)
    assert r.status_code == 200, r.text
    prof = r.json()
    phone = members["frequent_high"].phone
    assert "*" in prof["phone"] and phone[-8:] not in prof["phone"] and prof["phone"][-4:] == phone[-4:]
    till_spend = sum(t for m, _, t, _ in sent.sales if m == ids["frequent_high"])
    online_spend = sum(o["total_fen"] for o in orders[:1])
    assert prof["channels"] == ["till", "online"] and prof["visits_by_channel"] == {"till": 5, "online": 1}
    assert prof["spend_fen"] == till_spend + online_spend and prof["avg_ticket_fen"] == (till_spend + online_spend) // 6
    assert prof["favourite_categories"][0] == "fruit" and prof["segment"]["segment"] == "important_value"
    assert (await http.get("/operator/members/nobody/profile", headers=viewer)).status_code == 404

    # ---- a campaign to a segment: recorded with its members, audited, issued through the coupons seam ----
    body = {"definition_id": "CD-SEG-TEST", "segment": "lapsed", "campaign_id": f"seg-{uuid.uuid4().hex[:8]}"}
    assert (await http.post("/operator/campaigns", json=body, headers=viewer)).status_code == 403
    bad = await http.post("/operator/campaigns", json={**body, "segment": "whales"}, headers=hq)
    assert bad.status_code == 422 and "segment" in bad.json()["detail"]
    r = await http.post("/operator/campaigns", json=body, headers=hq)
    assert r.status_code == 201, r.text
    campaign = r.json()
    lapsed = await _members_of(http, viewer, "lapsed")
    assert campaign["members"] == len(lapsed) and campaign["segment_version"] == version
    targeted = {row["member_id"] for row in await services.cloud.db.fetch(
        "select member_id from campaign_members where campaign_id = $1", body["campaign_id"])}
    assert ids["lapsed"] in targeted and ids["frequent_high"] not in targeted
    again = await http.post("/operator/campaigns", json=body, headers=hq)
    assert again.status_code == 200 and again.json()["campaign_id"] == campaign["campaign_id"]
    clash = await http.post("/operator/campaigns", json={**body, "segment": "new"}, headers=hq)
    assert clash.status_code == 409
    twice = {**body, "campaign_id": f"seg-{uuid.uuid4().hex[:8]}"}  # the same campaign asked twice at once
    both = await asyncio.gather(*(http.post("/operator/campaigns", json=twice, headers=hq) for _ in range(2)))
    assert sorted(r.status_code for r in both) == [200, 201], [r.text for r in both]
    assert await services.cloud.db.fetchval("select count(*) from campaigns where campaign_id = $1",
                                            twice["campaign_id"]) == 1
    audit = (await http.get("/operator/audit", headers=hq)).json()
    assert any(e["action"] == "campaign.launch" and e["target"] == f"campaign/{body['campaign_id']}"
               for e in audit["entries"])

    # ---- the promotion report: till figures at this module's store equal what was sent ----
    answer = await report(http, hq, store=STORE)
    rows = {r["rule_id"]: r for r in answer["rows"] if r["channel"] == "till" and r["store_id"] == STORE}
    all_fen, all_n = sum(t for _, _, t, _ in sent.sales), len(sent.sales)
    for rule in ("R0009", "R0022"):
        used = [(t, p) for _, _, t, ps in sent.sales for p in ps if p.rule_id == rule]
        with_fen = sum(t for t, _ in used)
        assert rows[rule]["uses"] == len(used) and rows[rule]["discount_fen"] == sum(p.saving_fen for _, p in used)
        assert (rows[rule]["baskets_with"], rows[rule]["sales_with_fen"]) == (len(used), with_fen)
        assert (rows[rule]["baskets_without"], rows[rule]["sales_without_fen"]) == (all_n - len(used), all_fen - with_fen)
    assert set(rows) == {"R0009", "R0022"}
    assert [b for b in answer["baskets"] if b["channel"] == "till"] == [
        {"channel": "till", "store_id": STORE, "baskets": all_n, "sales_fen": all_fen}]
    assert (await report(http, hq, store=STORE, channel="online"))["rows"] == []
    csv_text = (await http.get("/operator/reports/promotions", headers=hq, params={
        "from": str(chain_day(time.time_ns() // 1_000_000) - timedelta(days=120)),
        "to": str(chain_day(time.time_ns() // 1_000_000)),
        "store": STORE, "format": "csv"})).text.splitlines()
    assert csv_text[0].startswith("rule_id,name,channel,store_id,uses,discount_fen") and len(csv_text) == 3
    today = chain_day(time.time_ns() // 1_000_000)
    page = await http.get("/operator/reports/promotions", params={
        "from": str(today - timedelta(days=120)), "to": str(today), "store": STORE, "format": "html",
        "token": hq["Authorization"].split()[1]})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<td>R0009</td>" in page.text and "campaign" in page.text

    # ---- online: what this test's paid orders were priced with, and nothing of the cancelled one ----
    after_online = online_rows(await report(http, hq, channel="online", store=ONLINE_STORE))
    expected_uses: dict[str, Counter] = defaultdict(Counter)
    for o in orders:
        for a in o["pricing"]["applied"]:
            expected_uses[a["rule_id"]]["uses"] += 1
            expected_uses[a["rule_id"]]["discount_fen"] += a["saving_fen"]
    assert expected_uses, "the online SKU should carry a promotion (R0027: dairy 10% off)"
    for rule, want in expected_uses.items():
        was = before_online.get(rule, {"uses": 0, "discount_fen": 0})
        assert after_online[rule]["uses"] - was["uses"] == want["uses"]
        assert after_online[rule]["discount_fen"] - was["discount_fen"] == want["discount_fen"]
    after_baskets = {(b["channel"], b["store_id"]): b for b in (await report(http, hq))["baskets"]}
    key = ("online", ONLINE_STORE)
    was = before_baskets.get(key, {"baskets": 0, "sales_fen": 0})
    goods = sum(o["pricing"]["subtotal_fen"] - o["pricing"]["discount_fen"] for o in orders)
    assert after_baskets[key]["baskets"] - was["baskets"] == 2
    assert after_baskets[key]["sales_fen"] - was["sales_fen"] == goods

    # ---- the report's edges ----
    assert (await http.get("/operator/reports/promotions", params={"from": "x", "to": "y"},
                           headers=hq)).status_code == 422
    r = await http.get("/operator/reports/promotions", headers=manager,
                       params={"from": "2026-01-01", "to": "2026-01-02", "store": STORE})
    assert r.status_code == 403
    coupons = answer["coupons"]
    exists = await services.cloud.db.fetchval("select to_regclass('coupons') is not null")
    assert coupons["available"] is bool(exists)


async def _members_of(http, op, segment: str) -> set[str]:
    found: set[str] = set()
    after = ""
    while True:
        r = await http.get("/operator/segments", params={"segment": segment, "after": after, "limit": 200},
                           headers=op)
        assert r.status_code == 200, r.text
        page = r.json()
        found |= {m["member_id"] for m in page["members"]}
        assert all("*" in (m["phone"] or "*") for m in page["members"])
        if not page["next_after"]:
            return found
        after = page["next_after"]


async def test_a_sale_naming_a_rule_twice_is_not_believed(world, stack):
    """The attack: a store inflates a rule's figures by naming it twice in one sale. The frame is refused (dead
    letter with the reason), nothing of it is recorded, and the store's next sale still goes through."""
    services, _ = world
    db = services.cloud.db
    bad_id, next_id = f"seg-bad-{uuid.uuid4().hex[:8]}", f"seg-ok-{uuid.uuid4().hex[:8]}"
    async with StoreLink(stack, STORE) as link:
        def sale(sale_id: str) -> SaleCommitted:
            return SaleCommitted(**link.next_envelope(), sale_id=sale_id, lane="1",
                                 lines=(SaleLine(sku=FRUIT, quantity=Quantity.pieces(1), amount_fen=100),),
                                 total_fen=100, payments=(Payment(method="cash", amount_fen=100, reference=""),),
                                 member_id=None, offline=False, promotions=(RuleUse(rule_id="R0009", saving_fen=1),))
        bad = sale(bad_id)
        wire = {**to_wire(bad), "kind": bad.KIND, "schema_version": bad.SCHEMA_VERSION}
        wire["promotions"] = wire["promotions"] * 2  # the same rule twice
        await link.publish_raw(bad.KIND, codec.pack(wire))
        await link.publish(sale(next_id))

    async def settled():
        return await db.fetchval("select count(*) from till_sales where sale_id = $1", next_id) == 1
    assert await eventually(settled, timeout_s=20), "the store's next sale was held up"
    assert await db.fetchval("select count(*) from till_sales where sale_id = $1", bad_id) == 0
    assert await db.fetchval("select count(*) from promotion_baskets where ref = $1", bad_id) == 0
    reasons = [r["reason"] for r in await db.fetch("select reason from dead_letters where store_id = $1", STORE)]
    assert any("promotion is named twice" in reason for reason in reasons), reasons
