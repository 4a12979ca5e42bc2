"""cloud/logs.py and the request-id middleware: JSON lines, request ids in every line, quiet repeats."""
from __future__ import annotations

import asyncio
import io
import json
import logging

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from cloud.http.middleware import RequestContext
from cloud.logs import JsonFormatter, RepeatFilter, configure, version


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _logger(name: str, window_s: float, clock) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter(window_s, clock))
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, out


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_sweep_warning_said_every_second_is_said_once_a_minute_with_its_count():
    clock = Clock()
    log, out = _logger("t.sweep", 60, clock)
    for second in range(150):  # the expiry sweeper's warning while PostgreSQL is down (cloud/wiring.py, every 1 s)
        clock.now = 1000.0 + second
        log.warning("expiry sweep failed: %s", f"connection refused (try {second})")
    said = lines(out)
    assert len(said) == 3, said
    assert said[0]["msg"] == "expiry sweep failed: connection refused (try 0)" and "repeated" not in said[0]
    assert said[1]["repeated"] == 59 and "repeated 59 times" in said[1]["msg"] and "try 60" in said[1]["msg"]
    assert said[2]["repeated"] == 59


def test_a_different_message_is_not_held_back_by_a_noisy_one():
    clock = Clock()
    log, out = _logger("t.two", 60, clock)
    log.warning("noisy %s", 1)
    log.warning("noisy %s", 2)
    log.error("order %s not rejected", "O1")
    assert [line["msg"] for line in lines(out)] == ["noisy 1", "order O1 not rejected"]


def test_json_lines_carry_level_logger_extra_fields_and_the_traceback():
    clock = Clock()
    log, out = _logger("t.json", 0, clock)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed for %s", "S044", extra={"store": "S044"})
    [line] = lines(out)
    assert line["level"] == "ERROR" and line["logger"] == "t.json" and line["msg"] == "failed for S044"
    assert line["store"] == "S044" and "ValueError: boom" in line["exc"] and line["ts"].endswith("Z")


def test_configure_refuses_a_format_it_does_not_know_and_replaces_its_handler():
    import pytest
    with pytest.raises(ValueError, match="FRESHMESH_LOG_FORMAT"):
        configure({"FRESHMESH_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="FRESHMESH_LOG_REPEAT_S"):
        configure({"FRESHMESH_LOG_REPEAT_S": "soon"})
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        first = configure({}, io.StringIO())
        second = configure({}, io.StringIO())
        assert root.handlers == [second] and first not in root.handlers
    finally:
        root.handlers[:], _ = before[0], root.setLevel(before[1])


def _app(access: bool):
    async def hello(request):
        logging.getLogger("t.app").warning("serving %s", request.url.path)
        await asyncio.sleep(0.01)  # overlap with the other request: each keeps its own id
        logging.getLogger("t.app").warning("done %s", request.url.path)
        return PlainTextResponse("hi")
    return RequestContext(Starlette(routes=[Route("/{name}", hello)]), access=access)


async def test_every_log_line_of_a_request_carries_its_id_which_the_response_returns():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    logging.getLogger("freshmesh.access").setLevel(logging.INFO)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(access=True)), base_url="http://t") as c:
            given, made, forged = await asyncio.gather(
                c.get("/a", headers={"X-Request-Id": "till-7.abc"}), c.get("/b"),
                c.get("/c", headers={"X-Request-Id": "x\" injected"}))
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    assert given.headers["x-request-id"] == "till-7.abc"
    assert len(made.headers["x-request-id"]) == 32 and forged.headers["x-request-id"] != "x\" injected"
    said = lines(out)
    by_path: dict[str, set] = {}
    for line in said:
        path = line.get("path") or line["msg"].split()[-1]
        by_path.setdefault(path, set()).add(line.get("request_id"))
    assert by_path["/a"] == {"till-7.abc"}
    assert by_path["/b"] == {made.headers["x-request-id"]} and by_path["/c"] == {forged.headers["x-request-id"]}
    access = [line for line in said if line["logger"] == "freshmesh.access"]
    assert {(a["method"], a["path"], a["status"]) for a in access} == {("GET", "/a", 200), ("GET", "/b", 200),
                                                                        ("GET", "/c", 200)}


async def test_no_access_line_without_the_option():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    access = logging.getLogger("freshmesh.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(access=False)), base_url="http://t") as c:
            assert (await c.get("/a")).status_code == 200
    finally:
        access.removeHandler(handler)
    assert out.getvalue() == ""


def test_version_is_the_installed_distributions():
    from importlib import metadata
    assert version() == metadata.version("freshmesh") and version()[0].isdigit()


def test_the_access_log_is_never_rate_limited():
    clock = Clock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter(60, clock))
    log = logging.getLogger("freshmesh.access")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        for i in range(3):
            log.info("%s %s %s", "GET", f"/p{i}", 200)
    finally:
        log.removeHandler(handler)
    assert [line["msg"] for line in lines(out)] == ["GET /p0 200", "GET /p1 200", "GET /p2 200"]
