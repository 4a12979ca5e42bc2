"""The boxes' data disks on the console and in /metrics (cloud/console/disk.py, protocol/disk.py): free bytes from
the heartbeats in human units, the low-water alert (the edge's own default mark), greyed when offline."""
from __future__ import annotations

from actors.store_registry import StoreRegistry
from cloud.console.snapshot import ConsoleConfig, ConsoleInputs, ConsoleMemory, build_snapshot
from cloud.http.domain_metrics import store_families
from edge.disk import DEFAULT_LOW_WATER_BYTES
from protocol.disk import DISK_LOW_WATER_BYTES, disk_low, human_bytes

T0 = 1_800_000_000_000
LOW, ROOMY = 120_000_000, 37_200_000_000


def registry_row(store_id, hb_ms, online=True, disk=ROOMY):
    return {"store_id": store_id, "last_heartbeat_ms": hb_ms, "online": online, "outbox_depth": 0, "lag_ms": 50,
            "lag_p99_ms": 50, "sequence_gap": 0, "events": 3, "offline_since_ms": None if online else hb_ms,
            "devices": {"scale": "ok"}, "disk_free_bytes": disk}


def snapshot(registry, now=T0, config=None):
    return build_snapshot(ConsoleInputs(now_ms=now, prefix="p-", actors=[], stores={"S055": "A", "S056": "B"},
                                        registry=registry), ConsoleMemory(), config or ConsoleConfig())


def test_the_cloud_judges_low_disk_by_the_edges_own_default_mark():
    assert DEFAULT_LOW_WATER_BYTES == DISK_LOW_WATER_BYTES
    assert disk_low(DISK_LOW_WATER_BYTES - 1) and not disk_low(DISK_LOW_WATER_BYTES) and not disk_low(-1)
    assert [human_bytes(n) for n in (-1, 512, 1_500_000, 37_200_000_000)] == ["-", "512 B", "1.5 MB", "37.2 GB"]


def test_the_registry_keeps_the_heartbeats_free_disk():
    reg = StoreRegistry()
    reg.heartbeat("S055", T0, 0, 0, 0, {}, disk_free_bytes=LOW)
    reg.heartbeat("S056", T0, 0, 0, 0, {})  # an older box says nothing: unknown
    assert [(s["store_id"], s["disk_free_bytes"]) for s in reg.view(T0)] == [("S055", LOW), ("S056", -1)]


def test_a_low_disk_is_a_warning_and_an_alert_and_a_roomy_one_is_neither():
    snap = snapshot([registry_row("S055", T0, disk=LOW), registry_row("S056", T0)])
    rows = {r["store_id"]: r for r in snap["stores"]}
    assert rows["S055"]["disk_free"] == "120.0 MB" and rows["S055"]["disk_low"] is True
    assert rows["S055"]["status"] == "warning" and "disk 120.0 MB free" in rows["S055"]["warnings"]
    assert rows["S056"]["disk_free"] == "37.2 GB" and rows["S056"]["disk_low"] is False
    assert rows["S056"]["status"] == "ok"
    disk = [a for a in snap["alerts"] if a["kind"] == "disk_low"]
    assert [(a["subject"], a["severity"]) for a in disk] == [("S055", "warning")]
    assert "120.0 MB free" in disk[0]["message"] and "200.0 MB" in disk[0]["message"]
    assert snap["thresholds"]["disk_low_water_bytes"] == DISK_LOW_WATER_BYTES


def test_an_offline_store_keeps_its_last_known_disk_without_a_disk_alert():
    snap = snapshot([registry_row("S055", T0 - 60_000, online=False, disk=LOW)])
    row = next(r for r in snap["stores"] if r["store_id"] == "S055")
    assert row["status"] == "offline" and row["disk_free"] == "120.0 MB" and row["heartbeat_age_s"] == 60.0
    assert not [a for a in snap["alerts"] if a["kind"] == "disk_low"]
    never = next(r for r in snap["stores"] if r["store_id"] == "S056")
    assert never["disk_free_bytes"] == -1 and never["disk_free"] == "-" and never["disk_low"] is False


def test_the_mark_is_configurable_like_the_consoles_other_thresholds():
    config = ConsoleConfig.from_env({"FRESHMESH_CONSOLE_DISK_LOW_WATER_BYTES": str(50_000_000_000)})
    snap = snapshot([registry_row("S056", T0)], config=config)
    assert [a["subject"] for a in snap["alerts"] if a["kind"] == "disk_low"] == ["S056"]


def test_the_metric_carries_each_known_disk_last_known_too():
    snap = snapshot([registry_row("S055", T0, disk=LOW), registry_row("S056", T0 - 60_000, online=False)])
    family = next(f for f in store_families(snap["stores"]) if f.name == "freshmesh_store_disk_free_bytes")
    assert {s.labels["store"]: s.value for s in family.samples} == {"S055": float(LOW), "S056": float(ROOMY)}
