"""Sending cloud messages to a store: numbered per store (PostgreSQL counter), published to the store's JetStream
subject with Nats-Msg-Id = event id, so a re-send within the duplicate window is dropped by the stream and any
later one by the store's own event-id check."""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from protocol import codec, subjects
from protocol.messages import Message

PUBLISH_TIMEOUT_S = 10.0


async def next_seqs(db, store_id: str, count: int = 1) -> int:
    """Reserve `count` cloud-message sequence numbers for a store; returns the first."""
    last = await db.fetchval("""insert into cloud_message_seq (store_id, seq) values ($1, $2)
                                on conflict (store_id) do update set seq = cloud_message_seq.seq + $2
                                returning seq""", store_id, count)
    return last - count + 1


async def send(cloud, store_id: str, make: Callable[..., Message], event_id: str | None = None) -> Message:
    """make(event_id=, store_id=, seq=, wall_ms=, mono_ms=) builds the message; it is then published."""
    seq = await next_seqs(cloud.db, store_id)
    message = make(event_id=event_id or cloud.ids.new(), store_id=store_id, seq=seq, wall_ms=cloud.now_ms(),
                   mono_ms=cloud.clock.monotonic_ms())
    await publish(cloud, message)
    return message


async def send_many(cloud, items: Sequence[tuple[str, Callable[..., Message]]]) -> list[Message]:
    """Like `send` for many (store, make) at once: one statement numbers them all (in list order per store), and
    the publishes go out together, so a bridge batch touching 200 stores costs one round trip of each kind, not
    200 of both."""
    if not items:
        return []
    counts: dict[str, int] = {}
    for store_id, _ in items:
        counts[store_id] = counts.get(store_id, 0) + 1
    rows = await cloud.db.fetch("""insert into cloud_message_seq (store_id, seq)
                                   select * from unnest($1::text[], $2::bigint[])
                                   on conflict (store_id) do update set seq = cloud_message_seq.seq + excluded.seq
                                   returning store_id, seq""", list(counts), list(counts.values()))
    next_seq = {r["store_id"]: r["seq"] - counts[r["store_id"]] + 1 for r in rows}
    messages = []
    for store_id, make in items:
        messages.append(make(event_id=cloud.ids.new(), store_id=store_id, seq=next_seq[store_id],
                             wall_ms=cloud.now_ms(), mono_ms=cloud.clock.monotonic_ms()))
        next_seq[store_id] += 1
    if cloud.nats is None:
        raise RuntimeError("not connected to NATS")
    js = cloud.nats.jetstream()
    acks = [await js.publish_async(subjects.cloud_message_subject(m.store_id, m.KIND), codec.encode(m),
                                   headers={subjects.MSG_ID_HEADER: m.event_id}) for m in messages]
    await asyncio.wait_for(asyncio.gather(*acks), PUBLISH_TIMEOUT_S)
    return messages


async def publish(cloud, message: Message) -> None:
    if cloud.nats is None:
        raise RuntimeError("not connected to NATS")
    js = cloud.nats.jetstream()
    await js.publish(subjects.cloud_message_subject(message.store_id, message.KIND), codec.encode(message),
                     headers={subjects.MSG_ID_HEADER: message.event_id})
