"""`freshmesh edge` as people on call read its log: a real box process (`python -m edge`, store S054, this module's
own) with a rotated log file, no cloud to reach (its NATS URL refuses connections, so the sync's error repeats every
second) and the lane API's access log on.

- every line is JSON with ts, level, logger, msg and the store's id; a lane request's lines carry its lane and
  request id (the client's X-Request-Id, sent back);
- the repeated NATS error is said once per window (FRESHMESH_LOG_REPEAT_S), the next saying how many were held;
- the access log is one line per request, never held back, and the file rotates within its bounds.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cloud.embedded.process import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
STORE = "S054"
REPEAT_S = 2
START_S = 60


def json_lines(*paths: Path) -> list[dict]:
    lines = []
    for path in paths:
        if path.exists():
            lines += [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines() if raw.strip()]
    return lines


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    work = tmp_path_factory.mktemp("edge-logs")
    port, closed = free_port(), free_port()  # nothing listens on `closed`: the box's NATS is down from the start
    log_file = work / "logs" / "edge.log"
    config = {"store_id": STORE, "data_dir": str(work / "data"), "http_port": port,
              "nats_url": f"nats://127.0.0.1:{closed}", "nats_password": "not-used", "log_file": str(log_file),
              "log_max_bytes": 4_000, "log_backups": 2}
    (work / "edge.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHMESH_LOG_")}
    env["FRESHMESH_LOG_REPEAT_S"] = str(REPEAT_S)
    with open(work / "stdout.txt", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edge", "--config", str(work / "edge.json"), "--access-log"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(f"the box did not start: {(work / 'stdout.txt').read_text()[-3000:]}")
        yield url, log_file
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_every_line_is_json_naming_the_store_and_a_lane_requests_lines_its_lane_and_request_id(box):
    url, log_file = box
    answer = httpx.get(url + "/lanes/1/cart", headers={"X-Request-Id": "till-1-req-42"}, timeout=10)
    assert answer.headers["x-request-id"] == "till-1-req-42"
    made = httpx.get(url + "/health", headers={"X-Request-Id": "bad id {forged} line"}, timeout=10)
    assert made.headers["x-request-id"] != "bad id {forged} line" and len(made.headers["x-request-id"]) == 32

    def access() -> dict[str, dict]:
        return {line.get("request_id"): line for line in json_lines(log_file) if line["logger"] == "freshmesh.access"}
    deadline = time.monotonic() + 10
    while "till-1-req-42" not in access() and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = json_lines(log_file)  # raises on a line that is not JSON
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) and line["store_id"] == STORE for line in lines)
    mine = access()["till-1-req-42"]
    assert (mine["lane"], mine["path"], mine["method"], mine["status"]) == ("1", "/lanes/1/cart", "GET",
                                                                             answer.status_code)
    health = access()[made.headers["x-request-id"]]
    assert "lane" not in health and health["path"] == "/health"
    assert any("NO CATALOGUE" in line["msg"] and line["level"] == "WARNING" for line in lines)


def test_a_warning_repeated_every_second_is_said_once_a_window_with_how_many_were_held(box):
    _, log_file = box

    def nats_errors() -> list[dict]:
        return [line for line in json_lines(log_file, log_file.with_name("edge.log.1"))
                if line["logger"] == "freshmesh.edge.sync" and "NATS error" in line["msg"]]
    deadline = time.monotonic() + 30
    while not any(line.get("repeated") for line in nats_errors()) and time.monotonic() < deadline:
        time.sleep(0.5)
    errors = nats_errors()
    assert errors and "repeated" not in errors[0], errors[:2]  # the first is said at once
    held = [line for line in errors if line.get("repeated")]
    assert held, errors
    assert all(f"(repeated {line['repeated']} times in the last {REPEAT_S} s)" in line["msg"] for line in held)


def test_the_access_log_is_never_held_back_and_the_file_rotates_within_its_bounds(box):
    url, log_file = box
    ids = [f"rotate-{i}" for i in range(40)]
    for request_id in ids:
        assert httpx.get(url + "/health", headers={"X-Request-Id": request_id}, timeout=10).status_code == 200
    files = [log_file, log_file.with_name("edge.log.1"), log_file.with_name("edge.log.2")]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = {line.get("request_id") for line in json_lines(*files)}
        if set(ids[-10:]) <= seen:
            break
        time.sleep(0.2)
    assert sorted(p.name for p in log_file.parent.iterdir()) == ["edge.log", "edge.log.1", "edge.log.2"]
    assert all(p.stat().st_size <= 4_000 + 1_000 for p in files)  # a line past the limit starts the next file
    seen = [line.get("request_id") for line in json_lines(*files)]
    assert all(seen.count(i) == 1 for i in ids[-10:])  # every request its line, once (the oldest rotated away)
