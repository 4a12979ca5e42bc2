"""Stocktakes over the real stack (issue 16 item 4): a real store box (SQLite, its lane API, syncing through a proxy
that can cut its network) counts while its till sells, a manager approves, and the posted variances reach the cloud
exactly once - also when they were posted offline.

After each: the box's books are whole (`GET /stock/audit`: sum of movements = on hand per SKU and per lot), the
cloud's view of the store's stock and lots equals the box's, and /audit names nothing of ours."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import uuid
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import pytest_asyncio
import uvicorn

from edge.box import EdgeBox
from edge.cashier_pins import hash_pin
from edge.lanes import build_lane_app
from loadtest.http import LeanClients
from protocol.ids import make_id
from protocol.stocktake_messages import StocktakeLine, StocktakePosted
from simulators import ops_stocktake
from simulators.netcut import NetCut
from tests.integration.harness import StoreLink, eventually, operator_headers, running_cloud, this_clouds

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE, HOSTILE = "S003", "S002"
EGGS = [p for p in json.loads(WORLD.read_text())["catalogue"] if p["category"] == "eggs" and p["gtin"]]
DAIRY = [p for p in json.loads(WORLD.read_text())["catalogue"] if p["category"] == "dairy" and p["gtin"]]
MANAGER = ("MGR1", "1357")
CASHIER = ("C01", "2468")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"stk{uuid.uuid4().hex[:6]}-") as (services, url):
        proxy = await NetCut("127.0.0.1", int(stack.nats_address.rsplit(":", 1)[1])).start()
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": proxy.url, "nats_password": stack.store_credentials(STORE)[1],
                  "cashiers": {MANAGER[0]: {"pin_hash": hash_pin(MANAGER[1]), "role": "manager"},
                               CASHIER[0]: hash_pin(CASHIER[1]),  # a cashier as configs before roles had them
                               **{clerk: hash_pin("1111") for clerk in ("clerk1", "clerk2")}}}
        box = await EdgeBox(config).start()
        async with httpx.AsyncClient(base_url=url, timeout=20) as cloud_http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _online(box), timeout_s=10)
            # a box with cashiers takes money only with one signed in at the lane (edge/lane_guard.py)
            assert (await lane.post("/lanes/1/cashier", json={"cashier_id": "clerk1", "pin": "1111"})).status_code == 200
            yield services, cloud_http, box, lane, proxy
        await box.stop()
        await proxy.stop()


async def _online(box) -> bool:
    return box.actor.online


async def drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


async def sell(lane, gtin: str, n: int) -> None:
    await lane.delete("/lanes/1/cart")
    for _ in range(n):
        assert (await lane.post("/lanes/1/scan", json={"code": gtin})).status_code == 200
    r = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**7})
    assert r.status_code == 201, r.text


async def on_hand(box, sku: str) -> int:
    return (await box.store_db.stock_level(sku)).on_hand


def _box_lots(stock: dict) -> dict[str, dict[str, int]]:
    return {item["sku"]: {lot["lot"]: lot["on_hand"] for lot in item.get("lots", []) if lot["on_hand"]}
            for item in stock["stock"]}


async def books_agree(box, lane, http, skus: list[str]) -> bool:
    """The cloud's view of the store's stock (on hand and lots) is the box's, for these SKUs."""
    mine = {k: v for k, v in _box_lots((await lane.get("/stock")).json()).items() if k in skus}
    hands = {sku: await on_hand(box, sku) for sku in skus}
    cloud = {r["sku"]: r for r in (await http.get(f"/stores/{STORE}/stock")).json()["stock"] if r["sku"] in skus}
    # named lots only: the unlotted stock of a store of the world is shared in the cloud's test database with the
    # other modules' boxes of that store (their movements add up there), while this box's is its own
    cloud_lots = {sku: {lot["lot"]: lot["on_hand"] for lot in r.get("lots", []) if lot["on_hand"] and lot["lot"]}
                  for sku, r in cloud.items()}
    mine = {sku: {lot: n for lot, n in lots.items() if lot} for sku, lots in mine.items()}
    return (all(cloud.get(sku, {}).get("on_hand", 0) == hands[sku] for sku in skus)
            and all(cloud_lots.get(sku, {}) == mine.get(sku, {}) for sku in skus))


async def all_clean(services, box, lane, http, skus: list[str]) -> None:
    assert await eventually(lambda: drained(box)), "the stocktake did not reach the cloud (no business ack)"
    assert (await lane.get("/stock/audit")).json()["violations"] == []
    assert await eventually(lambda: books_agree(box, lane, http, skus)), "the cloud's view differs from the box's"
    report = (await http.get("/audit", headers=await operator_headers(services))).json()
    assert [v for v in this_clouds(report["violations"]) if STORE in v or "sum to" in v] == []


def pin_of(who: tuple[str, str]) -> dict[str, str]:
    return {"X-Manager-Id": who[0], "X-Manager-Pin": who[1]}


async def approve(lane, sid: str, who: tuple[str, str], **extra) -> httpx.Response:
    return await lane.post(f"/stocktakes/{sid}/approve", json={"manager_id": who[0], "pin": who[1], **extra})


async def count(lane, sid: str, sku: str, counted: int, lot: str = "") -> None:
    r = await lane.post(f"/stocktakes/{sid}/counts", json={"sku": sku, "lot": lot, "counted": counted,
                                                           "counted_by": "clerk1"})
    assert r.status_code == 200, r.text
    assert "book" not in r.text  # blind


async def test_a_category_counted_while_the_till_sells_posts_counted_minus_sold_once_approved_by_a_manager(world):
    services, http, box, lane, _ = world
    a, b, c = EGGS[0], EGGS[1], EGGS[2]
    for p, qty in ((a, 20), (b, 10), (c, 6)):
        assert (await lane.post(f"/stock/{p['sku']}/receive", json={"qty": qty})).status_code == 200
    books = {p["sku"]: await on_hand(box, p["sku"]) for p in (a, b, c)}
    r = await lane.post("/stocktakes", json={"scope": {"categories": ["eggs"]}, "opened_by": "clerk1"})
    assert r.status_code == 201, r.text
    sheet = r.json()
    sid = sheet["stocktake_id"]
    assert {item["sku"] for item in sheet["sheet"]} == {p["sku"] for p in EGGS}
    assert "on_hand" not in r.text and "book" not in r.text  # a blind count sheet
    # the same SKUs cannot be counted by a second session meanwhile
    busy = await lane.post("/stocktakes", json={"scope": {"skus": [a["sku"]]}, "opened_by": "clerk2"})
    assert busy.status_code == 409 and sid in busy.json()["detail"]
    await count(lane, sid, a["sku"], books[a["sku"]] - 2)  # two missing
    await sell(lane, a["gtin"], 3)  # sold after counting: no variance
    await count(lane, sid, b["sku"], books[b["sku"]] + 5)  # a miscount...
    await sell(lane, b["gtin"], 1)
    await count(lane, sid, b["sku"], books[b["sku"]])  # ...recounted: replaces it, against the book of this moment
    await sell(lane, c["gtin"], 2)  # c is not counted: stays as it is
    assert (await lane.get(f"/stocktakes/{sid}")).status_code == 401  # the book is for a manager's eyes
    assert (await lane.get(f"/stocktakes/{sid}", headers=pin_of(CASHIER))).status_code == 403
    review = (await lane.get(f"/stocktakes/{sid}", headers=pin_of(MANAGER))).json()
    lines = {x["sku"]: x for x in review["counted"]}
    assert (lines[a["sku"]]["book_at_count"], lines[a["sku"]]["variance"]) == (books[a["sku"]], -2)
    assert (lines[b["sku"]]["book_at_count"], lines[b["sku"]]["variance"]) == (books[b["sku"]] - 1, 1)
    assert lines[a["sku"]]["variance_price_fen"] == -2 * a["price_fen"]
    assert c["sku"] in {x["sku"] for x in review["uncounted"]}
    refused = await approve(lane, sid, CASHIER)
    assert refused.status_code == 403 and "not a manager" in refused.json()["detail"]
    assert (await approve(lane, sid, (MANAGER[0], "0000"))).status_code == 401
    assert await on_hand(box, a["sku"]) == books[a["sku"]] - 3  # nothing posted by the refusals
    r = await approve(lane, sid, MANAGER)
    assert r.status_code == 200, r.text
    posted = r.json()
    assert {(x["sku"], x["variance"]) for x in posted["adjusted"]} == {(a["sku"], -2), (b["sku"], 1)}
    assert "not adjusted" in posted["uncounted_note"]
    # on hand = counted - sold after counting
    assert await on_hand(box, a["sku"]) == books[a["sku"]] - 2 - 3
    assert await on_hand(box, b["sku"]) == books[b["sku"]] - 1 + 1 - 0
    assert await on_hand(box, c["sku"]) == books[c["sku"]] - 2
    assert (await approve(lane, sid, MANAGER)).json() == posted  # approving again: the same, nothing more
    await all_clean(services, box, lane, http, [a["sku"], b["sku"], c["sku"]])
    ops = (await http.get("/operator/stocktakes", params={"store": STORE},
                          headers=await operator_headers(services))).json()["stocktakes"]
    (mine,) = [s for s in ops if s["stocktake_id"] == sid]
    assert {(x["sku"], x["counted"], x["variance"]) for x in mine["lines"]} == {
        (a["sku"], books[a["sku"]] - 2, -2), (b["sku"], books[b["sku"]], 1)}
    assert mine["approved_by"] == MANAGER[0] and mine["uncounted"] == len(sheet["sheet"]) - 2
    other = await operator_headers(services, role="store_manager", store_id="S001")
    assert (await http.get("/operator/stocktakes", params={"store": STORE}, headers=other)).status_code == 403
    assert await services.cloud.db.fetchval("select count(*) from stock_movements where reference = $1 and "
                                            "reason = 'stocktake'", sid) == 2


async def receive_lots(lane, note_no: str, lines: list[dict]) -> None:
    """A supplier's delivery note with named lots, use-by dates and unit costs, received at the box."""
    r = await lane.post("/receivings", json={"supplier": "Green Farm", "note_no": note_no, "received_by": "clerk1",
                                             "lines": lines})
    assert r.status_code in (200, 201), r.text


async def test_per_lot_counts_post_on_their_lots(world):
    services, http, box, lane, _ = world
    p = DAIRY[0]
    sku = p["sku"]
    await receive_lots(lane, f"DN-{uuid.uuid4().hex[:8]}", [
        {"sku": sku, "qty": 8, "lot": "D1", "use_by": "2099-12-30", "unit_cost_fen": 150},
        {"sku": sku, "qty": 5, "lot": "D2", "use_by": "2100-01-05", "unit_cost_fen": 170}])
    r = await lane.post("/stocktakes", json={"scope": {"skus": [sku]}, "opened_by": "clerk1"})
    assert r.status_code == 201, r.text
    sid = r.json()["stocktake_id"]
    (item,) = r.json()["sheet"]
    assert [x["lot"] for x in item["lots"]] == ["D1", "D2", ""]
    await count(lane, sid, sku, 6, lot="D1")  # 2 of D1 missing
    await count(lane, sid, sku, 5, lot="D2")
    await count(lane, sid, sku, 1, lot="")  # one found without a lot
    unknown = await lane.post(f"/stocktakes/{sid}/counts", json={"sku": sku, "lot": "NOPE", "counted": 1,
                                                                 "counted_by": "clerk1"})
    assert unknown.status_code == 404 and "NOPE" in unknown.json()["detail"]
    r = await approve(lane, sid, MANAGER)
    assert r.status_code == 200, r.text
    assert {(x["lot"], x["variance"]) for x in r.json()["adjusted"]} == {("D1", -2), ("", 1)}
    lots = _box_lots((await lane.get("/stock")).json())[sku]
    assert lots.get("D1") == 6 and lots.get("D2") == 5
    await all_clean(services, box, lane, http, [sku])
    # valued at each lot's own cost (the receiving's), else the product's standard cost
    ops = (await http.get("/operator/stocktakes", params={"store": STORE},
                          headers=await operator_headers(services))).json()["stocktakes"]
    (mine,) = [s for s in ops if s["stocktake_id"] == sid]
    by_lot = {x["lot"]: (x["unit_cost_fen"], x["variance_cost_fen"]) for x in mine["lines"]}
    assert by_lot["D1"] == (150, -300) and by_lot["D2"] == (170, 0)
    assert by_lot[""] == (p["cost_fen"], p["cost_fen"])


async def test_a_stocktake_posted_offline_reaches_the_cloud_once_when_the_network_is_back(world):
    services, http, box, lane, proxy = world
    p = DAIRY[1]
    sku = p["sku"]
    assert (await lane.post(f"/stock/{sku}/receive", json={"qty": 12})).status_code == 200
    await all_clean(services, box, lane, http, [sku])
    book = await on_hand(box, sku)
    proxy.cut()
    try:
        assert await eventually(lambda: _offline(box), timeout_s=15)
        r = await lane.post("/stocktakes", json={"scope": {"skus": [sku]}, "opened_by": "clerk1"})
        sid = r.json()["stocktake_id"]
        await count(lane, sid, sku, book - 4)
        await sell(lane, p["gtin"], 1)
        assert (await approve(lane, sid, MANAGER)).status_code == 200
        assert await on_hand(box, sku) == book - 4 - 1
        assert await box.store_db.outbox_depth() > 0  # kept for the cloud
        assert await services.cloud.db.fetchval("select count(*) from stocktakes where stocktake_id = $1", sid) == 0
    finally:
        proxy.heal()
    await all_clean(services, box, lane, http, [sku])
    assert await services.cloud.db.fetchval("select count(*) from stocktakes where stocktake_id = $1", sid) == 1
    assert await services.cloud.db.fetchval("select count(*) from stock_movements where reference = $1", sid) == 1


async def _offline(box) -> bool:
    return not box.actor.online


async def test_a_cancelled_stocktake_frees_its_skus_and_posts_nothing(world):
    _, _, box, lane, _ = world
    sku = DAIRY[2]["sku"]
    sid = make_id(1_767_229_200_000, 42)  # made by the terminal: opening again with it answers the same sheet
    r = await lane.post("/stocktakes", json={"scope": {"skus": [sku]}, "opened_by": "clerk1", "stocktake_id": sid})
    again = await lane.post("/stocktakes", json={"scope": {"skus": [sku]}, "opened_by": "clerk1", "stocktake_id": sid})
    assert r.status_code == again.status_code == 201 and r.json() == again.json()
    assert (await lane.get(f"/stocktakes/{sid}/sheet")).json() == r.json()
    await count(lane, sid, sku, 99)
    listed = (await lane.get("/stocktakes", params={"status": "open"})).json()["stocktakes"]
    assert [(x["lines"], x["counted"]) for x in listed if x["stocktake_id"] == sid] == [(1, 1)]
    assert (await lane.get("/stocktakes", params={"status": "maybe"})).status_code == 422
    moves = await box.store_db.count("movements")
    assert (await lane.post(f"/stocktakes/{sid}/cancel", json={"cancelled_by": "clerk1"})).status_code == 200
    assert (await approve(lane, sid, MANAGER)).status_code == 409
    again = await lane.post("/stocktakes", json={"scope": {"skus": [sku]}, "opened_by": "clerk1"})
    assert again.status_code == 201
    assert (await lane.post(f"/stocktakes/{again.json()['stocktake_id']}/cancel",
                            json={"cancelled_by": "clerk1"})).status_code == 200
    assert await box.store_db.count("movements") == moves


async def test_the_demo_staff_count_and_the_cloud_summary_agrees(world, monkeypatch):
    services, http, box, lane, _ = world
    for p in EGGS[:6] + DAIRY[3:6]:
        assert (await lane.post(f"/stock/{p['sku']}/receive", json={"qty": 15})).status_code == 200
    monkeypatch.setattr(ops_stocktake, "MANAGER_ID", MANAGER[0])
    monkeypatch.setattr(ops_stocktake, "MANAGER_PIN", MANAGER[1])
    monkeypatch.setattr(ops_stocktake, "FIRST_WAIT_S", (0.1, 0.2))
    monkeypatch.setattr(ops_stocktake, "BETWEEN_S", (0.3, 0.6))
    monkeypatch.setattr(ops_stocktake, "REVIEW_WAIT_S", (0.1, 0.2))
    before = await ops_stocktake.summary(services.cloud.db)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_lane_app(box), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    counts: Counter = Counter()
    stop = asyncio.Event()
    staff = ops_stocktake.StocktakeStaff(SimpleNamespace(lanes={STORE: f"http://127.0.0.1:{port}"}),
                                         random.Random(16), counts, stop)
    http_lean = LeanClients()
    tasks = staff.tasks(http_lean)
    try:
        await eventually(lambda: _posted(counts, 3), timeout_s=30)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        server.should_exit = True
        await serving
    assert counts["stocktake_posted"] >= 3, (counts, staff.refusals)
    await all_clean(services, box, lane, http, [p["sku"] for p in EGGS[:6] + DAIRY[3:6]])
    after = await ops_stocktake.summary(services.cloud.db)
    assert after["stocktakes_posted"] - before["stocktakes_posted"] == counts["stocktake_posted"]
    assert after["stocktake_lines"] - before["stocktake_lines"] == counts["stocktake_counted"]
    assert (after["stocktake_movements"] - before["stocktake_movements"]
            == after["stocktake_adjusted_lines"] - before["stocktake_adjusted_lines"] == counts["stocktake_adjusted"])


async def _posted(counts: Counter, n: int) -> bool:
    return counts["stocktake_posted"] >= n


async def test_a_store_is_not_believed_about_another_stores_stocktake_or_products_that_do_not_exist(world, stack):
    services, _, _, _, _ = world
    theirs = await services.cloud.db.fetchval("select stocktake_id from stocktakes where store_id = $1 limit 1", STORE)
    assert theirs is not None  # posted by this module's box above
    since = await services.cloud.db.fetchval("select coalesce(max(id), 0) from dead_letters")
    line = StocktakeLine(sku=EGGS[0]["sku"], lot="", unit="piece", counted=0, book=50, variance=-50, unit_cost_fen=0,
                         price_fen=1, counted_by="x")
    async with StoreLink(stack, HOSTILE) as hostile:
        def note(sid: str, lines: tuple[StocktakeLine, ...]) -> StocktakePosted:
            return StocktakePosted(**hostile.next_envelope(), stocktake_id=sid, scope="all", opened_by="x",
                                   opened_ms=1, approved_by="x", zero_uncounted=False, uncounted=0, lines=lines)
        stolen = note(theirs, (line,))
        ghost = note(make_id(1_767_229_200_000, 7), (dataclasses.replace(line, sku="NO-SUCH-SKU"),))
        for message in (stolen, ghost):
            await hostile.publish(message)

        async def both_refused() -> bool:
            return await services.cloud.db.fetchval("select count(*) from dead_letters where store_id = $1 and id > $2",
                                                    HOSTILE, since) >= 2
        assert await eventually(both_refused)
    reasons = [r["reason"] for r in await services.cloud.db.fetch(
        "select reason from dead_letters where store_id = $1 and id > $2", HOSTILE, since)]
    assert any("posted already" in r and theirs in r for r in reasons), reasons
    assert any("unknown products NO-SUCH-SKU" in r for r in reasons), reasons
    assert await services.cloud.db.fetchval("select store_id from stocktakes where stocktake_id = $1", theirs) == STORE
    assert await services.cloud.db.fetchval("select count(*) from stocktakes where store_id = $1", HOSTILE) == 0
