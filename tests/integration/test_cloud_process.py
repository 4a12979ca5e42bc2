"""`freshmesh cloud` as a newcomer runs it: embedded servers, local Ray, two API workers; a clean stop."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from cloud.embedded.process import free_port

pytestmark = pytest.mark.integration


def test_freshmesh_cloud_serves_and_stops_cleanly(tmp_path):
    port, workdir = free_port(), tmp_path / "cloud"
    env = {k: v for k, v in os.environ.items()
           if k not in ("NATS_URL", "DATABASE_URL", "RAY_ADDRESS", "FRESHMESH_ADMIN_PASSWORD")}
    proc = subprocess.Popen([sys.executable, "-m", "simulators.cli", "cloud", "--http-port", str(port), "--workers", "2",
                             "--workdir", str(workdir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, health = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert health is not None and health.json()["status"] == "ok", health and health.text
        products = httpx.get(f"http://127.0.0.1:{port}/products").json()["products"]
        assert any(p["unit"] == "kg" for p in products) and any(p["unit"] == "piece" for p in products)
        # the first admin's generated password is in an owner-only file, and it signs in
        kept = workdir / "admin-password"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        password = kept.read_text().strip()
        signed = httpx.post(f"http://127.0.0.1:{port}/operator/sessions", json={"username": "admin", "password": password})
        assert signed.status_code == 201 and signed.json()["role"] == "hq_admin", signed.text
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
        printed = proc.stdout.read()
        assert str(kept) in printed and password not in printed, printed[-2000:]  # named, never shown
        deadline = time.monotonic() + 30
        alive = children
        while alive and time.monotonic() < deadline:
            alive = [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
            time.sleep(0.5)
        names = [psutil.Process(p).name() for p in alive if psutil.pid_exists(p)]
        assert not [n for n in names if n in ("nats-server", "postgres")] and not [
            p for p in alive if "uvicorn" in " ".join(psutil.Process(p).cmdline())], names
    finally:
        if proc.poll() is None:
            proc.kill()
