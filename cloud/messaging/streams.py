"""JetStream streams and consumers the system relies on, created idempotently by the cloud.

Edge events are deduplicated by `Nats-Msg-Id` (= event id) within the duplicate window; beyond it the cloud's
PostgreSQL event table still makes a redelivery harmless. Commands are kept for days so that a store that was
offline for hours gets everything it missed, in order, from its own durable consumer.

Both streams are bounded (issue 14: 100 junk frames of 1 MB from one store were 96 MB in JetStream): no message
bigger than the codec's frame limit (`max_msg_size`: JetStream refuses it to the publisher, nothing is stored), and
at most `max_bytes` each. What happens at the bound is chosen per stream, so that nothing legitimate is lost
silently:
- edge events: the oldest messages go (DiscardPolicy.OLD). The stream is a transport, not the record: a store keeps
  every event in its outbox until the cloud's business ack, so an event dropped before the bridge applied it is
  sent again by its store (`edge.sync.StuckHead`). Discarding new messages instead would let one store's junk fill
  the stream and refuse every other store's sales; with LIMITS retention, applied history would also fill it.
- cloud messages: new messages are refused (DiscardPolicy.NEW). The cloud is their only publisher and their only
  copy may be here (an order to fulfil for a store offline for days): the publish fails loudly to the cloud,
  which retries or reports it, rather than a store's oldest unread message vanishing.
Age bounds too (`max_age`): edge events a week (a store offline longer re-sends from its outbox), cloud messages a
week (a store box away longer than that is re-provisioned rather than replayed to).
`ensure_streams` creates them, or verifies them and updates their limits, at every start; several instances starting
at once on a fresh NATS all come up (`stream_setup`). Production sizes: FRESHMESH_EVENTS_MAX_BYTES,
FRESHMESH_CLOUD_MESSAGES_MAX_BYTES, FRESHMESH_EVENTS_MAX_AGE_S, FRESHMESH_CLOUD_MESSAGES_MAX_AGE_S,
FRESHMESH_STREAM_REPLICAS (3 on a hub cluster: JetStream keeps each stream on three servers); the NATS
server's own JetStream limits (`max_file_store`, `freshmesh deploy nats-config`) must exceed the two max_bytes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)

from cloud.messaging import stream_setup
from protocol import codec, subjects

DUPLICATE_WINDOW_S = 2 * 3600
EVENTS_MAX_AGE_S = 7 * 24 * 3600
CLOUD_MESSAGES_MAX_AGE_S = 7 * 24 * 3600
ACK_WAIT_S = 30
MAX_ACK_PENDING = 10_000


_ENV = (("events_max_bytes", "FRESHMESH_EVENTS_MAX_BYTES"),
        ("cloud_messages_max_bytes", "FRESHMESH_CLOUD_MESSAGES_MAX_BYTES"),
        ("events_max_age_s", "FRESHMESH_EVENTS_MAX_AGE_S"),
        ("cloud_messages_max_age_s", "FRESHMESH_CLOUD_MESSAGES_MAX_AGE_S"),
        ("replicas", "FRESHMESH_STREAM_REPLICAS"))


@dataclass(frozen=True)
class StreamBounds:
    """Bytes and age each stream may hold, and the largest message; `from_env` reads the variables in `_ENV`."""
    events_max_bytes: int = 1024 ** 3  # 1 GiB: hours of a whole chain's events at peak
    cloud_messages_max_bytes: int = 2 * 1024 ** 3
    max_msg_size: int = codec.MAX_FRAME_BYTES  # no correct frame is bigger: the codec refuses to encode one
    events_max_age_s: int = EVENTS_MAX_AGE_S
    cloud_messages_max_age_s: int = CLOUD_MESSAGES_MAX_AGE_S
    replicas: int = 1  # FRESHMESH_STREAM_REPLICAS: 3 on a 3-server hub cluster, so a server's loss loses nothing

    def __post_init__(self) -> None:
        for name, key in _ENV:  # an unbounded (0) or negative limit is refused: streams are always bounded
            if getattr(self, name) <= 0:
                raise ValueError(f"{key}: {name} must be positive, got {getattr(self, name)}")
        if self.replicas not in (1, 3, 5):  # JetStream replicates by raft: an odd count, at most 5
            raise ValueError(f"FRESHMESH_STREAM_REPLICAS: 1, 3 or 5, got {self.replicas}")
        for name, key in _ENV[2:4]:  # JetStream refuses a duplicate window longer than the stream's max age
            if getattr(self, name) < DUPLICATE_WINDOW_S:
                raise ValueError(f"{key}: at least the duplicate window ({DUPLICATE_WINDOW_S} s), got "
                                 f"{getattr(self, name)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamBounds:
        env = os.environ if env is None else env
        values = {name: int(env[key]) for name, key in _ENV if env.get(key)}
        return cls(**values)


def events_stream_config(bounds: StreamBounds | None = None) -> StreamConfig:
    bounds = bounds or StreamBounds()
    return StreamConfig(
        name=subjects.EVENTS_STREAM, subjects=[subjects.EVENTS_SUBJECTS], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, max_age=bounds.events_max_age_s, duplicate_window=DUPLICATE_WINDOW_S,
        max_bytes=bounds.events_max_bytes, max_msg_size=bounds.max_msg_size, discard=DiscardPolicy.OLD,
        num_replicas=bounds.replicas,
        # stored with the store's partition in the subject: each bridge shard fetches its own events only
        subject_transform=SubjectTransform(src=subjects.EVENTS_SUBJECTS, dest=subjects.EVENTS_TRANSFORM_DEST),
    )


def cloud_messages_stream_config(bounds: StreamBounds | None = None) -> StreamConfig:
    bounds = bounds or StreamBounds()
    return StreamConfig(
        name=subjects.CLOUD_MESSAGES_STREAM, subjects=[subjects.CLOUD_MESSAGES_SUBJECTS], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, max_age=bounds.cloud_messages_max_age_s, duplicate_window=DUPLICATE_WINDOW_S,
        max_bytes=bounds.cloud_messages_max_bytes, max_msg_size=bounds.max_msg_size, discard=DiscardPolicy.NEW,
        num_replicas=bounds.replicas,
    )


async def ensure_streams(js, bounds: StreamBounds | None = None) -> None:
    """Create-or-verify both streams: safe when several instances start at once (cloud/messaging/stream_setup.py)."""
    bounds = bounds or StreamBounds.from_env()
    for config in (events_stream_config(bounds), cloud_messages_stream_config(bounds)):
        await stream_setup.ensure_stream(js, config)


async def ensure_events_shard_consumer(js, name: str, partition: int, start_seq: int | None = None) -> None:
    """One shard's durable pull consumer (cloud/messaging/bridge_shards.py): its partition's events, and any stored
    before the stream was partitioned (`EVENTS_SUBJECTS`: every shard reads those and applies its own). Its holder
    applies a fetched batch's events of its shard as a whole, in order, and acks the batch's last message (ack-all:
    only one instance at a time reads it). `start_seq`: the stream sequence to begin at (None: the stream's
    start)."""
    start = {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": start_seq} if start_seq else {
        "deliver_policy": DeliverPolicy.ALL}
    await js.add_consumer(subjects.EVENTS_STREAM, ConsumerConfig(
        durable_name=name, ack_policy=AckPolicy.ALL, ack_wait=ACK_WAIT_S, max_ack_pending=MAX_ACK_PENDING,
        filter_subjects=[subjects.EVENTS_SUBJECTS, subjects.partition_filter(partition)], **start))


async def ensure_store_consumer(js, store_id: str) -> None:
    """The durable pull consumer through which one store reads its cloud messages (only that store may pull it)."""
    await js.add_consumer(subjects.CLOUD_MESSAGES_STREAM, ConsumerConfig(
        durable_name=subjects.cloud_messages_consumer(store_id), ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL, ack_wait=ACK_WAIT_S, max_ack_pending=MAX_ACK_PENDING,
        filter_subject=subjects.cloud_messages_filter(store_id),
    ))
