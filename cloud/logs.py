"""Logging for the cloud's processes: JSON lines with the request id in every line of a request, and the same
message repeated in a tight loop said once per window with how many times it was repeated.

The formatter, the repeat filter and the settings are the shared `logfmt` package's (the store box logs through
the same ones, edge/logs.py); this module keeps the cloud's entry point and re-exports them under their old names.

Guarantees (see logfmt for the line's fields and the repeat filter's):
- `configure()` is what every cloud entry point calls: JSON or plain text (FRESHMESH_LOG_FORMAT=json|text,
  default json), level (FRESHMESH_LOG_LEVEL, default INFO), repeat window (FRESHMESH_LOG_REPEAT_S, default 60; 0
  turns the filter off). It replaces the root logger's handlers, so calling it twice does not log twice.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from importlib import metadata

from logfmt import (  # noqa: F401 - re-exported: the cloud's modules and tests import them from here
    DEFAULT_REPEAT_WINDOW_S,
    ENV_VARS,
    REQUEST_ID,
    JsonFormatter,
    RepeatFilter,
    TextFormatter,
    install,
    repeat_window_s,
    settings,
)


def version() -> str:
    """The installed freshmesh distribution's version (the source tree's pyproject when run uninstalled)."""
    try:
        return metadata.version("freshmesh")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a tree that was never installed
        return "0+unknown"


def configure(env: Mapping[str, str] | None = None, stream=None, default_level: str = "INFO") -> logging.Handler:
    """The root logger: one handler on `stream` (stderr), JSON or text, with the repeat filter. Returns it.
    `default_level` when FRESHMESH_LOG_LEVEL is unset (API workers: WARNING; their access log is INFO on its own
    logger, `freshmesh.access`, which is always let through)."""
    chosen = settings(os.environ if env is None else env, default_level)
    return install(logging.StreamHandler(stream or sys.stderr), chosen)
