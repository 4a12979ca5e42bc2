"""A till's request/reply to a cloud desk (`cloud.messaging.store_desk`): stored-value holds, coupons, points holds.

Guarantees: the caller never waits past `timeout_s`, and gets the cloud's answer only when it is one for this
request (of `answer_cls`, and `matches` it: the same hold id); otherwise None (not connected, no answer in time, a
garbled answer, or another request's), and the till works offline within its allowance.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import nats

from protocol import codec
from protocol.errors import ProtocolError

A = TypeVar("A")


async def ask_cloud(sync: Any, subject: str, request: Any, answer_cls: type[A], matches: Callable[[A], bool], *,
                    timeout_s: float, desk: str, what: str, reference: str, log: logging.Logger) -> A | None:
    """The cloud's answer to `request` on `subject`, or None. `sync` is the store's link (its `nc`, `connected`);
    `desk` ("stored-value"), `what` ("hold") and `reference` (its id) name the request in the log."""
    if sync is None or sync.nc is None or not sync.connected.is_set():
        return None
    try:
        reply = await sync.nc.request(subject, codec.encode(request), timeout=timeout_s)
        answer = codec.decode(reply.data)
    except (ProtocolError, TimeoutError, nats.errors.Error, OSError) as exc:
        log.info("store %s: no answer to %s %s %s (%s)", request.store_id, desk, what, reference,
                 type(exc).__name__)
        return None
    if not isinstance(answer, answer_cls) or not matches(answer):
        log.warning("store %s: a %s answer that is not for %s", request.store_id, desk, reference)
        return None
    return answer
