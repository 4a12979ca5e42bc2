"""StoreRegistry: each store's liveness as the cloud sees it (soft state: rebuilt from the next heartbeats).

For each store: online, or offline since when (no heartbeat for `offline_after_ms`); outbox depth; the highest
event sequence received and the gap to what the store says it has produced; till-to-cloud lag (cloud receive
time minus the event's edge wall clock) as the last value and a recent p99; device health; the box's free data
disk; last heartbeat.
"""
from __future__ import annotations

from collections import deque
from typing import Any, TypedDict

OFFLINE_AFTER_MS = 5_000
LAG_WINDOW = 512


class StoreStatus(TypedDict):
    """What the registry keeps per store (`view` adds online, sequence_gap and lag_p99_ms)."""
    store_id: str
    last_heartbeat_ms: int | None
    online_since_ms: int | None
    outbox_depth: int
    last_event_seq: int
    received_seq: int
    last_acked_seq: int
    devices: dict[str, str]
    lag_ms: int | None
    offline_since_ms: int | None
    events: int
    unacked_age_ms: int
    disk_free_bytes: int  # the box's data disk (-1: not reported)


class StoreRegistry:
    def __init__(self, offline_after_ms: int = OFFLINE_AFTER_MS) -> None:
        self.offline_after_ms = offline_after_ms
        self.stores: dict[str, StoreStatus] = {}
        self.lags: dict[str, deque[int]] = {}
        self._p99: dict[str, int | None] = {}  # cached per store until its next event: views come often

    def _store(self, store_id: str) -> StoreStatus:
        s = self.stores.get(store_id)
        if s is None:
            s = self.stores[store_id] = {"store_id": store_id, "last_heartbeat_ms": None, "online_since_ms": None,
                                         "outbox_depth": 0, "last_event_seq": 0, "received_seq": 0,
                                         "last_acked_seq": 0, "devices": {}, "lag_ms": None,
                                         "offline_since_ms": None, "events": 0, "unacked_age_ms": 0,
                                         "disk_free_bytes": -1}
            self.lags[store_id] = deque(maxlen=LAG_WINDOW)
        return s

    def heartbeat(self, store_id: str, now_ms: int, outbox_depth: int, last_event_seq: int, last_acked_seq: int,
                  devices: dict[str, str], unacked_age_ms: int = 0, disk_free_bytes: int = -1) -> None:
        s = self._store(store_id)
        if s["last_heartbeat_ms"] is None or now_ms - s["last_heartbeat_ms"] > self.offline_after_ms:
            s["online_since_ms"] = now_ms
        s.update({"last_heartbeat_ms": now_ms, "outbox_depth": outbox_depth, "last_event_seq": last_event_seq,
                  "last_acked_seq": last_acked_seq, "devices": devices, "offline_since_ms": None,
                  "unacked_age_ms": unacked_age_ms, "disk_free_bytes": disk_free_bytes})

    def event(self, store_id: str, seq: int, wall_ms: int, now_ms: int) -> None:
        s = self._store(store_id)
        s["received_seq"] = max(s["received_seq"], seq)
        s["events"] += 1
        lag = max(now_ms - wall_ms, 0)
        s["lag_ms"] = lag
        self.lags[store_id].append(lag)
        self._p99.pop(store_id, None)

    def _lag_p99(self, store_id: str) -> int | None:
        if store_id not in self._p99:
            lags = sorted(self.lags[store_id])
            self._p99[store_id] = lags[int(0.99 * (len(lags) - 1))] if lags else None
        return self._p99[store_id]

    def view(self, now_ms: int, store_id: str | None = None) -> list[dict[str, Any]]:
        """Every store (or just `store_id`, [] if unknown), sorted by id."""
        chosen = sorted(self.stores.items()) if store_id is None else (
            [(store_id, self.stores[store_id])] if store_id in self.stores else [])
        out = []
        for sid, s in chosen:
            online = s["last_heartbeat_ms"] is not None and now_ms - s["last_heartbeat_ms"] <= self.offline_after_ms
            out.append({**s, "online": online,
                        "offline_since_ms": None if online else (s["last_heartbeat_ms"] or None),
                        "sequence_gap": max(s["last_event_seq"] - s["received_seq"], 0),
                        "lag_p99_ms": self._lag_p99(sid)})
        return out
