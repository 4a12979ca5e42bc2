"""Points online (issue 17.5) through the real stack: points pay part of an order and another method the rest; the
points come back once when the order is cancelled or the other method is refused; a replayed pay redeems once;
points buy a coupon HQ put in the points shop (a definition with a points price): into the wallet once per key,
usable in an order, refused before any points move at its limit, and given back once when the last one went to
someone else meanwhile. Each abuse is the test: paying past the balance, past the share, replaying, naming one's own
price, someone else's order or account, racing for the last coupon."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import pytest_asyncio

from actors.member_ledger import GrantPoints
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
RUN = uuid.uuid4().hex[:6]
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


async def define_offer(http, suffix: str, **fields) -> dict:
    """HQ puts a coupon in the points shop: a definition with a points price (5% off from 50 yuan, online)."""
    body = {"definition_id": f"pts-{suffix}-{RUN}", "rule_id": "R0025", "name": f"积分券 {suffix}",
            "valid_days": 30, "channels": ["online"], **fields}
    r = await http.post("/operator/coupon-definitions", json=body, headers=OP)
    assert r.status_code == 201, r.text
    return r.json()


async def wallet(http, member) -> dict[str, dict]:
    r = await http.get(f"/members/{member.member_id}/coupons", headers=member.headers)
    assert r.status_code == 200, r.text
    return {c["code"]: c for c in r.json()["coupons"]}


def exchange(http, member, offer_id: str, headers: dict | None = None, **extra):
    return http.post(f"/members/{member.member_id}/points/exchange", json={"offer_id": offer_id, **extra},
                     headers=headers or {**key(), **member.headers})


async def test_points_buy_a_coupon_hq_priced_once_per_key_into_the_wallet_and_it_pays_part_of_an_order(cloud, sku):
    services, http = cloud
    member = await customer(services, http)
    d = await define_offer(http, "shop", points_price=1_100, per_member_limit=2)
    assert d["points_price"] == 1_100
    free = await define_offer(http, "free")  # no points price: not in the shop
    await with_points(services, member, 1_100 + 50)
    offers = {o["offer_id"]: o for o in (await http.get("/points/offers")).json()["offers"]}
    assert offers[d["definition_id"]]["points"] == 1_100 and offers[d["definition_id"]]["worth_fen"] == 1_100
    assert offers[d["definition_id"]]["value"]["percent_off_bp"] == 500 and free["definition_id"] not in offers
    # the price is the definition's: a client that names its own is refused, and nothing is taken
    cheap = await exchange(http, member, d["definition_id"], points=1)
    assert cheap.status_code == 422 and "points" in cheap.json()["detail"]
    headers = {**key(), **member.headers}
    made = await exchange(http, member, d["definition_id"], headers)
    assert made.status_code == 201, made.text
    code = made.json()["code"]
    assert made.json()["state"] == "issued" and made.json()["points"] == 1_100 and code.startswith("CP")
    again = await exchange(http, member, d["definition_id"], headers)  # the retry: the same exchange, one coupon
    assert again.status_code == 201 and again.json()["code"] == code
    reused = await exchange(http, member, free["definition_id"], headers)
    assert reused.status_code == 409 and "Idempotency-Key" in reused.json()["detail"]
    assert (await member_view(http, member))["points"] == 50  # redeemed once
    mine = [c for c in (await wallet(http, member)).values() if c["definition_id"] == d["definition_id"]]
    assert [(c["code"], c["status"], c["why"]) for c in mine] == [(code, "issued", "points")]
    short = await exchange(http, member, d["definition_id"])
    assert short.status_code == 409 and "insufficient points" in short.json()["detail"]
    for unknown in ("free-lunch", free["definition_id"]):  # not an offer: no such definition, or not for points
        r = await exchange(http, member, unknown)
        assert r.status_code == 422 and unknown in r.json()["detail"], r.text
    other = await customer(services, http)  # another member's account answers as an unknown one
    assert (await exchange(http, member, d["definition_id"], {**key(), **other.headers})).status_code == 404
    assert code not in await wallet(http, other)
    # the coupon bought with points takes 5% off an online order of 50 yuan or more, and is redeemed when paid
    await top_up(services, http, member, 100_000)
    slot = (datetime.now(CN) + timedelta(days=2)).replace(hour=11, minute=0, second=0, microsecond=0).isoformat()
    placed = await http.post("/orders", headers={**key(), **member.headers}, json={
        "fulfilment": "pickup", "store_id": STORE, "slot_start": slot, "items": [{"sku": sku["sku"], "qty": 8}],
        "coupons": [code]})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert [a["rule_id"] for a in order["pricing"]["applied"] if a["saving_fen"] > 0 and a["rule_id"] == "R0025"]
    paid = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.status_code == 200, paid.text
    PAID.append(order["order_id"])

    async def redeemed():
        return (await wallet(http, member))[code]["status"] == "redeemed"
    assert await eventually(redeemed)
    assert (await http.post(f"/orders/{order['order_id']}/cancel", headers=member.headers)).status_code == 200
    assert await our_violations(http, [member]) == []


async def test_an_offer_at_its_total_limit_is_refused_before_points_move_and_a_lost_race_gives_them_back_once(cloud):
    """The last coupon of a definition: one member's exchange is cut off between taking the points and the issue
    (a crash), another takes the last coupon meanwhile; the first one's retry finds it gone and gives the points back,
    once. A third member asking afterwards is refused before anything is taken; then four race for a new last one."""
    services, http = cloud
    price = 500
    d = await define_offer(http, "last", points_price=price, total_limit=1)
    late, winner, third = [await customer(services, http) for _ in range(3)]
    for m in (late, winner, third):
        await with_points(services, m, price)
    real = services.points_exchange.issue_coupon

    async def crashed(member_id, definition_id, why, issue_id):
        raise ConnectionResetError("the API process died here (simulated)")
    late_key = {**key(), **late.headers}
    services.points_exchange.issue_coupon = crashed
    try:
        r = await exchange(http, late, d["definition_id"], late_key)
        assert r.status_code >= 500 and "given back" not in r.text, r.text  # a failure, not an answer
    finally:
        services.points_exchange.issue_coupon = real
    assert (await member_view(http, late))["points"] == 0  # taken; the coupon not issued yet
    won = await exchange(http, winner, d["definition_id"])
    assert won.status_code == 201, won.text
    assert d["definition_id"] not in {o["offer_id"] for o in (await http.get("/points/offers")).json()["offers"]}
    refused = await exchange(http, third, d["definition_id"])
    assert refused.status_code == 409 and "total limit of 1" in refused.json()["detail"], refused.text
    assert (await member_view(http, third))["points"] == price  # nothing was taken
    for _ in range(2):  # the crashed exchange retried: the coupon is gone, the points come back, once
        back = await exchange(http, late, d["definition_id"], late_key)
        assert back.status_code == 503 and "given back" in back.json()["detail"], back.text
        assert "total limit" in back.json()["detail"]
    assert (await member_view(http, late))["points"] == price
    listed = (await http.get(f"/members/{late.member_id}/points/exchanges", headers=late.headers)).json()
    assert [x["state"] for x in listed["exchanges"]] == ["returned"]
    assert not [c for c in (await wallet(http, late)).values() if c["definition_id"] == d["definition_id"]]
    # four members race for another definition's only coupon: one gets it, each other keeps every point
    race = await define_offer(http, "race", points_price=price, total_limit=1)
    racers = [await customer(services, http) for _ in range(4)]
    for m in racers:
        await with_points(services, m, price)
    answers = await asyncio.gather(*(exchange(http, m, race["definition_id"]) for m in racers))
    assert [a.status_code for a in answers].count(201) == 1, [a.text for a in answers]
    assert all(a.status_code in (409, 503) for a in answers if a.status_code != 201), [a.text for a in answers]
    for m, a in zip(racers, answers, strict=True):
        assert (await member_view(http, m))["points"] == (0 if a.status_code == 201 else price)
    issued = await services.cloud.db.fetchval("select count(*) from coupons where definition_id = $1",
                                              race["definition_id"])
    assert issued == 1
    assert await our_violations(http, [late, winner, third, *racers]) == []


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
