"""Everything a cloud process's services share: the world, the database pool, the actors, NATS, the clock, ids."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from cloud.keys import KeyRing
from cloud.runtime.clients import Actors
from cloud.world import World
from protocol.clock import Clock, ReadingClock
from protocol.ids import IdFactory
from protocol.policy import RESERVATION_TTL_MS


def system_clock() -> Clock:
    """The machine's clocks: the only place the cloud reads them."""
    return ReadingClock(time.time_ns, time.monotonic_ns)


def system_ids(clock: Clock) -> IdFactory:
    return IdFactory(clock.now_ms, lambda: int.from_bytes(os.urandom(10), "big"))


@dataclass
class Cloud:
    world: World
    db: asyncpg.Pool
    actors: Actors
    clock: Clock = field(default_factory=system_clock)
    nats: Any = None  # nats.aio.client.Client, when connected
    ids: IdFactory | None = None
    reservation_ttl_ms: int = RESERVATION_TTL_MS
    keys: KeyRing = field(default_factory=KeyRing.from_env)  # every secret key (cloud/keys.py)

    def __post_init__(self) -> None:
        self.ids = self.ids or system_ids(self.clock)

    @property
    def shards(self):
        return self.actors.shards

    def now_ms(self) -> int:
        return self.clock.now_ms()
