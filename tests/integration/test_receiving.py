"""Receiving by delivery note and shrinkage by lot over the real stack (issue 16 items 1 and 3): a real store box
(through a proxy that can cut its network) receives notes and writes stock off while offline, the cloud records
each exactly once when it is back, values the losses at cost and at price, and believes a store only about its
own receivings. After each flow: the box's `GET /stock/audit` is empty, the cloud's stock view of the store's lots
equals the box's, and /audit names nothing of ours. S008 publishes by hand, as a hostile box would."""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import pytest_asyncio
import uvicorn

from cloud.embedded.process import free_port
from edge.box import EdgeBox
from edge.core.receiving import store_lot_name
from edge.lanes import build_lane_app
from loadtest.http import LeanClients
from protocol.ids import make_id
from protocol.lots import chain_day
from protocol.money import weighed_amount_fen
from protocol.receiving_messages import GoodsReceived, ReceivedLine
from simulators import ops_receiving
from simulators.netcut import NetCut
from tests.integration.harness import StoreLink, eventually, operator_headers, running_cloud, this_clouds

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE, HOSTILE = "S004", "S008"  # S004: a store of the cloud's world; S008 is none
CATALOGUE = json.loads(WORLD.read_text())["catalogue"]
PIECE = next(p for p in CATALOGUE if p["unit"] == "piece" and p.get("shelf_life_days", 0) > 0)
WEIGHED = next(p for p in CATALOGUE if p["unit"] == "kg" and p.get("shelf_life_days", 0) > 0)
RUN = uuid.uuid4().hex[:6]  # note numbers of this run (the database is shared with earlier runs)


def today() -> str:
    return chain_day(time.time_ns() // 1_000_000)


def days(n: int) -> str:
    return (date.fromisoformat(today()) + timedelta(days=n)).isoformat()


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"rcv{uuid.uuid4().hex[:6]}-") as (services, url):
        proxy = await NetCut("127.0.0.1", int(stack.nats_address.rsplit(":", 1)[1])).start()
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": proxy.url, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        async with httpx.AsyncClient(base_url=url, timeout=20) as cloud_http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _online(box), timeout_s=10)
            yield SimpleNamespace(services=services, http=cloud_http, box=box, lane=lane, proxy=proxy, stack=stack)
        await box.stop()
        await proxy.stop()


async def _online(box) -> bool:
    return box.actor.online


async def drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


def _lots(stock: list[dict], skus, marker: str) -> dict:
    return {(item["sku"], lot["lot"]): (lot["use_by"], lot["on_hand"]) for item in stock if item["sku"] in skus
            for lot in item.get("lots", []) if lot["on_hand"] != 0 and marker in lot["lot"]}


async def box_lots(lane, skus, marker: str = "") -> dict:
    return _lots((await lane.get("/stock")).json()["stock"], skus, marker)


async def cloud_lots(http, skus, marker: str) -> dict:
    r = await http.get(f"/stores/{STORE}/stock")
    assert r.status_code == 200, r.text
    return _lots(r.json()["stock"], skus, marker)


async def consistent(w, skus, marker: str = RUN) -> None:
    """The invariant at the box, the cloud's view of the store's lots the box's own, and /audit clean of ours. Only
    the lots this module named (`marker`) are compared: other modules' boxes of the same store, on the one shared
    database, had lots of their own that this box never saw."""
    assert (await w.lane.get("/stock/audit")).json()["violations"] == []
    assert await eventually(lambda: drained(w.box)), "the store's events did not all reach the cloud"

    async def same() -> bool:
        return await cloud_lots(w.http, skus, marker) == await box_lots(w.lane, skus, marker)
    assert await eventually(same), (await cloud_lots(w.http, skus, marker), await box_lots(w.lane, skus, marker))
    report = (await w.http.get("/audit", headers=await operator_headers(w.services))).json()
    assert [v for v in this_clouds(report["violations"]) if STORE in v or "sum to" in v] == []


async def test_a_note_with_two_lots_and_an_under_delivery_received_offline_syncs_to_the_cloud_once(world):
    w = world
    w.proxy.cut()
    assert await eventually(lambda: _not_online(w.box), timeout_s=15)
    note = {"supplier": "Green Farm", "note_no": f"DN-{RUN}-1", "received_by": "clerk-1", "lines": [
        {"sku": PIECE["sku"], "qty": 20, "expected_qty": 20, "unit_cost_fen": 180, "lot": f"L{RUN}-1",
         "use_by": days(2)},
        {"sku": PIECE["sku"], "qty": 10, "expected_qty": 12, "unit_cost_fen": 190, "lot": f"L{RUN}-2",
         "use_by": days(5)},
        {"sku": WEIGHED["sku"], "qty": 4_000, "expected_qty": 5_000, "unit_cost_fen": 1_100}]}
    r = await w.lane.post("/receivings", json=note)
    assert r.status_code == 201, r.text
    done = r.json()
    # no lot on the note: the box names it (per supplier, note and line); its use-by from the shelf life
    own_lot = store_lot_name("Green Farm", f"DN-{RUN}-1", 3)
    assert [(x["sku"], x["lot"], x["use_by"], x["qty"], x["variance"]) for x in done["lines"]] == [
        (PIECE["sku"], f"L{RUN}-1", days(2), 20, 0), (PIECE["sku"], f"L{RUN}-2", days(5), 10, -2),
        (WEIGHED["sku"], own_lot, days(WEIGHED["shelf_life_days"]), 4_000, -1_000)]
    assert done["under"] == 1_002 and done["over"] == 0
    # the same note again (a retry after a lost answer) books nothing and answers the same; other lines: 409
    again = await w.lane.post("/receivings", json=note)
    assert again.status_code == 201 and again.json() == done
    changed = {**note, "lines": note["lines"][:2]}
    conflict = await w.lane.post("/receivings", json=changed)
    assert conflict.status_code == 409 and "received already" in conflict.json()["detail"]
    listed = (await w.lane.get("/receivings", params={"since": done["at_ms"]})).json()["receivings"]
    assert [x["receiving_id"] for x in listed] == [done["receiving_id"]]
    lots = await box_lots(w.lane, {PIECE["sku"], WEIGHED["sku"]})
    assert lots[(PIECE["sku"], f"L{RUN}-1")] == (days(2), 20) and lots[(PIECE["sku"], f"L{RUN}-2")] == (days(5), 10)
    assert lots[(WEIGHED["sku"], own_lot)] == (days(WEIGHED["shelf_life_days"]), 4_000)
    assert (await w.lane.get("/stock/audit")).json()["violations"] == []
    assert await w.box.store_db.outbox_depth() > 0  # nothing reached the cloud yet
    db = w.services.cloud.db
    assert await db.fetchval("select count(*) from receivings where receiving_id = $1", done["receiving_id"]) == 0

    w.proxy.heal()
    await consistent(w, {PIECE["sku"], WEIGHED["sku"]})
    row = await db.fetchrow("select store_id, supplier, note_no, received_by from receivings where receiving_id = $1",
                            done["receiving_id"])
    assert dict(row) == {"store_id": STORE, "supplier": "Green Farm", "note_no": f"DN-{RUN}-1", "received_by": "clerk-1"}
    lines = [tuple(r) for r in await db.fetch(
        "select sku, lot, qty, expected_qty, unit_cost_fen from receiving_lines where receiving_id = $1 order by n",
        done["receiving_id"])]
    assert lines == [(PIECE["sku"], f"L{RUN}-1", 20, 20, 180), (PIECE["sku"], f"L{RUN}-2", 10, 12, 190),
                     (WEIGHED["sku"], own_lot, 4_000, 5_000, 1_100)]
    costs = {(r["sku"], r["lot"]): r["unit_cost_fen"] for r in await db.fetch(
        "select sku, lot, unit_cost_fen from lot_costs where store_id = $1 and receiving_id = $2", STORE,
        done["receiving_id"])}
    assert costs == {(PIECE["sku"], f"L{RUN}-1"): 180, (PIECE["sku"], f"L{RUN}-2"): 190,
                     (WEIGHED["sku"], own_lot): 1_100}
    assert await db.fetchval("select count(*) from edge_events where store_id = $1 and kind = 'goods.received' "
                             "and event_id = (select event_id from receivings where receiving_id = $2)", STORE,
                             done["receiving_id"]) == 1


async def _not_online(box) -> bool:
    return not box.actor.online


@pytest.mark.parametrize("bad", [
    ({"sku": "NOPE-1", "qty": 1}, 404, "unknown product"),
    ({"sku": PIECE["sku"], "qty": 10_000_001}, 422, "qty"),
    ({"sku": PIECE["sku"], "qty": 1, "use_by": "2026-02-30"}, 422, "not a calendar day"),
    ({"sku": PIECE["sku"], "qty": 1, "use_by": "yesterday"}, 422, "YYYY-MM-DD"),
    ({"sku": PIECE["sku"], "qty": 1, "use_by": "2020-01-01"}, 422, "an expired delivery is refused"),
    ({"sku": PIECE["sku"], "qty": 1, "unit_cost_fen": 10_000_001}, 422, "unit_cost_fen"),
])
async def test_a_bad_line_is_refused_by_name_and_nothing_of_the_note_is_booked(world, bad):
    line, status, says = bad
    before = (await world.box.store_db.stock_level(WEIGHED["sku"])).on_hand
    r = await world.lane.post("/receivings", json={"supplier": "Green Farm", "note_no": f"BAD-{uuid.uuid4().hex[:8]}",
                                                   "received_by": "clerk-1",
                                                   "lines": [{"sku": WEIGHED["sku"], "qty": 500}, line]})
    assert r.status_code == status and r.headers["content-type"].startswith("application/problem+json")
    assert says in r.json()["detail"], r.json()
    assert (await world.box.store_db.stock_level(WEIGHED["sku"])).on_hand == before


async def receive(lane, no: str, lines: list[dict]) -> dict:
    r = await lane.post("/receivings", json={"supplier": "Green Farm", "note_no": no, "received_by": "clerk-1",
                                             "lines": lines})
    assert r.status_code == 201, r.text
    return r.json()


async def shrink(lane, **body) -> dict:
    r = await lane.post("/shrinkage", json={"recorded_by": "clerk-2", **body})
    assert r.status_code == 201, r.text
    return r.json()


async def test_shrinkage_offline_by_pieces_grams_named_lot_and_whole_lot_with_the_escrow_reclaim(world):
    w = world
    w.proxy.cut()  # all of it with the cloud unreachable: it syncs once the network is back
    assert await eventually(lambda: _not_online(w.box), timeout_s=15)
    await receive(w.lane, f"DN-{RUN}-2", [
        {"sku": PIECE["sku"], "qty": 30, "unit_cost_fen": 200, "lot": f"S{RUN}-A", "use_by": days(1)},
        {"sku": WEIGHED["sku"], "qty": 3_000, "unit_cost_fen": 1_000, "lot": f"S{RUN}-W", "use_by": days(1)}])
    # pieces, first-expiry-first-out: the lot with the earliest use-by goes first
    level = await w.box.store_db.stock_level(PIECE["sku"])
    first = await shrink(w.lane, sku=PIECE["sku"], qty=2, reason="damaged", note="dropped")
    assert first["lots"] == [{"lot": f"S{RUN}-A", "qty": 2, "use_by": days(1)}]
    assert first["on_hand"] == level.on_hand - 2 and first["recorded_by"] == "clerk-2"
    # grams of a weighed product, from a named lot
    grams = await shrink(w.lane, sku=WEIGHED["sku"], qty=250, reason="weighing_loss", lot=f"S{RUN}-W")
    assert grams["lots"] == [{"lot": f"S{RUN}-W", "qty": 250, "use_by": days(1)}]
    named = await shrink(w.lane, sku=PIECE["sku"], qty=3, reason="tasting", lot=f"L{RUN}-2")
    assert named["lots"][0]["lot"] == f"L{RUN}-2" and named["lots"][0]["qty"] == 3
    # a retry with the terminal's id changes nothing more
    sid = make_id(time.time_ns() // 1_000_000, 77)
    once = await shrink(w.lane, sku=PIECE["sku"], qty=1, reason="theft", shrinkage_id=sid)
    twice = await shrink(w.lane, sku=PIECE["sku"], qty=1, reason="theft", shrinkage_id=sid)
    assert twice["on_hand"] == once["on_hand"] == (await w.box.store_db.stock_level(PIECE["sku"])).on_hand
    listed = (await w.lane.get("/shrinkage")).json()["shrinkage"]  # the write-offs, once each, as booked
    assert [(x["shrinkage_id"], x["qty"], x["reason"]) for x in listed if x["shrinkage_id"] == sid] == [(sid, 1, "theft")]
    assert {(x["sku"], x["qty"], x["reason"]) for x in listed} >= {(PIECE["sku"], 2, "damaged"),
                                                                   (WEIGHED["sku"], 250, "weighing_loss")}
    assert (await w.lane.get("/shrinkage", params={"since": "１"})).status_code == 422
    # the whole lot as expired, no quantity: its whole on-hand; it eats into the cloud's share -> asked back
    # the other lots go, whole (a lot and no quantity), so that lot A is what is left of the cloud's share
    lots = await box_lots(w.lane, {PIECE["sku"]})
    lot_a = lots[(PIECE["sku"], f"S{RUN}-A")][1]
    for (_, lot), (_, n) in lots.items():
        if lot not in (f"S{RUN}-A", "") and n > 0:
            gone = await shrink(w.lane, sku=PIECE["sku"], reason="spoiled", lot=lot)
            assert gone["qty"] == n and gone["lots"] == [{"lot": lot, "qty": n, "use_by": lots[(PIECE["sku"], lot)][0]}]
    level = await w.box.store_db.stock_level(PIECE["sku"])
    assert level.on_hand - lot_a < level.escrow, (level, lot_a)  # what is left is less than the cloud holds
    whole = await shrink(w.lane, sku=PIECE["sku"], reason="expired", lot=f"S{RUN}-A")
    assert whole["qty"] == lot_a and whole["lots"] == [{"lot": f"S{RUN}-A", "qty": lot_a, "use_by": days(1)}]
    assert whole["escrow_reclaim_asked"] == level.escrow - (level.on_hand - lot_a)
    assert (await box_lots(w.lane, {PIECE["sku"]})).get((PIECE["sku"], f"S{RUN}-A")) is None
    # refusals name what was wrong and change nothing
    for body, status, says in (({"sku": PIECE["sku"], "reason": "expired", "lot": f"S{RUN}-A"}, 409, "nothing on hand"),
                               ({"sku": PIECE["sku"], "qty": 10**6, "reason": "theft"}, 409, "cannot write off"),
                               ({"sku": PIECE["sku"], "qty": 1, "reason": "lost"}, 422, "reason: one of"),
                               ({"sku": PIECE["sku"], "qty": 1, "reason": "theft", "lot": "NO-SUCH"}, 404, "no lot"),
                               ({"sku": "NOPE-1", "qty": 1, "reason": "theft"}, 404, "unknown product")):
        r = await w.lane.post("/shrinkage", json={"recorded_by": "clerk-2", **body})
        assert r.status_code == status and says in r.json()["detail"], (body, r.text)

    assert await w.box.store_db.outbox_depth() > 0
    w.proxy.heal()

    async def escrow_back() -> bool:  # the cloud gave back what the store asked: both sides hold the same escrow
        stock = {r["sku"]: r for r in (await w.http.get(f"/stores/{STORE}/stock")).json()["stock"]}
        return stock[PIECE["sku"]]["escrow"] == (await w.box.store_db.stock_level(PIECE["sku"])).escrow
    await consistent(w, {PIECE["sku"], WEIGHED["sku"]})
    assert await eventually(escrow_back)
    db = w.services.cloud.db
    noted = await db.fetchrow("select store_id, sku, qty, reason, lot, recorded_by from shrinkage_notes "
                              "where shrinkage_id = $1", whole["shrinkage_id"])
    assert dict(noted) == {"store_id": STORE, "sku": PIECE["sku"], "qty": lot_a, "reason": "expired",
                           "lot": f"S{RUN}-A", "recorded_by": "clerk-2"}
    assert await db.fetchval("select count(*) from shrinkage_notes where shrinkage_id = $1", sid) == 1
    lost = [tuple(r) for r in await db.fetch(
        "select l.lot, l.qty, l.reason from loss_lines l join stock_movements m using (event_id) "
        "where m.reference = $1", grams["shrinkage_id"])]
    assert lost == [(f"S{RUN}-W", 250, "weighing_loss")]


async def report(w, headers, **q) -> dict:
    r = await w.http.get("/operator/reports/losses", params={"from": today(), "to": today(), **q}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_the_loss_report_values_losses_at_the_lots_cost_and_at_price_by_reason_category_store_and_day(world):
    w = world
    admin = await operator_headers(w.services)
    groups = ("reason", "category", "store", "day")
    before = {g: {r["key"]: r for r in (await report(w, admin, store=STORE, group_by=g))["rows"]} for g in groups}
    await receive(w.lane, f"DN-{RUN}-3", [
        {"sku": PIECE["sku"], "qty": 10, "unit_cost_fen": 230, "lot": f"R{RUN}-P", "use_by": days(3)},
        {"sku": WEIGHED["sku"], "qty": 2_000, "unit_cost_fen": 1_500, "lot": f"R{RUN}-K", "use_by": days(3)}])
    await shrink(w.lane, sku=PIECE["sku"], qty=4, reason="other", lot=f"R{RUN}-P")
    await shrink(w.lane, sku=WEIGHED["sku"], qty=1_250, reason="other", lot=f"R{RUN}-K")
    await consistent(w, {PIECE["sku"], WEIGHED["sku"]})
    # at cost: 4 x 2.30 + 1.25 kg x 15.00; at price: 4 pieces and 1.25 kg at list price
    cost = 4 * 230 + weighed_amount_fen(1_250, 1_500)
    price = 4 * PIECE["price_fen"] + weighed_amount_fen(1_250, WEIGHED["price_fen"])
    keys = {"reason": ["other"], "store": [STORE], "day": [today()],
            "category": [PIECE["category"], WEIGHED["category"]]}
    for g in groups:
        after = {r["key"]: r for r in (await report(w, admin, store=STORE, group_by=g))["rows"]}

        def grew(field: str, g: str = g, after: dict = after) -> int:
            return sum(after[k][field] - before[g].get(k, {field: 0})[field] for k in set(keys[g]))
        assert (grew("value_at_cost_fen"), grew("value_at_price_fen")) == (cost, price), g
        assert (grew("pieces"), grew("grams")) == (4, 1_250), g
    whole = await report(w, admin, store=STORE, group_by="reason")
    assert whole["totals"]["value_at_cost_fen"] == sum(r["value_at_cost_fen"] for r in whole["rows"])
    csv_text = (await w.http.get("/operator/reports/losses", headers=admin, params={
        "from": today(), "to": today(), "store": STORE, "group_by": "reason", "format": "csv"})).text
    rows = csv_text.splitlines()
    assert rows[0].startswith("reason,lines,pieces,grams,value_at_cost_fen")
    assert rows[-1].split(",")[4] == str(whole["totals"]["value_at_cost_fen"])
    # who sees what: a manager of this store by default sees it; of another store, not this one; a viewer all
    mine = await operator_headers(w.services, "store_manager", STORE)
    assert (await report(w, mine, group_by="store"))["store"] == STORE
    theirs = await operator_headers(w.services, "store_manager", HOSTILE)
    r = await w.http.get("/operator/reports/losses", headers=theirs,
                         params={"from": today(), "to": today(), "store": STORE})
    assert r.status_code == 403
    assert (await report(w, await operator_headers(w.services, "viewer"), group_by="store"))["store"] is None
    for q, says in (({"group_by": "sku"}, "group_by"), ({"from": "tomorrow"}, "YYYY-MM-DD"),
                    ({"format": "xml"}, "format")):
        r = await w.http.get("/operator/reports/losses", headers=admin,
                             params={"from": today(), "to": today(), **q})
        assert r.status_code == 422 and says in r.json()["detail"]
    assert (await w.http.get("/operator/reports/losses", params={"from": today(), "to": today()})).status_code == 401


async def test_a_hostile_stores_goods_received_for_another_store_is_refused(world):
    w = world
    db = w.services.cloud.db
    theirs = await db.fetchval("select receiving_id from receivings where store_id = $1 limit 1", STORE)
    assert theirs is not None
    async with StoreLink(w.stack, HOSTILE) as link:
        def received(store_id: str, receiving_id: str, env: dict) -> GoodsReceived:
            return GoodsReceived(**{**env, "store_id": store_id}, receiving_id=receiving_id, supplier="Green Farm",
                                 note_no=f"H-{RUN}", received_by="x", lines=(ReceivedLine(
                                     sku=PIECE["sku"], lot="H1", use_by="", qty=5, expected_qty=5, unit_cost_fen=1),))
        as_other = received(STORE, make_id(time.time_ns() // 1_000_000, 5), link.next_envelope())
        reused = received(HOSTILE, theirs, link.next_envelope())
        await link.publish(as_other)
        await link.publish(reused)

        async def dead() -> list:
            return [r["reason"] for r in await db.fetch(
                "select reason from dead_letters where store_id = $1 and at_ms > $2 order by id", HOSTILE,
                time.time_ns() // 1_000_000 - 60_000)]
        assert await eventually(lambda: _both(dead)), await dead()
        reasons = await dead()
        assert any(f"event for store {STORE} arrived on store {HOSTILE}'s subject" in r for r in reasons), reasons
        assert any(f"receiving {theirs} is store {STORE}'s" in r for r in reasons), reasons
    assert await db.fetchval("select count(*) from receivings where event_id = any($1::text[])",
                             [as_other.event_id, reused.event_id]) == 0
    assert await db.fetchval("select store_id from receivings where receiving_id = $1", theirs) == STORE


async def _both(dead) -> bool:
    reasons = await dead()
    return any("arrived on store" in r for r in reasons) and any("receiving " in r and "is store" in r for r in reasons)


async def test_the_simulated_staff_receive_and_write_off_and_the_cloud_counts_the_same(world, monkeypatch):
    w = world
    monkeypatch.setattr(ops_receiving, "ROUND_S", 0.6)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_lane_app(w.box), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    serving = asyncio.create_task(server.serve())
    since = time.time_ns() // 1_000_000
    counts: Counter = Counter()
    stop = asyncio.Event()
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        fleet = SimpleNamespace(lanes={STORE: f"http://127.0.0.1:{port}"}, world_path=WORLD)
        staff = ops_receiving.OpsReceiving(fleet, random.Random(7), counts, stop)
        async with LeanClients() as http:
            tasks = staff.tasks(http)

            async def worked() -> bool:
                return counts["receiving_notes"] >= 3 and counts["receiving_shrinkage"] >= 3
            assert await eventually(worked, timeout_s=30), counts
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        server.should_exit = True
        await serving
    assert not [k for k in counts if k.startswith("staff_refused")], (counts, staff.refusals)
    await consistent(w, {p["sku"] for p in CATALOGUE}, marker=f"{STORE}-")
    got = await ops_receiving.summary(w.services.cloud.db, since_ms=since, stores=[STORE])
    assert got["receivings"] == counts["receiving_notes"]
    assert got["lots_received"] == counts["receiving_lots"]
    assert got["under_delivered_lines"] == counts["receiving_under_delivered"]
    assert got["shrinkage"] == counts["receiving_shrinkage"]
    assert got["shrinkage_by_reason"] == {k.removeprefix("receiving_shrinkage_"): v for k, v in counts.items()
                                          if k.startswith("receiving_shrinkage_")}
    assert got["whole_lots_written_off"] == counts["receiving_whole_lots_written_off"]


@pytest_asyncio.fixture
async def scratch(stack):
    """The cloud's loss tables (receiving, stocktakes, markdowns) in a schema of their own, empty."""
    import asyncpg

    from cloud.messaging import markdowns, receiving, stocktakes
    conn = await asyncpg.connect(stack.database_url)
    schema = f"loss{uuid.uuid4().hex[:8]}"
    await conn.execute(f"create schema {schema}; set search_path to {schema}")
    await conn.execute("create table stock_movements (reference text, reason text)")
    for sql in (receiving.MIGRATION_SQL, markdowns.MIGRATION_24[2], stocktakes.MIGRATION_22):
        await conn.execute(sql)
    try:
        yield conn
    finally:
        await conn.execute(f"drop schema {schema} cascade")
        await conn.close()


async def test_the_consoles_loss_chart_counts_two_write_offs_from_lots_of_two_costs_as_two_events(scratch):
    from cloud.services.losses import today_rows
    from protocol.pricing import Catalogue, Product
    db = scratch
    await db.executemany("insert into lot_costs values ($1, 'MILK', $2, $3, 'r', 0)",
                         [(STORE, "L1", 100), (STORE, "L2", 200)])
    await db.executemany("insert into loss_lines values ($1, $2, $3, 'MILK', $4, 'damaged', '2026-01-01', 10)",
                         [("E1", "L1", STORE, 2), ("E2", "L2", STORE, 3), ("E3", "L1", STORE, 1),
                          ("E3", "L2", STORE, 1)])
    catalogue = Catalogue([Product(sku="MILK", name="Milk", category="dairy", unit="piece", price_fen=350,
                                   cost_fen=150)])
    rows = await today_rows(db, 0, catalogue)
    assert rows == [{"reason": "damaged", "sku": "MILK", "events": 3, "qty": 7, "cost_fen": 3 * 100 + 4 * 200}]


async def test_in_the_cloud_a_lot_refilled_from_nothing_takes_the_incoming_use_by(scratch):
    from cloud.messaging import lots
    from cloud.migrations import MIGRATIONS
    from protocol.lots import LotDelta
    from protocol.messages import StockMoved
    db = scratch
    await db.execute(next(sql for version, _, sql in MIGRATIONS if version == 20))

    def moved(n: int, delta: int, use_by: str) -> StockMoved:
        return StockMoved(store_id=STORE, seq=n, event_id=make_id(1_767_229_200_000, n), wall_ms=n, mono_ms=n,
                          sku="MILK",
                          delta=delta, reason="receiving" if delta > 0 else "sale", shrinkage_reason="",
                          on_hand_after=0, reference="x", lots=(LotDelta(lot="L1", delta=delta, use_by=use_by),))
    await lots.record(db, [moved(1, 5, "2025-12-05"), moved(2, -5, "2025-12-05")])
    await lots.record(db, [moved(3, 4, "2026-01-06")])
    assert await lots.store_lots(db, STORE, "MILK") == {"MILK": [{"lot": "L1", "use_by": "2026-01-06", "on_hand": 4}]}
    await lots.record(db, [moved(4, 1, "2026-01-02")])  # a lot with stock keeps its date
    assert (await lots.store_lots(db, STORE, "MILK"))["MILK"][0]["use_by"] == "2026-01-06"


async def test_the_loss_report_adds_markdowns_given_away_and_negative_stocktake_variances_as_their_own_reasons(scratch):
    from cloud.services.losses import Losses, as_csv
    from protocol.pricing import Catalogue, Product
    db = scratch
    catalogue = Catalogue([Product(sku="MILK", name="Milk", category="dairy", unit="piece", price_fen=350,
                                   cost_fen=150),
                           Product(sku="PORK", name="Pork", category="meat", unit="kg", price_fen=4000, cost_fen=2500)])
    cloud = SimpleNamespace(db=db, world=SimpleNamespace(catalogue=catalogue))
    await db.execute("insert into lot_costs values ($1, 'MILK', 'L1', 100, 'r', 0)", STORE)
    await db.execute("insert into loss_lines values ('E1', 'L1', $1, 'MILK', 2, 'damaged', '2026-01-01', 10)", STORE)
    # a stocktake posted 2026-01-01 10:00 China time: MILK L1 -3 (lot cost 100), PORK -500 g (standard cost), MILK
    # "" +4 (a gain: not a loss)
    posted = 1_767_232_800_000
    await db.execute("insert into stocktakes values ('ST1', $1, 'EV1', 'all', 'a', 'b', 0, $2, false, 0, 3, 0, 0)",
                     STORE, posted)
    await db.executemany("insert into stocktake_lines values ('ST1', $1, $2, $3, 0, 0, $4, 1, 0, 0, 'c')",
                         [("MILK", "L1", "piece", -3), ("PORK", "", "g", -500), ("MILK", "", "piece", 4)])
    # a markdown on a later day is outside the range; two on the day are 70 fen given away
    await db.executemany("insert into markdowns_given values ($1, $2, 1, $2, 'R1', 'MILK', '', $3, $4::text::date, 0)",
                         [(STORE, "S1", 30, "2026-01-01"), (STORE, "S2", 40, "2026-01-01"),
                          (STORE, "S3", 99, "2026-01-02"), ("S009", "S4", 5, "2026-01-01")])
    losses = Losses(cloud)
    by_reason = await losses.report("2026-01-01", "2026-01-01", STORE, "reason")
    rows = {r["key"]: r for r in by_reason["rows"]}
    assert set(rows) == {"damaged", "stocktake", "markdown"}
    assert (rows["stocktake"]["pieces"], rows["stocktake"]["grams"]) == (3, 500)
    assert rows["stocktake"]["value_at_cost_fen"] == 3 * 100 + weighed_amount_fen(500, 2500)
    assert rows["stocktake"]["value_at_price_fen"] == 3 * 350 + weighed_amount_fen(500, 4000)
    assert (rows["markdown"]["lines"], rows["markdown"]["value_at_cost_fen"], rows["markdown"]["value_at_price_fen"],
            rows["markdown"]["pieces"]) == (2, 0, 70, 0)
    assert by_reason["totals"]["value_at_price_fen"] == 2 * 350 + rows["stocktake"]["value_at_price_fen"] + 70
    by_category = {r["key"]: r for r in (await losses.report("2026-01-01", "2026-01-01", STORE, "category"))["rows"]}
    assert by_category["dairy"]["value_at_price_fen"] == 2 * 350 + 3 * 350 + 70
    by_day = (await losses.report("2026-01-01", "2026-01-01", STORE, "day"))["rows"]
    assert [r["key"] for r in by_day] == ["2026-01-01"]
    stores = {r["key"] for r in (await losses.report("2026-01-01", "2026-01-01", None, "store"))["rows"]}
    assert stores == {STORE, "S009"}
    csv_rows = as_csv(by_reason).splitlines()
    assert any(line.startswith("markdown,2,0,0,0,70,") for line in csv_rows)
    assert any(line.startswith("stocktake,2,3,500,") for line in csv_rows)
