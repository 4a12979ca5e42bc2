"""Everything a cloud process's handlers share: the world, the database pool, the actors, NATS, the clock."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import asyncpg

from cloud.actor_client import ActorClient, MicroBatcher
from cloud.shards import ShardConfig
from cloud.world import World
from protocol.clock import Clock, SystemClock
from protocol.ids import IdFactory


def system_ids(clock: Clock) -> IdFactory:
    return IdFactory(clock.now_ms, lambda: int.from_bytes(os.urandom(10), "big"))


@dataclass
class Cloud:
    world: World
    db: asyncpg.Pool
    actors: ActorClient
    shards: ShardConfig
    operator_token: str
    clock: Clock = field(default_factory=SystemClock)
    nats: object = None  # nats.aio.client.Client, when connected
    batcher: MicroBatcher = None
    ids: IdFactory = None
    reservation_ttl_ms: int = 15 * 60 * 1000

    def __post_init__(self) -> None:
        self.batcher = self.batcher or MicroBatcher(self.actors)
        self.ids = self.ids or system_ids(self.clock)

    def now_ms(self) -> int:
        return self.clock.now_ms()
