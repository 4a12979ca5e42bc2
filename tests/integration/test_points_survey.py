"""The satisfaction survey after a till sale (issue 17.5), with a real store box (S017, a store of this module only)
selling against a running cloud: the member's sale answers with a survey link, the cloud shows the survey once the
sale reached it and grants its points once; a replay is 409, a forged or altered token 403, a sale without a
member gets no link. The demo's points customers (simulators/points_demo.py) run against it and agree with the
summary read from the database."""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn

from actors.member_ledger import GrantPoints
from cloud.embedded.process import free_port
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from loadtest.http import LeanClients
from protocol.messages import EscrowGranted, OrderToFulfil, StockMoved
from protocol.points import survey_key, survey_token
from protocol.policy import SURVEY_POINTS
from simulators import points_demo
from tests.integration.harness import StoreLink, customer, eventually, new_mobile, operator_headers, running_cloud

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S017"


def a_piece() -> dict:
    return [p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"]][5]


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"srv{uuid.uuid4().hex[:6]}-") as (services, url):
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": stack.nats_url, "nats_password": stack.store_credentials(STORE)[1],
                  "survey_url_base": url}
        await services.bridge.ensure_store(STORE)  # its cloud-message consumer (made on a store's first event)
        box = await EdgeBox(config).start()
        async with httpx.AsyncClient(base_url=url, timeout=20) as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _online(box), timeout_s=10)
            yield services, http, box, lane, stack
        await box.stop()


async def _online(box) -> bool:
    return box.actor.online


async def known_member(services, http, box):
    member = await customer(services, http)
    view = await services.members.view(member.member_id)
    await services.members.notify_stores(view, stores=[STORE])

    async def cached():
        return await box.store_db.member(member_id=member.member_id)
    assert await eventually(cached), "the member did not reach the store's cache"
    return member, view


async def sell(lane, member_code: str | None) -> dict:
    await lane.delete("/lanes/1/cart")
    if member_code:
        assert (await lane.post("/lanes/1/member", json={"member_code": member_code})).status_code == 200
    assert (await lane.post("/lanes/1/scan", json={"code": a_piece()["gtin"]})).status_code == 200
    paid = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 100_000})
    assert paid.status_code == 201, paid.text
    return paid.json()


async def points_of(http, member) -> int:
    return (await http.get(f"/members/{member.member_id}", headers=member.headers)).json()["points"]


async def shown(http, url: str):
    """The survey page once the sale has reached the cloud (404 until then)."""
    async def page():
        r = await http.get(url)
        return r if r.status_code != 404 else None
    return await eventually(page, timeout_s=15)


async def test_a_members_survey_is_answered_once_for_its_points(world):
    services, http, box, lane, _ = world
    member, view = await known_member(services, http, box)
    sale = await sell(lane, view["member_code"])
    url = sale["survey_url"]
    assert url.startswith(str(http.base_url).rstrip("/") + "/surveys/") and sale["survey_token"] in url
    page = await shown(http, url)
    assert page.status_code == 200 and "满意度调查" in page.text and page.text.index("满意度") < page.text.index("Survey")
    assert page.headers["content-type"].startswith("text/html")
    before = await points_of(http, member)  # the sale's own points are in (it reached the cloud)
    bad = await http.post(url, json={"satisfaction": 9, "freshness": 4})
    assert bad.status_code == 422 and "satisfaction" in bad.json()["detail"]
    answered = await http.post(url, json={"satisfaction": 5, "freshness": 4, "comment": "菜很新鲜"})
    assert answered.status_code == 201, answered.text
    assert answered.json()["points_granted"] == SURVEY_POINTS and answered.json()["state"] == "granted"
    assert await points_of(http, member) == before + SURVEY_POINTS
    replay = await http.post(url, json={"satisfaction": 1, "freshness": 1})
    assert replay.status_code == 409 and replay.headers["content-type"].startswith("application/problem+json")
    assert "answered already" in replay.json()["detail"]
    form = await http.post(url, content=b"satisfaction=2&freshness=2",  # the page's own form, replayed
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 409
    assert await points_of(http, member) == before + SURVEY_POINTS  # granted once
    assert "已完成" in (await http.get(url)).text
    async with services.cloud.db.acquire() as conn:
        row = await conn.fetchrow("select * from survey_answers where sale_id = $1", sale["sale_id"])
    assert row["member_id"] == member.member_id and json.loads(row["answers"])["comment"] == "菜很新鲜"


async def test_forged_or_altered_tokens_are_refused_and_grant_nothing(world):
    services, http, box, lane, stack = world
    member, view = await known_member(services, http, box)
    sale = await sell(lane, view["member_code"])
    token = sale["survey_token"]
    await shown(http, sale["survey_url"])
    before = await points_of(http, member)
    store, sale_id, mac = token.split(".")
    other_key = survey_key(stack.store_credentials("S018")[1], "S018")
    forged = [
        f"{store}.{sale_id[:-1]}{'A' if sale_id[-1] != 'A' else 'B'}.{mac}",  # another sale, the same mac
        f"{store}.{sale_id}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",  # the mac altered
        survey_token(other_key, STORE, sale_id),  # another store's box signing for this store's sale
        survey_token(survey_key("guessed-password", STORE), STORE, sale_id),  # a guessed key
        f"S018.{sale_id}.{mac}",  # another store named
        "not-a-token",
    ]
    for bad in forged:
        answer = await http.post(f"/surveys/{bad}", json={"satisfaction": 5, "freshness": 5})
        assert answer.status_code == 403, (bad, answer.text)
        assert (await http.get(f"/surveys/{bad}")).status_code == 403
    # a store signing (with its own key) a sale it never made: verified, but no such sale of it, so nothing
    never = survey_token(survey_key(stack.store_credentials(STORE)[1], STORE), STORE, "NEVER" + sale_id[5:])
    assert (await http.post(f"/surveys/{never}", json={"satisfaction": 5, "freshness": 5})).status_code == 404
    assert await points_of(http, member) == before


async def test_a_sale_without_a_member_gets_no_survey_link(world):
    services, http, box, lane, stack = world
    sale = await sell(lane, None)
    assert "survey_url" not in sale and "survey_token" not in sale
    # and a token made for it anyway (with the store's own key) finds no member to grant: 404, nothing recorded
    token = survey_token(survey_key(stack.store_credentials(STORE)[1], STORE), STORE, sale["sale_id"])

    async def arrived():
        async with services.cloud.db.acquire() as conn:
            return await conn.fetchval("select 1 from till_sales where sale_id = $1", sale["sale_id"])
    assert await eventually(arrived, timeout_s=15)
    r = await http.post(f"/surveys/{token}", json={"satisfaction": 5, "freshness": 5})
    assert r.status_code == 404 and "without a member" in r.json()["detail"]


async def test_the_demos_points_customers_agree_with_the_summary(world):
    """The demo's customers for a few seconds: till sales at S017 with their surveys answered, online orders at
    S004 paid partly with the points they earned; what they counted is what the cloud's database says."""
    services, http, box, lane, stack = world
    url = str(http.base_url).rstrip("/")
    piece = [p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"]
             and "online" in p["channels"]][13]
    async with StoreLink(stack, "S004") as store:  # escrow for the online orders (S004 has no box here)
        await store.publish(StockMoved(**store.next_envelope(), sku=piece["sku"], delta=80, reason="receiving",
                                       shrinkage_reason="", on_hand_after=80, reference=""))
        await store.publish(EscrowGranted(**store.next_envelope(), sku=piece["sku"], qty=60, escrow_after=60))

    async def granted():
        stock = (await http.get("/stores/S004/stock")).json()["stock"]
        return any(r["sku"] == piece["sku"] and r["escrow"] >= 60 for r in stock)
    assert await eventually(granted)
    people = {}
    for _ in range(3):  # signed up, and known to S017's member cache (the world's stores learn of them by themselves)
        phone = new_mobile()
        people[phone] = await customer(services, http, phone)
        await services.members.notify_stores(await services.members.view(people[phone].member_id), stores=[STORE])
    for signed in people.values():
        assert await eventually(lambda m=signed: box.store_db.member(member_id=m.member_id))
    for signed in people.values():  # setup: points earned before (so that they can also buy in the points shop)
        granted_points = await services.cloud.actors.member_ledger.send(GrantPoints(
            id=f"setup:{uuid.uuid4().hex}", member=signed.member_id, points=10_000, why="setup"))
        assert granted_points.succeeded
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_lane_app(box), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    serving = asyncio.create_task(server.serve())
    counts: Counter = Counter()
    stop = asyncio.Event()
    since = int(time.time() * 1000)
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        demo = points_demo.PointsCustomers(url, {STORE: f"http://127.0.0.1:{port}"}, [piece],
                                           services.identity.sms.inbox, services.payments.wallet.sim.url,
                                           random.Random(17), counts, stop, people=list(people),
                                           online_stores=["S004"], round_s=0.3)
        demo.sessions.update(people)
        async with LeanClients(timeout=15) as lean:
            hq = await operator_headers(services)  # HQ's points-shop offer, as the demo defines it at start
            offer = await points_demo.define_points_offer(lean, url, hq, "R0025")
            assert offer is not None and offer["points_price"] == points_demo.OFFER_PERCENT_POINTS
            assert await points_demo.define_points_offer(lean, url, hq, "R0025") == offer  # idempotent
            running = asyncio.create_task(demo.run(lean))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (counts["points_surveys_answered"] >= 2
                                                       and counts["points_online_orders"] >= 2
                                                       and counts["points_till_paid"] >= 1
                                                       and counts["points_exchanges"] >= 1):
                await asyncio.sleep(0.2)
            stop.set()
            await running
    finally:
        server.should_exit = True
        await serving
    assert counts["points_surveys_answered"] >= 2 and counts["points_online_orders"] >= 2, (counts, demo.refusals)
    await services.orders.points.sweep()
    async with services.cloud.db.acquire() as conn:
        summary = await points_demo.summary(conn, since)
    assert summary["surveys_answered"] == counts["points_surveys_answered"]
    assert summary["survey_points_granted"] == counts["points_survey_points"] == 50 * counts["points_surveys_answered"]
    assert summary["points_online_orders"] == counts["points_online_orders"]
    assert summary["points_redeemed_online"] == counts["points_online_redeemed"] > 0
    assert summary["points_redeemed_exchange"] == counts["points_exchange_redeemed"] > 0
    assert summary["points_exchanges_issued"] == counts["points_exchanges"] >= 1
    assert summary["points_exchange_coupons_in_wallets"] == counts["points_exchange_coupons"] == counts["points_exchanges"]
    assert summary["points_redeemed_till"] == counts["points_till_redeemed"]
    assert summary["points_till_sales"] == counts["points_till_paid"]
    # the paid orders were told to S004, which has no box in this module: taken off its stream
    async with services.cloud.db.acquire() as conn:
        ours = {r["order_id"] for r in await conn.fetch("select order_id from points_payments where created_ms >= $1",
                                                        since)}
    async with StoreLink(stack, "S004") as store:
        told: set[str] = set()
        await store.commands(want=1_000, timeout_s=10, until=lambda m: isinstance(m, OrderToFulfil)
                             and told.add(m.order_id) is None and ours <= told)
