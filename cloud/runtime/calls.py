"""Calling the actors from the API and the bridge: group commands by shard, one Ray call per shard per batch,
retry through actor restarts with the same ids.

`MicroBatcher` collects commands from many concurrent requests for a few milliseconds and sends them as one
call per actor, so no request pays for a Ray call of its own.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from cloud.durable import Unavailable
from cloud.ray_hosts import host

RETRY_DEADLINE_S = 30.0
BATCH_WAIT_MS = 2
BATCH_MAX = 2_000
RETRYABLE = (RayActorError, ActorDiedError, ActorUnavailableError, Unavailable)


class ActorsUnavailable(RuntimeError):
    """The actors could not answer within the deadline (the API turns this into 503 with Retry-After)."""


class ActorClient:
    def __init__(self, database_url: str, expire_every_ms: int = 1_000) -> None:
        self.database_url, self.expire_every_ms = database_url, expire_every_ms
        self._handles: dict[str, object] = {}

    def handle(self, name: str):
        h = self._handles.get(name)
        if h is None:
            h = self._handles[name] = host(name, self.database_url, self.expire_every_ms)
        return h

    async def call(self, name: str, commands: list[dict], deadline_s: float = RETRY_DEADLINE_S) -> list[dict]:
        """Submit to one actor; through a crash and restart, retry the same commands until the deadline."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline_s
        delay = 0.05
        while True:
            try:
                return await asyncio.wait_for(self.handle(name).submit.remote(commands),
                                              max(give_up - loop.time(), 0.1))
            except asyncio.TimeoutError:
                raise ActorsUnavailable(f"{name}: no answer within {deadline_s}s") from None
            except RETRYABLE as exc:
                if loop.time() + delay > give_up:
                    raise ActorsUnavailable(f"{name}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def read(self, name: str, method: str, *args, deadline_s: float = RETRY_DEADLINE_S):
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline_s
        while True:
            try:
                return await self.handle(name).read.remote(method, *args)
            except RETRYABLE as exc:
                if loop.time() > give_up:
                    raise ActorsUnavailable(f"{name}: {exc}") from exc
                await asyncio.sleep(0.1)

    async def info(self, name: str) -> dict:
        return await self.handle(name).info.remote()


class MicroBatcher:
    """Per-request submits, one Ray call per actor every few ms."""

    def __init__(self, client: ActorClient, wait_ms: int = BATCH_WAIT_MS, batch_max: int = BATCH_MAX) -> None:
        self.client, self.wait_ms, self.batch_max = client, wait_ms, batch_max
        self._pending: dict[str, list[tuple[dict, asyncio.Future]]] = defaultdict(list)
        self._flushers: dict[str, asyncio.Task] = {}

    async def submit(self, name: str, command: dict) -> dict:
        fut = asyncio.get_running_loop().create_future()
        self._pending[name].append((command, fut))
        if name not in self._flushers or self._flushers[name].done():
            self._flushers[name] = asyncio.create_task(self._flush(name))
        return await fut

    async def _flush(self, name: str) -> None:
        await asyncio.sleep(self.wait_ms / 1000)
        while self._pending[name]:
            batch, self._pending[name] = self._pending[name][:self.batch_max], self._pending[name][self.batch_max:]
            try:
                results = await self.client.call(name, [c for c, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request must hear about it
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results):
                if not fut.done():
                    fut.set_result(result)
