"""The store box's log (edge/logs.py over the shared logfmt package): JSON lines naming the store, the lane and
request id of a lane request, the repeat filter, text for a terminal, the boxes of one process kept apart, and
`freshmesh edge`'s options. No servers: the lane API middleware is driven in-process."""
from __future__ import annotations

import argparse
import ast
import asyncio
import io
import json
import logging
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from edge import logs, main

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "edge.log"
    yield path
    for handler in list(logging.getLogger().handlers):
        logging.getLogger().removeHandler(handler)
        handler.close()


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_lines_are_json_with_the_store_and_a_repeated_warning_is_said_once_a_window(log_file):
    handler = logs.setup(str(log_file), store_id="S054", env={"FRESHMESH_LOG_REPEAT_S": "30"})
    clock = Clock()
    [repeat] = handler.filters
    repeat.clock = clock  # type: ignore[attr-defined]
    log = logging.getLogger("freshmesh.edge.sync")
    for attempt in range(10):  # the NATS error every second of an offline box
        log.warning("store %s: NATS error: %s", "S054", f"connect failed ({attempt})")
        clock.now += 1
    clock.now += 30
    log.warning("store %s: NATS error: %s", "S054", "connect failed (again)")
    log.info("another message is not held back by the first one's window")
    lines = read(log_file)
    assert [line["msg"] for line in lines] == [
        "store S054: NATS error: connect failed (0)",
        "store S054: NATS error: connect failed (again) (repeated 9 times in the last 30 s)",
        "another message is not held back by the first one's window"]
    assert all({"ts", "level", "logger", "msg"} <= set(line) and line["store_id"] == "S054" for line in lines)
    assert lines[1]["repeated"] == 9 and "repeated" not in lines[0] and lines[0]["level"] == "WARNING"


def test_the_text_form_and_the_environment_are_checked(log_file):
    out = io.StringIO()
    handler = logs.setup(None, store_id="S054", form="text", env={"FRESHMESH_LOG_FORMAT": "json"})
    handler.setStream(out)  # type: ignore[attr-defined]
    logging.getLogger("freshmesh.edge").warning("scale not ready")
    assert out.getvalue().rstrip().endswith("freshmesh.edge WARNING scale not ready [store S054]")
    for env, name in (({"FRESHMESH_LOG_FORMAT": "xml"}, "FRESHMESH_LOG_FORMAT"),
                      ({"FRESHMESH_LOG_LEVEL": "LOUD"}, "FRESHMESH_LOG_LEVEL"),
                      ({"FRESHMESH_LOG_REPEAT_S": "-1"}, "FRESHMESH_LOG_REPEAT_S")):
        with pytest.raises(ValueError, match=name):
            logs.setup(str(log_file), env=env)


def lane_app(access: bool) -> logs.LaneRequests:
    async def cart(request):
        logging.getLogger("freshmesh.edge.lanes").warning("cart of lane %s read", request.path_params["lane"])
        return JSONResponse({"lines": []})

    async def health(request):
        return JSONResponse({"ok": True})
    app = Starlette(routes=[Route("/lanes/{lane}/cart", cart), Route("/health", health)])
    return logs.LaneRequests(app, "S054", access=access)


async def _get(app, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://box") as http:
        return await http.get(path, headers=headers)


def test_a_lane_requests_lines_carry_its_lane_and_request_id_and_the_access_log_one_line_each(log_file):
    logs.setup(str(log_file), env={"FRESHMESH_LOG_REPEAT_S": "60"})
    app = lane_app(access=True)
    answer = asyncio.run(_get(app, "/lanes/2/cart?token=secret", **{"X-Request-Id": "till-2-7"}))
    assert answer.headers["x-request-id"] == "till-2-7"
    for _ in range(3):  # one access line per request: never held back like a repeated warning
        asyncio.run(_get(app, "/health"))
    lines = read(log_file)
    [inside] = [line for line in lines if line["logger"] == "freshmesh.edge.lanes"]
    assert (inside["store_id"], inside["lane"], inside["request_id"]) == ("S054", "2", "till-2-7")
    access = [line for line in lines if line["logger"] == "freshmesh.access"]
    assert len(access) == 4 and access[0]["path"] == "/lanes/2/cart" and "secret" not in json.dumps(access)
    assert (access[0]["lane"], access[0]["status"], access[0]["request_id"]) == ("2", 200, "till-2-7")
    assert all("lane" not in line and len(line["request_id"]) == 32 for line in access[1:])


def test_without_the_access_log_only_what_the_handlers_say(log_file):
    logs.setup(str(log_file))
    asyncio.run(_get(lane_app(access=False), "/lanes/1/cart"))
    assert [line["logger"] for line in read(log_file) if line["logger"].startswith("freshmesh")] == [
        "freshmesh.edge.lanes"]


def test_the_boxes_of_one_process_each_name_their_own_store_and_keep_their_own_repeat_window(log_file):
    logs.setup(str(log_file))  # a fleet process: no one store for the whole process; the repeat filter on (60 s)

    async def box(store_id: str) -> None:
        logs.bind_store(store_id)

        async def sync_task() -> None:  # a task the box starts inherits its store
            logging.getLogger("freshmesh.edge.sync").warning("box %s syncing", store_id)
        await asyncio.create_task(sync_task())

    async def fleet() -> None:
        await asyncio.gather(box("S051"), box("S052"))
        logging.getLogger("freshmesh.edge").warning("the process itself")
    asyncio.run(fleet())
    lines = read(log_file)
    # the same warning template from two boxes: each said (one box's noise never hides another's)
    assert {line["msg"].split()[1]: line["store_id"] for line in lines[:2]} == {"S051": "S051", "S052": "S052"}
    assert "store_id" not in lines[2]


def test_freshmesh_edge_has_log_format_and_access_log_options():
    parser = argparse.ArgumentParser()
    main.add_arguments(parser)
    args = parser.parse_args(["--store", "S054", "--log-format", "text", "--access-log"])
    assert (args.log_format, args.access_log) == ("text", True)
    assert parser.parse_args([]).log_format is None  # then $FRESHMESH_LOG_FORMAT, else json
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-format", "xml"])


def test_a_bad_log_setting_stops_the_box_before_it_starts(monkeypatch, tmp_path):
    monkeypatch.setenv("FRESHMESH_LOG_FORMAT", "xml")
    parser = argparse.ArgumentParser()
    main.add_arguments(parser)
    args = parser.parse_args(["--store", "S054"])
    monkeypatch.setenv("FRESHMESH_EDGE_DATA", str(tmp_path))
    with pytest.raises(SystemExit, match="FRESHMESH_LOG_FORMAT"):
        main.run(args)


def test_logfmt_imports_nothing_of_ours():
    """The cloud and the edge both import it: it must import neither (nor any other room)."""
    ours = {"protocol", "actors", "cloud", "edge", "simulators", "loadtest", "tests"}
    for path in (ROOT / "logfmt").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not {n.split(".")[0] for n in names} & ours, (path, names)
            assert all(n.split(".")[0] in sys.stdlib_module_names or n == "__future__" for n in names if n), names
