"""The store box as an appliance (issue 18 item 7): the parts that need no server - recognising a full disk, the
disk's state, a stored-value hold given back when the sale could not be written, the config schema."""
from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge import disk, stored_value
from edge.disk import DiskWatch, is_disk_full, judge


def full_sqlite_error() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = 13  # type: ignore[attr-defined]
    return exc


def test_a_full_disk_is_recognised_however_it_surfaces():
    assert is_disk_full(full_sqlite_error())
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))  # no code attribute
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EFBIG, "File too large"))  # a file-size limit
    try:  # a rollback that fails after the write did: the cause is still seen
        try:
            raise full_sqlite_error()
        except sqlite3.Error:
            raise sqlite3.OperationalError("cannot rollback - no transaction is active") from None
    except sqlite3.Error as exc:
        chained = exc
    assert chained.__context__ is not None and is_disk_full(chained)
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("database or disk is full"))  # only a db or OS error means the disk


def test_disk_state_low_water_and_full():
    assert judge(500_000_000, 200_000_000).state == "ok"
    low = judge(150_000_000, 200_000_000)
    assert low.state == "degraded" and "low-water" in low.detail
    assert judge(10_000, 200_000_000, "database or disk is full").state == "down"
    assert judge(-1, 200_000_000).state == "degraded"  # unknown is not "ok"


def test_disk_watch_clears_a_full_disk_once_space_is_back(tmp_path):
    free = [10_000]
    watch = DiskWatch(tmp_path, 1_000_000, usage=lambda path: free[0])
    detail = watch.refused(full_sqlite_error())
    assert detail.startswith("the store box's disk is full: database or disk is full") and "10000 bytes" in detail
    assert watch.state().state == "down" and watch.health()["free_bytes"] == 10_000
    free[0] = 5_000_000
    assert watch.state().state == "ok"
    free[0] = 500_000  # low again, but no write has failed since: degraded, not down
    assert watch.state().state == "degraded"


class _Sync:
    def __init__(self) -> None:
        self.released: list[str] = []

    async def hold(self, hold_id, member_id, amount_fen, lane):
        return SimpleNamespace(granted=True, reason="")

    async def release(self, hold_id, member_id):
        self.released.append(hold_id)


class _Actor:
    online = True
    ids = SimpleNamespace(new=lambda: "01J0000000000000000000HOLD")

    async def ask(self, op, **kw):
        if op == "stored_value_quote":
            return {"member_id": "M1", "total_fen": 1200}
        raise full_sqlite_error()  # the sale could not be written


async def test_a_stored_value_hold_goes_back_when_the_sale_cannot_be_written():
    box = SimpleNamespace(actor=_Actor(), sync=_Sync())
    with pytest.raises(sqlite3.OperationalError):
        await stored_value.pay(box, "1", "stored_value", 0)
    assert len(box.sync.released) == 1  # not left to lapse: the member's money is free at once


def test_default_low_water_is_200_mb():
    assert disk.DEFAULT_LOW_WATER_BYTES == 200_000_000
    assert DiskWatch(Path("/")).free_bytes() > 0
