"""Points paying part of a till sale (issue 17.5), with a real store box (S018, this module's own store) selling
through a proxy that can cut its network, against a running cloud: online the cloud holds the points first and the
sale's event captures them; offline the till pays them within its allowance and the cloud believes the claim; a
hostile store (S019, by hand) claiming more than the member has, or past its allowance, takes nothing past belief.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from actors.member_ledger import GrantPoints
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol import codec, subjects
from protocol.messages import Payment, Quantity, SaleCommitted, SaleLine
from protocol.policy import OFFLINE_POINTS_ALLOWANCE
from simulators.netcut import NetCut
from tests.integration.harness import StoreLink, customer, eventually, running_cloud

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE, HOSTILE = "S018", "S019"


def a_piece() -> dict:
    return [p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"]][7]


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"ptt{uuid.uuid4().hex[:6]}-") as (services, url):
        proxy = await NetCut("127.0.0.1", int(stack.nats_address.rsplit(":", 1)[1])).start()
        await services.bridge.ensure_store(STORE)  # its cloud-message consumer (made on a store's first event)
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": proxy.url, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        async with httpx.AsyncClient(base_url=url, timeout=20) as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _online(box), timeout_s=10)
            yield services, http, box, lane, proxy
        await box.stop()
        await proxy.stop()


async def _online(box) -> bool:
    return box.actor.online


async def _offline(box) -> bool:
    return not box.actor.online


async def member_with_points(services, http, box, points: int):
    member = await customer(services, http)
    assert (await services.cloud.actors.member_ledger.send(GrantPoints(
        id=f"setup:{uuid.uuid4().hex}", member=member.member_id, points=points, why="setup"))).succeeded
    view = await services.members.view(member.member_id)
    await services.members.notify_stores(view, stores=[STORE])

    async def cached():
        found = await box.store_db.member(member_id=member.member_id)
        return found if found and found.points == points else None
    assert await eventually(cached), "the member's points did not reach the store"
    return member, view


async def points_of(services, member_id: str) -> int:
    return (await services.cloud.actors.member_ledger.member(member_id, services.cloud.now_ms()))["points"]


async def basket(lane, lane_id: str, member_code: str, pieces: int) -> int:
    await lane.delete(f"/lanes/{lane_id}/cart")
    assert (await lane.post(f"/lanes/{lane_id}/member", json={"member_code": member_code})).status_code == 200
    for _ in range(pieces):
        assert (await lane.post(f"/lanes/{lane_id}/scan", json={"code": a_piece()["gtin"]})).status_code == 200
    return (await lane.get(f"/lanes/{lane_id}/cart")).json()["total_fen"]


async def test_online_the_cloud_holds_the_points_and_the_sale_captures_them(world):
    services, http, box, lane, _ = world
    member, view = await member_with_points(services, http, box, 3_000)
    total = await basket(lane, "1", view["member_code"], 6)
    asked = min(total // 2, 2_500)
    too_many = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 100_000, "points": total // 2 + 1})
    assert too_many.status_code == 422 and "50%" in too_many.json()["detail"]
    paid = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 100_000, "points": asked})
    assert paid.status_code == 201, paid.text
    body = paid.json()
    assert body["points_paid"]["hold_id"].startswith("ptshold:") and body["points_paid"]["offline"] is False
    assert body["change_fen"] == 100_000 - (total - asked)  # cash paid only the rest
    earned = (total - asked) // 100  # the cash part earns points; the points part does not

    async def captured():
        async with services.cloud.db.acquire() as conn:
            row = await conn.fetchrow("select * from till_points where reference = $1", body["points_paid"]["hold_id"])
        return row if row is not None and row["state"] == "captured" else None
    row = await eventually(captured, timeout_s=15)
    assert row and row["sale_id"] == body["sale_id"] and row["points"] == asked
    assert await eventually(lambda: _points_are(services, member.member_id, 3_000 - asked + earned), timeout_s=15)
    from cloud.messaging import points_till
    await points_till.sweep(services.cloud)  # a captured hold never lapses: nothing comes back
    assert await points_of(services, member.member_id) == 3_000 - asked + earned


async def _points_are(services, member_id: str, want: int) -> bool:
    return await points_of(services, member_id) == want


async def test_online_points_past_the_balance_are_refused_by_the_clouds_hold_and_nothing_is_taken(world):
    services, http, box, lane, _ = world
    member, view = await member_with_points(services, http, box, 200)
    await services.cloud.actors.member_ledger.send(GrantPoints(id=f"x:{uuid.uuid4().hex}", member=member.member_id,
                                                               points=1, why="setup"))  # the cache is now behind
    total = await basket(lane, "1", view["member_code"], 6)
    assert total >= 2 * 300
    refused = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 100_000, "points": 300})
    assert refused.status_code == 409 and "insufficient points" in refused.json()["detail"]
    assert "has 201" in refused.json()["detail"]
    assert await points_of(services, member.member_id) == 201
    assert (await lane.get("/lanes/1/cart")).json()["lines"]  # nothing sold: the cart is still there


async def test_offline_points_within_the_allowance_are_believed_on_reconnect(world):
    services, http, box, lane, proxy = world
    member, view = await member_with_points(services, http, box, 5_000)
    pieces = (2 * OFFLINE_POINTS_ALLOWANCE + 200) // a_piece()["price_fen"] + 2  # half of it is past the allowance
    proxy.cut()
    try:
        assert await eventually(lambda: _offline(box), timeout_s=15)
        total = await basket(lane, "2", view["member_code"], pieces)
        assert total // 2 > OFFLINE_POINTS_ALLOWANCE
        over = await lane.post("/lanes/2/pay", json={"method": "cash", "tendered_fen": 1_000_000,
                                                     "points": OFFLINE_POINTS_ALLOWANCE + 1})
        assert over.status_code == 409 and "points offline limit" in over.json()["detail"]
        asked = 1_000
        paid = await lane.post("/lanes/2/pay", json={"method": "cash", "tendered_fen": 1_000_000, "points": asked})
        assert paid.status_code == 201, paid.text
        assert paid.json()["offline"] is True and paid.json()["points_paid"]["offline"] is True
        # the allowance counts what this store already took without the cloud: 1,000 of 2,000 are left
        await basket(lane, "2", view["member_code"], pieces)
        past = await lane.post("/lanes/2/pay", json={"method": "cash", "tendered_fen": 1_000_000,
                                                     "points": OFFLINE_POINTS_ALLOWANCE - asked + 1})
        assert past.status_code == 409 and f"{asked} of the offline allowance" in past.json()["detail"]
        await lane.delete("/lanes/2/cart")
    finally:
        proxy.heal()
    assert await eventually(lambda: _online(box), timeout_s=15)
    earned = (total - asked) // 100
    assert await eventually(lambda: _points_are(services, member.member_id, 5_000 - asked + earned), timeout_s=30)
    async with services.cloud.db.acquire() as conn:
        row = await conn.fetchrow("select * from till_points where sale_id = $1", paid.json()["sale_id"])
    assert row["state"] == "claimed" and row["believed"] == row["points"] == asked


def claimed_sale(link: StoreLink, member_id: str, points: int, reference: str) -> SaleCommitted:
    """A sale paid wholly in points (what a broken or hostile box could send), without a hold."""
    return SaleCommitted(**link.next_envelope(), sale_id=f"F{uuid.uuid4().hex[:20]}", lane="1",
                         lines=(SaleLine(sku=a_piece()["sku"], quantity=Quantity.pieces(1), amount_fen=points),),
                         total_fen=points, member_id=member_id, offline=True,
                         payments=(Payment(method="points", amount_fen=points, reference=reference),))


async def test_a_hostile_store_claiming_points_takes_nothing_past_what_is_believed(world, stack):
    """S019 claims 5,000 points of a member who has 1,200, then 900 more naming a hold that is not its own: both
    sales are recorded (the goods left), but the member gives at most what they have within S019's offline
    allowance, and never goes below zero; the rest is the store's."""
    services, http, box, lane, _ = world
    victim, view = await member_with_points(services, http, box, 1_200)
    async with StoreLink(stack, HOSTILE) as link:
        big = claimed_sale(link, victim.member_id, 5_000, reference=f"pts:{uuid.uuid4().hex}")
        await link.publish(big)
        second = claimed_sale(link, victim.member_id, 900, reference="ptshold:01KDVDNA000000000000000C1T")
        await link.publish(second)

    async def decided():
        async with services.cloud.db.acquire() as conn:
            rows = await conn.fetch("select * from till_points where sale_id = any($1::text[]) and state = 'claimed'",
                                    [big.sale_id, second.sale_id])
        return {r["sale_id"]: r for r in rows} if len(rows) == 2 else None
    rows = await eventually(decided, timeout_s=20)
    assert rows, "the hostile store's claims were never decided"
    assert rows[big.sale_id]["believed"] == 1_200 and rows[big.sale_id]["points"] == 5_000  # all the member had
    assert rows[second.sale_id]["believed"] == 0  # nothing left to believe, whatever hold it names
    assert await points_of(services, victim.member_id) == 0  # never below zero


class HeldMessage:
    """A store's event as the bridge's fetch hands it over (subject, frame, headers, ack), for a batch made by hand."""

    def __init__(self, store_id: str, event) -> None:
        self.subject = subjects.store_event(store_id, event.KIND)
        self.data, self.headers, self.is_acked = codec.encode(event), {subjects.MSG_ID_HEADER: event.event_id}, False

    async def ack(self) -> None:
        self.is_acked = True


async def test_two_claims_of_one_member_in_one_batch_are_judged_one_after_the_other(world, stack):
    """An offline backlog brings a member's points sales in one batch: the second claim is judged against what the
    first took (the member's points and the store's allowance), not against the same untouched balance."""
    services, http, box, lane, _ = world
    victim, _ = await member_with_points(services, http, box, 1_000)
    async with StoreLink(stack, HOSTILE) as link:
        first = claimed_sale(link, victim.member_id, 700, reference="")
        second = claimed_sale(link, victim.member_id, 600, reference="")
    batch = [HeldMessage(HOSTILE, first), HeldMessage(HOSTILE, second)]
    await services.bridge.handle(batch)  # the two at once, as one fetch would bring them
    rows = {r["sale_id"]: r for r in await services.cloud.db.fetch(
        "select * from till_points where sale_id = any($1::text[])", [first.sale_id, second.sale_id])}
    assert (rows[first.sale_id]["believed"], rows[second.sale_id]["believed"]) == (700, 300)  # in the store's order
    assert await points_of(services, victim.member_id) == 0
    assert batch[-1].is_acked
