"""An edge box in-process: real SQLite store db, real pseudo-terminal devices, the lane API; no cloud needed."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol import codec, phones
from protocol.barcodes import gs1_check_digit
from protocol.policy import member_lookup_key
from simulators.devices import ContinuousScale, Scanner, Toledo8217Scale

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
PASSWORD = "store-S009-test-password"  # the box's NATS password (no NATS here): its member lookup key derives from it


def products():
    return json.loads(WORLD.read_text())["catalogue"]


def packed():
    return next(p for p in products() if p["unit"] == "piece" and p["gtin"])


def weighed():
    return next(p for p in products() if p["unit"] == "kg" and p["plu"])


@pytest_asyncio.fixture
async def box(tmp_path):
    scale = Toledo8217Scale(tmp_path / "scale", grams=1250)
    scanner = Scanner(tmp_path / "scanner")
    config = {"store_id": "S009", "data_dir": str(tmp_path / "data"), "world": str(WORLD), "nats_password": PASSWORD,
              "devices": {"scale": {"port": scale.path, "protocol": "toledo8217"},
                          "scanner": {"port": scanner.path, "lane": "2"}}}
    edge = await EdgeBox(config).start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(edge)), base_url="http://lane") as http:
        for _ in range(50):
            if edge.devices["scale"].state == "ok" and edge.devices["scanner"].state == "ok":
                break
            await asyncio.sleep(0.05)
        yield edge, http, scale, scanner
    await edge.stop()
    scale.close()
    scanner.close()


async def outbox_kinds(edge) -> list[str]:
    return [codec.decode(frame).KIND for _, _, frame, _ in await edge.store_db.outbox(0, 1000)]


async def test_scan_weigh_pay_cash_commits_sale_movements_and_outbox(box):
    edge, http, scale, _ = box
    await edge.actor.ask("receive", sku=packed()["sku"], qty=10)
    r = await http.post("/lanes/1/scan", json={"code": packed()["gtin"]})
    assert r.status_code == 200 and r.json()["line"]["sku"] == packed()["sku"]
    r = await http.post("/lanes/1/weigh", json={"sku": weighed()["sku"]})
    assert r.status_code == 200 and r.json()["line"]["weight_g"] == 1250
    total = (await http.get("/lanes/1/cart")).json()["total_fen"]
    paid = await http.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": total + 1000})
    assert paid.status_code == 201 and paid.json()["change_fen"] == 1000 and paid.json()["total_fen"] == total
    sale = await edge.store_db.sale(paid.json()["sale_id"])
    assert sale["total_fen"] == total and len(sale["lines"]) == 2
    kinds = await outbox_kinds(edge)
    assert kinds.count("sale.committed") == 1 and kinds.count("stock.moved") == 3  # receiving + 2 sale lines
    assert "escrow.granted" in kinds  # receiving granted the cloud its online share
    assert (await edge.store_db.stock_level(packed()["sku"])).on_hand == 9


async def test_selling_past_the_offline_share_asks_for_escrow_back(box):
    edge, http, _, _ = box
    sku = packed()["sku"]
    await edge.actor.ask("receive", sku=sku, qty=5)  # 40%: 2 units escrowed for online
    for _ in range(4):
        await http.post("/lanes/1/scan", json={"code": packed()["gtin"]})
    r = await http.post("/lanes/1/pay", json={"method": "wallet_sim"})
    assert r.status_code == 201
    frames = [codec.decode(f) for _, _, f, _ in await edge.store_db.outbox(0, 1000)]
    asks = [m for m in frames if m.KIND == "escrow.reclaim_requested"]
    assert [(m.sku, m.qty) for m in asks] == [(sku, 1)]  # on hand 1, escrow 2: one unit asked back


async def test_scan_errors_say_what_was_wrong(box):
    _, http, _, _ = box
    code = packed()["gtin"]
    bad = code[:-1] + str((int(code[-1]) + 1) % 10)
    r = await http.post("/lanes/1/scan", json={"code": bad})
    assert r.status_code == 422 and "bad check digit" in r.json()["detail"]
    r = await http.post("/lanes/1/scan", json={"code": "2512345015004"})
    assert r.status_code == 422 and "no layout configured for prefix 25" in r.json()["detail"]
    unknown = "690999999999"
    r = await http.post("/lanes/1/scan", json={"code": unknown + str(gs1_check_digit(unknown))})
    assert r.status_code == 404 and "no product" in r.json()["detail"]
    assert (await http.post("/lanes/1/scan", json={"kode": "1"})).status_code == 422


async def test_label_barcode_with_embedded_weight(box):
    _, http, _, _ = box
    body = "21" + weighed()["plu"] + "00750"
    r = await http.post("/lanes/3/scan", json={"code": body + str(gs1_check_digit(body))})
    assert r.status_code == 200 and r.json()["line"]["weight_g"] == 750


async def test_unstable_or_unplugged_scale_is_409_and_health_shows_it(box):
    edge, http, scale, _ = box
    scale.stable = False
    r = await http.post("/lanes/1/weigh", json={"sku": weighed()["sku"]})
    assert r.status_code == 409 and "motion" in r.json()["detail"]
    scale.stable = True
    scale.unplug()
    for _ in range(60):
        if (await http.get("/health")).json()["devices"]["scale"]["state"] == "down":
            break
        await asyncio.sleep(0.05)
    assert (await http.get("/health")).json()["devices"]["scale"]["state"] == "down"
    assert (await http.post("/lanes/1/weigh", json={"sku": weighed()["sku"]})).status_code == 409
    scale.replug()
    for _ in range(100):
        if edge.devices["scale"].state == "ok":
            break
        await asyncio.sleep(0.05)
    r = await http.post("/lanes/1/weigh", json={"sku": weighed()["sku"]})
    assert r.status_code == 200 and r.json()["line"]["weight_g"] == 1250


async def test_scanner_on_its_serial_port_adds_to_its_lane_and_garbage_does_not_stop_it(box):
    edge, http, _, scanner = box
    scanner.write(b"\xff\xfe line noise" * 3 + b"\r")  # noise up to a terminator is dropped as one bad read
    scanner.scan(packed()["gtin"])
    for _ in range(60):
        if (await http.get("/lanes/2/cart")).json()["lines"]:
            break
        await asyncio.sleep(0.05)
    assert [line["sku"] for line in (await http.get("/lanes/2/cart")).json()["lines"]] == [packed()["sku"]]


async def test_pay_refusals(box):
    _, http, _, _ = box
    assert (await http.post("/lanes/7/pay", json={"method": "cash", "tendered_fen": 0})).status_code == 409
    await http.post("/lanes/7/scan", json={"code": packed()["gtin"]})
    r = await http.post("/lanes/7/pay", json={"method": "cash", "tendered_fen": 1})
    assert r.status_code == 409 and "less than the total" in r.json()["detail"]
    r = await http.post("/lanes/7/pay", json={"method": "stored_value"})
    assert r.status_code == 409 and "needs a member" in r.json()["detail"]
    assert (await http.post("/lanes/7/pay", json={"method": "bitcoin"})).status_code == 422


async def test_void_drops_the_lane_cart_and_sells_nothing(box):
    edge, http, _, _ = box
    await http.post("/lanes/8/scan", json={"code": packed()["gtin"]})
    await http.post("/lanes/8/scan", json={"code": packed()["gtin"]})
    await http.post("/lanes/9/scan", json={"code": packed()["gtin"]})
    r = await http.delete("/lanes/8/cart")
    assert r.status_code == 200 and r.json()["voided_lines"] == 1  # the same item twice is one line of 2
    assert (await http.get("/lanes/8/cart")).json()["lines"] == []
    assert len((await http.get("/lanes/9/cart")).json()["lines"]) == 1  # the other lane keeps its customer
    assert (await http.post("/lanes/8/pay", json={"method": "cash", "tendered_fen": 10**6})).status_code == 409
    assert await edge.store_db.count("sales") == 0


async def test_continuous_scale_gives_the_latest_stable_reading(tmp_path):
    scale = ContinuousScale(tmp_path / "cscale", grams=2345)
    edge = await EdgeBox({"store_id": "S010", "data_dir": str(tmp_path / "d"), "world": str(WORLD),
                          "devices": {"scale": {"port": scale.path, "protocol": "continuous"}}}).start()
    try:
        await asyncio.sleep(0.5)
        assert await edge.scale.read_stable() == 2345
        scale.stable = False
        await asyncio.sleep(0.4)
        with pytest.raises(Exception, match="motion"):
            await edge.scale.read_stable()
    finally:
        await edge.stop()
        scale.close()


async def test_receipt_prints_after_the_sale_with_its_qr(tmp_path):
    from simulators.devices import ReceiptPrinter
    printer = ReceiptPrinter(tmp_path / "printer")
    edge = await EdgeBox({"store_id": "S011", "data_dir": str(tmp_path / "d"), "world": str(WORLD),
                          "devices": {"printer": {"port": printer.path}}}).start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(edge)), base_url="http://l") as http:
            for _ in range(50):
                if edge.devices["printer"].state == "ok":
                    break
                await asyncio.sleep(0.05)
            await http.post("/lanes/1/scan", json={"code": packed()["gtin"]})
            sale = (await http.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 100_000})).json()
            for _ in range(50):
                if b"\x1dV" in printer.received:
                    break
                await asyncio.sleep(0.05)
        raw = bytes(printer.received)
        assert raw.startswith(b"\x1b@") and f"SALE:{sale['sale_id']}".encode() in raw and b"TOTAL" in raw
        assert await edge.store_db.sale(sale["sale_id"]) is not None  # committed before it printed
    finally:
        await edge.stop()
        printer.close()


async def test_stored_value_counts_as_unsettled_until_the_cloud_acks_the_sale(box):
    from protocol.messages import Ack, BusinessAck, MemberUpdated
    from tests.integration.harness import envelope
    edge, http, _, _ = box
    key = member_lookup_key(PASSWORD, "S009")  # what the cloud computes for this store
    snapshot = MemberUpdated(**envelope("S009", 1), member_id="M1", phone_hash=phones.lookup_hash(key, "+8613800000009"),
                             phone_masked="138****0009", member_code="0000000009", level="regular",
                             stored_value_fen=100_000, points=0)
    assert await edge.actor.ask("cloud_message", message=snapshot) == "applied"
    found = await http.post("/lanes/5/member", json={"phone": "138 0000 0009"})  # any spelling: normalised, hashed
    assert found.status_code == 200 and found.json()["member"]["phone"] == "138****0009", found.text
    missing = await http.post("/lanes/5/member", json={"phone": "13800000008"})
    assert missing.status_code == 404 and "13800000008" not in missing.text and "138****0008" in missing.text
    await http.post("/lanes/5/scan", json={"code": packed()["gtin"]})
    sale = (await http.post("/lanes/5/pay", json={"method": "stored_value"})).json()

    async def unsettled():
        return sum(s["amount_fen"] for s in await edge.store_db.unsettled("M1"))
    assert await unsettled() == sale["total_fen"] > 0 and sale["offline"] is True  # no cloud here: offline
    event = next(codec.decode(f) for _, _, f, kind in await edge.store_db.outbox(0, 100) if kind == "sale.committed")
    ack = BusinessAck(**envelope("S009", 2), acks=(Ack(event_id=event.event_id, seq=event.seq, result="ok", detail=""),))
    await edge.actor.ask("cloud_message", message=ack)
    assert await unsettled() == 0
    assert "sale.committed" not in await outbox_kinds(edge)


async def test_a_spend_is_settled_once_whichever_of_the_new_balance_and_the_ack_comes_first(box):
    """The member's new balance (naming the spends it includes) and the business ack may arrive in either order:
    the cached balance less what is unsettled is right after each, never counting a spend twice."""
    from protocol.messages import Ack, BusinessAck, MemberUpdated
    from tests.integration.harness import envelope
    edge, http, _, _ = box
    base = dict(member_id="M2", phone_hash=b"", phone_masked="138****0002", member_code="0000000002", level="regular",
                points=0)
    await edge.actor.ask("cloud_message", message=MemberUpdated(**envelope("S009", 1), stored_value_fen=5_000, **base))
    sales = []
    # two must fit the 50.00 offline allowance at list price: a box that never heard from the cloud holds no share
    # of a budget-capped rule's budget, so the eggs' capped discount does not apply here (edge/core/budget_allowance)
    cheap = next(p for p in products() if p["unit"] == "piece" and p["gtin"] and p["price_fen"] < 2_000)
    for lane in ("6", "7"):
        await http.post(f"/lanes/{lane}/member", json={"member_code": "0000000002"})
        await http.post(f"/lanes/{lane}/scan", json={"code": cheap["gtin"]})
        sales.append((await http.post(f"/lanes/{lane}/pay", json={"method": "stored_value"})).json())
    price = sales[0]["total_fen"]
    frames = {codec.decode(f).sale_id: codec.decode(f) for _, _, f, kind in await edge.store_db.outbox(0, 100)
              if kind == "sale.committed"}
    first, second = (frames[s["sale_id"]] for s in sales)

    async def spendable():
        member = await edge.store_db.member(member_id="M2")
        return member.stored_value_fen - member.unsettled_fen
    assert await spendable() == 5_000 - 2 * price

    def ack(event):
        return BusinessAck(**envelope("S009", 9), acks=(Ack(event_id=event.event_id, seq=event.seq, result="ok",
                                                            detail=""),))
    # the first: the new balance before the ack
    await edge.actor.ask("cloud_message", message=MemberUpdated(
        **envelope("S009", 2), stored_value_fen=5_000 - price, settles=(first.payments[0].reference,), **base))
    assert await spendable() == 5_000 - 2 * price
    await edge.actor.ask("cloud_message", message=ack(first))
    assert await spendable() == 5_000 - 2 * price
    # the second: the ack before the new balance
    await edge.actor.ask("cloud_message", message=ack(second))
    await edge.actor.ask("cloud_message", message=MemberUpdated(
        **envelope("S009", 3), stored_value_fen=5_000 - 2 * price, settles=(second.payments[0].reference,), **base))
    assert await spendable() == 5_000 - 2 * price and await edge.store_db.unsettled("M2") == []


async def test_a_cash_top_up_needs_a_signed_in_cashier_and_is_journaled_with_the_shift(tmp_path):
    from edge.cashier_pins import hash_pin
    from protocol.messages import MemberUpdated
    from tests.integration.harness import envelope
    config = {"store_id": "S009", "data_dir": str(tmp_path / "data"), "world": str(WORLD), "nats_password": PASSWORD,
              "cashiers": {"C07": hash_pin("2468")}, "cash_topup_day_cap_fen": 30_000}
    edge = await EdgeBox(config).start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(edge)),
                                     base_url="http://lane") as http:
            await edge.actor.ask("cloud_message", message=MemberUpdated(
                **envelope("S009", 1), member_id="M3", phone_hash=b"", phone_masked="138****0003",
                member_code="0000000003", level="regular", stored_value_fen=0, points=0))
            await http.post("/lanes/2/member", json={"member_code": "0000000003"})
            r = await http.post("/lanes/2/top-ups", json={"amount_fen": 10_000})
            assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
            assert r.json()["detail"] == "no cashier is signed in at lane 2: a cash top-up needs a signed-in cashier"
            r = await http.post("/lanes/2/cashier", json={"cashier_id": "C07", "pin": "1357"})
            assert r.status_code == 401 and "unknown cashier or wrong PIN" in r.json()["detail"]
            r = await http.post("/lanes/2/cashier", json={"cashier_id": "C99", "pin": "2468"})
            assert r.status_code == 401
            signed = await http.post("/lanes/2/cashier", json={"cashier_id": "C07", "pin": "2468"})
            assert signed.status_code == 200 and signed.json()["cashier_id"] == "C07"
            shift = signed.json()["shift_id"]
            r = await http.post("/lanes/2/top-ups", json={"amount_fen": 20_000})
            assert r.status_code == 201 and r.json()["shift_id"] == shift and r.json()["cashier_id"] == "C07"
            r = await http.post("/lanes/2/top-ups", json={"amount_fen": 20_000})
            assert r.status_code == 409 and "past the daily cap of 300.00" in r.json()["detail"]
            frames = [codec.decode(f) for _, _, f, kind in await edge.store_db.outbox(0, 100)
                      if kind == "stored_value.cash_topped_up"]
            assert [(e.member_id, e.amount_fen, e.cashier_id, e.shift_id) for e in frames] == [
                ("M3", 20_000, "C07", shift)]
            assert await edge.store_db.count("topups") == 1 and await edge.store_db.count("shifts") == 1
            assert (await http.delete("/lanes/2/cashier")).json()["signed_out"] == "C07"
            assert (await http.post("/lanes/2/top-ups", json={"amount_fen": 100})).status_code == 403
    finally:
        await edge.stop()


async def test_price_embedded_label_on_a_per_kg_product_takes_the_right_grams_off_stock(box):
    """A label scale priced a per-kg product and printed only the amount (prefix 20: PPIIIIIAAAAAC). The sale takes
    off stock the grams that amount stands for - amount x 1000 / price per kg, one rounding (protocol.money) - not
    1 g, as when quantities had no unit."""
    from protocol.messages import Quantity
    from protocol.money import div_round
    edge, http, _, _ = box
    product = weighed()
    sku = product["sku"]
    await edge.actor.ask("receive", sku=sku, qty=10_000)  # 10 kg
    amount = 482
    grams = div_round(amount * 1000, product["price_fen"])  # e.g. 4.82 at 9.63/kg: 500.52 g -> 501 g
    assert grams > 100
    body = "20" + product["plu"] + f"{amount:05d}"
    r = await http.post("/lanes/4/scan", json={"code": body + str(gs1_check_digit(body))})
    assert r.status_code == 200, r.text
    assert (r.json()["line"]["weight_g"], r.json()["line"]["unit"], r.json()["line"]["list_fen"]) == (grams, "g", amount)
    paid = await http.post("/lanes/4/pay", json={"method": "cash", "tendered_fen": 10_000})
    assert paid.status_code == 201
    sale_id = paid.json()["sale_id"]
    frames = [codec.decode(f) for _, _, f, _ in await edge.store_db.outbox(0, 1000)]
    moves = [(m.sku, m.delta, m.on_hand_after) for m in frames if m.KIND == "stock.moved" and m.reference == sale_id]
    assert moves == [(sku, -grams, 10_000 - grams)]
    (sale,) = [m for m in frames if m.KIND == "sale.committed"]
    assert [(line.sku, line.quantity) for line in sale.lines] == [(sku, Quantity.grams(grams))]
    assert (await edge.store_db.stock_level(sku)).on_hand == 10_000 - grams
    async with edge.store_db.reader.execute("select sum(delta) from movements where sku = ?", (sku,)) as cur:
        assert (await cur.fetchone())[0] == 10_000 - grams  # the journal adds up to on hand
    assert (await edge.store_db.sale(sale_id))["lines"] == [[sku, grams, "g", sale.lines[0].amount_fen]]


async def test_open_carts_are_bounded_and_looking_at_an_empty_lane_opens_none(box, monkeypatch):
    from edge import store_actor
    edge, http, _, _ = box
    monkeypatch.setattr(store_actor, "MAX_OPEN_CARTS", 2)
    await edge.actor.ask("receive", sku=packed()["sku"], qty=10)
    for lane in ("1", "2"):
        assert (await http.post(f"/lanes/{lane}/scan", json={"code": packed()["gtin"]})).status_code == 200
    assert (await http.get("/lanes/9/cart")).json()["lines"] == []  # a view does not open a cart
    r = await http.post("/lanes/3/scan", json={"code": packed()["gtin"]})
    assert r.status_code == 409 and "already have a cart open" in r.json()["detail"]
    assert (await http.post("/lanes/1/pay", json={"method": "wallet_sim"})).status_code == 201
    assert (await http.post("/lanes/3/scan", json={"code": packed()["gtin"]})).status_code == 200


async def test_the_store_database_is_private_to_its_owner(box):
    import stat
    edge, *_ = box
    path = edge.store_db.path
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        assert file.exists() and stat.S_IMODE(file.stat().st_mode) == 0o600, file


async def test_a_cache_kept_with_clear_phones_by_an_older_box_is_hashed_and_the_numbers_leave_the_file(tmp_path):
    import sqlite3

    from edge.store_db import StoreDb
    path = tmp_path / "old" / "S009.sqlite"
    path.parent.mkdir()
    old = sqlite3.connect(path)
    old.execute("pragma journal_mode=WAL")
    old.execute("""create table members (member_id text primary key, phone text, member_code text, level text,
                   stored_value_fen integer not null, points integer not null,
                   offline_spent_fen integer not null default 0)""")
    old.execute("insert into members values ('M1', '+8613800000009', '0000000009', 'regular', 500, 0, 0)")
    old.commit()
    old.close()
    key = member_lookup_key(PASSWORD, "S009")
    db = await StoreDb(path, key).open()
    try:
        found = await db.member(phone_hash=phones.lookup_hash(key, "+8613800000009"))
        assert found is not None and found.member_id == "M1" and found.phone_masked == "138****0009"
    finally:
        await db.close()
    for file in path.parent.iterdir():
        data = file.read_bytes()
        assert b"13800000009" not in data and "13800000009".encode("utf-16-le") not in data, file


async def test_a_lane_the_cloud_would_refuse_is_refused_before_a_sale_and_a_refused_event_is_set_aside(box):
    from protocol.messages import Ack, BusinessAck
    from tests.integration.harness import envelope
    edge, http, _, _ = box
    for lane in ("1%00", "L" * 17, "a%20b"):  # NUL, too long, a space: 422 at once, nothing opened or sold
        r = await http.post(f"/lanes/{lane}/scan", json={"code": packed()["gtin"]})
        assert r.status_code == 422 and "lane" in r.json()["detail"], (lane, r.text)
    big = await http.post("/lanes/1/scan", content=b'{"code": "' + b"1" * 20_000 + b'"}')
    assert big.status_code == 413 and "exceeds" in big.json()["detail"]
    deep = await http.post("/lanes/1/scan", content=b'{"code": ' + b"[" * 30 + b"]" * 30 + b"}")
    assert deep.status_code == 422 and "nested deeper" in deep.json()["detail"]
    await edge.actor.ask("receive", sku=packed()["sku"], qty=3)
    await http.post("/lanes/1/scan", json={"code": packed()["gtin"]})
    paid = (await http.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 100_000})).json()
    event = next(codec.decode(f) for _, _, f, kind in await edge.store_db.outbox(0, 100) if kind == "sale.committed")
    assert event.sale_id == paid["sale_id"]
    why = "could not be applied: NumericValueOutOfRangeError: value out of range"
    ack = BusinessAck(**envelope("S009", 3), acks=(Ack(event_id=event.event_id, seq=0, result="refused", detail=why),))
    await edge.actor.ask("cloud_message", message=ack)
    assert "sale.committed" not in await outbox_kinds(edge)  # not re-sent forever
    (aside,) = await edge.store_db.refused_events()
    assert aside["event_id"] == event.event_id and aside["reason"] == why and aside["kind"] == "sale.committed"
    assert (await edge.health())["refused_events"] == 1
    assert (await edge.store_db.sale(paid["sale_id"]))["total_fen"] == paid["total_fen"]  # the sale itself stays


async def test_another_process_reading_the_store_database_never_takes_its_wal_away(tmp_path):
    """A support tool (or a backup) opening the store's database from another process while the box runs: its
    closing must not checkpoint and delete the WAL the box is writing to (POSIX locks are dropped when any
    descriptor of the file closes, so the box must never open its own database file behind SQLite's back)."""
    import subprocess
    import sys

    from edge.store_db import StoreDb
    path = tmp_path / "data" / "S011.sqlite"
    store_db = await StoreDb(path).open()
    try:
        read = [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                "print(c.execute('select count(*) from meta').fetchone()[0]); c.close()", str(path)]
        assert subprocess.run(read, capture_output=True, text=True, check=True).stdout.strip() == "0"
        await store_db.writer.execute("insert into meta (key, value) values ('after', 'the reader left')")
        assert path.with_name(path.name + "-wal").exists(), "the box's WAL was deleted under it"
        assert subprocess.run(read, capture_output=True, text=True, check=True).stdout.strip() == "1"
    finally:
        await store_db.close()


async def test_guessing_a_cashiers_pin_locks_the_cashier_id_for_a_while():
    from edge.cashier_pins import FAILURES_MAX, LOCK_MS, CashierPins, hash_pin
    pins = CashierPins({"C01": hash_pin("2468")})
    assert await pins.verify("C01", "2468", 0)
    for _ in range(FAILURES_MAX):
        assert not await pins.verify("C01", "0000", 1)
    assert not await pins.verify("C01", "2468", 2)  # the right PIN, but locked: the same answer
    assert await pins.verify("C01", "2468", 1 + LOCK_MS)
    assert not await pins.verify("C99", "2468", 3)  # an unknown cashier: the same answer as a wrong PIN
