"""The one path into the actors: group commands by actor, one Ray call per actor per batch, and retry through
actor restarts with the same ids (idempotency makes the retry safe).

Handles are cached per actor name; a call that fails with a Ray actor error (the actor died, is restarting, or is
gone for good - killed, or its node lost) drops the cached handle, and the retry looks the actor up by name again
(`host`: get-if-exists, made afresh only if none runs). So a process never keeps calling a dead incarnation, and no
error of one process's past (a handle to an actor some other process's exit took along) outlives one retry.

`ActorCalls.submit` collects commands from many concurrent requests for a few milliseconds and sends them as one
call per actor, so no request pays for a Ray call of its own; `call` sends a list at once; `ask` puts a query.
The typed clients (`cloud/runtime/clients.py`) are built on it; nothing else calls Ray.
"""
from __future__ import annotations

import asyncio
from typing import Any

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from actors.base import Command, Query, Result, command_to_wire, result_from_trusted
from cloud.runtime.durable import Unavailable
from cloud.runtime.hosting import host

RETRY_DEADLINE_S = 30.0
RETRY_FIRST_DELAY_S, RETRY_MAX_DELAY_S = 0.05, 1.0
BATCH_WAIT_MS = 2
BATCH_MAX = 2_000
PENDING_MAX = 50_000  # commands waiting for their actor's next call; past this a submit is refused at once
RETRYABLE = (RayActorError, ActorDiedError, ActorUnavailableError, Unavailable)
LOOK_UP_AGAIN = (RayActorError, ActorDiedError, ActorUnavailableError)  # the handle may name a dead incarnation


class ActorsUnavailable(RuntimeError):
    """The actors could not answer within the deadline, or are too far behind to take more (the HTTP layer
    answers 503 with Retry-After)."""


class ActorCalls:
    def __init__(self, database_url: str, expire_every_ms: int = 1_000, wait_ms: int = BATCH_WAIT_MS,
                 batch_max: int = BATCH_MAX) -> None:
        self.database_url, self.expire_every_ms = database_url, expire_every_ms
        self.wait_ms, self.batch_max = wait_ms, batch_max
        self._handles: dict[str, Any] = {}
        self._pending: dict[str, list[tuple[Command, asyncio.Future]]] = {}
        self._flushers: dict[str, asyncio.Task] = {}

    def _handle(self, name: str) -> Any:
        h = self._handles.get(name)
        if h is None:
            h = self._handles[name] = host(name, self.database_url, self.expire_every_ms)
        return h

    async def _retrying(self, name: str, send, deadline_s: float):
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline_s
        delay = RETRY_FIRST_DELAY_S
        while True:
            try:
                return await asyncio.wait_for(send(self._handle(name)), max(give_up - loop.time(), 0.1))
            except TimeoutError:
                raise ActorsUnavailable(f"{name}: no answer within {deadline_s}s") from None
            except RETRYABLE as exc:
                if isinstance(exc, LOOK_UP_AGAIN):
                    self._handles.pop(name, None)  # the retry finds the actor by name (restarted, or made again)
                if loop.time() + delay > give_up:
                    raise ActorsUnavailable(f"{name}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY_S)

    async def call(self, name: str, commands: list[Command], deadline_s: float = RETRY_DEADLINE_S) -> list[Result]:
        """Submit a list to one actor at once; through a crash and restart, retry the same commands."""
        wires = [command_to_wire(c) for c in commands]
        answers: list[dict] = await self._retrying(name, lambda h: h.submit.remote(wires), deadline_s)
        return [result_from_trusted(a) for a in answers]

    async def ask(self, name: str, query: Query, deadline_s: float = RETRY_DEADLINE_S) -> Any:
        return await self._retrying(name, lambda h: h.ask.remote(query), deadline_s)

    async def info(self, name: str) -> dict:
        info: dict = await self._handle(name).info.remote()
        return info

    async def submit(self, name: str, command: Command) -> Result:
        """One command, batched with everyone else's for the same actor."""
        pending = self._pending.setdefault(name, [])
        if len(pending) >= PENDING_MAX:
            raise ActorsUnavailable(f"{name}: {len(pending)} commands already waiting; retry shortly")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        pending.append((command, fut))
        if name not in self._flushers or self._flushers[name].done():
            self._flushers[name] = asyncio.create_task(self._flush(name))
        result: Result = await fut
        return result

    async def _flush(self, name: str) -> None:
        await asyncio.sleep(self.wait_ms / 1000)
        while self._pending.get(name):
            pending = self._pending[name]
            batch, self._pending[name] = pending[:self.batch_max], pending[self.batch_max:]
            try:
                results = await self.call(name, [c for c, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request must hear about it
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
