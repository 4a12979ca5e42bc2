"""The box's wall clock, watched: jumps noticed and said, and durations measured on the monotonic clock (pure).

A store box's wall clock can jump: NTP stepping it after days offline, a dead RTC battery booting it in 1970, an
operator setting it by hand. What the box does with time, and which clock it trusts for it:
- Order: events are ordered by their per-store seq (the outbox, the relay, the cloud's gate), never by wall time,
  so a jump cannot reorder or hold back the outbox; an event's wall time is only what the till's clock said.
- Durations and timeouts (a cashier's lockout, how long the oldest unacked event has waited) are measured on the
  monotonic clock, so a jump can neither end them early nor make them last "forever".
- Business time (receipts, promotions by time of day, the chain day of use-by checks) follows the wall clock: after
  a jump it follows the new time, and `ClockWatch` says so in /health until the clock has been steady for a while.

`ClockWatch.observe(wall_ms, mono_ms)` is fed by the box every second or so; a step between two readings whose wall
difference is off the monotonic difference by more than `JUMP_TOLERANCE_MS` is a jump.
"""
from __future__ import annotations

from dataclasses import dataclass

JUMP_TOLERANCE_MS = 2_000  # NTP's slewing never moves this far between two readings a second apart
JUMP_SHOWN_MS = 15 * 60 * 1000  # a jump is shown (health warnings) for this long on the monotonic clock


@dataclass(frozen=True, slots=True)
class Jump:
    by_ms: int  # positive: forward, negative: back
    at_wall_ms: int  # the wall time after the jump
    at_mono_ms: int


class ClockWatch:
    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None
        self.jumps = 0
        self.last_jump: Jump | None = None

    def observe(self, wall_ms: int, mono_ms: int) -> Jump | None:
        """The jump between the previous reading and this one, if any."""
        last, self._last = self._last, (wall_ms, mono_ms)
        if last is None:
            return None
        skew = (wall_ms - last[0]) - (mono_ms - last[1])
        if abs(skew) <= JUMP_TOLERANCE_MS:
            return None
        self.jumps += 1
        self.last_jump = Jump(skew, wall_ms, mono_ms)
        return self.last_jump

    def warning(self, mono_ms: int) -> str | None:
        """A plain sentence about a recent jump (None once the clock has been steady for JUMP_SHOWN_MS)."""
        jump = self.last_jump
        if jump is None or mono_ms - jump.at_mono_ms > JUMP_SHOWN_MS:
            return None
        way = "forward" if jump.by_ms > 0 else "back"
        return (f"the wall clock jumped {way} by {abs(jump.by_ms) / 1000:.0f} s: receipts and promotions follow the "
                f"new time; the outbox order and timeouts do not depend on it")


def unacked_age_ms(now_wall_ms: int, now_mono_ms: int, event_wall_ms: int, event_mono_ms: int,
                   same_run: bool) -> int:
    """How long an event has waited for the cloud's ack. Made in this run of the box (`same_run`: its monotonic
    reading shares this run's origin), on the monotonic clock, which no wall jump moves; from an earlier run, on the
    wall clock (the only one the two runs share), never negative."""
    if same_run and event_mono_ms <= now_mono_ms:
        return now_mono_ms - event_mono_ms
    return max(now_wall_ms - event_wall_ms, 0)
