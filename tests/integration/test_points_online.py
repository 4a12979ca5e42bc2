"""Points online (issue 17.5) through the real stack: points pay part of an order and another method the rest; the
points come back once when the order is cancelled or the other method is refused; a replayed pay redeems once;
points exchanged for a coupon (and given back when the coupon cannot be issued). Each abuse is the test: paying
past the balance, past the share, replaying, someone else's order or account."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import pytest_asyncio

from actors.member_ledger import GrantPoints
from cloud.services.points_exchange import EXCHANGE_OFFERS, CouponIssueFailed
from protocol.messages import EscrowGranted, OrderCancelled, StockMoved
from tests.integration.harness import (
    StoreLink,
    customer,
    eventually,
    operator_headers,
    pay_in_wallet,
    running_cloud,
    this_clouds,
    top_up,
)

pytestmark = pytest.mark.integration
CN = timezone(timedelta(hours=8))
STORE = "S004"
OP: dict[str, str] = {}
PAID: list[str] = []  # orders this module paid: told to the store, drained at the end


def key() -> dict:
    return {"Idempotency-Key": uuid.uuid4().hex}


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"pts{uuid.uuid4().hex[:6]}-") as (services, url):
        OP.update(await operator_headers(services))
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield services, http
        if PAID:  # the store's copies of our paid (then cancelled) orders: taken off its stream, not left for a box
            async with StoreLink(stack, STORE) as store:
                last = PAID[-1]
                await store.commands(want=500, timeout_s=10, until=lambda m: isinstance(m, OrderCancelled)
                                     and m.order_id == last)


@pytest_asyncio.fixture(scope="module")
async def sku(cloud, stack):
    services, http = cloud
    products = (await http.get("/products")).json()["products"]
    piece = [p for p in products if p["unit"] == "piece" and "online" in p["channels"]][11]
    async with StoreLink(stack, STORE) as store:
        await store.publish(StockMoved(**store.next_envelope(), sku=piece["sku"], delta=60, reason="receiving",
                                       shrinkage_reason="", on_hand_after=60, reference=""))
        await store.publish(EscrowGranted(**store.next_envelope(), sku=piece["sku"], qty=50, escrow_after=50))

    async def granted():
        stock = (await http.get(f"/stores/{STORE}/stock")).json()["stock"]
        return any(r["sku"] == piece["sku"] and r["escrow"] >= 50 for r in stock)
    assert await eventually(granted)
    return piece


async def order_for(http, member, sku: str, qty: int = 4) -> dict:
    slot = (datetime.now(CN) + timedelta(days=2)).replace(hour=11, minute=0, second=0, microsecond=0).isoformat()
    r = await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": slot,
                                         "items": [{"sku": sku, "qty": qty}]}, headers={**key(), **member.headers})
    assert r.status_code == 201, r.text
    return r.json()


async def member_view(http, member) -> dict:
    return (await http.get(f"/members/{member.member_id}", headers=member.headers)).json()


async def with_points(services, member, points: int) -> None:
    """Setup: the member has earned `points` (as spending would give them)."""
    r = await services.cloud.actors.member_ledger.send(GrantPoints(id=f"setup:{uuid.uuid4().hex}",
                                                                   member=member.member_id, points=points, why="setup"))
    assert r.succeeded


async def our_violations(http, members) -> list[str]:
    found = this_clouds((await http.get("/audit", headers=OP)).json()["violations"])
    return [v for v in found if any(m.member_id in v for m in members)]


async def test_points_pay_part_of_an_order_stored_value_the_rest_and_a_replay_redeems_once(cloud, sku):
    services, http = cloud
    member = await customer(services, http)
    await with_points(services, member, 5_000)
    await top_up(services, http, member, 100_000)
    order = await order_for(http, member, sku["sku"])
    total, points = order["total_fen"], order["total_fen"] // 4  # a quarter of the order in points
    pay = {"method": "stored_value", "points": points}
    paid = await http.post(f"/orders/{order['order_id']}/pay", json=pay, headers=member.headers)
    assert paid.status_code == 200, paid.text
    body = paid.json()
    assert body["status"] == "paid"
    assert body["points_payment"]["points"] == points and body["points_payment"]["value_fen"] == points
    assert body["points_payment"]["state"] == "redeemed"
    assert body["payment"]["amount_fen"] == total - points  # the two parts add up to the total
    PAID.append(order["order_id"])
    view = await member_view(http, member)
    assert view["stored_value_fen"] == 100_000 - (total - points)
    earned = (total - points) // 100  # stored value earns 1 point per yuan; the points part earns none
    assert view["points"] == 5_000 - points + earned
    again = await http.post(f"/orders/{order['order_id']}/pay", json=pay, headers=member.headers)  # a replay
    assert again.status_code == 200 and again.json()["payment"]["movement_id"] == body["payment"]["movement_id"]
    assert (await member_view(http, member))["points"] == 5_000 - points + earned  # redeemed once
    shown = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
    assert shown["points_payment"]["points"] == points and shown["payment"]["amount_fen"] == total - points
    # cancelled after it was paid: the money and the points both come back, once
    cancelled = await http.post(f"/orders/{order['order_id']}/cancel", headers=member.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    view = await member_view(http, member)
    assert view["stored_value_fen"] == 100_000
    assert view["points"] == 5_000 + earned  # (points earned on the rest stay: as for any cancelled stored-value order)
    await services.orders.points.sweep()  # the sweeper finds nothing more to give
    await services.orders.points.give_back(order["order_id"])
    assert (await member_view(http, member))["points"] == 5_000 + earned
    assert await our_violations(http, [member]) == []


async def test_cancel_of_an_unpaid_order_gives_the_points_back_once(cloud, sku):
    services, http = cloud
    member = await customer(services, http)
    await with_points(services, member, 3_000)
    order = await order_for(http, member, sku["sku"], qty=2)
    points = order["total_fen"] // 2  # the most allowed
    r = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "wallet_sim", "points": points},
                        headers=member.headers)
    assert r.status_code == 202, r.text  # the wallet part is to be paid in the wallet app
    assert r.json()["payment"]["amount_fen"] == order["total_fen"] - points
    assert (await member_view(http, member))["points"] == 3_000 - points
    other = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "wallet_sim", "points": points - 1},
                            headers=member.headers)  # other points while the first are in: refused, nothing moves
    assert other.status_code == 409 and "already being paid with" in other.json()["detail"]
    assert (await member_view(http, member))["points"] == 3_000 - points
    for _ in range(2):  # cancelled, and cancelled again
        c = await http.post(f"/orders/{order['order_id']}/cancel", headers=member.headers)
        assert c.status_code == 200 and c.json()["status"] == "cancelled"
    await services.orders.points.sweep()
    assert (await member_view(http, member))["points"] == 3_000  # back once
    shown = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
    assert shown["points_payment"]["state"] == "returned"
    assert await our_violations(http, [member]) == []


async def test_points_beyond_the_balance_or_the_share_are_refused_and_nothing_moves(cloud, sku):
    services, http = cloud
    member = await customer(services, http)
    await with_points(services, member, 100)
    await top_up(services, http, member, 50_000)
    order = await order_for(http, member, sku["sku"], qty=2)
    url = f"/orders/{order['order_id']}/pay"
    short = await http.post(url, json={"method": "stored_value", "points": 101}, headers=member.headers)
    assert short.status_code == 409 and short.headers["content-type"].startswith("application/problem+json")
    assert "insufficient points" in short.json()["detail"] and "has 100" in short.json()["detail"]
    over = await http.post(url, json={"method": "stored_value", "points": order["total_fen"] // 2 + 1},
                           headers=member.headers)
    assert over.status_code == 422 and "50%" in over.json()["detail"]
    view = await member_view(http, member)
    assert view["points"] == 100 and view["stored_value_fen"] == 50_000
    assert (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()["status"] == "reserved"
    # then paid with the points the member has: it works (a refused try leaves nothing in the way)
    ok = await http.post(url, json={"method": "stored_value", "points": 100}, headers=member.headers)
    assert ok.status_code == 200 and ok.json()["payment"]["amount_fen"] == order["total_fen"] - 100
    PAID.append(order["order_id"])
    assert (await member_view(http, member))["points"] == (order["total_fen"] - 100) // 100
    # someone else cannot pay with their points towards this order, nor see it
    thief = await customer(services, http)
    await with_points(services, thief, 1_000)
    stolen = await http.post(url, json={"method": "stored_value", "points": 100}, headers=thief.headers)
    assert stolen.status_code == 404
    assert (await http.post(f"/orders/{order['order_id']}/cancel", headers=member.headers)).status_code == 200


async def test_the_rest_refused_gives_the_points_back_at_once(cloud, sku):
    services, http = cloud
    member = await customer(services, http)
    await with_points(services, member, 2_000)
    order = await order_for(http, member, sku["sku"], qty=2)  # no stored value: the rest cannot be paid by it
    r = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value", "points": 500},
                        headers=member.headers)
    assert r.status_code == 409 and "insufficient stored value" in r.json()["detail"]
    assert (await member_view(http, member))["points"] == 2_000
    # paid afterwards with points and the wallet: the second attempt redeems under its own id, once
    r = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "wallet_sim", "points": 500},
                        headers=member.headers)
    assert r.status_code == 202, r.text
    assert r.json()["payment"]["amount_fen"] == order["total_fen"] - 500
    await pay_in_wallet(services, r.json()["payment"]["pay"])

    async def paid():
        got = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
        return got if got["status"] == "paid" else None
    got = await eventually(paid, timeout_s=20)
    assert got and got["points_payment"]["ledger_id"].endswith("#2")
    PAID.append(order["order_id"])
    earned = (order["total_fen"] - 500) // 100  # on what the wallet paid
    assert (await member_view(http, member))["points"] == 1_500 + earned
    assert (await http.post(f"/orders/{order['order_id']}/cancel", headers=member.headers)).status_code == 200

    async def refunded():
        return (await member_view(http, member))["points"] == 2_000 + earned
    assert await eventually(refunded)
    assert await our_violations(http, [member]) == []


async def test_points_exchanged_for_a_coupon_once_per_key_and_given_back_when_the_issue_fails(cloud):
    services, http = cloud
    member = await customer(services, http)
    offer_id, offer = "points-10y", EXCHANGE_OFFERS["points-10y"]
    await with_points(services, member, offer["points"] + 50)
    offers = (await http.get("/points/offers")).json()["offers"]
    assert any(o["offer_id"] == offer_id and o["points"] == offer["points"] for o in offers)
    url = f"/members/{member.member_id}/points/exchange"
    headers = {**key(), **member.headers}
    made = await http.post(url, json={"offer_id": offer_id}, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["state"] == "issued" and made.json()["coupon"]["coupon_id"] == made.json()["exchange_id"]
    again = await http.post(url, json={"offer_id": offer_id}, headers=headers)  # the retry: the same exchange
    assert again.status_code == 201 and again.json()["exchange_id"] == made.json()["exchange_id"]
    reused = await http.post(url, json={"offer_id": "points-5y"}, headers=headers)
    assert reused.status_code == 409 and "Idempotency-Key" in reused.json()["detail"]
    assert (await member_view(http, member))["points"] == 50  # redeemed once
    short = await http.post(url, json={"offer_id": offer_id}, headers={**key(), **member.headers})
    assert short.status_code == 409 and "insufficient points" in short.json()["detail"]
    unknown = await http.post(url, json={"offer_id": "free-lunch"}, headers={**key(), **member.headers})
    assert unknown.status_code == 422 and "free-lunch" in unknown.json()["detail"]
    other = await customer(services, http)  # another member's account answers as an unknown one
    assert (await http.post(url, json={"offer_id": offer_id}, headers={**key(), **other.headers})).status_code == 404
    # the coupons part cannot issue: the points come back, once
    await with_points(services, member, offer["points"])

    async def closed(member_id, definition_id, why, issue_id):
        raise CouponIssueFailed(f"definition {definition_id} is closed")
    seam, services.points_exchange.issue_coupon = services.points_exchange.issue_coupon, closed
    try:
        failed_key = {**key(), **member.headers}
        failed = await http.post(url, json={"offer_id": offer_id}, headers=failed_key)
        assert failed.status_code == 503 and "given back" in failed.json()["detail"]
        assert (await http.post(url, json={"offer_id": offer_id}, headers=failed_key)).status_code == 503
    finally:
        services.points_exchange.issue_coupon = seam
    assert (await member_view(http, member))["points"] == 50 + offer["points"]
    listed = (await http.get(f"/members/{member.member_id}/points/exchanges", headers=member.headers)).json()
    assert sorted(x["state"] for x in listed["exchanges"]) == ["issued", "refused", "returned"]
    assert await our_violations(http, [member]) == []


async def test_an_order_that_expires_unpaid_gives_its_points_back_once(cloud, sku):
    services, http = cloud
    member = await customer(services, http)
    await with_points(services, member, 1_000)
    order = await order_for(http, member, sku["sku"], qty=1)
    points = min(order["total_fen"] // 2, 1_000)
    r = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "wallet_sim", "points": points},
                        headers=member.headers)
    assert r.status_code == 202, r.text  # and the customer never pays the wallet part
    assert (await member_view(http, member))["points"] == 1_000 - points
    row = await services.cloud.db.fetchrow("select * from orders where order_id = $1", order["order_id"])
    await services.orders.expire_one(row)  # what the expiry sweep does when its time is up
    await services.orders.expire_one(row)
    await services.orders.points.sweep()
    assert (await member_view(http, member))["points"] == 1_000
    shown = (await http.get(f"/orders/{order['order_id']}", headers=member.headers)).json()
    assert shown["status"] == "expired" and shown["points_payment"]["state"] == "returned"
