"""A cloud desk answering the tills' request/reply messages over NATS (stored-value holds, coupons, points holds).

Guarantees (for every subclass):
- A store may only ask about itself and only gets answers in its own inbox: the request's `store_id` must be the
  store its subject names, and the reply subject must be in that store's inbox (`subjects.store_inbox_prefix`),
  whatever reply subject it names (a store cannot make the cloud publish on another store's subjects). A request
  of another kind, another store, or naming a reply elsewhere is counted `bad`, logged and not answered.
- Any cloud process answers (a queue group), and a slow decision never holds up other tills: nats-py runs one
  subscription's callbacks one after another, so each request is answered in its own task.
- Past `in_flight_max` requests in flight, a request is shed (counted `shed`, not answered): the till times out and
  falls back to its offline allowance. So does a request `admit` refuses, or whose decision fails (logged).
"""
from __future__ import annotations

import abc
import asyncio
import logging
from typing import Any, ClassVar, Self

from protocol import codec, subjects
from protocol.errors import ProtocolError


class StoreDesk(abc.ABC):
    """Subscribes `subject` in queue group `queue`; answers requests of `kinds` with `decide`'s answer.

    A subclass sets the class attributes and implements `decide`; it may override `admit` (e.g. a rate limit) and
    `reference` (the request's id, in the log when it is not answered)."""

    subject: ClassVar[str]
    queue: ClassVar[str]
    kinds: ClassVar[tuple[type, ...]]
    in_flight_max: ClassVar[int]
    log: ClassVar[logging.Logger]
    what: ClassVar[str]  # in log messages: "a <what> request"
    kind_name: ClassVar[str]  # in the refusal of another kind: "not a <kind_name> request"
    stats_keys: ClassVar[tuple[str, ...]] = ()  # besides "bad" and "shed"

    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self._sub: Any = None
        self._in_flight: set[asyncio.Task] = set()
        self.stats: dict[str, int] = {k: 0 for k in (*self.stats_keys, "bad", "shed")}

    async def start(self) -> Self:
        self._sub = await self.cloud.nats.subscribe(self.subject, queue=self.queue, cb=self._on_request)
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _on_request(self, msg) -> None:
        # one task per request, so one slow decision does not hold up every till
        if len(self._in_flight) >= self.in_flight_max:  # the till times out and sells within its allowance
            self.stats["shed"] += 1
            return
        task = asyncio.create_task(self._answer(msg))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _answer(self, msg) -> None:
        try:
            store_id = subjects.store_from_subject(msg.subject)
            request = codec.decode(msg.data)
            if not isinstance(request, self.kinds) or request.store_id != store_id:
                raise ProtocolError(f"not a {self.kind_name} request of store {store_id}: {request.KIND} of "
                                    f"{request.store_id}")
            if not (msg.reply or "").startswith(subjects.store_inbox_prefix(store_id) + "."):
                raise ProtocolError(f"a reply subject outside store {store_id}'s inbox: {(msg.reply or '')[:80]!r}")
        except ProtocolError as exc:
            self.stats["bad"] += 1
            self.log.warning("refused a %s request on %s: %s", self.what, msg.subject, exc)
            return
        if not self.admit(request, store_id):
            return  # the till times out and works offline
        try:
            answer = await self.decide(request, store_id)
            if answer is not None:
                await msg.respond(codec.encode(answer))
        except Exception as exc:  # noqa: BLE001 - no answer: the till times out and sells within its allowance
            reference = self.reference(request)
            self.log.warning("%s request %sof store %s not answered: %s", self.what,
                             f"{reference} " if reference else "", store_id, exc)

    def admit(self, request, store_id: str) -> bool:
        """Whether a well-formed request of `store_id` is decided at all (False: not answered; say why here)."""
        return True

    def reference(self, request) -> str:
        """The request's id, named in the log when it is not answered."""
        return ""

    @abc.abstractmethod
    async def decide(self, request, store_id: str) -> Any:
        """The answer message to `request` of `store_id` (already checked to be its own), or None: no answer."""
