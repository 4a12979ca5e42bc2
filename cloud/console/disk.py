"""The store boxes' data disks on the console: free bytes from the heartbeats, and the low-water alert.

Pure (the snapshot's core calls it). Guarantees:
- a store row carries `disk_free_bytes` (-1: not reported), `disk_free` (human units, `protocol.disk.human_bytes`)
  and `disk_low` (under the console's `disk_low_water_bytes`, by default the edge's own default mark,
  `protocol.disk.DISK_LOW_WATER_BYTES`); an offline store's are its last-known ones (the page greys them with their
  age, as its other last-known values);
- a low disk is one of the row's warnings and a `disk_low` warning alert while the store is online (offline, the
  store_offline alert speaks for it and its free space is not current); the same condition is the Prometheus rule
  FreshmeshStoreDiskLow on `freshmesh_store_disk_free_bytes` (cloud/http/domain_metrics.py).
"""
from __future__ import annotations

from typing import Any

from protocol.disk import UNKNOWN, disk_low, human_bytes


def disk_fields(status: dict[str, Any] | None, low_water_bytes: int) -> dict[str, Any]:
    """The disk columns of a store row, from its registry status (None: never heard from)."""
    free = UNKNOWN if status is None else int(status.get("disk_free_bytes", UNKNOWN))
    return {"disk_free_bytes": free, "disk_free": human_bytes(free), "disk_low": disk_low(free, low_water_bytes)}


def disk_warnings(row: dict[str, Any]) -> list[str]:
    return [f"disk {row['disk_free']} free"] if row.get("disk_low") else []


def disk_alerts(stores: list[dict[str, Any]], low_water_bytes: int) -> list[dict[str, Any]]:
    out = []
    for s in stores:
        if s.get("online") and s.get("disk_low"):
            sid = s["store_id"]
            out.append({"id": f"disk_low:{sid}", "kind": "disk_low", "subject": sid, "severity": "warning",
                        "message": f"store {sid}: {s['disk_free']} free on its data disk, under the low-water mark "
                                   f"of {human_bytes(low_water_bytes)}"})
    return out
