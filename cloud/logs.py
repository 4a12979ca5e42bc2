"""Logging for FreshMesh processes: one JSON object per line, the request id in every line of a request, and the
same message repeated in a tight loop said once per window with how many times it was repeated.

Guarantees:
- `JsonFormatter` writes one line of JSON per record: `ts` (RFC 3339 UTC, ms), `level`, `logger`, `msg`, the
  `request_id` of the HTTP request being served (a context variable, so concurrent requests never mix theirs up),
  `pid`, `exc` when there is a traceback, and any `extra={...}` fields given to the call;
- `RepeatFilter` lets the same (logger, level, message template) through at most once per `window_s`; the first
  record after a quiet window carries `repeated` = how many were held back, and its message says so. Only the
  template is compared (`"fetch failed: %s"`), so a message whose argument changes each second is still one
  repeat; the window is per template, so one noisy loop never silences a different warning;
- `configure()` is what every entry point calls: JSON or plain text (FRESHMESH_LOG_FORMAT=json|text, default
  json), level (FRESHMESH_LOG_LEVEL, default INFO), repeat window (FRESHMESH_LOG_REPEAT_S, default 60; 0 turns
  the filter off). It replaces the root logger's handlers, so calling it twice does not log twice.
"""
from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("freshmesh_request_id", default=None)
DEFAULT_REPEAT_WINDOW_S = 60.0
ENV_VARS = {  # what configure() reads: named in every command's --help
    "FRESHMESH_LOG_FORMAT": "json (default) or text",
    "FRESHMESH_LOG_LEVEL": "DEBUG, INFO (default), WARNING, ERROR",
    "FRESHMESH_LOG_REPEAT_S": "the same log message at most once per this many seconds (default 60; 0: off)",
}
# attributes every LogRecord has: anything else on a record came from `extra=` and is written as a field
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "repeated"}


def version() -> str:
    """The installed freshmesh distribution's version (the source tree's pyproject when run uninstalled)."""
    try:
        return metadata.version("freshmesh")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a tree that was never installed
        return "0+unknown"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "msg": record.getMessage(), "pid": record.process,
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            out["request_id"] = request_id
        if getattr(record, "repeated", 0):
            out["repeated"] = record.repeated  # type: ignore[attr-defined]
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The plain-text form (for a terminal), with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        return f"{line} [request {request_id}]" if request_id else line


class RepeatFilter(logging.Filter):
    """The same message template at most once per `window_s` (per logger and level); the next one let through
    says how many were held back. `clock` is monotonic seconds (passed in so tests need not sleep)."""

    MAX_KEYS = 10_000  # bounded: templates are few, but a caller formatting its own strings makes each one new

    def __init__(self, window_s: float = DEFAULT_REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s, self.clock = window_s, clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # key -> (last let through, held back since)
        self._lock = threading.Lock()  # handlers are called from any thread (Ray's, asyncio's executor)

    EXEMPT = ("freshmesh.access",)  # one line per request is the point of an access log: never held back

    def filter(self, record: logging.LogRecord) -> bool:
        if self.window_s <= 0 or record.name in self.EXEMPT:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last[0] < self.window_s:
                self._seen[key] = (last[0], last[1] + 1)
                return False
            if len(self._seen) >= self.MAX_KEYS:
                self._seen.clear()
            self._seen[key] = (now, 0)
        held = last[1] if last is not None else 0
        if held:
            record.repeated = held
            record.msg = f"{record.msg} (repeated {held} times in the last {self.window_s:g} s)"
        return True


def repeat_window_s(env: Mapping[str, str]) -> float:
    raw = env.get("FRESHMESH_LOG_REPEAT_S")
    if raw is None or raw == "":
        return DEFAULT_REPEAT_WINDOW_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FRESHMESH_LOG_REPEAT_S={raw!r}: expected a number of seconds") from None
    if value < 0:
        raise ValueError(f"FRESHMESH_LOG_REPEAT_S={raw!r}: must not be negative")
    return value


def configure(env: Mapping[str, str] | None = None, stream=None, default_level: str = "INFO") -> logging.Handler:
    """The root logger: one handler on `stream` (stderr), JSON or text, with the repeat filter. Returns it.
    `default_level` when FRESHMESH_LOG_LEVEL is unset (API workers: WARNING; their access log is INFO on its own
    logger, `freshmesh.access`, which is always let through)."""
    env = os.environ if env is None else env
    form = (env.get("FRESHMESH_LOG_FORMAT") or "json").lower()
    if form not in ("json", "text"):
        raise ValueError(f"FRESHMESH_LOG_FORMAT={form!r}: expected json or text")
    level = (env.get("FRESHMESH_LOG_LEVEL") or default_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"FRESHMESH_LOG_LEVEL={level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    handler.addFilter(RepeatFilter(repeat_window_s(env)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("freshmesh.access").setLevel(logging.INFO)  # on only when asked (--access-log)
    return handler
