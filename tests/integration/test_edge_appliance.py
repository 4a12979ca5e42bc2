"""The store box as an appliance (issue 18 item 7), in-process with a real store db; no cloud needed.

The full-disk cases run the box's data dir on a SMALL tmpfs mounted for the test (`mount -t tmpfs -o size=...`:
a real filesystem that really runs out of room, so SQLite meets ENOSPC exactly as on a full box). Where mounting is
not allowed (not root, or a container without CAP_SYS_ADMIN) they are skipped, saying why.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.lanes import build_lane_app

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

    for _ in range(3):  # a till retrying: each answer the same, nothing half-written, the cart exactly as it was
        r = await http.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": before["total_fen"]})
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
    r = await http.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": before["total_fen"]})
    assert r.status_code == 201, r.text
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
