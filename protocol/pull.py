"""Pulling a batch from a JetStream consumer without waiting for the batch to fill: the policy, with the pull
itself passed in (`fetch(n, timeout)`, e.g. a nats-py pull subscription's `fetch`), so it is the same for the cloud's
bridge and a store's cloud-message loop and does no I/O of its own.

nats-py's `fetch(n, timeout)` returns at once with whatever is already waiting, but when nothing is, it lingers
until `n` messages arrived or `timeout` passed - so with `n` large and traffic light, every message waits out the
whole timeout (a full second of lag for nothing). Here the wait is for the *first* message only (a batch of one
returns the moment it arrives); the rest is what is already there, plus whatever comes within `gather_s`.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Fetch = Callable[[int, float], Awaitable[list[Any]]]


async def fetch_ready(fetch: Fetch, batch: int, wait_s: float = 1.0, gather_s: float = 0.005) -> list[Any]:
    """Up to `batch` messages, in order: blocks up to `wait_s` for the first (raising TimeoutError if none came;
    nats-py's timeout error is a TimeoutError)."""
    first = await fetch(1, wait_s)
    if batch <= 1:
        return first
    try:
        return first + await fetch(batch - 1, gather_s)
    except TimeoutError:
        return first
