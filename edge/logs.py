"""The store box's log: JSON lines (or text for a terminal) through the same formatter and repeat filter as the
cloud (the shared `logfmt` package), each line naming its store, and the lane and request id when it was written
while a lane API request was served; rotated files when the box has a `log_file`.

Guarantees:
- `setup()` makes one root handler: a `RotatingFileHandler` (at most `max_bytes` a file, `backups` old files)
  when there is a log file, else stderr (the journal under systemd). The form is `--log-format` if given, else
  FRESHMESH_LOG_FORMAT, else json; the level and the repeat window come from FRESHMESH_LOG_LEVEL and
  FRESHMESH_LOG_REPEAT_S (a bad value is a ValueError naming the variable). `store_id` is in every line: the
  process's one store, or, in a process with several boxes, the box whose task wrote it (`bind_store`);
- `LaneRequests` wraps the lane API: every request gets an id (the client's sane `X-Request-Id`, else a new
  one) sent back in `X-Request-Id`; every line written while it is served carries `request_id`, `store_id` and
  the `lane` of a `/lanes/{lane}/…` or `/till/{lane}` path; with the access log on (`--access-log`), one line per
  request on `freshmesh.access` (method, path, status, duration, bytes), never rate-limited. The query string is
  left out of it (a till's session token can ride in it).
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

import logfmt

LANE_PATH = re.compile(r"^/(?:lanes|till)/([A-Za-z0-9_-]{1,16})(?:/|$)")  # protocol.messages.LANE's names
access_log = logging.getLogger(logfmt.ACCESS_LOGGER)
ENV_VARS = logfmt.ENV_VARS


def setup(log_file: str | None = None, max_bytes: int = 10 * 1024 * 1024, backups: int = 5, form: str | None = None,
          store_id: str | None = None, env: Mapping[str, str] | None = None) -> logging.Handler:
    """The root logger's one handler (see the module's guarantees). Returns it (tests and shutdown close it)."""
    chosen = logfmt.settings(os.environ if env is None else env, form=form)
    handler: logging.Handler
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=backups,
                                                       encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    return logfmt.install(handler, chosen, {"store_id": store_id} if store_id else None)


def bind_store(store_id: str) -> None:
    """Every line the current task (a box's) and the tasks it starts write names `store_id`."""
    logfmt.bind_task(store_id=store_id)


def lane_of(path: str) -> str | None:
    found = LANE_PATH.match(path)
    return found.group(1) if found else None


class LaneRequests:
    """ASGI middleware around the lane API: request ids, the store and lane in every line, the access log."""

    def __init__(self, app: Any, store_id: str, access: bool = False) -> None:
        self.app, self.store_id, self.access = app, store_id, access

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = logfmt.request_id_from(scope.get("headers") or [])
        started, status, sent = time.perf_counter(), 500, 0

        async def send_with_id(message: dict) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode("latin-1"))]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        token = logfmt.REQUEST_ID.set(request_id)
        try:
            with logfmt.bind(store_id=self.store_id, lane=lane_of(scope["path"])):
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    if self.access:
                        took_ms = round((time.perf_counter() - started) * 1000, 1)
                        access_log.info("%s %s %s %.1fms %dB", scope["method"], scope["path"], status, took_ms, sent,
                                        extra={"method": scope["method"], "path": scope["path"], "status": status,
                                               "duration_ms": took_ms, "bytes": sent})
        finally:
            logfmt.REQUEST_ID.reset(token)
