"""The store box's answer to the cloud's escrow borrows (core NATS request/reply on its own
`fm.store.<id>.escrow.borrow`, the one subject besides its inbox its NATS user may subscribe to).

Guarantees: each request is decided by the StoreActor (`_lend`: one mailbox, so a loan and a till sale never race)
and its grant is durable (escrow + outbox `EscrowGranted`, one SQLite transaction) **before** the answer is sent.
An answer lost on the way (or too late for the order that asked) loses nothing: the grant reaches the cloud through
the outbox as any grant, its units are the cloud's to sell online, and the till gets them back by the usual reclaim
if it sells past its share. Requests that are
malformed or for another store are dropped (the cloud times out and goes on without the loan). Requests in flight
are bounded; past the bound they are dropped too.
"""
from __future__ import annotations

import asyncio
import logging

from protocol import codec, subjects
from protocol.errors import ProtocolError
from protocol.escrow_messages import EscrowBorrowRequested

LEND_REQUESTS_IN_FLIGHT_MAX = 64
log = logging.getLogger("freshmesh.edge.lending")


class LendingDesk:
    def __init__(self, box) -> None:
        self.box = box
        self._in_flight: set[asyncio.Task] = set()
        self.stats = {"asked": 0, "lent": 0, "refused": 0, "bad": 0, "shed": 0}

    async def subscribe(self, nc):
        """Subscribe on the store's borrow subject (nats-py subscribes again by itself after a reconnect)."""
        return await nc.subscribe(subjects.store_escrow_borrow(self.box.store_id), cb=self._on_request)

    async def _on_request(self, msg) -> None:
        if len(self._in_flight) >= LEND_REQUESTS_IN_FLIGHT_MAX:
            self.stats["shed"] += 1
            return
        task = asyncio.create_task(self._answer(msg))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _answer(self, msg) -> None:
        try:
            request = codec.decode(msg.data)
            if not isinstance(request, EscrowBorrowRequested) or request.store_id != self.box.store_id:
                raise ProtocolError(f"not a borrow for store {self.box.store_id}: {request.KIND} of {request.store_id}")
            if not msg.reply:
                raise ProtocolError("a borrow request with no reply subject")
        except ProtocolError as exc:
            self.stats["bad"] += 1
            log.warning("store %s: dropped a borrow request: %s", self.box.store_id, exc)
            return
        self.stats["asked"] += 1
        try:
            answer = await self.box.actor.ask("lend", request=request)
        except Exception as exc:  # noqa: BLE001 - busy or failing: no answer; the cloud goes on without the loan
            log.warning("store %s: borrow %s not decided: %s", self.box.store_id, request.borrow_id, exc)
            return
        self.stats["lent" if answer.lent else "refused"] += 1
        try:
            await msg.respond(codec.encode(answer))
        except Exception as exc:  # noqa: BLE001 - the grant is durable and goes through the outbox anyway
            log.info("store %s: borrow answer %s not sent (%s)", self.box.store_id, request.borrow_id, exc)

    async def stop(self) -> None:
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
