"""Pulling a batch from a JetStream consumer without waiting for the batch to fill.

nats-py's `fetch(n, timeout)` returns at once with whatever is already waiting, but when nothing is, it lingers
until `n` messages arrived or `timeout` passed - so with `n` large and traffic light, every message waits out the
whole timeout (a full second of lag for nothing). Here the wait is for the *first* message only (a batch of one
returns the moment it arrives); the rest is what is already there, plus whatever comes within `gather_s`.

Both the cloud's bridge and a store's command loop use it; the caller owns the subscription and its errors.
"""
from __future__ import annotations

import asyncio

import nats.errors


async def fetch_ready(sub, batch: int, wait_s: float = 1.0, gather_s: float = 0.005) -> list:
    """Up to `batch` messages, in order: blocks up to `wait_s` for the first (raising TimeoutError if none came)."""
    first = await sub.fetch(1, timeout=wait_s)
    if batch <= 1:
        return first
    try:
        return first + await sub.fetch(batch - 1, timeout=gather_s)
    except (nats.errors.TimeoutError, asyncio.TimeoutError):
        return first
