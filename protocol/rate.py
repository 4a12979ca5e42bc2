"""Per-store publish rates: token buckets, so that one store flooding the cloud cannot starve the others.

Each store has two buckets, one counting events and one counting bytes; a frame is admitted when both have room
(and then takes from both). A bucket refills at its rate up to its burst, so a store catching up after hours
offline sends its backlog at the burst and then at the rate. Pure: time is passed in (`now_ms`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class StoreRateLimits:
    """Defaults far above a busy store (a few events a second, each under a kilobyte), and at least a legitimate
    catch-up's speed: a store back after days offline sends its backlog as fast as the bridge takes it, and issue 22
    aims at >= 20,000 events/s for that. Being throttled costs a store far more than the wait for tokens: what was
    dropped comes back only with its re-send round (`edge.sync.StuckHead`, 30 s on), and its later events wait for
    it (`protocol.seq_gate`). So the rate is the catch-up aim (20,000 events/s; at ~300 bytes an event - a 3-line
    sale frame is ~310, a movement ~230 - about 6 MiB/s, so 16 MiB/s leaves room for larger sales), and the bursts
    hold a few days' outbox (`freshmesh load catchup`'s 5,000 sales are about 20,000 events and 6 MB) before the
    rate matters at all. What the rate still stops: a flood far past any store - junk frames of a megabyte, or
    hundreds of thousands a second - taking the bridge's decoder and database from every other store.
    `from_env`: FRESHMESH_STORE_<FIELD> (upper case) for each field."""
    events_per_s: float = 20_000.0
    events_burst: float = 100_000.0
    bytes_per_s: float = 16 * 1024 * 1024
    bytes_burst: float = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("events_per_s", "events_burst", "bytes_per_s", "bytes_burst"):
            if not getattr(self, name) > 0:
                raise ValueError(f"store rate limit {name} must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoreRateLimits:
        """From a process environment (the shell passes `os.environ`)."""
        values = {}
        for name in ("events_per_s", "events_burst", "bytes_per_s", "bytes_burst"):
            raw = env.get(f"FRESHMESH_STORE_{name.upper()}")
            if raw:
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise ValueError(f"FRESHMESH_STORE_{name.upper()}={raw!r}: expected a number") from None
        return cls(**values)


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float, now_ms: int) -> None:
        self.rate_per_s, self.burst = rate_per_s, burst
        self.tokens, self.at_ms = burst, now_ms

    def refill(self, now_ms: int) -> None:
        if now_ms > self.at_ms:  # a clock that steps back refills nothing (and takes nothing back)
            self.tokens = min(self.burst, self.tokens + (now_ms - self.at_ms) * self.rate_per_s / 1000)
            self.at_ms = now_ms

    def has(self, cost: float) -> bool:
        # a frame bigger than the whole burst could never pass: it passes when the bucket is full instead
        return self.tokens >= min(cost, self.burst)

    def take(self, cost: float) -> None:
        self.tokens -= cost


class StoreRates:
    """The buckets of every store seen. `admit(store, size, now_ms)`: True when the frame is within the store's rate
    (and it is counted); False when the store is over its rate (nothing is taken)."""

    def __init__(self, limits: StoreRateLimits) -> None:
        self.limits = limits
        self._buckets: dict[str, tuple[TokenBucket, TokenBucket]] = {}

    def admit(self, store_id: str, size: int, now_ms: int) -> bool:
        pair = self._buckets.get(store_id)
        if pair is None:
            lim = self.limits
            pair = self._buckets[store_id] = (TokenBucket(lim.events_per_s, lim.events_burst, now_ms),
                                              TokenBucket(lim.bytes_per_s, lim.bytes_burst, now_ms))
        events, sizes = pair
        events.refill(now_ms)
        sizes.refill(now_ms)
        if not (events.has(1) and sizes.has(size)):
            return False
        events.take(1)
        sizes.take(size)
        return True
