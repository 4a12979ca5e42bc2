"""Coupons as issued instruments, online, through the real stack (cloud, Ray, PostgreSQL, NATS, the simulated wallet
provider): HQ defines and issues them, members hold them in their wallets, orders reserve, redeem and release them.
Each abuse case is written as the attack: a replayed coupon (after redemption, while reserved, two orders racing
through two API processes), another member's coupon, a coupon outside its channel or window, a garbled code, a rule
id in place of a code. The store is S004 (as test_payments) with two onion SKUs no other module sells; definitions
carry this run's suffix; every check looks only at coupons and orders this module made."""
from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import pytest_asyncio

from protocol.coupons import new_code
from protocol.messages import EscrowGranted, Payment, Quantity, SaleCommitted, SaleLine, StockMoved
from tests.integration.harness import (
    StoreLink,
    customer,
    eventually,
    operator_headers,
    pay_by_wallet,
    running_cloud,
)

pytestmark = pytest.mark.integration
CN = timezone(timedelta(hours=8))
STORE, SKU, OTHER_SKU = "S004", "VEG-ONION-0054", "VEG-ONION-0055"
RULE = "R0022"  # the default book's "10 yuan off vegetables" coupon rule
RUN = uuid.uuid4().hex[:6]
OP: dict[str, str] = {}
TTL_MS = 8_000  # unpaid orders expire quickly here: the release on expiry is seen within the test


def key() -> dict:
    return {"Idempotency-Key": uuid.uuid4().hex}


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"cpn{RUN}-", reservation_ttl_ms=TTL_MS) as (services, url):
        OP.update(await operator_headers(services))
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            async with StoreLink(stack, STORE) as store:  # onions on hand, a share of them granted online
                for sku in (SKU, OTHER_SKU):
                    await store.publish(StockMoved(**store.next_envelope(), sku=sku, delta=500_000, reason="receiving",
                                                   shrinkage_reason="", on_hand_after=500_000, reference=""))
                    await store.publish(EscrowGranted(**store.next_envelope(), sku=sku, qty=400_000,
                                                      escrow_after=400_000))

            async def granted():
                r = await http.get(f"/stores/{STORE}/stock")
                if r.status_code != 200:  # actors busy at the start: asked again
                    print("stock:", r.status_code, r.text[:300])
                    return False
                stock = r.json()["stock"]
                return sum(1 for r in stock if r["sku"] in (SKU, OTHER_SKU) and r["escrow"] >= 400_000) == 2
            assert await eventually(granted)
            yield services, http, url


async def define(http, suffix: str, **fields) -> dict:
    body = {"definition_id": f"{suffix}-{RUN}", "rule_id": RULE, "name": "10 yuan off vegetables",
            "valid_days": 30, "channels": ["online"], **fields}
    r = await http.post("/operator/coupon-definitions", json=body, headers=OP)
    assert r.status_code == 201, r.text
    return r.json()


async def issue(http, definition_id: str, members: list[str], why: str = "campaign") -> dict:
    r = await http.post(f"/operator/coupon-definitions/{definition_id}/issue", headers=OP,
                        json={"batch_id": uuid.uuid4().hex, "member_ids": members, "why": why})
    assert r.status_code == 200, r.text
    return r.json()


async def coupon_for(http, member, suffix: str, **fields) -> str:
    d = await define(http, suffix, **fields)
    issued = (await issue(http, d["definition_id"], [member.member_id]))["issued"]
    assert len(issued) == 1
    return issued[0]["code"]


async def wallet(http, member) -> dict[str, dict]:
    r = await http.get(f"/members/{member.member_id}/coupons", headers=member.headers)
    assert r.status_code == 200, r.text
    return {c["code"]: c for c in r.json()["coupons"]}


def order_body(coupons: list[str], sku: str = SKU, grams: int = 2_000) -> dict:
    slot = (datetime.now(CN) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0).isoformat()
    return {"fulfilment": "pickup", "store_id": STORE, "slot_start": slot, "items": [{"sku": sku, "qty": grams}],
            "coupons": coupons}


async def order(http, member, coupons: list[str], **kw) -> httpx.Response:
    return await http.post("/orders", json=order_body(coupons, **kw), headers={**key(), **member.headers})


def refused(r: httpx.Response, status: int, code: str, why: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert code in body["detail"] and why in body["detail"], body


# ---- definitions and issuing -------------------------------------------------------------------------------------
async def test_definitions_are_validated_naming_the_field_and_only_hq_may_define(cloud):
    services, http, _ = cloud
    base = {"definition_id": f"bad-{RUN}", "rule_id": RULE, "name": "x", "valid_days": 7}
    for change, field in [({"valid_days": 0}, "valid_until_ms or valid_days"), ({"channels": ["web"]}, "channels"),
                          ({"rule_id": "R0001"}, "rule_id"), ({"rule_id": "NOPE"}, "rule_id"),
                          ({"stores": ["S999"]}, "stores"), ({"per_member_limit": 0}, "per_member_limit"),
                          ({"points_price": -5}, "points_price"), ({"points_price": "600"}, "points_price")]:
        r = await http.post("/operator/coupon-definitions", json={**base, **change}, headers=OP)
        assert r.status_code == 422 and r.json()["detail"].startswith(field), (change, r.text)
    viewer = await operator_headers(services, "viewer")
    assert (await http.post("/operator/coupon-definitions", json=base, headers=viewer)).status_code == 403
    assert (await http.post("/operator/coupon-definitions", json=base)).status_code == 401
    made = await define(http, "same")
    again = await http.post("/operator/coupon-definitions", json={k: made[k] for k in (
        "definition_id", "rule_id", "name", "valid_days", "channels")}, headers=OP)
    assert again.status_code == 200  # the same definition again: idempotent
    other = await http.post("/operator/coupon-definitions", json={**base, "definition_id": made["definition_id"]},
                            headers=OP)
    assert other.status_code == 409
    listed = (await http.get("/operator/coupon-definitions", headers=viewer)).json()["definitions"]
    assert made["definition_id"] in [d["definition_id"] for d in listed]
    audit = (await http.get("/operator/audit", headers=OP)).json()["entries"]
    assert any(e["action"] == "coupons.define" and made["definition_id"] in e["target"] for e in audit)


async def test_a_campaign_honours_the_limits_answers_each_refusal_and_a_retry_issues_nothing_more(cloud):
    services, http, _ = cloud
    a, b, c = [await customer(services, http) for _ in range(3)]
    d = await define(http, "camp", per_member_limit=1, total_limit=2)
    batch = {"batch_id": f"b1-{RUN}", "member_ids": [a.member_id, b.member_id, "nobody", a.member_id]}
    r = await http.post(f"/operator/coupon-definitions/{d['definition_id']}/issue", json=batch, headers=OP)
    assert r.status_code == 200, r.text
    first = r.json()
    assert sorted(i["member_id"] for i in first["issued"]) == sorted([a.member_id, b.member_id])
    assert first["refused"] == [{"member_id": "nobody", "reason": "no such member"}]
    retry = await http.post(f"/operator/coupon-definitions/{d['definition_id']}/issue", json=batch, headers=OP)
    assert retry.json() == first  # the same batch: the same answer, nothing issued twice
    changed = await http.post(f"/operator/coupon-definitions/{d['definition_id']}/issue", headers=OP,
                              json={**batch, "member_ids": [c.member_id]})
    assert changed.status_code == 409  # another body under the batch id
    second = await issue(http, d["definition_id"], [a.member_id, c.member_id])
    assert second["issued"] == []
    reasons = {x["member_id"]: x["reason"] for x in second["refused"]}
    assert "per-member limit" in reasons[a.member_id] and "total limit of 2" in reasons[c.member_id]
    assert len(await wallet(http, a)) == 1 and await wallet(http, c) == {}
    listed = {x["definition_id"]: x for x in (await http.get("/operator/coupon-definitions", headers=OP)).json()[
        "definitions"]}
    assert listed[d["definition_id"]]["issued_count"] == 2


async def test_a_wallet_is_its_member_s_own(cloud):
    services, http, _ = cloud
    a, b = await customer(services, http), await customer(services, http)
    code = await coupon_for(http, a, "own")
    mine = await wallet(http, a)
    assert mine[code]["status"] == "issued" and mine[code]["value"]["amount_off_fen"] == 1000
    assert mine[code]["name"] == "10 yuan off vegetables" and mine[code]["channels"] == ["online"]
    r = await http.get(f"/members/{a.member_id}/coupons", headers=b.headers)
    assert r.status_code == 404 and code not in r.text


# ---- redeemed exactly once ---------------------------------------------------------------------------------------
async def test_reserved_with_the_order_released_on_cancel_redeemed_on_pay_then_never_again(cloud):
    services, http, _ = cloud
    member = await customer(services, http)
    code = await coupon_for(http, member, "life")
    r = await order(http, member, [code])
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["coupons"] == [code]
    assert [a["saving_fen"] for a in first["pricing"]["applied"] if a["rule_id"] == RULE] == [1000]
    assert (await wallet(http, member))[code]["status"] == "reserved"
    refused(await order(http, member, [code]), 409, code, "already reserved")  # replayed while reserved
    cancel = await http.post(f"/orders/{first['order_id']}/cancel", headers=member.headers)
    assert cancel.status_code == 200, cancel.text
    assert (await wallet(http, member))[code]["status"] == "issued"  # back in the wallet
    r = await order(http, member, [code])
    assert r.status_code == 201, r.text
    paid = await pay_by_wallet(services, http, member, r.json()["order_id"])
    assert paid["total_fen"] == r.json()["total_fen"]

    async def redeemed():
        return (await wallet(http, member))[code]["status"] == "redeemed"
    assert await eventually(redeemed)
    assert (await wallet(http, member))[code]["redeemed_by"] == r.json()["order_id"]
    refused(await order(http, member, [code]), 409, code, "already redeemed")  # replayed after redemption


async def test_an_unpaid_order_that_expires_gives_its_coupon_back(cloud):
    services, http, _ = cloud
    member = await customer(services, http)
    code = await coupon_for(http, member, "exp")
    r = await order(http, member, [code], sku=OTHER_SKU)
    assert r.status_code == 201, r.text

    async def released():
        body = (await http.get(f"/orders/{r.json()['order_id']}", headers=member.headers)).json()
        return body["status"] == "expired" and (await wallet(http, member))[code]["status"] == "issued"
    assert await eventually(released, timeout_s=TTL_MS / 1000 + 15)


async def test_two_api_processes_racing_one_code_exactly_one_order_holds_it(cloud, stack):
    services, http, _ = cloud
    member = await customer(services, http)
    code = await coupon_for(http, member, "race")
    async with running_cloud(stack, prefix=services.cloud.shards.prefix) as (_, other_url):
        async with httpx.AsyncClient(base_url=other_url, timeout=30) as other:
            results = await asyncio.gather(*(client.post("/orders", json=order_body([code]),
                                                         headers={**key(), **member.headers})
                                             for client in [http, other, http, other]))
    won = [r for r in results if r.status_code == 201]
    assert len(won) == 1, [r.text for r in results]
    for r in results:
        if r.status_code != 201:
            refused(r, 409, code, "already reserved")
    holder = await services.cloud.db.fetchval("select reserved_for from coupons where code = $1", code)
    assert holder == won[0].json()["order_id"]


# ---- the abuse cases ---------------------------------------------------------------------------------------------
async def test_another_member_s_coupon_answers_as_an_unknown_one(cloud):
    services, http, _ = cloud
    owner, thief = await customer(services, http), await customer(services, http)
    code = await coupon_for(http, owner, "steal")
    refused(await order(http, thief, [code]), 409, code, "no such coupon in your wallet")
    assert (await wallet(http, owner))[code]["status"] == "issued"


async def test_a_coupon_for_the_till_only_is_refused_online(cloud):
    services, http, _ = cloud
    member = await customer(services, http)
    code = await coupon_for(http, member, "tillonly", channels=["offline"])
    refused(await order(http, member, [code]), 409, code, "not valid online (valid at the till only)")


async def test_a_coupon_outside_its_window_is_refused(cloud):
    services, http, _ = cloud
    member = await customer(services, http)
    now = int(time.time() * 1000)
    early = await coupon_for(http, member, "early", valid_from_ms=now + 86_400_000, valid_days=0,
                             valid_until_ms=now + 2 * 86_400_000)
    refused(await order(http, member, [early]), 409, early, "not valid yet")
    late = await coupon_for(http, member, "late", valid_days=0, valid_until_ms=now + 1_500)

    async def expired():
        return (await wallet(http, member))[late]["status"] == "expired"
    assert await eventually(expired)
    refused(await order(http, member, [late]), 409, late, "expired")
    ended = await http.post(f"/operator/coupon-definitions/late-{RUN}/issue", headers=OP,
                            json={"batch_id": uuid.uuid4().hex, "member_ids": [member.member_id]})
    assert "ended" in ended.json()["refused"][0]["reason"]  # an ended definition issues nothing


async def test_garbled_unknown_and_rule_id_codes_are_refused_naming_them(cloud):
    services, http, _ = cloud
    member = await customer(services, http)
    code = await coupon_for(http, member, "garble")
    typo = code[:5] + ("0" if code[5] != "0" else "1") + code[6:]
    refused(await order(http, member, [typo]), 422, typo, "check character")
    refused(await order(http, member, [RULE]), 422, RULE, "is a promotion rule id, not a coupon code")
    unknown = new_code(secrets.randbits)
    refused(await order(http, member, [unknown]), 409, unknown, "no such coupon in your wallet")
    assert (await wallet(http, member))[code]["status"] == "issued"  # nothing was held by the refused orders


async def test_a_coupon_that_does_not_apply_is_refused_before_anything_is_held(cloud):
    services, http, _ = cloud
    member = await customer(services, http)
    code = await coupon_for(http, member, "minspend", rule_id="R0025")  # 5% off from 50 yuan of anything
    refused(await order(http, member, [code], grams=1_000), 409, code,
            "does not apply to this order (it needs 5000 fen of eligible items)")
    assert (await wallet(http, member))[code]["status"] == "issued"


async def test_the_points_exchange_seam_issues_once_per_exchange_and_says_why_it_cannot(cloud):
    from cloud.services.points_exchange import CouponIssueFailed
    services, http, _ = cloud
    member = await customer(services, http)
    d = await define(http, "points", per_member_limit=1, points_price=700)
    assert d["points_price"] == 700

    async def offered(headers: dict) -> bool:
        r = await http.get("/points/offers", headers=headers)
        assert r.status_code == 200, r.text
        return d["definition_id"] in {o["offer_id"] for o in r.json()["offers"]}
    assert await offered(member.headers) and await offered({})
    first = await services.coupons.issue_for_points(member.member_id, d["definition_id"], "points exchange x1", "x1")
    again = await services.coupons.issue_for_points(member.member_id, d["definition_id"], "points exchange x1", "x1")
    assert first == again and (await wallet(http, member))[first["code"]]["why"] == "points"
    # the member holds their one: the shop no longer offers it to them (others still see it)
    assert not await offered(member.headers) and await offered({})
    assert (await http.get("/points/offers", headers={"Authorization": "Bearer forged"})).status_code == 401
    with pytest.raises(CouponIssueFailed, match="per-member limit"):  # a second exchange: over the definition's limit
        await services.coupons.issue_for_points(member.member_id, d["definition_id"], "points exchange x2", "x2")
    with pytest.raises(CouponIssueFailed, match="no coupon definition"):
        await services.coupons.issue_for_points(member.member_id, "nope", "points exchange x3", "x3")


# ---- issued by registration and by a till sale -------------------------------------------------------------------
async def test_a_new_member_gets_the_registration_coupon(cloud):
    services, http, _ = cloud
    await define(http, "welcome", on_registration=True, total_limit=1)  # one only: later modules' members get none
    member = await customer(services, http)
    got = [c for c in (await wallet(http, member)).values() if c["definition_id"] == f"welcome-{RUN}"]
    assert len(got) == 1 and got[0]["why"] == "registration"


async def test_the_till_spend_trigger_issues_an_online_coupon_once_which_the_member_uses_online(cloud, stack):
    services, http, _ = cloud
    member = await customer(services, http)
    d = await define(http, "spend50", trigger={"kind": "till_spend", "min_fen": 5000, "channel_issued": "online"},
                     total_limit=5, stores=[STORE])
    async with StoreLink(stack, STORE) as link:
        def sale(total: int) -> SaleCommitted:
            return SaleCommitted(**link.next_envelope(), sale_id=f"C{uuid.uuid4().hex[:20]}", lane="1",
                                 lines=(SaleLine(sku=SKU, quantity=Quantity.grams(1000), amount_fen=total),),
                                 total_fen=total, member_id=member.member_id, offline=False,
                                 payments=(Payment(method="cash", amount_fen=total, reference=""),))
        small, big = sale(4_999), sale(5_000)
        duplicates = services.bridge.stats["duplicates"]
        await link.publish(small)
        await link.publish(big)
        await link.publish(big, msg_id=f"again-{big.event_id}")  # redelivered past the stream's dedupe

        async def issued():
            got = [c for c in (await wallet(http, member)).values() if c["definition_id"] == d["definition_id"]]
            return got if got else None
        got = await eventually(issued)

        async def redelivered():
            return services.bridge.stats["duplicates"] > duplicates
        assert await eventually(redelivered)  # the redelivery came (and must have issued nothing)
    got = [c for c in (await wallet(http, member)).values() if c["definition_id"] == d["definition_id"]]
    assert len(got) == 1 and got[0]["why"] == "till_spend" and got[0]["channels"] == ["online"]
    r = await order(http, member, [got[0]["code"]])
    assert r.status_code == 201, r.text
    assert any(a["rule_id"] == RULE and a["saving_fen"] == 1000 for a in r.json()["pricing"]["applied"])


# ---- the demo hook -----------------------------------------------------------------------------------------------
async def test_the_demo_s_coupon_customers_and_the_summary_agree(cloud, stack):
    """The demo's coupon customers run for a few seconds against this cloud (its S004 onions): HQ defines the till
    trigger and a campaign, customers order with wallet coupons, pay or cancel; a member's till sale of 50 yuan
    issues the trigger's coupon. What they counted agrees with what the summary reads from the database."""
    import random
    from collections import Counter

    from loadtest.http import LeanClients
    from simulators.coupons_demo import CouponCustomers, summary
    services, http, url = cloud
    since = int(time.time() * 1000) - 1
    counts: Counter = Counter()
    stop = asyncio.Event()
    run = f"t{RUN}"
    demo = CouponCustomers(url, OP, services.identity.sms.inbox, services.payments.wallet.sim.url,
                           random.Random(5), counts, stop, stores=[STORE], run_id=run)
    async with LeanClients(timeout=30) as lean:
        task = asyncio.create_task(demo.run(lean))

        async def redeemed_some():
            return counts["coupons_redeemed_online"] >= 2
        assert await eventually(redeemed_some, timeout_s=60), (counts, demo.refusals)
        member = next(iter(demo.sessions.values()))
        async with StoreLink(stack, STORE) as link:  # the member spends 50 yuan at the till
            await link.publish(SaleCommitted(
                **link.next_envelope(), sale_id=f"D{uuid.uuid4().hex[:20]}", lane="1",
                lines=(SaleLine(sku=SKU, quantity=Quantity.grams(4000), amount_fen=5_200),), total_fen=5_200,
                member_id=member.member_id, offline=False,
                payments=(Payment(method="cash", amount_fen=5_200, reference=""),)))

        async def triggered():
            return (await summary(services.cloud.db, since))["coupons_issued"].get("till_spend", 0) >= 1
        assert await eventually(triggered)
        stop.set()
        await task
    async with services.cloud.db.acquire() as conn:
        mine = await conn.fetch("select * from coupons where definition_id like $1", f"demo-%-{run}")
        assert len(mine) == counts["coupons_issued_campaign"] + 1
        found = await summary(conn, since)
    assert found["coupons_issued"]["campaign"] >= counts["coupons_issued_campaign"] == 8
    assert found["coupons_redeemed"].get("online", 0) >= counts["coupons_redeemed_online"] >= 2
    assert found["coupons_released"] >= counts["coupons_released"]
    ours = {r["status"]: 0 for r in mine}
    for r in mine:
        ours[r["status"]] += 1
    assert ours.get("redeemed", 0) == counts["coupons_redeemed_online"]
    assert sum(r["releases"] for r in mine) == counts["coupons_released"]
    assert not [k for k in counts if k.startswith("coupons_refused:5")], demo.refusals
