"""The store box's disk: how much room is left for the store db, and what a full disk means for the tills.

Guarantees:
- `free_bytes()` is the free space of the filesystem that holds the data dir (what SQLite can still grow into);
  `/health` shows it with the low-water mark and a state, and every heartbeat carries it (`disk_free_bytes`) and
  reports the disk as a device: "ok", "degraded" (under the low-water mark: the console raises its device alert)
  or "down" (a write failed for lack of room in the last FULL_SHOWN_S, and the disk is still under the mark).
- `is_disk_full(exc)` recognises a write refused for lack of room however it surfaces: SQLite's SQLITE_FULL
  ("database or disk is full"), an OSError ENOSPC / EDQUOT, or EFBIG (a file-size limit), also when chained.
  The lane answers such a failure with a problem+json 503 naming the cause (`full_detail`); the store db's
  transaction was rolled back, so nothing is half-written, and the cart stays as it was (a cart is forgotten only
  after its sale commits). Nothing is latched: the next write simply tries again, so the box recovers by itself
  as soon as space is freed.
"""
from __future__ import annotations

import errno
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from protocol.disk import DISK_LOW_WATER_BYTES

DEFAULT_LOW_WATER_BYTES = DISK_LOW_WATER_BYTES  # 200 MB, the cloud's mark too (protocol/disk.py)
SQLITE_FULL = 13  # sqlite3's primary result code for "database or disk is full"
SQLITE_IOERR = 10
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
FULL_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded", "file too large")
CHAIN_MAX = 8  # how deep a chain of causes is searched
FULL_SHOWN_S = 60.0  # a refused write keeps the disk "down" this long (or until it is over the low-water mark)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) is a write refused for lack of room."""
    for _ in range(CHAIN_MAX):
        if exc is None:
            return False
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error):
            code = getattr(exc, "sqlite_errorcode", None)
            if code is not None and code & 0xFF == SQLITE_FULL:
                return True
            if any(text in str(exc).lower() for text in FULL_TEXTS):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass(frozen=True, slots=True)
class DiskState:
    free_bytes: int  # -1: unknown (the filesystem could not be asked)
    low_water_bytes: int
    state: str  # ok | degraded | down
    detail: str


def judge(free_bytes: int, low_water_bytes: int, last_full_error: str = "") -> DiskState:
    """The disk's state from its free space and the last write refused for lack of room (pure)."""
    mb = f"{free_bytes / 1e6:.1f} MB free" if free_bytes >= 0 else "free space unknown"
    if free_bytes < 0:
        return DiskState(free_bytes, low_water_bytes, "degraded", mb)
    if free_bytes < low_water_bytes:
        if last_full_error:
            return DiskState(free_bytes, low_water_bytes, "down", f"disk full: {last_full_error} ({mb})")
        return DiskState(free_bytes, low_water_bytes, "degraded",
                         f"{mb}, under the low-water mark of {low_water_bytes / 1e6:.0f} MB")
    return DiskState(free_bytes, low_water_bytes, "ok", mb)


class DiskWatch:
    """The data dir's filesystem, asked when health or a heartbeat wants it (a statvfs call: cheap)."""

    def __init__(self, data_dir: Path, low_water_bytes: int = DEFAULT_LOW_WATER_BYTES,
                 usage: Callable[[Path], int] | None = None, monotonic_s: Callable[[], float] = time.monotonic) -> None:
        self.data_dir = Path(data_dir)
        self.low_water_bytes = low_water_bytes
        self._usage = usage or (lambda path: shutil.disk_usage(path).free)
        self._monotonic_s = monotonic_s
        self.last_full_error = ""  # the last write refused for lack of room (shown for FULL_SHOWN_S, or until ok)
        self._full_at = 0.0

    def free_bytes(self) -> int:
        try:
            return int(self._usage(self.data_dir))
        except OSError:
            return -1

    def state(self) -> DiskState:
        if self.last_full_error and self._monotonic_s() - self._full_at > FULL_SHOWN_S:
            self.last_full_error = ""  # no write refused for a while: some room came back (still low, perhaps)
        state = judge(self.free_bytes(), self.low_water_bytes, self.last_full_error)
        if state.state == "ok":
            self.last_full_error = ""
        return state

    def refused(self, exc: BaseException) -> str:
        """Record a write refused for lack of room; the 503's detail."""
        self.last_full_error = str(exc) or type(exc).__name__
        self._full_at = self._monotonic_s()
        return full_detail(exc, self.free_bytes(), self.data_dir)

    def health(self) -> dict:
        s = self.state()
        return {"path": str(self.data_dir), "free_bytes": s.free_bytes, "low_water_bytes": s.low_water_bytes,
                "state": s.state, "detail": s.detail}


def full_detail(exc: BaseException, free_bytes: int, data_dir: Path) -> str:
    return (f"the store box's disk is full: {exc} ({max(free_bytes, 0)} bytes free on {data_dir}); nothing was "
            f"recorded and the cart is as it was: free space on the box, then retry")
