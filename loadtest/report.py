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


def stop_process(proc, grace_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after the grace period: load runs never leave servers behind. A child started in its
    own session (`spawn_quiet`) is killed with its whole process group, so what it started goes too."""
    import os
    import signal
    import subprocess
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        try:
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(10)


def wait_http(url: str, timeout_s: float, proc=None) -> None:
    """Until `url` answers 200 (or `proc` exits, or the time is up)."""
    import urllib.request
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - our own server's http:// health URL
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} not ready within {timeout_s}s")
