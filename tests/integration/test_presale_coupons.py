"""Pre-sale orders take coupons (issue 17 item 1 with issue 16 item 7), through the real stack: an out-of-stock item
whose supply is due at the store (its restock alert, sent by hand as store S005 would, cleared again at the end) is
pre-sold
with the member's coupon, priced with it, the coupon reserved with the order, redeemed when it is paid and back in
the wallet when it is cancelled; an unpaid one that expires gives its coupon back; the abuse refusals are the same
as for any order (a replayed coupon, another member's, one outside its channel). Definitions carry this run's
suffix; the SKU is sold by no other module (orders ask for more than the store's online share of it, whatever other
modules left there); every paid pre-sale is cancelled before the module ends, so nothing waits for the supply."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import pytest_asyncio

from protocol.money import portion_fen
from protocol.restock_messages import RestockAlerted, RestockCleared
from tests.integration.harness import StoreLink, customer, eventually, operator_headers, pay_by_wallet, running_cloud

pytestmark = pytest.mark.integration
CN = timezone(timedelta(hours=8))
STORE, SKU = "S005", "PAC-SOY-0215"  # 49.79 yuan a piece, from a supplier: pre-sold when due
# (a pickup store must be one of the world's: the module's own store ids S032/S033 sell nothing online)
RULE = "R0025"  # the default book's "5% off from 50 yuan" coupon rule
RUN = uuid.uuid4().hex[:6]
OP: dict[str, str] = {}
TTL_MS = 8_000  # unpaid orders expire quickly here: the coupon's release on expiry is seen within the test
DAYS: list[int] = []  # how many days ahead the pre-sale's slot must be (from the cloud's offer)
QTY: list[int] = []  # more than the store's online share of the SKU: no store can reserve it now


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"psc{RUN}-", reservation_ttl_ms=TTL_MS) as (services, url):
        OP.update(await operator_headers(services))
        alert_id = services.cloud.ids.new()
        async with StoreLink(stack, STORE) as store:  # the store is short of it: supply is due (one unit short,
            # too little to ask another store for: no transfer is opened for other modules' boxes)
            await store.publish(RestockAlerted(**store.next_envelope(), alert_id=alert_id, sku=SKU, on_hand=1,
                                               owed=0, reorder_point=2, target=2, suggested_qty=1))

            async def recorded():
                return await services.cloud.db.fetchval("select 1 from restock_alerts where alert_id = $1", alert_id)
            assert await eventually(recorded, timeout_s=20), "the store's restock alert never reached the cloud"
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            r = await http.get(f"/stores/{STORE}/stock")
            assert r.status_code == 200, r.text
            QTY.append(sum(x["escrow"] for x in r.json()["stock"] if x["sku"] == SKU) + 2)
            yield services, http
        async with StoreLink(stack, STORE) as store:  # the alert closed again: no pre-sale of it after this module
            await store.publish(RestockCleared(**store.next_envelope(), alert_id=alert_id, sku=SKU, on_hand=2, owed=0))

            async def cleared():
                return await services.cloud.db.fetchval("select cleared_ms from restock_alerts where alert_id = $1",
                                                        alert_id)
            assert await eventually(cleared, timeout_s=20), "the module's restock alert was never cleared"


async def coupon(http, member, suffix: str, channels: tuple[str, ...] = ("online",)) -> str:
    definition = f"psc-{suffix}-{RUN}"
    r = await http.post("/operator/coupon-definitions", headers=OP, json={
        "definition_id": definition, "rule_id": RULE, "name": "5% off from 50 yuan", "valid_days": 30,
        "channels": list(channels)})
    assert r.status_code == 201, r.text
    r = await http.post(f"/operator/coupon-definitions/{definition}/issue", headers=OP,
                        json={"batch_id": uuid.uuid4().hex, "member_ids": [member.member_id]})
    assert r.status_code == 200, r.text
    return r.json()["issued"][0]["code"]


def _slot(days: int) -> str:
    return (datetime.now(CN) + timedelta(days=days)).replace(hour=10, minute=0, second=0, microsecond=0).isoformat()


async def presale(http, member, coupons: list[str]) -> httpx.Response:
    qty = QTY[0]
    if not DAYS:  # what the cloud offers for this item at this store: the slot must start on the due day or later
        r = await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": _slot(1),
                                             "items": [{"sku": SKU, "qty": qty}]},
                            headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
        assert r.status_code == 409 and r.json().get("presale_store") == STORE, r.text
        due = datetime.fromisoformat(r.json()["presale_available_from"]).astimezone(CN).date()
        DAYS.append(max((due - datetime.now(CN).date()).days, 1))
    return await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": _slot(DAYS[0]),
                                            "items": [{"sku": SKU, "qty": qty}], "presale": True, "coupons": coupons},
                           headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})


async def status_of(http, member, code: str) -> str:
    r = await http.get(f"/members/{member.member_id}/coupons", headers=member.headers)
    assert r.status_code == 200, r.text
    return next(c["status"] for c in r.json()["coupons"] if c["code"] == code)


async def cancel(http, member, order_id: str) -> dict:
    r = await http.post(f"/orders/{order_id}/cancel", json={"reason": "test"}, headers=member.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    return r.json()


def refused(r: httpx.Response, code: str, why: str) -> None:
    assert r.status_code in (409, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert code in r.json()["detail"] and why in r.json()["detail"], r.json()


async def test_a_presale_is_priced_with_its_coupon_reserved_redeemed_when_paid_and_given_back_on_cancel(cloud):
    services, http = cloud
    member = await customer(services, http)
    plain = await presale(http, member, [])
    assert plain.status_code == 201, plain.text
    await cancel(http, member, plain.json()["order_id"])  # unpaid: it only gave its slot back
    code = await coupon(http, member, "paid")

    placed = await presale(http, member, [code])
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["presale"]["store_id"] == STORE and order["coupons"] == [code]
    base = plain.json()["total_fen"]
    assert order["total_fen"] == base - portion_fen(base, 500) < base  # 5% off the order, one rounding
    assert RULE in str(order["pricing"])
    assert await status_of(http, member, code) == "reserved"

    other = await presale(http, member, [code])  # the same code while the first holds it
    refused(other, code, "already reserved")

    await pay_by_wallet(services, http, member, order["order_id"])

    async def redeemed():
        return await status_of(http, member, code) == "redeemed"
    assert await eventually(redeemed, timeout_s=15), "the paid pre-sale's coupon was never redeemed"
    refused(await presale(http, member, [code]), code, "already redeemed")  # replayed after it was used

    await cancel(http, member, order["order_id"])  # paid, its supply not here yet: refunded, the coupon back

    async def back():
        return await status_of(http, member, code) == "issued"
    assert await eventually(back, timeout_s=15), "the cancelled pre-sale's coupon never came back"


async def test_an_unpaid_presale_that_expires_gives_its_coupon_back(cloud):
    services, http = cloud
    member = await customer(services, http)
    code = await coupon(http, member, "expiry")
    placed = await presale(http, member, [code])
    assert placed.status_code == 201, placed.text
    assert await status_of(http, member, code) == "reserved"

    async def released():
        r = await http.get(f"/orders/{placed.json()['order_id']}", headers=member.headers)
        return r.json()["status"] == "expired" and await status_of(http, member, code) == "issued"
    assert await eventually(released, timeout_s=TTL_MS / 1000 + 20), "the expired pre-sale kept its coupon"


async def test_a_presale_refuses_another_members_coupon_and_one_not_valid_online_and_holds_nothing(cloud):
    services, http = cloud
    member, stranger = await customer(services, http), await customer(services, http)
    theirs = await coupon(http, stranger, "theirs")
    till_only = await coupon(http, member, "till", channels=("offline",))
    refused(await presale(http, member, [theirs]), theirs, "no such coupon in your wallet")
    refused(await presale(http, member, [till_only]), till_only, "not valid online")
    assert await status_of(http, stranger, theirs) == "issued"
    assert await status_of(http, member, till_only) == "issued"
    waiting = await services.cloud.db.fetchval(
        "select count(*) from presale_orders p join orders o using (order_id) where p.store_id = $1 "
        "and o.member_id = any($2::text[]) and o.status not in ('rejected', 'cancelled', 'expired')",
        STORE, [member.member_id, stranger.member_id])
    assert waiting == 0  # a refused pre-sale holds no slot and no coupon
