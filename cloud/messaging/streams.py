"""JetStream streams and consumers the system relies on, created idempotently by the cloud.

Edge events are deduplicated by `Nats-Msg-Id` (= event id) within the duplicate window; beyond it the cloud's
PostgreSQL event table still makes a redelivery harmless. Commands are kept for days so that a store that was
offline for hours gets everything it missed, in order, from its own durable consumer.
"""
from __future__ import annotations

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from protocol import subjects

DUPLICATE_WINDOW_S = 2 * 3600
EVENTS_MAX_AGE_S = 7 * 24 * 3600
CLOUD_MESSAGES_MAX_AGE_S = 7 * 24 * 3600
ACK_WAIT_S = 30
MAX_ACK_PENDING = 10_000


def events_stream_config() -> StreamConfig:
    return StreamConfig(
        name=subjects.EVENTS_STREAM, subjects=[subjects.EVENTS_SUBJECTS], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, max_age=EVENTS_MAX_AGE_S, duplicate_window=DUPLICATE_WINDOW_S,
    )


def cloud_messages_stream_config() -> StreamConfig:
    return StreamConfig(
        name=subjects.CLOUD_MESSAGES_STREAM, subjects=[subjects.CLOUD_MESSAGES_SUBJECTS], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, max_age=CLOUD_MESSAGES_MAX_AGE_S, duplicate_window=DUPLICATE_WINDOW_S,
    )


async def ensure_streams(js) -> None:
    for config in (events_stream_config(), cloud_messages_stream_config()):
        try:
            await js.stream_info(config.name)
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)


async def ensure_events_consumer(js) -> None:
    """The bridge applies a fetched batch as a whole, in order, so acking its last message acks it all."""
    await js.add_consumer(subjects.EVENTS_STREAM, ConsumerConfig(
        durable_name=subjects.EVENTS_CONSUMER, ack_policy=AckPolicy.ALL, deliver_policy=DeliverPolicy.ALL,
        ack_wait=ACK_WAIT_S, max_ack_pending=MAX_ACK_PENDING, filter_subject=subjects.EVENTS_SUBJECTS,
    ))


async def ensure_store_consumer(js, store_id: str) -> None:
    """The durable pull consumer through which one store reads its cloud messages (only that store may pull it)."""
    await js.add_consumer(subjects.CLOUD_MESSAGES_STREAM, ConsumerConfig(
        durable_name=subjects.cloud_messages_consumer(store_id), ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL, ack_wait=ACK_WAIT_S, max_ack_pending=MAX_ACK_PENDING,
        filter_subject=subjects.cloud_messages_filter(store_id),
    ))
