"""Shared helpers for load reports: latency summaries and a live progress line."""
from __future__ import annotations

import sys
import time


def latency_ms(samples_s: list[float]) -> dict:
    if not samples_s:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(samples_s)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)  # noqa: E731
    return {"p50": pick(0.50), "p99": pick(0.99), "max": round(ordered[-1] * 1000, 3)}


class Progress:
    """A single line on stderr, rewritten at most once a second."""

    def __init__(self, label: str) -> None:
        self.label, self.started, self.next = label, time.monotonic(), 0.0

    def update(self, text: str) -> None:
        now = time.monotonic()
        if now >= self.next:
            print(f"\r{self.label}: {text} ({now - self.started:.0f}s)   ", end="", file=sys.stderr, flush=True)
            self.next = now + 1

    def done(self) -> None:
        print(file=sys.stderr, flush=True)
