"""Markdowns (日清 end-of-day clearance, near-expiry) at a real store box against a running cloud: the default world's
rules priced at the till by the box's own clock (set to 18:55 and 19:05 local), a markdown label printed on the
receipt printer and read back from its bytes, scanned at the till at its price, the markdown recorded by the cloud
and shown in the markdown report; offline too (synced exactly once later). After each flow: the box's stock audit is
empty, the cloud's /audit clean and its lots equal to the box's."""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn

from cloud.embedded.process import free_port
from edge.box import EdgeBox
from edge.core.state import Books
from edge.lanes import build_lane_app
from loadtest.http import LeanClients
from protocol.lots import chain_day
from protocol.money import portion_fen, weighed_amount_fen
from protocol.policy import CHAIN_UTC_OFFSET_MIN
from protocol.pricing import load_rule_book
from simulators import ops_markdowns
from simulators.devices import ReceiptPrinter
from simulators.world import label_barcode
from tests.integration.harness import eventually, operator_headers, running_cloud, this_clouds

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE, OFFLINE_STORE = "S001", "S002"  # stores of the default world; celery is sold by no other module
GREEN, LOTTED, OFFLINE_GREEN = "VEG-CELERY-0049", "VEG-CELERY-0050", "VEG-CELERY-0051"
MIN_MS, DAY_MS = 60_000, 86_400_000


def product(sku: str) -> dict:
    return next(p for p in json.loads(WORLD.read_text())["catalogue"] if p["sku"] == sku)


def last_local(hh: int, mm: int, now_ms: int) -> int:
    """The latest moment at or before `now_ms` that is hh:mm in the chain's time zone (epoch ms)."""
    offset = CHAIN_UTC_OFFSET_MIN * MIN_MS
    local = now_ms + offset
    at = local - local % DAY_MS + (hh * 60 + mm) * MIN_MS
    return (at if at <= local else at - DAY_MS) - offset


class ShiftedClock:
    """The box's clock: real time moved by `shift_ms` (a test sets the shop's time of day; it only moves forward)."""

    def __init__(self) -> None:
        self.shift_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.shift_ms

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    def set_local(self, hh: int, mm: int, base_ms: int) -> int:
        """Show hh:mm on the day of `base_ms` (as `last_local` found it); returns that moment."""
        at = base_ms + ((hh * 60 + mm) - (19 * 60 + 5)) * MIN_MS
        self.shift_ms = at - time.time_ns() // 1_000_000
        return at


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


async def continue_seqs(box, stack, store: str) -> None:
    """The test database is shared with other modules: a store's seqs only grow (as StoreLink does)."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        box.actor.last_seq = max(box.actor.last_seq, await conn.fetchval(
            "select coalesce(max(seq), 0) from edge_events where store_id = $1", store) or 0)
    finally:
        await conn.close()


async def start_box(stack, store: str, data_dir: Path, clock, printer: ReceiptPrinter | None, online: bool) -> EdgeBox:
    config = {"store_id": store, "data_dir": str(data_dir), "world": str(WORLD),
              "nats_password": stack.store_credentials(store)[1]}
    if online:
        config["nats_url"] = stack.nats_url
    if printer is not None:
        config["devices"] = {"printer": {"port": printer.path}}
    box = await EdgeBox(config, clock=clock).start()
    await continue_seqs(box, stack, store)
    return box


async def _default_book(box) -> None:
    """The store's promotion book is the default world's (with its markdown rules). The test stores share one NATS
    with every earlier module: a book another module's cloud published (test_edge_sync publishes one without
    markdowns, under a higher version) still waits in this store's stream and replaces the box's on connect, so
    this module waits for that to happen, then puts the default book back in the box's hands as HQ would have."""
    await asyncio.sleep(1.0)  # what waited in the stream is applied on connect
    book = json.loads(WORLD.read_text())["rule_book"]
    books = box.actor.books
    assert books.catalogue is not None
    box.actor.books = Books(books.catalogue, load_rule_book(book, books.catalogue), books.catalogue_version,
                            books.rule_book_version)


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    folder = tmp_path_factory.mktemp("markdowns")
    printer = ReceiptPrinter(folder / "printer")
    clock = ShiftedClock()
    async with running_cloud(stack, prefix=f"md{uuid.uuid4().hex[:6]}-") as (services, url):
        box = await start_box(stack, STORE, folder / "edge", clock, printer, online=True)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _ready(box), timeout_s=15), "the box never came online with its printer"
            await _default_book(box)
            yield services, http, box, lane, printer, clock
        await box.stop()
    printer.close()


async def _ready(box):
    return box.actor.online and box.devices["printer"].state == "ok"


async def drained(box):
    return await box.store_db.outbox_depth() == 0


async def pay_cash(lane, lane_id: str) -> dict:
    r = await lane.post(f"/lanes/{lane_id}/pay", json={"method": "cash", "tendered_fen": 10**7})
    assert r.status_code == 201, r.text
    return r.json()


async def cloud_agrees(services, http, box, lane, store: str, skus: list[str]) -> None:
    """Box audit empty, cloud /audit clean, and the cloud's lots of `skus` equal to the box's."""
    assert (await lane.get("/stock/audit")).json()["violations"] == []
    assert await eventually(lambda: drained(box), timeout_s=20), "the store's outbox did not drain"

    def lots(stock: list[dict], sku: str) -> dict:
        row = next((r for r in stock if r["sku"] == sku), None)
        return {x["lot"]: (x["use_by"], x["on_hand"]) for x in row["lots"]} if row else {}
    box_stock = (await lane.get("/stock")).json()["stock"]
    for sku in skus:
        want = lots(box_stock, sku)

        async def same(sku: str = sku, want: dict = want) -> bool:
            stock = (await http.get(f"/stores/{store}/stock", params={"sku": sku})).json()["stock"]
            return lots(stock, sku) == want
        assert await eventually(same, timeout_s=20), f"the cloud's lots of {sku} never matched the box's {want}"
    admin = await operator_headers(services)
    assert this_clouds((await http.get("/audit", headers=admin)).json()["violations"]) == []


async def test_greens_at_19_00_are_30_percent_off_and_a_use_by_label_sells_at_its_price(world):
    services, http, box, lane, printer, clock = world
    base = last_local(19, 5, time.time_ns() // 1_000_000)
    clock.set_local(18, 55, base)
    today = chain_day(clock.now_ms())
    green, lotted = product(GREEN), product(LOTTED)
    await box.actor.ask("receive", sku=GREEN, qty=5000)
    await box.actor.ask("receive", sku=LOTTED, qty=3000, lot="C1", use_by=today)
    await box.actor.ask("receive", sku=LOTTED, qty=2000, lot="C2", use_by="2099-12-31")

    # 18:55: a scale label of 500 g of celery is at its list price, and no markdown label can be printed
    code = label_barcode(green["plu"], 500)
    listed = weighed_amount_fen(500, green["price_fen"])
    line = (await lane.post("/lanes/1/scan", json={"code": code})).json()["line"]
    assert (line["amount_fen"], line["rules"], "markdown" in line) == (listed, [], False)
    r = await lane.post("/markdowns/labels", json={"sku": GREEN, "count": 1, "printed_by": "staff-1",
                                                   "weight_g": 500})
    assert r.status_code == 409 and "no markdown applies" in r.json()["detail"]

    # 19:05: the same cart is marked down 30% and shows the rule
    at = clock.set_local(19, 5, base)
    cart = (await lane.get("/lanes/1/cart")).json()
    marked = listed - portion_fen(listed, 3000)
    assert cart["total_fen"] == marked and cart["lines"][0]["markdown"] == {"rule_id": "MD-GREENS-1900",
                                                                             "saving_fen": listed - marked}
    assert [(a["rule_id"], a["saving_fen"]) for a in cart["applied_rules"]] == [("MD-GREENS-1900", listed - marked)]
    greens_sale = await pay_cash(lane, "1")
    assert greens_sale["total_fen"] == marked

    # what is marked down now: celery unlotted at -30% per kg, lot C1 (use-by today) at -50%, C2 at -30%
    now = {(i["sku"], i["lot"]): (i["rule_id"], i["was_fen"], i["now_fen"])
           for i in (await lane.get("/markdowns/now")).json()["items"]}
    per_kg = lotted["price_fen"]
    assert now[(LOTTED, "C1")] == ("MD-USE-BY-DAY", per_kg, per_kg - portion_fen(per_kg, 5000))
    assert now[(LOTTED, "C2")] == ("MD-GREENS-1900", per_kg, per_kg - portion_fen(per_kg, 3000))

    # a label for lot C1: 400 g packages, half price, printed twice; read back from the printer's bytes
    r = await lane.post("/markdowns/labels", json={"sku": LOTTED, "lot": "C1", "count": 2, "printed_by": "staff-1",
                                                   "weight_g": 400})
    assert r.status_code == 200, r.text
    label = r.json()
    was = weighed_amount_fen(400, per_kg)
    assert (label["rule_id"], label["was_fen"], label["now_fen"], label["use_by"]) == (
        "MD-USE-BY-DAY", was, was - portion_fen(was, 5000), today)
    assert await eventually(lambda: _labels(printer, label["code"], 2), timeout_s=10), "the labels never printed"
    labels = [rc for rc in printer.receipts if rc.barcodes]
    assert [lb.barcodes for lb in labels] == [[label["code"]], [label["code"]]] and not any(lb.errors for lb in labels)
    text = labels[0].text
    assert f"Use by {today}" in text and "Lot C1" in text and "400 g" in text and lotted["name"] in text
    scanned_code = labels[0].barcodes[0]
    assert scanned_code.startswith("2") and len(scanned_code) == 13

    # scanned at another till: at the label's price, as a markdown, not marked down again; it takes lot C1's grams
    line = (await lane.post("/lanes/2/scan", json={"code": scanned_code})).json()["line"]
    assert (line["amount_fen"], line["weight_g"], line["markdown"]["rule_id"]) == (label["now_fen"], 400,
                                                                                     "MD-USE-BY-DAY")
    label_sale = await pay_cash(lane, "2")
    assert label_sale["total_fen"] == label["now_fen"]
    lots = next(s for s in (await lane.get("/stock")).json()["stock"] if s["sku"] == LOTTED)["lots"]
    assert {x["lot"]: x["on_hand"] for x in lots} == {"C1": 2600, "C2": 2000}

    # the cloud records each markdown with its sale and reports it by rule
    async def recorded():
        rows = await services.cloud.db.fetch("select sale_id, rule_id, sku, lot, saving_fen from markdowns_given "
                                             "where store_id = $1 and sale_id = any($2::text[]) order by rule_id",
                                             STORE, [greens_sale["sale_id"], label_sale["sale_id"]])
        return [tuple(r) for r in rows] if len(rows) == 2 else None
    assert await eventually(recorded, timeout_s=20) == [
        (greens_sale["sale_id"], "MD-GREENS-1900", GREEN, "", listed - marked),
        (label_sale["sale_id"], "MD-USE-BY-DAY", LOTTED, "C1", label["was_fen"] - label["now_fen"])]
    admin = await operator_headers(services)
    report = (await http.get("/operator/reports/markdowns", headers=admin,
                             params={"store": STORE, "from": iso(at - MIN_MS), "to": iso(clock.now_ms() + MIN_MS)})).json()
    assert report["by_rule"] == {"MD-GREENS-1900": listed - marked,
                                 "MD-USE-BY-DAY": label["was_fen"] - label["now_fen"]}
    assert {(r["rule_id"], r["rule_name"], r["day"]) for r in report["rows"]} == {
        ("MD-GREENS-1900", "Leafy greens after 19:00", today), ("MD-USE-BY-DAY", "On its use-by day", today)}
    await cloud_agrees(services, http, box, lane, STORE, [GREEN, LOTTED])


async def _labels(printer, code: str, n: int):
    return sum(1 for rc in printer.receipts if code in rc.barcodes) >= n


async def test_the_markdown_report_is_for_operators_with_store_figures_of_that_store(world):
    services, http, box, lane, printer, clock = world
    path = "/operator/reports/markdowns"
    assert (await http.get(path)).status_code == 401
    other = await operator_headers(services, "store_manager", store_id="S003")
    r = await http.get(path, headers=other, params={"store": STORE})
    assert r.status_code == 403 and "S003" in r.json()["detail"]
    own = (await http.get(path, headers=other)).json()  # without ?store: their own store only
    assert own["store_id"] == "S003" and all(row["store_id"] == "S003" for row in own["rows"])
    admin = await operator_headers(services)
    r = await http.get(path, headers=admin, params={"from": "yesterday"})
    assert r.status_code == 422 and "from" in r.json()["detail"]
    r = await http.get(path, headers=admin, params={"from": iso(clock.now_ms()), "to": iso(clock.now_ms() - 1000)})
    assert r.status_code == 422
    # HQ's book is validated like every other: a bad markdown is refused naming the rule, and nothing changes
    book = json.loads(WORLD.read_text())["rule_book"]
    held = (await http.get("/products")).json()["rule_book_version"]
    bad = dict(book, version=held + 1, rules=[*book["rules"], {
        "id": "MD-BAD", "type": "markdown", "name": "Bad", "from_time": "25:00", "percent_off_bp": 3000}])
    r = await http.put("/rule-book", headers=admin, json=bad)
    assert r.status_code == 422 and "MD-BAD" in r.json()["detail"] and "from_time" in r.json()["detail"]
    assert (await http.get("/products")).json()["rule_book_version"] == held


async def test_labels_are_refused_saying_why(world):
    services, http, box, lane, printer, clock = world
    clock.set_local(19, 10, last_local(19, 5, time.time_ns() // 1_000_000))
    cases = [({"sku": "NOPE-0000", "count": 1, "printed_by": "s1"}, 404, "unknown product"),
             ({"sku": GREEN, "count": 1, "printed_by": "s1"}, 422, "give weight_g"),
             ({"sku": GREEN, "lot": "ZZ9", "count": 1, "printed_by": "s1", "weight_g": 300}, 404, "no lot 'ZZ9'"),
             ({"sku": GREEN, "count": 0, "printed_by": "s1", "weight_g": 300}, 422, "count"),
             ({"sku": "PAC-BREAD-0220", "count": 1, "printed_by": "s1"}, 422, "no PLU")]
    for body, status, words in cases:
        r = await lane.post("/markdowns/labels", json=body)
        assert (r.status_code, r.headers["content-type"]) == (status, "application/problem+json"), (body, r.text)
        assert words in r.json()["detail"], (body, r.json())


async def test_a_markdown_sale_made_offline_reaches_the_cloud_exactly_once(world, stack, tmp_path):
    services, http, _, _, _, _ = world
    clock = ShiftedClock()
    base = last_local(19, 5, time.time_ns() // 1_000_000)
    clock.set_local(19, 30, base)
    green = product(OFFLINE_GREEN)
    box = await start_box(stack, OFFLINE_STORE, tmp_path / "edge", clock, None, online=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://l") as lane:
            await box.actor.ask("receive", sku=OFFLINE_GREEN, qty=3000)
            assert (await lane.post("/lanes/1/scan", json={"code": label_barcode(green["plu"], 1000)})).status_code == 200
            sale = await pay_cash(lane, "1")
            assert sale["offline"] is True
            assert sale["total_fen"] == green["price_fen"] - portion_fen(green["price_fen"], 3000)
            assert (await lane.get("/stock/audit")).json()["violations"] == []
    finally:
        await box.stop()
    rows = await services.cloud.db.fetchval("select count(*) from markdowns_given where sale_id = $1", sale["sale_id"])
    assert rows == 0  # nothing reached the cloud while the box was offline
    box = await start_box(stack, OFFLINE_STORE, tmp_path / "edge", clock, None, online=True)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://l") as lane:
            async def synced():
                return await services.cloud.db.fetch(
                    "select rule_id, saving_fen from markdowns_given where sale_id = $1", sale["sale_id"])
            assert [tuple(r) for r in await eventually(synced, timeout_s=30)] == [
                ("MD-GREENS-1900", portion_fen(green["price_fen"], 3000))]
            await cloud_agrees(services, http, box, lane, OFFLINE_STORE, [OFFLINE_GREEN])
            assert await services.cloud.db.fetchval("select count(*) from markdowns_given where sale_id = $1",
                                                    sale["sale_id"]) == 1
    finally:
        await box.stop()


class _Fleet:
    def __init__(self, lanes: dict[str, str]) -> None:
        self.lanes = lanes


async def test_the_demo_staff_mark_down_through_the_box_api_and_the_cloud_summary_agrees(world):
    services, http, box, lane, printer, clock = world
    clock.set_local(19, 40, last_local(19, 5, time.time_ns() // 1_000_000))
    await box.actor.ask("receive", sku=GREEN, qty=20_000)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_lane_app(box), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    serving = asyncio.create_task(server.serve())
    before = await ops_markdowns.summary(services.cloud.db, stores=[STORE])  # this store's: other modules share the db
    counts: Counter = Counter()
    stop = asyncio.Event()
    staff = ops_markdowns.MarkdownStaff(_Fleet({STORE: f"http://127.0.0.1:{port}"}), random.Random(5), counts, stop,
                                        round_s=0.3)
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        async with LeanClients() as clients:
            tasks = staff.tasks(clients)
            assert await eventually(lambda: _sold(counts, 3), timeout_s=60), (counts, staff.refusals)
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        server.should_exit = True
        await serving
    assert counts["markdowns_labels_printed"] >= counts["markdowns_label_sales"] >= 3
    assert not [k for k in counts if k.startswith("staff_refused")], staff.refusals
    assert not [k for k in counts if ":" in k], counts  # the demo lists every key with ':' as an error
    assert sum(v for k, v in counts.items() if k.startswith("markdowns_labels_MD")) == counts["markdowns_labels_printed"]
    assert await eventually(lambda: drained(box), timeout_s=60)

    async def agrees():
        after = await ops_markdowns.summary(services.cloud.db, stores=[STORE])
        lines = after["markdown_lines"] - before["markdown_lines"]
        fen = after["markdown_given_fen"] - before["markdown_given_fen"]
        return (lines, fen) == (counts["markdowns_label_sales"], counts["markdowns_label_given_fen"])
    assert await eventually(agrees, timeout_s=60), (counts, await ops_markdowns.summary(services.cloud.db,
                                                                                         stores=[STORE]), before)
    assert (await ops_markdowns.summary(services.cloud.db, time.time_ns() // 1_000_000 + 86_400_000))[
        "markdown_lines"] == 0  # nothing from tomorrow on: the demo's since_ms is respected
    await cloud_agrees(services, http, box, lane, STORE, [GREEN, LOTTED])


async def _sold(counts: Counter, n: int):
    return counts["markdowns_label_sales"] >= n
