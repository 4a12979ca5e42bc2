"""Time is passed in. The core takes a Clock; only shells construct the SystemClock."""
from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time, epoch milliseconds."""

    def monotonic_ms(self) -> int:
        """A clock that never goes back (for ordering and timeouts), milliseconds."""


class SystemClock:
    """The real clocks, for shells (cloud/, edge/, simulators/)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to: for tests and deterministic simulations."""

    def __init__(self, now_ms: int = 1_767_225_600_000, monotonic_ms: int = 0) -> None:
        self._now_ms = now_ms
        self._monotonic_ms = monotonic_ms

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic_ms(self) -> int:
        return self._monotonic_ms

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("a clock does not go back")
        self._now_ms += ms
        self._monotonic_ms += ms


def parse_rfc3339(text: str, field: str = "time") -> int:
    """RFC 3339 (with a timezone) to epoch ms; anything else is a ProtocolError naming the field."""
    from datetime import datetime

    from protocol.errors import ProtocolError
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ProtocolError(f"{field}: not an RFC 3339 time: {text!r}") from None
    if value.tzinfo is None:
        raise ProtocolError(f"{field}: give a timezone (e.g. 2026-01-01T09:00:00+08:00 or ...Z)")
    return int(value.timestamp() * 1000)


def to_rfc3339(ms: int | None) -> str | None:
    from datetime import datetime, timezone
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
