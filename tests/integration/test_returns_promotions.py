"""Returns undo the promotions their sale or order carried, over the real stack (issue 17): a real store box (S034,
a store of this module's own: the world sells nothing there) takes the returns at its till; the cloud is the
authority for the coupons and the points.

- a partial return keeps a coupon used and gives back only the lines' share of what was paid; the return that brings
  the sale back whole gives the coupon back to the member's wallet (and the store lets it be used again), or, past
  the coupon's window, leaves it redeemed and says why;
- a return that leaves a sale under its till-spend trigger voids the unused trigger coupon, and reports one already
  used as a coupon conflict;
- a return that takes a gift's reason away asks the gift back (its stock back too), or deducts its price;
- after-sales refunds of an online order paid partly with points give back points and money in proportion, never
  more than either part (an order at S003, its store spoken for by a StoreLink; the messages the cloud sends S003
  are taken off its stream at the end).
Amounts come from what the sale recorded, never recomputed by the code under test."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from actors.member_ledger import GrantPoints
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.messages import (
    EscrowGranted,
    OrderToFulfil,
    Payment,
    PickupCompleted,
    Quantity,
    SaleCommitted,
    SaleLine,
    StockMoved,
)
from protocol.return_messages import AfterSalesRequested, GoodsReturned, ReturnLine
from simulators.customer_auth import SignInFailed
from tests.integration.harness import (
    StoreLink,
    customer,
    eventually,
    operator_headers,
    running_cloud,
    this_clouds,
    top_up,
)

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
BOX, ONLINE_STORE = "S034", "S003"
SESAME = "PAC-SESAME-0228"  # 39.04, no rule of the book names it or its category
GIFTS = ("PAC-TOFU-0196", "PAC-SOY-0215", "EGG-EGGS-0161")  # the book's gifts from 50, 80 and 120 yuan
ONLINE_SKU = "PAC-TOFU-0199"  # at S003, for the points order: no other module orders it
RUN = uuid.uuid4().hex[:6]
CN = timezone(timedelta(hours=8))
OP: dict[str, str] = {}
TOLD: list[str] = []  # after-sales requests the cloud told S003 about: taken off its stream at the end


def product(sku: str) -> dict:
    return next(p for p in json.loads(WORLD.read_text())["catalogue"] if p["sku"] == sku)


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"rpr{RUN}-") as (services, url):
        OP.update(await operator_headers(services))
        await services.bridge.ensure_store(BOX)
        config = {"store_id": BOX, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": stack.nats_url, "nats_password": stack.store_credentials(BOX)[1]}
        box = await EdgeBox(config).start()
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http, \
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                      base_url="http://lane") as lane:
                assert await eventually(lambda: _online(box), timeout_s=15)
                for sku in (SESAME, *GIFTS):
                    await box.actor.ask("receive", sku=sku, qty=60)
                yield services, http, box, lane
        finally:
            await box.stop()
            # this module's trigger must not issue coupons on other modules' sales (the database is shared)
            await services.cloud.db.execute("update coupon_definitions set trigger_min_fen = null "
                                            "where definition_id like $1", f"%-{RUN}")
            if TOLD:
                async with StoreLink(stack, ONLINE_STORE) as store:
                    last = TOLD[-1]
                    await store.commands(want=2_000, timeout_s=15, until=lambda m: isinstance(m, AfterSalesRequested)
                                         and m.request_id == last and m.status == "approved")


async def _online(box) -> bool:
    return box.actor.online


async def drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


async def signed_up(services, http):
    """A new member signed in through SMS; asked again when a busy box made the cloud answer 503 (a cold cloud's first
    sign-ins on a loaded 2-core box can pass the request deadline)."""
    for attempt in range(3):
        try:
            return await customer(services, http)
        except SignInFailed:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def known_member(services, http, box):
    """A member signed up through the cloud, known to the box: (the member, their member code)."""
    member = await signed_up(services, http)
    view = await services.members.view(member.member_id)
    await services.members.notify_stores(view, stores=[BOX])

    async def cached():
        return await box.store_db.member(member_id=member.member_id)
    assert await eventually(cached), "the member did not reach the box"
    return member, view["member_code"]


async def define(http, name: str, **body) -> str:
    definition_id = f"{name}-{RUN}"
    r = await http.post("/operator/coupon-definitions", headers=OP, json={
        "definition_id": definition_id, "rule_id": "R0025", "name": "5% off from 50 yuan", "valid_days": 30,
        "per_member_limit": 5, **body})
    assert r.status_code == 201, r.text
    return definition_id


async def issue(http, definition_id: str, member) -> str:
    r = await http.post(f"/operator/coupon-definitions/{definition_id}/issue", headers=OP,
                        json={"batch_id": uuid.uuid4().hex, "member_ids": [member.member_id]})
    (code,) = [i["code"] for i in r.json()["issued"]]
    return code


async def wallet(http, member) -> dict[str, dict]:
    r = await http.get(f"/members/{member.member_id}/coupons", headers=member.headers)
    return {c["code"]: c for c in r.json()["coupons"]}


async def coupon_status(http, member, code: str, want: str) -> bool:
    return (await wallet(http, member)).get(code, {}).get("status") == want


async def sell(lane, lane_id: str, skus: list[str], member_code: str | None = None, code: str | None = None) -> dict:
    """A cash sale of the SKUs' pieces (for the member, with the coupon): the sale's answer."""
    await lane.delete(f"/lanes/{lane_id}/cart")
    if member_code:
        assert (await lane.post(f"/lanes/{lane_id}/member", json={"member_code": member_code})).status_code == 200
    for sku in skus:
        r = await lane.post(f"/lanes/{lane_id}/scan", json={"code": product(sku)["gtin"]})
        assert r.status_code == 200, r.text
    if code:
        r = await lane.post(f"/lanes/{lane_id}/coupon", json={"code": code})
        assert r.status_code == 200 and r.json()["coupons"][0]["applied"], r.text
    r = await lane.post(f"/lanes/{lane_id}/pay", json={"method": "cash", "tendered_fen": 10**6})
    assert r.status_code == 201, r.text
    return r.json()


async def sale_lines(box, sale_id: str) -> dict[str, tuple[int, int]]:
    """What the store recorded of the sale, per SKU: (qty, fen paid)."""
    async with box.store_db.reader.execute("select lines from sales where sale_id = ?", (sale_id,)) as cur:
        (lines,) = await cur.fetchone()
    out: dict[str, tuple[int, int]] = {}
    for sku, qty, _, fen in json.loads(lines):
        q, f = out.get(sku, (0, 0))
        out[sku] = (q + qty, f + fen)
    return out


async def give_back(lane, sale_id: str, lines: list[tuple[str, int]], **extra) -> httpx.Response:
    return await lane.post("/lanes/1/returns", json={"sale_id": sale_id, **extra,
                                                     "lines": [{"sku": s, "qty": q} for s, q in lines]})


async def effects(http, sale_id: str, db=None) -> list[dict]:
    """The sale's coupon effects, less those of coupons of other modules' definitions (the database is shared, and a
    till-spend trigger an earlier module defined may also have issued a coupon on this sale)."""
    found = (await http.get("/operator/coupons/returns", params={"sale_id": sale_id}, headers=OP)).json()["effects"]
    if db is None:
        return found
    ours = {r["code"] for r in await db.fetch("select code from coupons where code = any($1::text[]) "
                                               "and definition_id like $2", [e["code"] for e in found], f"%-{RUN}")}
    return [e for e in found if not e["code"] or e["code"] in ours]


async def test_a_partial_return_keeps_the_coupon_used_and_the_whole_return_gives_it_back(world):
    services, http, box, lane = world
    member, member_code = await known_member(services, http, box)
    code = await issue(http, await define(http, "back"), member)
    sale = await sell(lane, "1", [SESAME, SESAME], member_code, code)
    assert await eventually(lambda: coupon_status(http, member, code, "redeemed"), timeout_s=15)
    paid = await sale_lines(box, sale["sale_id"])
    assert paid[SESAME][1] == sale["total_fen"] < 2 * 3_904  # the coupon's saving is on the line
    # one of two, with the gift the kept half no longer earns: a half of what the line cost, not its price
    first = await give_back(lane, sale["sale_id"], [(SESAME, 1), (GIFTS[0], 1)])
    assert first.status_code == 201, first.text
    assert first.json()["total_fen"] == paid[SESAME][1] // 2
    assert first.json()["coupons"][0]["code"] == code and first.json()["coupons"][0]["back"] is False
    assert await eventually(lambda: drained(box))
    assert await coupon_status(http, member, code, "redeemed")  # a partial return keeps it used
    assert await effects(http, sale["sale_id"], services.cloud.db) == []
    last = await give_back(lane, sale["sale_id"], [(SESAME, 1)])
    assert last.status_code == 201 and last.json()["coupons"][0]["back"] is True, last.text
    assert first.json()["total_fen"] + last.json()["total_fen"] == sale["total_fen"]  # never more than was paid
    assert await eventually(lambda: coupon_status(http, member, code, "issued"), timeout_s=15), \
        "the whole return did not give the coupon back"
    assert [e["effect"] for e in await effects(http, sale["sale_id"], services.cloud.db)] == ["coupon_returned"]
    # the store no longer counts it redeemed here: the member may use it at this till again
    shown = await lane.post("/lanes/1/member", json={"member_code": member_code})
    assert [c["code_tail"] for c in shown.json()["member"]["coupons"]] == [code[-4:]]
    again = await sell(lane, "1", [SESAME, SESAME], member_code, code)
    assert await eventually(lambda: coupon_status(http, member, code, "redeemed"), timeout_s=15)
    # the same coupon's window ends (time passes: moved in the database) before this sale comes back whole
    await services.cloud.db.execute("update coupons set valid_until_ms = $2 where code = $1", code,
                                    services.cloud.now_ms() - 1)
    whole = await give_back(lane, again["sale_id"], [(SESAME, 2), (GIFTS[0], 1)])
    assert whole.status_code == 201 and whole.json()["total_fen"] == again["total_fen"], whole.text

    async def said():
        return await effects(http, again["sale_id"], services.cloud.db)
    told = await eventually(said, timeout_s=15)
    assert told and told[0]["effect"] == "coupon_kept_expired" and "stays redeemed" in told[0]["detail"]
    assert await coupon_status(http, member, code, "redeemed")


async def test_a_return_under_the_till_spend_trigger_voids_the_unused_coupon_and_reports_a_used_one(world):
    services, http, box, lane = world
    await define(http, "trig", channels=["online", "offline"],
                 trigger={"kind": "till_spend", "min_fen": 5_000, "channel_issued": "online"})

    async def triggered(member) -> str | None:
        mine = [c for c in (await wallet(http, member)).values() if c["definition_id"] == f"trig-{RUN}"]
        return mine[0]["code"] if mine else None

    kept, kept_code = await known_member(services, http, box)
    sale = await sell(lane, "2", [SESAME, SESAME], kept_code)  # 78.08 less the book's basket rules: over 50
    code = await eventually(lambda: triggered(kept), timeout_s=15)
    assert code, "the till-spend trigger issued no coupon"
    small = await give_back(lane, sale["sale_id"], [(GIFTS[0], 1)])  # the gift alone: what is kept stays over 50
    assert small.status_code == 201 and await eventually(lambda: drained(box))
    assert await coupon_status(http, kept, code, "issued")
    under = await give_back(lane, sale["sale_id"], [(SESAME, 1)])  # half of it back: the sale is under 50 now
    assert under.status_code == 201, under.text
    assert await eventually(lambda: coupon_status(http, kept, code, "voided"), timeout_s=15), "not voided"
    assert [e["effect"] for e in await effects(http, sale["sale_id"], services.cloud.db)] == ["trigger_voided"]
    await lane.delete("/lanes/2/cart")  # a voided coupon is refused where it is presented, saying why
    assert (await lane.post("/lanes/2/member", json={"member_code": kept_code})).status_code == 200
    assert (await lane.post("/lanes/2/scan", json={"code": product(SESAME)["gtin"]})).status_code == 200
    used = await lane.post("/lanes/2/coupon", json={"code": code})
    assert used.status_code == 409 and "voided" in used.json()["detail"], used.text
    await lane.delete("/lanes/2/cart")

    spent, spent_code = await known_member(services, http, box)
    sale = await sell(lane, "2", [SESAME, SESAME], spent_code)
    code = await eventually(lambda: triggered(spent), timeout_s=15)
    assert code
    await sell(lane, "3", [SESAME, SESAME], spent_code, code)  # the trigger coupon used at once
    assert await eventually(lambda: coupon_status(http, spent, code, "redeemed"), timeout_s=15)
    r = await give_back(lane, sale["sale_id"], [(SESAME, 2), (GIFTS[0], 1)])
    assert r.status_code == 201, r.text

    async def reported():
        rows = (await http.get("/operator/coupons/conflicts", headers=OP)).json()["conflicts"]
        return [c for c in rows if c["code"] == code]
    conflicts = await eventually(reported, timeout_s=15)
    assert conflicts and conflicts[0]["sale_id"] == sale["sale_id"], "the used trigger coupon was not reported"
    assert "the member keeps it" in conflicts[0]["detail"] and f"store:{BOX}:" in conflicts[0]["first_redeemed_by"]
    assert [e["effect"] for e in await effects(http, sale["sale_id"], services.cloud.db)] == ["trigger_used"]
    assert await services.cloud.db.fetchval("select kind from coupon_conflicts where code = $1", code) == "trigger_used"
    assert await coupon_status(http, spent, code, "redeemed")


async def test_a_return_that_takes_a_gift_s_reason_away_asks_for_it_back_or_deducts_its_price(world):
    services, http, box, lane = world
    sale = await sell(lane, "4", [SESAME, SESAME])
    got = await sale_lines(box, sale["sale_id"])
    assert got[GIFTS[0]] == (1, 0)  # the tofu was given at 0 fen
    tofu = (await box.store_db.stock_level(GIFTS[0])).on_hand
    refused = await give_back(lane, sale["sale_id"], [(SESAME, 1)])
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert f"gift {GIFTS[0]} (rule R0016)" in refused.json()["detail"]
    assert f"return the gift ({GIFTS[0]}, 1)" in refused.json()["detail"]
    back = await give_back(lane, sale["sale_id"], [(SESAME, 1), (GIFTS[0], 1)])
    assert back.status_code == 201 and back.json()["total_fen"] == got[SESAME][1] // 2, back.text
    assert (await box.store_db.stock_level(GIFTS[0])).on_hand == tofu + 1  # the gift is back on the shelf
    assert await eventually(lambda: drained(box))

    async def cloud_tofu():  # (the store's own view: S034 is not a store the world shows at /stores)
        return await services.cloud.db.fetchval("select on_hand from store_stock where store_id = $1 and sku = $2",
                                                BOX, GIFTS[0]) == tofu + 1
    assert await eventually(cloud_tofu), "the cloud does not see the gift back in stock"

    # a bigger basket earned three gifts; four of six back leaves 50 to 80 kept: the tofu is still earned, the soy
    # (from 80) and the eggs (from 120) are kept by the customer and their prices taken off the refund
    big = await sell(lane, "4", [SESAME] * 6)
    got = await sell_lines_with_gifts(box, big["sale_id"])
    price = {sku: product(sku)["price_fen"] for sku in GIFTS}
    kept = await give_back(lane, big["sale_id"], [(SESAME, 4)], keep_gifts=True)
    assert kept.status_code == 201, kept.text
    share = got[SESAME][1] * 4 // 6
    assert got[SESAME][1] - share >= 5_000 and got[SESAME][1] - share < 8_000
    assert sorted((d["sku"], d["amount_fen"]) for d in kept.json()["deductions"]) == sorted(
        [(GIFTS[1], price[GIFTS[1]]), (GIFTS[2], price[GIFTS[2]])])
    assert kept.json()["total_fen"] == share - price[GIFTS[1]] - price[GIFTS[2]]
    assert await eventually(lambda: drained(box))
    row = await services.cloud.db.fetchrow("select amount_fen from till_returns where return_id = $1",
                                           kept.json()["return_id"])
    assert row["amount_fen"] == kept.json()["total_fen"]  # the cloud believes the refund the till paid out
    rest = await give_back(lane, big["sale_id"], [(SESAME, 2), (GIFTS[0], 1)])  # the kept gifts are paid for
    assert rest.status_code == 201 and rest.json()["total_fen"] == got[SESAME][1] - share, rest.text
    assert "deductions" not in rest.json()


async def sell_lines_with_gifts(box, sale_id: str) -> dict[str, tuple[int, int]]:
    got = await sale_lines(box, sale_id)
    assert all(got.get(sku) == (1, 0) for sku in GIFTS), got  # the three gifts, at 0 fen
    return got


async def test_after_sales_refunds_of_an_order_paid_partly_with_points_give_back_both_in_proportion(world, stack):
    services, http, _, _ = world
    async with StoreLink(stack, ONLINE_STORE) as store:
        await store.publish(StockMoved(**store.next_envelope(), sku=ONLINE_SKU, delta=20, reason="receiving",
                                       shrinkage_reason="", on_hand_after=20, reference=""))
        await store.publish(EscrowGranted(**store.next_envelope(), sku=ONLINE_SKU, qty=10, escrow_after=10))

    async def granted():
        stock = (await http.get(f"/stores/{ONLINE_STORE}/stock")).json()["stock"]
        return any(r["sku"] == ONLINE_SKU and r["escrow"] >= 4 for r in stock)
    assert await eventually(granted)
    member = await signed_up(services, http)
    assert (await services.cloud.actors.member_ledger.send(GrantPoints(
        id=f"setup:{uuid.uuid4().hex}", member=member.member_id, points=50_000, why="setup"))).succeeded
    await top_up(services, http, member, 100_000)
    slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0).isoformat()
    order = (await http.post("/orders", headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers},
                             json={"fulfilment": "pickup", "store_id": ONLINE_STORE, "slot_start": slot,
                                   "items": [{"sku": ONLINE_SKU, "qty": 4}]})).json()
    oid, total = order["order_id"], order["total_fen"]
    points = total // 4 // 100 * 100  # about a quarter of it in points
    paid = await http.post(f"/orders/{oid}/pay", json={"method": "stored_value", "points": points},
                           headers=member.headers)
    assert paid.status_code == 200 and paid.json()["payment"]["amount_fen"] == total - points, paid.text
    money = total - points
    async with StoreLink(stack, ONLINE_STORE) as store:
        await store.commands(want=2_000, timeout_s=15, until=lambda m: isinstance(m, OrderToFulfil) and m.order_id == oid)
        await store.publish(PickupCompleted(**store.next_envelope(), order_id=oid, pickup_code=order["pickup_code"],
                                            lane="1"))

    async def status(want: str):
        got = (await http.get(f"/orders/{oid}", headers=member.headers)).json()
        return got if got["status"] == want else None
    assert await eventually(lambda: status("picked_up"), timeout_s=15)

    async def balances() -> tuple[int, int]:
        view = (await http.get(f"/members/{member.member_id}", headers=member.headers)).json()
        return view["stored_value_fen"], view["points"]

    async def approved(qty: int) -> dict:
        asked = await http.post(f"/orders/{oid}/after-sales", headers={**member.headers,
                                                                       "Idempotency-Key": uuid.uuid4().hex},
                                json={"lines": [{"sku": ONLINE_SKU, "qty": qty}], "reason": "soft", "with_return": False})
        assert asked.status_code == 201, asked.text
        TOLD.append(asked.json()["request_id"])
        r = await http.post(f"/operator/after-sales/{asked.json()['request_id']}/approve", headers=OP, json={})
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text
        return r.json()

    before = await balances()
    one = await approved(1)  # a quarter of the lines' value: a quarter of each part
    value = one["amount_fen"]
    pts_back = points * value // total
    movement = await services.cloud.db.fetchrow("select amount_fen, state from money_movements where movement_id = $1",
                                                f"refund:{oid}:as:{one['request_id']}")
    assert dict(movement) == {"amount_fen": value - pts_back, "state": "done"}  # not the lines' whole value in money

    async def credited(want: tuple[int, int]):
        return await balances() == want
    assert await eventually(lambda: credited((before[0] + value - pts_back, before[1] + pts_back))), \
        f"{await balances()} != {(before[0] + value - pts_back, before[1] + pts_back)}"
    rest = await approved(3)  # the rest: exactly what is left of each part
    assert value + rest["amount_fen"] == total
    assert await eventually(lambda: status("refunded"), timeout_s=15), "the order was not refunded"
    assert await eventually(lambda: credited((before[0] + money, before[1] + points)), timeout_s=15), \
        f"{await balances()} != {(before[0] + money, before[1] + points)}: not exactly what was paid in each"
    refunds = await services.cloud.db.fetch("select amount_fen from money_movements where order_id = $1 and "
                                            "kind = 'refund' and state = 'done'", oid)
    assert sum(r["amount_fen"] for r in refunds) == money
    violations = this_clouds((await http.get("/audit", headers=OP)).json()["violations"])
    assert [v for v in violations if oid in v or member.member_id in v or "sum to" in v] == []


async def test_a_till_sale_paid_partly_with_points_gives_both_back_in_proportion(world):
    services, http, box, lane = world
    member, member_code = await known_member(services, http, box)
    assert (await services.cloud.actors.member_ledger.send(GrantPoints(
        id=f"setup:{uuid.uuid4().hex}", member=member.member_id, points=5_000, why="setup"))).succeeded

    async def points() -> int:
        return (await services.cloud.actors.member_ledger.member(member.member_id, services.cloud.now_ms()))["points"]
    await lane.delete("/lanes/5/cart")
    assert (await lane.post("/lanes/5/member", json={"member_code": member_code})).status_code == 200
    assert (await lane.post("/lanes/5/scan", json={"code": product(SESAME)["gtin"]})).status_code == 200
    assert (await lane.post("/lanes/5/scan", json={"code": product(SESAME)["gtin"]})).status_code == 200
    paid = await lane.post("/lanes/5/pay", json={"method": "cash", "tendered_fen": 10**6, "points": 1_000})
    assert paid.status_code == 201, paid.text
    sale, total = paid.json()["sale_id"], paid.json()["total_fen"]
    assert await eventually(lambda: drained(box))
    before = await points()
    gifts = [(g, 1) for g in GIFTS if (await sale_lines(box, sale)).get(g) == (1, 0)]  # back with the first half
    half = await give_back(lane, sale, [(SESAME, 1), *gifts])
    assert half.status_code == 201, half.text
    share = half.json()["refund"]["points"]
    assert 0 < share < 1_000 and half.json()["refund"]["method"] == "cash"  # not the whole refund in cash
    assert half.json()["refund"]["amount_fen"] == half.json()["total_fen"] - share

    async def back(want: int) -> bool:
        return await points() == want
    assert await eventually(lambda: back(before + share), timeout_s=15), f"{await points()} != {before + share}"
    rest = await give_back(lane, sale, [(SESAME, 1)])
    assert rest.status_code == 201, rest.text
    assert share + rest.json()["refund"]["points"] == 1_000  # every point paid, and no more
    assert half.json()["refund"]["amount_fen"] + rest.json()["refund"]["amount_fen"] == total - 1_000  # the cash paid
    assert await eventually(lambda: back(before + 1_000), timeout_s=15), f"{await points()} != {before + 1_000}"
    assert await eventually(lambda: drained(box))


async def test_a_store_claiming_the_points_of_its_sale_back_twice_gets_the_member_no_more_than_the_sale_took(world, stack):
    """S035 speaks for itself by hand: a sale paid 1,000 points and 3,000 cash, then two returns of half of it each
    claiming all 1,000 points back (the till's own figures would say 500 each): the member gets back the 1,000 the
    cloud took for the sale, once - never 2,000."""
    services, http, _, _ = world
    member = await signed_up(services, http)
    assert (await services.cloud.actors.member_ledger.send(GrantPoints(
        id=f"setup:{uuid.uuid4().hex}", member=member.member_id, points=2_000, why="setup"))).succeeded

    async def points() -> int:
        return (await services.cloud.actors.member_ledger.member(member.member_id, services.cloud.now_ms()))["points"]
    sale_id = f"P{uuid.uuid4().hex[:20]}"
    async with StoreLink(stack, "S035") as link:
        await link.publish(SaleCommitted(**link.next_envelope(), sale_id=sale_id, lane="1", member_id=member.member_id,
                                         lines=(SaleLine(sku=SESAME, quantity=Quantity.pieces(2), amount_fen=4_000),),
                                         total_fen=4_000, offline=True,
                                         payments=(Payment(method="points", amount_fen=1_000, reference="offline"),
                                                   Payment(method="cash", amount_fen=3_000, reference=""))))

        earned = 3_000 // 100  # the cash part earns a point a yuan; the points part none

        async def taken():
            return await points() == 1_000 + earned
        assert await eventually(taken, timeout_s=15), "the sale's points were not taken"
        for _ in range(2):
            rid = link.next_envelope()["event_id"]
            await link.publish(GoodsReturned(
                **link.next_envelope(), return_id=rid, sale_id=sale_id, order_id="", lane="1",
                member_id=member.member_id, total_fen=2_000,
                lines=(ReturnLine(sku=SESAME, quantity=Quantity.pieces(1), amount_fen=2_000, disposition="resaleable"),),
                refunds=(Payment(method="points", amount_fen=1_000, reference=rid),
                         Payment(method="cash", amount_fen=1_000, reference=rid))))

        async def judged():  # the first applied; the second claims points the sale's points already gave back:
            # refused by tender (protocol.tender_refunds) and dead-lettered with the reason
            applied = await services.cloud.db.fetchval("select count(*) from till_return_points where sale_id = $1",
                                                       sale_id)
            dead = await services.cloud.db.fetchval(
                "select count(*) from dead_letters where store_id = 'S035' and reason like $1",
                "%1000 fen refunded by points, but the sale paid 1000 fen by points and 1000 fen went back by it%")
            return applied == 1 and dead >= 1
        assert await eventually(judged, timeout_s=15), "the returns were not judged"
    assert await points() == 2_000 + earned  # the 1,000 taken, back once
    given = await services.cloud.db.fetch("select points from till_return_points where sale_id = $1 order by points",
                                          sale_id)
    assert [r["points"] for r in given] == [1_000]
    # the over-claim is not applied short (as before the refunds were judged by tender): it is refused whole, and the
    # operator sees it among the store's refused events (dead letters, above) with the reason
    assert [x for x in await effects(http, sale_id) if x["effect"] == "points_short"] == []
