"""Create-or-verify for JetStream streams: safe when several cloud instances start at the same moment.

Every cloud instance makes sure of the streams at start (`cloud.messaging.streams.ensure_streams`). On a fresh NATS
two instances started together both find no stream and both create it; JetStream takes the first create, and
answers the second with "stream name already in use" (err_code 10058) when its configuration differs in anything -
e.g. a rolling deploy where the new instances carry new byte limits - or, with the same configuration, "insufficient
storage resources" (err_code 10047: both creates reserved their max_bytes against the server's storage limit at
once). That instance used to fail to start.

Guarantees of `ensure_stream`:
- the stream exists once, made by whichever create came first; a create refused because it already exists is not
  an error: the stream is read back and verified (bounded retries, for a server whose JetStream is still starting);
- verified field by field: a stream that differs from ours only in limits (`LIMIT_FIELDS`: bytes, age, message size,
  duplicate window, discard policy, replicas) or in how it stores what it captures (`ROUTING_FIELDS`: the subject
  transform) is updated to ours; one that differs in what it *is* (subjects, retention, storage) is never changed
  behind the operator's back: `StreamConfigConflict` names each field, its value there and ours, and the instance
  does not start on a stream that means something else;
- a stream already as wanted is left alone (no update call), so instances starting together do not rewrite it in
  turn.
The decision is the pure `differences` / `plan`; only `ensure_stream` does I/O.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from nats.js.api import StreamConfig
from nats.js.errors import APIError, BadRequestError, NotFoundError, ServiceUnavailableError

# Limits JetStream updates in place; anything else a stream is, it keeps for life (or changes its meaning).
LIMIT_FIELDS = ("max_bytes", "max_age", "max_msg_size", "duplicate_window", "discard", "num_replicas", "max_msgs",
                "max_msgs_per_subject")
IDENTITY_FIELDS = ("subjects", "retention", "storage")
# How a stream stores what it captures: updated in place (messages stored before keep their subjects, which the
# readers of the stream still accept: see protocol/subjects.py on the events' partitions).
ROUTING_FIELDS = ("subject_transform",)
STREAM_NAME_IN_USE = 10058  # JetStream's err_code: a stream by that name exists (created by another instance)
# "insufficient storage resources": two creates at once each reserve their max_bytes against the server's JetStream
# storage limit, and the second may not fit while the first is counted twice; it fits once the first is made.
INSUFFICIENT_STORAGE = 10047
ATTEMPTS = 10
RETRY_PAUSE_S = 0.2
log = logging.getLogger("freshmesh.streams")


class StreamConfigConflict(RuntimeError):
    """The stream exists and means something else than ours (a field outside `LIMIT_FIELDS` differs)."""


@dataclass(frozen=True)
class Difference:
    field: str
    theirs: object
    ours: object


def _norm(field: str, value: object) -> object:
    if field == "subjects":
        return sorted(value or [])  # type: ignore[call-overload]
    if field in ("max_age", "duplicate_window"):  # nats-py reads these back as float seconds
        return float(value or 0)  # type: ignore[arg-type]
    if field in ("max_msgs", "max_msgs_per_subject", "max_bytes", "max_msg_size"):
        return -1 if value in (None, 0, -1) else value  # unset and -1 both mean "no limit" to the server
    if field == "num_replicas":
        return value or 1
    if field == "subject_transform":
        return None if value is None else (getattr(value, "src", None), getattr(value, "dest", None))
    return getattr(value, "value", value)  # enums by value (the server's answer and ours are the same enum)


def differences(existing: StreamConfig, wanted: StreamConfig) -> list[Difference]:
    """The fields, among those we set, where the existing stream is not as wanted."""
    out = []
    for field in IDENTITY_FIELDS + LIMIT_FIELDS + ROUTING_FIELDS:
        ours = getattr(wanted, field)
        if ours is None:
            continue  # not ours to say: the server's default stands
        if _norm(field, getattr(existing, field)) != _norm(field, ours):
            out.append(Difference(field, getattr(existing, field), ours))
    return out


def plan(existing: StreamConfig, wanted: StreamConfig) -> str:
    """"keep" (as wanted), "update" (only limits differ) or raises `StreamConfigConflict` (it is another stream)."""
    diff = differences(existing, wanted)
    conflicts = [d for d in diff if d.field in IDENTITY_FIELDS]
    if conflicts:
        said = "; ".join(f"{d.field} is {d.theirs!r} there, {d.ours!r} here" for d in conflicts)
        raise StreamConfigConflict(f"stream {wanted.name} exists with another configuration ({said}); it is not "
                                   f"changed automatically: remove or fix it by hand, or run the matching version")
    return "update" if diff else "keep"


def _raced(exc: APIError) -> bool:
    """A create refused because another instance's create of the same stream came first (or is under way)."""
    return exc.err_code in (STREAM_NAME_IN_USE, INSUFFICIENT_STORAGE) or "already in use" in (exc.description or "")


async def ensure_stream(js, wanted: StreamConfig) -> str:
    """Make `wanted` exist (or verify and update its limits); safe to run concurrently from any number of
    instances. Returns what was done: "created", "kept" or "updated"."""
    last: Exception | None = None
    for _ in range(ATTEMPTS):
        try:
            try:
                info = await js.stream_info(wanted.name)
            except NotFoundError:
                try:
                    await js.add_stream(wanted)
                    return "created"
                except (BadRequestError, APIError) as exc:
                    if isinstance(exc, ServiceUnavailableError) or not _raced(exc):
                        raise
                    last = exc  # another instance made it first (or is making it): read it back and verify it
                    await asyncio.sleep(RETRY_PAUSE_S)
                    continue
            if plan(info.config, wanted) == "keep":
                return "kept"
            log.info("stream %s: updating its limits (%s)", wanted.name,
                     ", ".join(f"{d.field} {d.theirs!r} -> {d.ours!r}" for d in differences(info.config, wanted)))
            await js.update_stream(wanted)
            return "updated"
        except ServiceUnavailableError as exc:  # JetStream still starting (a fresh server): ask again shortly
            last = exc
        except NotFoundError as exc:  # deleted between our read and our update: create it again
            last = exc
        await asyncio.sleep(RETRY_PAUSE_S)
    raise RuntimeError(f"stream {wanted.name} could not be made or verified after {ATTEMPTS} attempts: {last!r}")
