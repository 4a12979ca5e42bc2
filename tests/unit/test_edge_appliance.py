"""The store box as an appliance (issue 18 item 7): the parts that need no server - recognising a full disk, the
disk's state, a stored-value hold given back when the sale could not be written, the config schema."""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import logging
import socket
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge import appliance, disk, service, stored_value
from edge import config as edge_config
from edge.core.clock_watch import JUMP_SHOWN_MS, ClockWatch, unacked_age_ms
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
    free, now = [10_000], [100.0]
    watch = DiskWatch(tmp_path, 1_000_000, usage=lambda path: free[0], monotonic_s=lambda: now[0])
    detail = watch.refused(full_sqlite_error())
    assert detail.startswith("the store box's disk is full: database or disk is full") and "10000 bytes" in detail
    assert watch.state().state == "down" and watch.health()["free_bytes"] == 10_000
    free[0] = 5_000_000
    assert watch.state().state == "ok"
    free[0] = 500_000  # low again, but no write has failed since: degraded, not down
    assert watch.state().state == "degraded"
    watch.refused(full_sqlite_error())
    free[0] = 600_000  # some room freed, still under the mark: down while writes were refused lately
    assert watch.state().state == "down"
    now[0] += disk.FULL_SHOWN_S + 1  # and no write refused for a while: only low
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
    async def no_rows(*_):
        return []  # no sale names the hold: it was not written
    box = SimpleNamespace(actor=_Actor(), sync=_Sync(), store_db=SimpleNamespace(_all=no_rows), store_id="S040")
    with pytest.raises(sqlite3.OperationalError):
        await stored_value.pay(box, "1", "stored_value", 0)
    assert len(box.sync.released) == 1  # not left to lapse: the member's money is free at once


def test_default_low_water_is_200_mb():
    assert disk.DEFAULT_LOW_WATER_BYTES == 200_000_000
    assert DiskWatch(Path("/")).free_bytes() > 0


# ---- configuration (edge/config.py) ------------------------------------------------------------------------
EXAMPLE = Path(__file__).resolve().parents[2] / "edge" / "example-config.json"


def write(tmp_path, data) -> str:
    path = tmp_path / "box.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_the_example_config_is_valid_and_documents_every_key():
    (config,) = edge_config.load(str(EXAMPLE), environ={})
    assert config.store_id == "S001" and config.devices.scale is not None and config.devices.scale.port == "/dev/ttyUSB0"
    example = json.loads(EXAMPLE.read_text())
    assert set(example) == set(edge_config.StoreConfig.model_fields) - {"http_fd", "floor_limit_fen"}


@pytest.mark.parametrize(("data", "named"), [
    ({"store_id": "S041", "nats_ulr": "nats://x"}, "'nats_ulr'"),
    ({"store_id": "S041", "devices": {"scale": {"port": "/dev/x", "baudrat": 4800}}}, "'devices.scale.baudrat'"),
    ({"store_id": "S041", "devices": {"label_scales": [{"port": "/dev/x", "colour": "red"}]}},
     "'devices.label_scales[0].colour'"),
    ({"data_dir": "/d", "stores": [{"store_id": "S040"}, {"store_id": "S041", "htp_port": 1}]}, "'stores[1].htp_port'"),
    ({"stores": [{"store_id": "S041"}], "wrold": "w.json"}, "'stores[0].wrold'"),
])
def test_unknown_keys_are_refused_naming_the_key(tmp_path, data, named):
    with pytest.raises(edge_config.ConfigError) as caught:
        edge_config.load(write(tmp_path, data), environ={})
    assert f"unknown key {named}" in str(caught.value)


def test_bad_values_and_files_are_refused_saying_what_is_wrong(tmp_path):
    with pytest.raises(edge_config.ConfigError, match=r"http_port: .*less than or equal to 65535"):
        edge_config.load(write(tmp_path, {"store_id": "S041", "http_port": 70000}), environ={})
    with pytest.raises(edge_config.ConfigError, match="online_ratio_bp"):
        edge_config.load(write(tmp_path, {"store_id": "S041", "online_ratio_bp": -1}), environ={})
    with pytest.raises(edge_config.ConfigError, match="not valid JSON"):
        (tmp_path / "bad.json").write_text("{")
        edge_config.load(str(tmp_path / "bad.json"), environ={})
    with pytest.raises(edge_config.ConfigError, match=r"give --store ID"):
        edge_config.load(None, environ={})


def test_no_config_says_what_it_will_do_and_warns_about_cloud_and_catalogue():
    (config,) = edge_config.load(None, "S041", environ={})
    said = edge_config.describe(config, None)
    assert "no config file" in said and "S041.sqlite" in said and "http://127.0.0.1:9000" in said
    assert "NONE - offline only" in said
    found = edge_config.warnings(config)
    assert any(w.startswith("never connected to the cloud") for w in found)
    assert any(w.startswith("no catalogue") for w in found)
    env = {"NATS_URL": "nats://cloud:4222", "FRESHMESH_STORE_PASSWORD": "pw", "FRESHMESH_EDGE_DATA": "/srv/edge"}
    (config,) = edge_config.load(None, "S041", environ=env)
    assert (config.nats_url, config.nats_password, config.data_dir) == ("nats://cloud:4222", "pw", "/srv/edge")
    assert not any(w.startswith("never connected") for w in edge_config.warnings(config))
    box = edge_config.as_box_config(config)
    assert "offline_allowance_fen" not in box and "http_fd" not in box  # unset: the box's own defaults hold


# ---- the service: logs and systemd notify (edge/service.py) ------------------------------------------------
def test_logs_rotate_and_keep_a_bounded_number_of_files(tmp_path):
    path = tmp_path / "logs" / "edge.log"
    # the repeat filter off: these 500 lines share one template, which it would otherwise say once a minute
    handler = service.setup_logging(str(path), max_bytes=2_000, backups=2, env={"FRESHMESH_LOG_REPEAT_S": "0"})
    try:
        for i in range(500):
            logging.getLogger("freshmesh.edge").info("line %d %s", i, "x" * 40)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["edge.log", "edge.log.1", "edge.log.2"]
    assert all(p.stat().st_size <= 2_100 for p in path.parent.iterdir())
    assert "line 499" in path.read_text()


def test_notify_speaks_sd_notify_over_a_real_unix_datagram_socket(tmp_path):
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        server.settimeout(2)
        notifier = service.Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"})
        assert notifier.interval_s == 2.0  # half the watchdog period
        assert notifier.send("READY=1", "STATUS=serving")
        assert server.recv(1024) == b"READY=1\nSTATUS=serving"
    assert not service.Notifier({}).send("READY=1")  # not under systemd: nothing, and no error
    assert service.Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000",
                             "WATCHDOG_PID": "1"}).interval_s == service.WATCHDOG_DEFAULT_S  # another pid's watchdog


# ---- a wall clock that jumps (edge/core/clock_watch.py) ----------------------------------------------------
def test_clock_watch_notices_jumps_not_ticks():
    watch = ClockWatch()
    wall, mono = 1_767_225_600_000, 1_000
    assert watch.observe(wall, mono) is None
    assert watch.observe(wall + 1_000, mono + 1_000) is None  # a second passes on both clocks
    assert watch.observe(wall + 2_300, mono + 2_000) is None  # NTP slewing: well within the tolerance
    jump = watch.observe(wall - 3_600_000, mono + 3_000)
    assert jump is not None and jump.by_ms == -3_600_000 - 2_300 - 1_000 and watch.jumps == 1
    said = watch.warning(mono + 3_000)
    assert said is not None and said.startswith("the wall clock jumped back by 3603 s")
    assert watch.warning(mono + 3_000 + JUMP_SHOWN_MS + 1) is None  # steady for a while: no longer shown
    assert watch.observe(wall - 3_600_000 + 86_400_000, mono + 4_000).by_ms > 0  # forward a day


def test_unacked_age_is_measured_on_the_monotonic_clock_within_a_run():
    made_wall, made_mono = 1_767_225_600_000, 50_000
    # the wall clock jumped forward a day after the event was made; 3 s passed: 3 s, not a day of "lag"
    assert unacked_age_ms(made_wall + 86_400_000 + 3_000, made_mono + 3_000, made_wall, made_mono, True) == 3_000
    # jumped back an hour: still 3 s, not 0
    assert unacked_age_ms(made_wall - 3_600_000 + 3_000, made_mono + 3_000, made_wall, made_mono, True) == 3_000
    # from an earlier run (the monotonic clock restarted): only the wall clock is shared, never negative
    assert unacked_age_ms(made_wall + 9_000, 10, made_wall, made_mono, False) == 9_000
    assert unacked_age_ms(made_wall - 9_000, 10, made_wall, made_mono, False) == 0
    assert unacked_age_ms(made_wall + 9_000, 10, made_wall, made_mono, True) == 9_000  # a rebooted mono: not trusted


# ---- the disk in heartbeats, as far as the console -------------------------------------------------------
def test_a_disk_under_the_low_water_mark_reaches_the_console_as_a_device_alert(tmp_path):
    from cloud.console.snapshot import ConsoleConfig, ConsoleInputs, ConsoleMemory, build_snapshot
    from protocol import codec
    from protocol.errors import ProtocolError
    from protocol.messages import DeviceHealth, Heartbeat

    now = 1_800_000_000_000
    box = SimpleNamespace(disk=DiskWatch(tmp_path, 200_000_000, usage=lambda path: 50_000_000))
    extras = appliance.heartbeat_extras(box)
    hb = Heartbeat(event_id="01J00000000000000000000000", store_id="S040", seq=0, wall_ms=now, mono_ms=1,
                   outbox_depth=0, last_event_seq=0, last_acked_seq=0, last_cloud_message_seq=0,
                   devices=(DeviceHealth(device="scale", state="ok", detail=""), extras["disk_device"]),
                   rule_book_version=0, disk_free_bytes=extras["disk_free_bytes"],
                   software_version=extras["software_version"])
    got = codec.decode(codec.encode(hb))
    assert got == hb and got.disk_free_bytes == 50_000_000 and got.software_version == appliance.version()
    with pytest.raises(ProtocolError, match="disk_free_bytes"):
        dataclasses.replace(hb, disk_free_bytes=-2)
    row = {"store_id": "S040", "last_heartbeat_ms": now, "online": True, "outbox_depth": 0, "lag_ms": 5,
           "lag_p99_ms": 5, "sequence_gap": 0, "events": 1, "offline_since_ms": None,
           "devices": {d.device: d.state for d in got.devices}}  # as the bridge keeps a heartbeat's devices
    snapshot = build_snapshot(ConsoleInputs(now_ms=now, prefix="p-", actors=[], actor_stats={},
                                            stores={"S040": "Forty"}, registry=[row]), ConsoleMemory(), ConsoleConfig())
    alerts = [a for a in snapshot["alerts"] if a["kind"] == "device"]
    assert [(a["subject"], a["message"]) for a in alerts] == [("S040/disk", "store S040: disk is degraded")]


async def test_the_watchdog_pings_only_while_every_box_is_alive(tmp_path):
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        server.setblocking(False)
        notifier = service.Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "20000"})  # a ping every 10 ms
        actor = SimpleNamespace(mailbox=asyncio.Queue(maxsize=2))
        dead, running = asyncio.get_running_loop().create_future(), asyncio.get_running_loop().create_future()
        dead.set_result(None)
        box = SimpleNamespace(actor=actor, _tasks={"actor": dead})
        task = asyncio.create_task(notifier.watchdog(lambda: service.box_alive(box)))
        try:
            await asyncio.sleep(0.1)
            with pytest.raises(BlockingIOError):  # its actor task ended: no ping at all
                server.recv(64)
            box._tasks["actor"] = running
            actor.mailbox.put_nowait(1)
            actor.mailbox.put_nowait(2)  # jammed full: still no ping
            await asyncio.sleep(0.1)
            with pytest.raises(BlockingIOError):
                server.recv(64)
            actor.mailbox.get_nowait()
            for _ in range(100):
                await asyncio.sleep(0.02)
                try:
                    assert server.recv(64) == b"WATCHDOG=1"
                    break
                except BlockingIOError:
                    continue
            else:
                raise AssertionError("no WATCHDOG=1 once the box was alive")
        finally:
            task.cancel()
            running.cancel()
