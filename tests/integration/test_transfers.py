"""Transfers between stores over the real stack (issue 16 item 5): two real edge boxes (A sends, B receives) on real
NATS as their own store users, the cloud with its actors on Ray and PostgreSQL.

- B asks A; A dispatches while cut off from the cloud (synced once it is back); the cloud shows the goods in
  transit between dispatch and receipt; B receives into the same lots and use-by, one unit short (recorded).
- HQ (or B's manager) asks; another store's manager may not; a dispatch done twice answers its first result.
- After each flow: both boxes' `GET /stock/audit` empty, the cloud's stock view (lots) equal to each box's, and
  the cloud's `/audit` clean.
- A hostile store dispatching a transfer not asked of it, or receiving one not sent to it, is refused.
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.core.outcome import MoveStock
from edge.core.stock import receive as receive_core
from edge.lanes import build_lane_app
from edge.sync import Sync
from protocol.lots import LotDelta, chain_day
from protocol.transfer_messages import TransferDispatched, TransferLotLine, TransferReceived, TransferRequested
from tests.integration.harness import StoreLink, eventually, operator_headers, running_cloud, this_clouds

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
A, B, HOSTILE = "S004", "S005", "S010"  # A and B in the world; HOSTILE has NATS credentials only
PIECES, GRAMS = "PAC-SESAME-0230", "SEA-YELLOW-0158"  # one sold by the piece, one by the kg (grams)
HQ_PIECES = "PAC-SESAME-0231"
WAIT_S = 90  # for what crosses NATS, Ray and PostgreSQL: generous, the box is shared (a pass is far quicker)


def day(offset: int) -> str:
    return (date.fromisoformat(chain_day(int(time.time() * 1000))) + timedelta(days=offset)).isoformat()


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"xfer{uuid.uuid4().hex[:6]}-") as (services, url):
        boxes = {}
        for store in (A, B):
            config = {"store_id": store, "data_dir": str(tmp_path_factory.mktemp(f"edge-{store}")), "world": str(WORLD),
                      "nats_url": stack.nats_address, "nats_password": stack.store_credentials(store)[1]}
            boxes[store] = await EdgeBox(config).start()
        lanes = {s: httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(b)), base_url="http://lane")
                 for s, b in boxes.items()}
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            for box in boxes.values():
                assert await eventually(lambda box=box: _online(box), timeout_s=WAIT_S)
            yield services, http, boxes, lanes
        for client in lanes.values():
            await client.aclose()
        for box in boxes.values():
            await box.stop()


@pytest_asyncio.fixture(autouse=True)
async def all_online(world):
    """Each test begins with both boxes connected (one that failed while a box was cut off leaves it so)."""
    for box in world[2].values():
        if box.sync is None:
            await go_online(box)
    yield


async def _online(box) -> bool:
    return box.actor.online


async def _drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


async def receive_lot(box, sku: str, lot: str, use_by: str, qty: int, unit_cost_fen: int | None = None) -> None:
    """Goods received into a named lot at the box, through its own API: a supplier's delivery note (at the
    product's cost, or `unit_cost_fen`)."""
    cost = {} if unit_cost_fen is None else {"unit_cost_fen": unit_cost_fen}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
        r = await lane.post("/receivings", json={"supplier": "test-farm", "note_no": uuid.uuid4().hex[:12],
                                                 "received_by": "dan", "lines": [{"sku": sku, "qty": qty, "lot": lot,
                                                                                  "use_by": use_by, **cost}]})
    assert r.status_code == 201, r.text


async def expired_lot(box, sku: str, lot: str, use_by: str, qty: int) -> None:
    """A lot that has gone past its use-by on the shelf since it came in (setup: a delivery already past its use-by
    is refused at receiving, so the box's own receiving decision is run in its mailbox with the lot put on it)."""
    async def lot_receipt():
        actor = box.actor
        level = await actor.db.stock_level(sku)
        outcome = receive_core(sku, qty, actor.books, level, await actor._ratio_of(sku), actor._stamp())
        effects = tuple(replace(e, event=replace(e.event, lots=(LotDelta(lot=lot, delta=qty, use_by=use_by),)))
                        if isinstance(e, MoveStock) else e for e in outcome.effects)
        return await actor._execute(replace(outcome, effects=effects))
    box.actor._lot_receipt = lot_receipt
    await box.actor.ask("lot_receipt")


async def go_offline(box) -> None:
    await box.sync.stop()
    box.sync = None
    box.actor.online = False


async def go_online(box) -> None:
    box.sync = await Sync(box, box.config["nats_url"], f"store_{box.store_id}", box._password()).start()
    assert await eventually(lambda: _online(box), timeout_s=WAIT_S)


async def cloud_transfer(http, admin, transfer_id: str, store: str) -> dict | None:
    body = (await http.get("/transfers", params={"store": store}, headers=admin)).json()
    return next((t for t in body["transfers"] if t["transfer_id"] == transfer_id), None)


async def listed(lane, status: str, transfer_id: str) -> dict | None:
    body = (await lane.get("/transfers", params={"status": status})).json()
    return next((t for t in body["transfers"] if t["transfer_id"] == transfer_id), None)


async def check_books(services, http, boxes, lanes, skus) -> None:
    """Σ movements = on hand per SKU and lot at both boxes; the cloud's stock view (lots) equals each box's; the
    cloud's audit clean."""
    for store, box in boxes.items():
        assert await eventually(lambda box=box: _drained(box), timeout_s=WAIT_S), f"{store}'s events were not acked"
        assert (await lanes[store].get("/stock/audit")).json()["violations"] == []
        mine = {x["sku"]: x for x in (await lanes[store].get("/stock")).json()["stock"] if x["sku"] in skus}

        async def agrees(store=store, mine=mine):
            rows = (await http.get(f"/stores/{store}/stock")).json()["stock"]
            cloud = {x["sku"]: x for x in rows if x["sku"] in skus}
            # named lots only: a world store's unlotted stock in the cloud's test database also holds the other
            # modules' boxes' movements of that store; this module's lots are its own
            return all(cloud.get(sku, {}).get("on_hand") == x["on_hand"] and
                       sorted((y["lot"], y["use_by"], y["on_hand"]) for y in cloud[sku]["lots"]
                              if y["on_hand"] and y["lot"]) ==
                       sorted((y["lot"], y["use_by"], y["on_hand"]) for y in x["lots"] if y["on_hand"] and y["lot"])
                       for sku, x in mine.items())
        assert await eventually(agrees, timeout_s=WAIT_S), f"the cloud's stock view of {store} differs from the box's"
    admin = await operator_headers(services)
    assert this_clouds((await http.get("/audit", headers=admin)).json()["violations"]) == []


async def test_b_asks_a_dispatches_offline_and_b_receives_one_short_with_lots_carried(world, stack):
    services, http, boxes, lanes = world
    admin = await operator_headers(services)
    soon, later, gone = day(3), day(6), day(-1)
    await expired_lot(boxes[A], PIECES, "L-OLD", gone, 4)  # expired on the shelf: never sent
    await receive_lot(boxes[A], PIECES, "L1", soon, 8)
    await receive_lot(boxes[A], PIECES, "L2", later, 10, unit_cost_fen=123)
    await receive_lot(boxes[A], GRAMS, "W1", later, 3_000, unit_cost_fen=4_560)
    assert await eventually(lambda: _drained(boxes[A]), timeout_s=WAIT_S)

    r = await lanes[B].post("/transfers", json={"from_store": A, "requested_by": "ann", "reason": "weekend",
                                                "lines": [{"sku": PIECES, "qty": 12}, {"sku": GRAMS, "qty": 1_500}]})
    assert r.status_code == 201, r.text
    tid = r.json()["transfer_id"]
    assert r.json()["status"] == "requested"
    assert await eventually(lambda: listed(lanes[A], "to_dispatch", tid), timeout_s=WAIT_S), "A was never asked"

    await go_offline(boxes[A])  # A dispatches with the cloud out of reach
    r = await lanes[A].post(f"/transfers/{tid}/dispatch", json={
        "dispatched_by": "bob", "lines": [{"sku": PIECES, "qty": 12}, {"sku": GRAMS, "qty": 1_500, "lot": "W1"}]})
    assert r.status_code == 200, r.text
    sent = {(x["sku"], x["lot"]): (x["use_by"], x["qty"]) for x in r.json()["dispatched"]}
    assert sent == {(PIECES, "L1"): (soon, 8), (PIECES, "L2"): (later, 4), (GRAMS, "W1"): (later, 1_500)}
    again = await lanes[A].post(f"/transfers/{tid}/dispatch", json={"dispatched_by": "bob",
                                                                    "lines": [{"sku": PIECES, "qty": 1}]})
    assert again.status_code == 200 and again.json() == r.json()  # twice: the first result
    assert (await lanes[A].get("/stock/audit")).json()["violations"] == []
    assert (await cloud_transfer(http, admin, tid, A))["status"] == "requested"  # the cloud has not heard yet
    await go_online(boxes[A])

    async def in_transit():
        t = await cloud_transfer(http, admin, tid, B)
        return t if t and t["status"] == "dispatched" else None
    t = await eventually(in_transit, timeout_s=WAIT_S)
    assert t, "the dispatch never reached the cloud"
    assert {(x["sku"], x["lot"], x["use_by"], x["qty"]) for x in t["in_transit"]} == \
        {(s, lot, u, q) for (s, lot), (u, q) in sent.items()}
    view = (await http.get("/transfers", params={"status": "dispatched", "store": B}, headers=admin)).json()
    assert {(x["sku"], x["lot"], x["qty"]) for x in view["in_transit"] if x["to_store"] == B} >= \
        {(PIECES, "L1", 8), (PIECES, "L2", 4), (GRAMS, "W1", 1_500)}

    stock_b = {x["sku"]: x for x in (await http.get(f"/stores/{B}/stock")).json()["stock"]}
    assert (stock_b[PIECES]["in_transit"], stock_b[GRAMS]["in_transit"]) == (12, 1_500)  # on their way to B

    arriving = await eventually(lambda: listed(lanes[B], "arriving", tid), timeout_s=WAIT_S)
    assert arriving, "B was never told what is on its way"
    r = await lanes[B].post(f"/transfers/{tid}/receive", json={"received_by": "cat", "lines": [
        {"sku": PIECES, "lot": "L1", "qty": 8}, {"sku": PIECES, "lot": "L2", "qty": 3},
        {"sku": GRAMS, "lot": "W1", "qty": 1_500}]})
    assert r.status_code == 200, r.text
    assert r.json()["discrepancies"] == [{"sku": PIECES, "lot": "L2",
                                           "use_by": later, "dispatched": 4, "received": 3, "short": 1}]
    lots_b = {x["sku"]: {(y["lot"], y["use_by"]): y["on_hand"] for y in x["lots"]}
              for x in (await lanes[B].get("/stock")).json()["stock"]}
    assert lots_b[PIECES][("L1", soon)] == 8 and lots_b[PIECES][("L2", later)] == 3
    assert lots_b[GRAMS][("W1", later)] == 1_500

    async def received():
        t = await cloud_transfer(http, admin, tid, A)
        return t if t and t["status"] == "received" else None
    t = await eventually(received, timeout_s=WAIT_S)
    assert t and t["in_transit"] == []
    assert [(d["sku"], d["lot"], d["short"]) for d in t["discrepancies"]] == [(PIECES, "L2", 1)]
    # the unit short is a loss in transit at A, at A's cost of the lot; the lots received carry A's cost to B
    conn = await asyncpg.connect(stack.database_url)
    try:
        lost = [tuple(r) for r in await conn.fetch(
            "select l.store_id, l.sku, l.lot, l.qty, l.reason, c.unit_cost_fen from loss_lines l "
            "left join lot_costs c using (store_id, sku, lot) where l.reason = 'transit' and l.sku = any($1::text[])",
            [PIECES, GRAMS])]
        assert lost == [(A, PIECES, "L2", 1, "transit", 123)], lost
        costs = {(r["sku"], r["lot"]): r["unit_cost_fen"] for r in await conn.fetch(
            "select sku, lot, unit_cost_fen from lot_costs where store_id = $1 and receiving_id = $2", B, tid)}
        assert costs[(PIECES, "L2")] == 123 and costs[(GRAMS, "W1")] == 4_560
    finally:
        await conn.close()
    losses = (await http.get("/operator/reports/losses", params={"store": A, "group_by": "reason", "from": day(0),
                                                                "to": day(0)},
                             headers=admin)).json()
    [transit] = [x for x in losses["rows"] if x["key"] == "transit"]
    assert transit["pieces"] >= 1 and transit["value_at_cost_fen"] >= 123
    await check_books(services, http, boxes, lanes, {PIECES, GRAMS})


async def test_hq_or_bs_manager_asks_and_another_stores_manager_may_not(world):
    services, http, boxes, lanes = world
    await receive_lot(boxes[A], HQ_PIECES, "H1", day(4), 6)
    body = {"from_store": A, "to_store": B, "lines": [{"sku": HQ_PIECES, "qty": 5}], "reason": "rebalance"}
    a_manager = f"a-manager-{uuid.uuid4().hex[:8]}"
    other = await operator_headers(services, "store_manager", store_id=A, username=a_manager)
    r = await http.post("/operator/transfers", json=body, headers=other)
    assert r.status_code == 403, r.text
    viewer = await operator_headers(services, "viewer")
    assert (await http.post("/operator/transfers", json=body, headers=viewer)).status_code == 403
    bad = await http.post("/operator/transfers", json={**body, "from_store": B}, headers=await operator_headers(services))
    assert bad.status_code == 422 and "different stores" in bad.json()["detail"]
    manager = await operator_headers(services, "store_manager", store_id=B)
    r = await http.post("/operator/transfers", json=body, headers=manager)
    assert r.status_code == 201, r.text
    tid = r.json()["transfer_id"]
    # B's manager takes goods off A's shelf: A's manager (or HQ) approves first; until then A hears nothing
    assert (r.json()["status"], r.json()["origin"], r.json()["store_told"]) == ("awaiting_approval", "hq", False)
    decide = f"/operator/transfers/{tid}/decision"
    r = await http.post(decide, json={"decision": "approve"}, headers=manager)
    assert r.status_code == 403 and f"not a store manager of {B}" in r.json()["detail"], r.text
    r = await http.post(decide, json={"decision": "refuse"}, headers=other)
    assert r.status_code == 422 and "say why" in r.json()["detail"], r.text
    r = await http.post(decide, json={"decision": "approve"}, headers=other)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["decided_by"], r.json()["store_told"]) == ("requested", a_manager, True)
    again = await http.post(decide, json={"decision": "approve"}, headers=other)
    assert again.status_code == 200 and again.json()["status"] == "requested"
    assert (await http.post(decide, json={"decision": "refuse", "reason": "late"}, headers=other)).status_code == 409
    admin = await operator_headers(services)
    audit = (await http.get("/operator/audit", headers=admin)).json()
    assert any(e["action"] == "transfer.request" and tid in e["target"] for e in audit.get("entries", []))
    # A's manager does not see B-only transfers of others; B's manager sees this one, and not another store's
    mine = (await http.get("/transfers", headers=manager)).json()["transfers"]
    assert tid in {t["transfer_id"] for t in mine} and all(B in (t["from_store"], t["to_store"]) for t in mine)
    assert (await http.get("/transfers", params={"store": "S003"}, headers=manager)).status_code == 403

    assert await eventually(lambda: listed(lanes[A], "to_dispatch", tid), timeout_s=WAIT_S)
    r = await lanes[A].post(f"/transfers/{tid}/dispatch", json={"dispatched_by": "bob",
                                                                "lines": [{"sku": HQ_PIECES, "qty": 6}]})
    assert r.status_code == 409 and "6 to send, 5 asked" in r.json()["detail"]
    r = await lanes[A].post(f"/transfers/{tid}/dispatch", json={"dispatched_by": "bob",
                                                                "lines": [{"sku": HQ_PIECES, "qty": 5}]})
    assert r.status_code == 200, r.text
    assert await eventually(lambda: listed(lanes[B], "arriving", tid), timeout_s=WAIT_S)
    await go_offline(boxes[B])  # B receives with the cloud out of reach
    r = await lanes[B].post(f"/transfers/{tid}/receive", json={"received_by": "cat",
                                                               "lines": [{"sku": HQ_PIECES, "lot": "H1", "qty": 5}]})
    assert r.status_code == 200 and r.json()["discrepancies"] == []
    assert (await cloud_transfer(http, admin, tid, B))["status"] == "dispatched"
    await go_online(boxes[B])

    async def received():
        t = await cloud_transfer(http, admin, tid, B)
        return t if t and t["status"] == "received" else None
    assert await eventually(received, timeout_s=WAIT_S)
    await check_books(services, http, boxes, lanes, {HQ_PIECES})


async def test_a_hostile_store_may_not_dispatch_or_receive_what_is_not_its_own(world, stack):
    services, http, boxes, lanes = world
    await receive_lot(boxes[A], HQ_PIECES, "H2", day(4), 4)
    admin = await operator_headers(services)
    made = await http.post("/operator/transfers", headers=admin, json={
        "from_store": A, "to_store": B, "lines": [{"sku": HQ_PIECES, "qty": 2}]})
    tid = made.json()["transfer_id"]
    # bad input at the box: refused with what was wrong, nothing made
    r = await lanes[B].post("/transfers", json={"from_store": A, "requested_by": "ann", "lines": []})
    assert r.status_code == 422 and "lines: 1-100 lines" in r.json()["detail"]
    r = await lanes[B].post("/transfers", json={"from_store": B, "requested_by": "ann",
                                                "lines": [{"sku": HQ_PIECES, "qty": 1}]})
    assert r.status_code == 422 and "cannot ask itself" in r.json()["detail"]
    r = await lanes[B].post("/transfers", json={"from_store": A, "requested_by": "ann",
                                                "lines": [{"sku": "NO-SUCH-SKU", "qty": 1}]})
    assert r.status_code == 404 and "NO-SUCH-SKU" in r.json()["detail"]
    r = await lanes[A].post(f"/transfers/{tid}/receive", json={"received_by": "bob", "lines": []})
    assert r.status_code == 422
    # a request the cloud does not believe (no such store in the chain) shows refused, with the reason, at the box
    r = await lanes[B].post("/transfers", json={"from_store": HOSTILE, "requested_by": "ann",
                                                "lines": [{"sku": HQ_PIECES, "qty": 1}]})
    assert r.status_code == 201
    ghost = r.json()["transfer_id"]

    async def shown_refused():
        t = await listed(lanes[B], "requested", ghost)
        return t if t and t.get("refused") else None
    t = await eventually(shown_refused, timeout_s=WAIT_S)
    assert t and f"no store {HOSTILE}" in t["refused_reason"], t
    async with StoreLink(stack, HOSTILE) as link:
        steal = TransferDispatched(**link.next_envelope(), transfer_id=tid, to_store=B, dispatched_by="eve",
                                   lines=(TransferLotLine(sku=HQ_PIECES, lot="", use_by="", qty=2),))
        await link.publish(steal)
        assert await eventually(lambda: listed(lanes[A], "to_dispatch", tid), timeout_s=WAIT_S)
        r = await lanes[A].post(f"/transfers/{tid}/dispatch", json={"dispatched_by": "bob",
                                                                    "lines": [{"sku": HQ_PIECES, "qty": 2}]})
        assert r.status_code == 200
        assert await eventually(lambda: listed(lanes[B], "arriving", tid), timeout_s=WAIT_S)
        grab = TransferReceived(**link.next_envelope(), transfer_id=tid, from_store=A, received_by="eve",
                                lines=(TransferLotLine(sku=HQ_PIECES, lot="H2", use_by="", qty=2),))
        await link.publish(grab)
        conn = await asyncpg.connect(stack.database_url)
        try:
            async def refused():
                rows = await conn.fetch("select reason from dead_letters where store_id = $1 and reason like $2",
                                        HOSTILE, f"%{tid}%")
                return [r["reason"] for r in rows] if len(rows) >= 2 else None
            reasons = await eventually(refused, timeout_s=WAIT_S)
        finally:
            await conn.close()
    assert reasons and any("not asked of this store" in x for x in reasons), reasons
    assert any("not sent to this store" in x for x in reasons), reasons
    t = await cloud_transfer(http, admin, tid, B)
    assert t["status"] == "dispatched" and t["from_store"] == A  # nothing of the hostile store's was taken
    r = await lanes[B].post(f"/transfers/{tid}/receive", json={"received_by": "cat",
                                                               "lines": [{"sku": HQ_PIECES, "lot": "H2", "qty": 2}]})
    assert r.status_code == 200
    await check_books(services, http, boxes, lanes, {HQ_PIECES})


async def test_the_demo_staff_move_stock_and_the_cloud_counts_what_they_did(world, stack):
    from loadtest.http import LeanClients
    from simulators.ops_transfers import TransferStaff, summary
    services, http, boxes, lanes = world
    await receive_lot(boxes[A], "PAC-SESAME-0229", "D1", day(5), 60)
    await receive_lot(boxes[B], "PAC-SESAME-0228", "D2", day(5), 60)

    class Fleet:  # the demo fleet's shape: store id -> its box's lane API (served here on real ports)
        world_path = WORLD
        lanes: dict[str, str] = {}
    servers = []
    import uvicorn

    from cloud.embedded.process import free_port
    for store, box in boxes.items():
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(build_lane_app(box), host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        servers.append((server, asyncio.create_task(server.serve())))
        Fleet.lanes[store] = f"http://127.0.0.1:{port}"
    for server, _ in servers:
        while not server.started:
            await asyncio.sleep(0.02)
    conn = await asyncpg.connect(stack.database_url)
    since = int(time.time() * 1000)
    try:
        before = await summary(conn)
        counts: Counter = Counter()
        stop = asyncio.Event()
        staff = TransferStaff(Fleet, random.Random(7), counts, stop, ask_every_s=(1.0, 2.0), round_s=0.5)  # brisk
        tasks = staff.tasks(LeanClients())
        await asyncio.sleep(8)
        stop.set()
        await asyncio.gather(*tasks)
        # what was asked and dispatched is received once it arrives: the staff finish their rounds, asking no more
        async def settled():
            for store in boxes:
                await staff.one_round(LeanClients(), store)
            drained = [await _drained(b) for b in boxes.values()]
            after = await summary(conn)
            return after if all(drained) and after.get("transfers_now_dispatched", 0) == before.get(
                "transfers_now_dispatched", 0) and after.get("transfers_now_requested", 0) == before.get(
                "transfers_now_requested", 0) else None
        after = await eventually(settled, timeout_s=WAIT_S, every_s=0.5)
        assert after, "transfers the staff started never settled"
        mine = await summary(conn, since_ms=since)  # only this run's (the earlier tests' transfers left out)
    finally:
        await conn.close()
        for server, task in servers:
            server.should_exit = True
            await task
    assert counts["transfers_requested"] >= 2, counts
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta["transfers_asked"] == counts["transfers_requested"]
    assert delta["transfers_now_received"] == counts["transfers_received"] == counts["transfers_dispatched"]
    assert delta["transfers_units_dispatched"] == counts["transfers_units_dispatched"]
    assert delta["transfers_units_received"] == counts["transfers_units_received"]
    assert delta["transfers_short_lines"] == counts["transfers_short_lines"] >= 1
    assert delta["transfers_over_lines"] == counts["transfers_over_lines"] == 0  # the staff count one short
    assert {k: mine.get(k, 0) for k in delta} == delta, (mine, delta)
    await check_books(services, http, boxes, lanes, {"PAC-SESAME-0229", "PAC-SESAME-0228"})


async def test_hq_cancels_before_dispatch_and_a_dispatch_made_offline_meanwhile_still_counts(world):
    services, http, boxes, lanes = world
    await receive_lot(boxes[A], HQ_PIECES, "C1", day(4), 6)
    admin = await operator_headers(services)
    ask = {"from_store": A, "to_store": B, "lines": [{"sku": HQ_PIECES, "qty": 2}], "reason": "cover a shortage"}
    first = (await http.post("/operator/transfers", json=ask, headers=admin)).json()["transfer_id"]
    second = (await http.post("/operator/transfers", json=ask, headers=admin)).json()["transfer_id"]
    for tid in (first, second):
        assert await eventually(lambda tid=tid: listed(lanes[A], "to_dispatch", tid), timeout_s=WAIT_S)
    other = await operator_headers(services, "store_manager", store_id=A)
    assert (await http.post(f"/operator/transfers/{first}/cancel", json={}, headers=other)).status_code == 403
    r = await http.post(f"/operator/transfers/{first}/cancel", json={"reason": "found elsewhere"}, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert await eventually(lambda: listed(lanes[A], "cancelled", first), timeout_s=WAIT_S), "A never heard"
    r = await lanes[A].post(f"/transfers/{first}/dispatch", json={"dispatched_by": "bob",
                                                                  "lines": [{"sku": HQ_PIECES, "qty": 2}]})
    assert r.status_code == 409 and "cancelled" in r.json()["detail"]

    await go_offline(boxes[A])  # A does not hear of the second's cancellation, and sends it
    r = await http.post(f"/operator/transfers/{second}/cancel", json={}, headers=admin)
    assert r.status_code == 200
    r = await lanes[A].post(f"/transfers/{second}/dispatch", json={"dispatched_by": "bob",
                                                                   "lines": [{"sku": HQ_PIECES, "qty": 2}]})
    assert r.status_code == 200, r.text
    await go_online(boxes[A])

    async def dispatched():  # the goods left A: the cloud takes the dispatch, and B is told they come
        t = await cloud_transfer(http, admin, second, B)
        return t if t and t["status"] == "dispatched" else None
    assert await eventually(dispatched, timeout_s=WAIT_S)
    assert (await http.post(f"/operator/transfers/{second}/cancel", json={}, headers=admin)).status_code == 409
    assert await eventually(lambda: listed(lanes[B], "arriving", second), timeout_s=WAIT_S)
    r = await lanes[B].post(f"/transfers/{second}/receive", json={"received_by": "cat",
                                                                  "lines": [{"sku": HQ_PIECES, "lot": "C1", "qty": 2}]})
    assert r.status_code == 200, r.text
    await check_books(services, http, boxes, lanes, {HQ_PIECES})


async def test_b_asks_hq_cancels_and_a_dispatch_made_offline_still_arrives_at_b(world):
    """B's own request, cancelled by HQ (B's row cancelled), dispatched by A before it heard: the arrival wins at B,
    B receives, and nothing is left in transit (A's units are not lost from both stores)."""
    services, http, boxes, lanes = world
    sku = "PAC-PEANUT-0219"
    told_early = await rows_recorded_before_telling(services)
    await receive_lot(boxes[A], sku, "K1", day(4), 5)
    admin = await operator_headers(services)
    r = await lanes[B].post("/transfers", json={"from_store": A, "requested_by": "ann", "reason": "short",
                                                "lines": [{"sku": sku, "qty": 3}]})
    assert r.status_code == 201, r.text
    tid = r.json()["transfer_id"]
    assert await eventually(lambda: listed(lanes[A], "to_dispatch", tid), timeout_s=WAIT_S), "A was never asked"
    await go_offline(boxes[A])  # A does not hear of the cancellation, and sends it
    r = await http.post(f"/operator/transfers/{tid}/cancel", json={"reason": "found elsewhere"}, headers=admin)
    assert r.status_code == 200, r.text
    assert await eventually(lambda: listed(lanes[B], "cancelled", tid), timeout_s=WAIT_S), "B never heard"
    r = await lanes[A].post(f"/transfers/{tid}/dispatch", json={"dispatched_by": "bob",
                                                                "lines": [{"sku": sku, "qty": 3}]})
    assert r.status_code == 200, r.text
    await go_online(boxes[A])
    assert await eventually(lambda: listed(lanes[B], "arriving", tid), timeout_s=WAIT_S), "B ignored the arrival"
    r = await lanes[B].post(f"/transfers/{tid}/receive", json={"received_by": "cat",
                                                               "lines": [{"sku": sku, "lot": "K1", "qty": 3}]})
    assert r.status_code == 200, r.text

    async def received():
        t = await cloud_transfer(http, admin, tid, B)
        return t if t and t["status"] == "received" else None
    t = await eventually(received, timeout_s=WAIT_S)
    assert t and t["in_transit"] == []
    assert told_early == [], "a store was told of a transfer step before the cloud recorded it"
    await check_books(services, http, boxes, lanes, {sku})


async def rows_recorded_before_telling(services) -> list:
    """Watch the bridge tell the other store of a transfer step: the step's row must be committed already (the
    other store's answer is judged against it). Returns the list of the steps told too early, filled as they are."""
    transfers = services.bridge.transfers
    early: list = []
    tell = transfers.tell

    async def watched(events):
        for e in events:
            want = {TransferRequested: "requested", TransferDispatched: "dispatched"}.get(type(e))
            if want:
                status = await transfers.cloud.db.fetchval("select status from transfers where transfer_id = $1",
                                                           e.transfer_id)
                if status is None or (want == "dispatched" and status != "dispatched"):
                    early.append((e.KIND, e.transfer_id, status))
        await tell(events)
    transfers.tell = watched
    return early
