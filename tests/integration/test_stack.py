"""The embedded stack against the real binaries: JetStream round trip, SQL, per-store permissions, clean stop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import asyncpg
import nats
import psutil
import pytest

from cloud.embedded import EmbeddedStack
from cloud.embedded.check import _refused, check_nats, check_postgres, connect_store, wait_for
from protocol import subjects

pytestmark = pytest.mark.integration


async def test_check_round_trips_both_servers(stack):
    assert "select 40 + 2 = 42" in await check_postgres(stack.database_url)
    report = await check_nats(stack.nats_url, stack.nats_address, "S003", stack.store_credentials("S003")[1], "S004")
    assert any("deduplicated" in line for line in report)
    assert any("refused on fm.store.S004" in line for line in report)


async def test_store_cannot_publish_as_another_store_nor_read_its_inbox(stack):
    errors: list[str] = []
    store = await connect_store(stack.nats_address, "S005", stack.store_credentials("S005")[1], errors)
    cloud = await nats.connect(stack.nats_url)
    try:
        seen = []

        async def collect(msg):
            seen.append(msg)

        await cloud.subscribe(subjects.store_root("S006") + ".>", cb=collect)
        await store.publish(subjects.store_event("S006", "sale.committed"), b"forged")
        await store.publish(subjects.store_heartbeat("S006"), b"forged")
        await store.flush()
        assert await wait_for(lambda: _refused(errors, subjects.store_heartbeat("S006")))
        await cloud.flush()
        assert seen == []  # the forged messages never reached anyone
        await store.subscribe("_INBOX_S006.>", cb=collect)
        await store.flush()
        assert await wait_for(lambda: any("permissions violation for subscription" in e.lower()
                                          and "_inbox_s006" in e.lower() for e in errors))
    finally:
        await store.close()
        await cloud.close()


async def test_wrong_password_is_refused(stack):
    with pytest.raises(Exception):
        await nats.connect(stack.nats_address, user="store_S001", password="wrong", allow_reconnect=False,
                           max_reconnect_attempts=0, connect_timeout=2)


async def test_added_store_gets_a_user_without_a_restart(stack):
    stack.add_stores(["S777"])
    errors: list[str] = []
    store = await connect_store(stack.nats_address, "S777", stack.store_credentials("S777")[1], errors)
    try:
        await store.publish(subjects.store_heartbeat("S777"), b"hb")
        await store.flush()
        assert errors == []
    finally:
        await store.close()


async def test_postgres_needs_the_password(stack):
    wrong = stack.database_url.replace(stack.postgres.password, "nope")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong, timeout=5)


def _children_alive(pids: list[int]) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_stack_stop_leaves_no_processes_and_no_files(tmp_path):
    stack = EmbeddedStack(store_ids=["S001"]).start()
    pids = [stack.nats.proc.pid, stack.postgres.proc.pid]
    workdir = stack.workdir
    stack.stop()
    assert _children_alive(pids) == []
    assert not workdir.exists()


def test_cli_check_exits_zero_and_says_what_it_verified():
    result = subprocess.run([sys.executable, "-m", "simulators.cli", "stack", "--check"], capture_output=True,
                            text=True, timeout=120, env={k: v for k, v in os.environ.items()
                                                         if k not in ("NATS_URL", "DATABASE_URL")})
    assert result.returncode == 0, result.stderr
    assert "NATS_URL=nats://" in result.stdout and "DATABASE_URL=postgresql://" in result.stdout
    # no password or secret is printed unless asked for
    assert ":***@" in result.stdout and "FRESHMESH_STORE_SECRET=" not in result.stdout
    db_line = next(line for line in result.stdout.splitlines() if line.startswith("DATABASE_URL="))
    assert db_line.startswith("DATABASE_URL=postgresql://freshmesh:***@127.0.0.1:")
    assert "refused on fm.store.S002" in result.stdout
    assert "stack check passed" in result.stdout


def test_cli_stack_stops_cleanly_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "simulators.cli", "stack"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "stack running" in line:
                break
        assert any(text.startswith("NATS_URL=") for text in lines)
        assert not any("FRESHMESH_STORE_SECRET=" in text for text in lines)
        servers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(servers) >= 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        time.sleep(0.2)
        assert _children_alive(servers) == []
    finally:
        if proc.poll() is None:
            proc.kill()


def test_servers_die_with_a_killed_stack():
    proc = subprocess.Popen([sys.executable, "-m", "simulators.cli", "stack"], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if "stack running" in proc.stdout.readline():
                break
        servers = [c.pid for c in psutil.Process(proc.pid).children(recursive=False)]
        proc.kill()  # kill -9: no cleanup code runs; the parent-death signal stops the servers
        proc.wait(10)
        deadline = time.monotonic() + 30
        while _children_alive(servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _children_alive(servers) == []
    finally:
        if proc.poll() is None:
            proc.kill()
