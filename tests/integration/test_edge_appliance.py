"""The store box as an appliance (issue 18 item 7), in-process with a real store db; no cloud needed.

The full-disk cases run the box's data dir on a SMALL tmpfs mounted for the test (`mount -t tmpfs -o size=...`:
a real filesystem that really runs out of room, so SQLite meets ENOSPC exactly as on a full box). Where mounting is
not allowed (not root, or a container without CAP_SYS_ADMIN) they are skipped, saying why.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import aiosqlite
import httpx
import pytest
import pytest_asyncio

from cloud.embedded.process import free_port
from edge import migrations
from edge.box import EdgeBox
from edge.cashier_pins import FAILURES_MAX, LOCK_MS, hash_pin
from edge.lanes import build_lane_app
from edge.store_db import StoreDb
from protocol import codec

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S040"  # this module's own store id (no cloud: nothing is sold from it elsewhere)
FS_BYTES = 16 * 1024 * 1024


def packed() -> list[dict]:
    return [p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"]]


@contextlib.contextmanager
def small_filesystem(where: Path, size: int = FS_BYTES):
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the filesystem says ENOSPC; the filler's path (delete it to free the room)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
                os.fsync(f.fileno())
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


async def open_box(data_dir: Path, **extra):
    config = {"store_id": STORE, "data_dir": str(data_dir), "world": str(WORLD), **extra}
    box = await EdgeBox(config).start()
    return box, httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane")


@pytest_asyncio.fixture
async def full_box(tmp_path):
    with small_filesystem(tmp_path / "small") as data_dir:
        box, http = await open_box(data_dir, disk_low_water_bytes=1_000_000)
        try:
            yield box, http, data_dir
        finally:
            await http.aclose()
            await box.stop()


async def cart(http, lane: str) -> dict:
    r = await http.get(f"/lanes/{lane}/cart")
    assert r.status_code == 200, r.text
    return r.json()


async def test_full_disk_pay_answers_503_problem_keeps_the_cart_and_recovers(full_box):
    box, http, data_dir = full_box
    a, b = packed()[:2]
    for sku in (a["sku"], b["sku"]):
        await box.actor.ask("receive", sku=sku, qty=20)
    for code in (a["gtin"], b["gtin"], a["gtin"]):
        assert (await http.post("/lanes/1/scan", json={"code": code})).status_code == 200
    before = await cart(http, "1")
    sales_before = await box.store_db.count("sales")
    outbox_before = await box.store_db.outbox_depth()
    on_hand_before = (await box.store_db.stock_level(a["sku"])).on_hand
    async with box.store_db.reader.execute("pragma wal_checkpoint(TRUNCATE)") as cur:  # the WAL has no spare room
        await cur.fetchall()
    filler = fill(data_dir)

    pay = {"json": {"method": "cash", "tendered_fen": before["total_fen"]}, "headers": {"Idempotency-Key": "pay-1"}}
    for _ in range(3):  # a till retrying: each answer the same, nothing half-written, the cart exactly as it was
        r = await http.post("/lanes/1/pay", **pay)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"].startswith("the store box's disk is full: ")
        assert "full" in r.json()["detail"] and r.headers.get("retry-after")
        assert await cart(http, "1") == before
    assert await box.store_db.count("sales") == sales_before
    assert await box.store_db.outbox_depth() == outbox_before
    assert (await box.store_db.stock_level(a["sku"])).on_hand == on_hand_before
    health = (await http.get("/health")).json()
    assert health["disk"]["state"] == "down" and health["disk"]["free_bytes"] < 1_000_000
    assert any(w.startswith("disk down") for w in health["warnings"])

    filler.unlink()  # space freed: the very next pay goes through, nothing restarted
    r = await http.post("/lanes/1/pay", **pay)
    assert r.status_code == 201, r.text
    again = await http.post("/lanes/1/pay", **pay)  # its answer lost, retried once more: the same sale, not a 409
    assert again.status_code == 201 and again.json() == r.json()
    assert r.json()["total_fen"] == before["total_fen"]
    sale = await box.store_db.sale(r.json()["sale_id"])
    assert sale is not None  # the cart's lines, exactly (a reached gift follows them at 0 fen)
    assert [(sku, qty) for sku, qty, _, _ in sale["lines"][:len(before["lines"])]] == [
        (line["sku"], line["qty"]) for line in before["lines"]]
    assert await box.store_db.count("sales") == sales_before + 1
    assert (await box.store_db.stock_level(a["sku"])).on_hand == on_hand_before - 2
    assert (await cart(http, "1"))["lines"] == []
    assert (await http.get("/health")).json()["disk"]["state"] == "ok"
    assert await box.store_db.stock_audit() == []


async def test_a_scan_retried_with_its_idempotency_key_is_added_once(tmp_path):
    box, http = await open_box(tmp_path / "data")
    try:
        a, b = packed()[:2]
        key = uuid.uuid4().hex
        for _ in range(4):  # the till lost the answer and retries the same scan
            r = await http.post("/lanes/2/scan", json={"code": a["gtin"]}, headers={"Idempotency-Key": key})
            assert r.status_code == 200 and r.json()["line"]["qty"] == 1
        r = await http.post("/lanes/2/scan", json={"code": a["gtin"]}, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r.json()["line"]["qty"] == 2  # a new key is a new scan
        await http.post("/lanes/2/scan", json={"code": b["gtin"]})  # no key: every scan counts, as before
        await http.post("/lanes/2/scan", json={"code": b["gtin"]})
        lines = {line["sku"]: line["qty"] for line in (await cart(http, "2"))["lines"]}
        assert lines == {a["sku"]: 2, b["sku"]: 2}
        r = await http.post("/lanes/2/scan", json={"code": a["gtin"]}, headers={"Idempotency-Key": "k" * 129})
        assert r.status_code == 422 and "Idempotency-Key" in r.json()["detail"]
        loose = next(p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "kg")
        for grams in (500, 500, 730):  # a weighing retried with its key (the scale may read a little differently)
            await box.actor.ask("weighed", lane="2", sku=loose["sku"], grams=grams, key="weigh-1")
        await box.actor.ask("weighed", lane="2", sku=loose["sku"], grams=400, key="weigh-2")
        assert [line["weight_g"] for line in (await cart(http, "2"))["lines"] if line["sku"] == loose["sku"]] == [500, 400]
    finally:
        await http.aclose()
        await box.stop()


async def test_health_reports_disk_version_and_loud_warnings(tmp_path):
    box, http = await open_box(tmp_path / "data", world=None)  # no catalogue source, no NATS
    try:
        health = (await http.get("/health")).json()
        assert isinstance(health["disk"]["free_bytes"], int) and health["disk"]["free_bytes"] > 0
        assert health["disk"]["low_water_bytes"] == 200_000_000 and health["disk"]["path"] == str(tmp_path / "data")
        assert health["version"] and health["version"] != "0+unknown"
        assert any(w.startswith("no catalogue") for w in health["warnings"])
        assert any(w.startswith("never connected to the cloud") for w in health["warnings"])
    finally:
        await http.aclose()
        await box.stop()


def test_the_box_as_a_service_ready_watchdog_stopping_and_a_rotated_log(tmp_path):
    """`python -m edge --store S041` with no world and no NATS, under a real notify socket as systemd gives one:
    it says what it will do, warns loudly, logs to its file, READY=1, WATCHDOG=1 pings, STOPPING=1 on SIGTERM."""
    address = str(tmp_path / "notify")
    log_file = tmp_path / "logs" / "edge.log"
    config = tmp_path / "box.json"
    config.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "http_port": free_port(),
                                  "log_file": str(log_file), "log_max_bytes": 100_000, "log_backups": 2}))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
        for name in ("NATS_URL", "FRESHMESH_STORE_PASSWORD", "FRESHMESH_EDGE_DATA"):
            env.pop(name, None)
        proc = subprocess.Popen([sys.executable, "-m", "edge", "--store", "S041", "--config", str(config)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            said = []
            while not any(m.startswith(b"WATCHDOG=1") for m in said):
                said.append(notify.recv(4096))
            assert said[0].startswith(b"READY=1\nSTATUS=serving 1 of 1 store boxes (S041)")
            proc.send_signal(signal.SIGTERM)
            while not said[-1].startswith(b"STOPPING=1"):
                said.append(notify.recv(4096))
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0
    assert "edge S041: from" in out and "cloud: NONE - offline only" in out
    logged = log_file.read_text()
    assert "NEVER CONNECTED TO THE CLOUD" in logged and "NO CATALOGUE" in logged


def test_a_config_with_an_unknown_key_is_refused_at_start(tmp_path):
    config = tmp_path / "box.json"
    config.write_text(json.dumps({"store_id": "S041", "data_dir": str(tmp_path / "data"), "nats_ulr": "nats://x"}))
    done = subprocess.run([sys.executable, "-m", "edge", "--config", str(config)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode != 0
    assert "unknown key 'nats_ulr'" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was made


# ---- versioned store db (edge/migrations.py) ---------------------------------------------------------------
def indexes(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {r[0] for r in db.execute("select name from sqlite_master where type = 'index'")}


def user_version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("pragma user_version").fetchone()[0])


async def test_an_old_store_db_is_upgraded_in_place_keeping_its_rows(tmp_path):
    path = tmp_path / "S040.sqlite"
    db = await StoreDb(path).open()
    await db.writer.execute("insert into sales (sale_id, lane, total_fen, lines, payments, member_id, offline, at_ms) "
                            "values ('old-sale', '1', 990, '[]', '[]', 'M1', 1, 5)")
    await db.close()
    assert user_version(path) == migrations.CURRENT and {"sales_member_at", "movements_reference"} <= indexes(path)
    with contextlib.closing(sqlite3.connect(path)) as raw:  # as a box from before versioning left it: version 0
        raw.executescript("drop index sales_member_at; drop index movements_reference; "
                          "alter table coupon_redemptions drop column released_by; alter table returns drop column refunds; "
                          "pragma user_version = 0;")
    assert user_version(path) == 0 and "sales_member_at" not in indexes(path)

    db = await StoreDb(path).open()
    try:
        assert (await db.sale("old-sale"))["total_fen"] == 990
    finally:
        await db.close()
    assert user_version(path) == migrations.CURRENT and {"sales_member_at", "movements_reference"} <= indexes(path)


async def test_a_migration_alters_a_table_once_and_a_failed_step_leaves_the_version_it_had(tmp_path):
    path = tmp_path / "S040.sqlite"
    await (await StoreDb(path).open()).close()
    steps = (*migrations.MIGRATIONS,
             migrations.Migration(migrations.CURRENT + 1, "test: a new column",
                                  "alter table sales add column note text not null default '';"
                                  "update sales set note = 'a;b' where note = '';"),
             migrations.Migration(migrations.CURRENT + 2, "test: a broken step", "alter table nowhere add column x int;"))
    async with aiosqlite.connect(path, isolation_level=None) as db:
        with pytest.raises(sqlite3.OperationalError, match="no such table: nowhere"):
            await migrations.upgrade(db, path, steps)
        assert await migrations.version_of(db) == migrations.CURRENT + 1  # the good step stands, the bad one left nothing
        assert await migrations.upgrade(db, path, steps[:-1]) == []  # never twice
        async with db.execute("pragma table_info(sales)") as cur:
            assert "note" in {row[1] for row in await cur.fetchall()}


async def test_a_store_db_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "S040.sqlite"
    await (await StoreDb(path).open()).close()
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute(f"pragma user_version = {migrations.CURRENT + 5}")
    before = path.read_bytes()
    with pytest.raises(migrations.NewerStoreDb) as refused:
        await StoreDb(path).open()
    assert f"schema version {migrations.CURRENT + 5}, newer than this freshmesh edge knows (up to " in str(refused.value)
    assert str(path) in str(refused.value)
    assert path.read_bytes() == before and user_version(path) == migrations.CURRENT + 5


# ---- a wall clock that jumps (edge/core/clock_watch.py) ----------------------------------------------------
class JumpyClock:
    """Wall and monotonic clocks that move together, except when the wall clock is set (jumps)."""

    def __init__(self) -> None:
        self.wall, self.mono = 1_767_225_600_000, 5_000_000

    def now_ms(self) -> int:
        return self.wall

    def monotonic_ms(self) -> int:
        return self.mono

    def advance(self, ms: int) -> None:
        self.wall += ms
        self.mono += ms

    def jump(self, ms: int) -> None:
        self.wall += ms


async def test_a_jumping_wall_clock_never_reorders_the_outbox_nor_stretches_a_lockout(tmp_path):
    clock = JumpyClock()
    config = {"store_id": STORE, "data_dir": str(tmp_path / "data"), "world": str(WORLD),
              "cashiers": {"C40": hash_pin("2468")}}
    box = await EdgeBox(config, clock=clock).start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                     base_url="http://lane") as http:
            item = packed()[0]
            await box.actor.ask("receive", sku=item["sku"], qty=50)
            # a box with cashiers takes money only with one signed in at the lane (edge/lane_guard.py)
            assert (await http.post("/lanes/1/cashier", json={"cashier_id": "C40", "pin": "2468"})).status_code == 200
            sales = []
            for jump in (0, -3_600_000, 2 * 86_400_000, -86_400_000):  # back an hour, forward two days, back a day
                clock.jump(jump)
                clock.advance(1_000)
                await http.post("/lanes/1/scan", json={"code": item["gtin"]})
                r = await http.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 100_000})
                assert r.status_code == 201, r.text
                sales.append(r.json()["sale_id"])
            rows = await box.store_db.outbox(0, 1000)
            seqs = [seq for seq, _, _, _ in rows]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # one order, by seq, whatever the clock said
            events = [codec.decode(frame) for _, _, frame, _ in rows]  # every frame still a valid event
            assert [e.sale_id for e in events if e.KIND == "sale.committed"] == sales
            assert [e.wall_ms for e in events if e.KIND == "sale.committed"] != sorted(
                e.wall_ms for e in events if e.KIND == "sale.committed")  # the clock did go back: kept as it said

            async def sign_in(pin: str) -> int:
                return (await http.post("/lanes/1/cashier", json={"cashier_id": "C40", "pin": pin})).status_code
            for _ in range(FAILURES_MAX):
                assert await sign_in("0000") == 401
            assert await sign_in("2468") == 401  # locked
            clock.jump(86_400_000)  # the wall clock forward a day: the lockout does not end early
            assert await sign_in("2468") == 401
            clock.jump(-2 * 86_400_000)  # back two days, and the lockout's five minutes pass: it ends, not a day later
            clock.advance(LOCK_MS + 1_000)
            assert await sign_in("2468") == 200
            # the box's watchdog notices the jumps within a second or so; it samples the clock on its own beat, so
            # it may first have seen the day forward, and sees the two days back at its next reading
            for _ in range(100):
                if any("wall clock jumped back" in w for w in (await http.get("/health")).json()["warnings"]):
                    break
                await asyncio.sleep(0.05)
            assert any("wall clock jumped back" in w for w in (await http.get("/health")).json()["warnings"])
    finally:
        await box.stop()
