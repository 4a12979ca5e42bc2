"""Time is passed in. The core takes a Clock and never reads the system's clocks: a shell hands it the readers.

`ReadingClock(time.time_ns, time.monotonic_ns)` is the real clock, made by the shells (cloud/, edge/,
simulators/); `ManualClock` moves only when told to, for tests and deterministic simulations.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time, epoch milliseconds."""

    def monotonic_ms(self) -> int:
        """A clock that never goes back (for ordering and timeouts), milliseconds."""


class ReadingClock:
    """A clock over readers the shell passes in: `ReadingClock(time.time_ns, time.monotonic_ns)`."""

    def __init__(self, wall_ns: Callable[[], int], monotonic_ns: Callable[[], int]) -> None:
        self._wall_ns, self._monotonic_ns = wall_ns, monotonic_ns

    def now_ms(self) -> int:
        return self._wall_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return self._monotonic_ns() // 1_000_000


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
    from datetime import datetime
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
