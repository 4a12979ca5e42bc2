"""How every FreshMesh process writes its log: one JSON object per line (or plain text for a terminal), the
request, store and lane a line belongs to in the line itself, and the same message repeated in a tight loop said
once per window with how many times it was repeated.

Shared by the cloud (`cloud/logs.py`) and the store box (`edge/logs.py`); it imports nothing of ours, so the
edge uses it without importing the cloud, and the cloud without importing the edge.

Guarantees:
- `JsonFormatter` writes one line of JSON per record: `ts` (RFC 3339 UTC, ms), `level`, `logger`, `msg`, `pid`,
  the fields bound to the current context (`bind`: e.g. `request_id`, `store_id`, `lane`, held in context
  variables so concurrent requests and the boxes of one process never mix theirs up), the formatter's own
  `static` fields where the context has none (a one-box process's `store_id`), `exc` when there is a traceback,
  and any `extra={...}` fields given to the call;
- `RepeatFilter` lets the same (logger, level, message template) through at most once per `window_s`; the first
  record after a quiet window carries `repeated` = how many were held back, and its message says so. Only the
  template is compared (`"fetch failed: %s"`), so a message whose argument changes each second is still one
  repeat; the window is per template and per bound store and lane, so one noisy loop never silences a different
  warning, nor one box's the same warning of another box in the same process; an access log
  (`freshmesh.access`) is never held back: one line per request is its point;
- `settings(env)` reads FRESHMESH_LOG_FORMAT (json, the default, or text), FRESHMESH_LOG_LEVEL (default as the
  caller says) and FRESHMESH_LOG_REPEAT_S (default 60; 0 turns the filter off), refusing a bad value with a
  ValueError that names the variable; `install(handler, ...)` makes `handler` the root logger's only one, so
  configuring twice never logs twice.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("freshmesh_request_id", default=None)
# other fields a line belongs to (store_id, lane), bound for a task or a request and inherited by its tasks
FIELDS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("freshmesh_log_fields",
                                                                         default=MappingProxyType({}))
DEFAULT_REPEAT_WINDOW_S = 60.0
ACCESS_LOGGER = "freshmesh.access"
FORMATS = ("json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ENV_VARS = {  # what settings() reads: named in every command's --help
    "FRESHMESH_LOG_FORMAT": "json (default) or text",
    "FRESHMESH_LOG_LEVEL": "DEBUG, INFO (default), WARNING, ERROR",
    "FRESHMESH_LOG_REPEAT_S": "the same log message at most once per this many seconds (default 60; 0: off)",
}
SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")  # a client's request id we repeat: nothing that could forge a line
# attributes every LogRecord has: anything else on a record came from `extra=` and is written as a field
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "repeated"}


@contextlib.contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Every line logged inside (and in tasks started inside) carries `fields` (None: leave that one out)."""
    token = FIELDS.set({**FIELDS.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        FIELDS.reset(token)


def bind_task(**fields: str) -> None:
    """`bind` for the rest of the current task (a box's task: its store_id for everything it and its tasks log)."""
    FIELDS.set({**FIELDS.get(), **fields})


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-Id if it is a sane token (1-128 letters, digits, `.`, `_`, `-`, `:`), else a new id
    (32 hex digits): anything else is replaced, never echoed."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if SANE_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def _context(record: logging.LogRecord, static: Mapping[str, str]) -> dict[str, str]:
    out = {**static, **FIELDS.get()}
    request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
    if request_id:
        out["request_id"] = request_id
    return out


class JsonFormatter(logging.Formatter):
    def __init__(self, static: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "msg": record.getMessage(), "pid": record.process,
        }
        out.update(_context(record, self.static))
        if getattr(record, "repeated", 0):
            out["repeated"] = record.repeated  # type: ignore[attr-defined]
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The plain-text form (for a terminal), with the context's fields in brackets at the end when there are any."""

    def __init__(self, static: Mapping[str, str] | None = None) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _context(record, self.static)
        if not fields:
            return line
        named = " ".join(f"{k.removesuffix('_id')} {v}" for k, v in fields.items())
        return f"{line} [{named}]"


class RepeatFilter(logging.Filter):
    """The same message template at most once per `window_s` (per logger and level); the next one let through
    says how many were held back. `clock` is monotonic seconds (passed in so tests need not sleep)."""

    MAX_KEYS = 10_000  # bounded: templates are few, but a caller formatting its own strings makes each one new
    EXEMPT = (ACCESS_LOGGER,)  # one line per request is the point of an access log: never held back

    def __init__(self, window_s: float = DEFAULT_REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s, self.clock = window_s, clock
        self._seen: dict[tuple, tuple[float, int]] = {}  # key -> (last let through, held back since)
        self._lock = threading.Lock()  # handlers are called from any thread (Ray's, asyncio's executor)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.window_s <= 0 or record.name in self.EXEMPT:
            return True
        bound = FIELDS.get()  # one store's (or lane's) noise never hides another's in a process of several boxes
        key = (record.name, record.levelno, str(record.msg), bound.get("store_id"), bound.get("lane"))
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


@dataclass(frozen=True)
class Settings:
    form: str = "json"
    level: str = "INFO"
    repeat_window_s: float = DEFAULT_REPEAT_WINDOW_S


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


def settings(env: Mapping[str, str], default_level: str = "INFO", form: str | None = None) -> Settings:
    """The log settings from the environment; `form` (a command line's --log-format) wins over it."""
    chosen = (form or env.get("FRESHMESH_LOG_FORMAT") or "json").lower()
    if chosen not in FORMATS:
        raise ValueError(f"FRESHMESH_LOG_FORMAT={chosen!r}: expected json or text")
    level = (env.get("FRESHMESH_LOG_LEVEL") or default_level).upper()
    if level not in LEVELS:
        raise ValueError(f"FRESHMESH_LOG_LEVEL={level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return Settings(chosen, level, repeat_window_s(env))


def install(handler: logging.Handler, chosen: Settings, static: Mapping[str, str] | None = None) -> logging.Handler:
    """`handler` as the root logger's only one, with the chosen form and the repeat filter. Returns it."""
    handler.setFormatter(JsonFormatter(static) if chosen.form == "json" else TextFormatter(static))
    handler.addFilter(RepeatFilter(chosen.repeat_window_s))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(chosen.level)
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)  # on only when asked (--access-log)
    return handler
