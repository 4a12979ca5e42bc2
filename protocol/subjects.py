"""Every NATS subject, stream and consumer name, in one place.

Per-store subjects make per-store permissions possible: a store publishes only under
`fm.store.<its id>.>`, pulls only its own cloud-message consumer and reads replies only on its own inbox prefix.

  fm.store.<store>.evt.<kind>   edge events (JetStream stream FM_EDGE_EVENTS, deduplicated by Nats-Msg-Id),
                                stored as fm.store.<store>.evts.<partition>.<kind> (see below)
  fm.store.<store>.hb           heartbeats (core NATS: a lost one is replaced by the next)
  fm.store.<store>.sv.<what>    stored-value holds asked for and released by the till (core NATS request/reply,
                                answered by the cloud's `stored_value` queue group on the store's own inbox)
  fm.store.<store>.escrow.borrow the cloud asks the store for more online escrow (core NATS request/reply: only that
                                store's box subscribes; it answers on the request's reply subject)
  fm.msg.<store>.<kind>         cloud messages to one store (stream FM_CLOUD_MESSAGES, consumer store_<store>)

Edge events are stored partitioned: the events stream's subject transform puts the store's partition (the NATS
server's `partition(n, 1)`: FNV-1a of the store id, modulo `EVENT_PARTITIONS`) into the stored subject, so that each
of the bridge's shards consumes its own partition only and no event is fetched more than once
(cloud/messaging/bridge_shards.py). Stores publish on `.evt.` as before; a stream made before partitioning holds
older events under `.evt.`, which every shard's consumer still reads (`EVENTS_SUBJECTS`) and skips when not its own.
"""
from __future__ import annotations

from typing import Any

from protocol.errors import ProtocolError
from protocol.messages import valid_store_id

ROOT = "fm"
EVENTS_STREAM = "FM_EDGE_EVENTS"
CLOUD_MESSAGES_STREAM = "FM_CLOUD_MESSAGES"
EVENTS_SUBJECTS = f"{ROOT}.store.*.evt.>"
CLOUD_MESSAGES_SUBJECTS = f"{ROOT}.msg.>"
HEARTBEATS_ALL = f"{ROOT}.store.*.hb"
STORED_VALUE_ALL = f"{ROOT}.store.*.sv.>"
STORED_VALUE_QUEUE = "stored_value"  # the cloud's queue group: any one cloud process answers each request
EVENTS_CONSUMER = "cloud_events"  # the prefix of the cloud's durable consumers of the edge events
EVENT_PARTITIONS = 4  # the bridge's shards (a constant: part of every stored subject and every consumer's filter)
STORED_EVENTS = "evts"
# what the events stream stores a store's event as: the partition is computed by the server, never by the store
EVENTS_TRANSFORM_DEST = f"{ROOT}.store.{{{{wildcard(1)}}}}.{STORED_EVENTS}.{{{{partition({EVENT_PARTITIONS},1)}}}}.>"
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193
MSG_ID_HEADER = "Nats-Msg-Id"


def _store(store_id: str) -> str:
    if not valid_store_id(store_id):
        raise ProtocolError(f"invalid store id {store_id!r} (letters, digits, '_' and '-', 1-32 chars)")
    return store_id


def store_root(store_id: str) -> str:
    return f"{ROOT}.store.{_store(store_id)}"


def store_event(store_id: str, kind: str) -> str:
    return f"{store_root(store_id)}.evt.{kind}"


def partition_of_store(store_id: str, partitions: int = EVENT_PARTITIONS) -> int:
    """The store's events partition, as the NATS server computes it for `EVENTS_TRANSFORM_DEST` (32-bit FNV-1a of the
    store id's bytes, modulo the count): the bridge assigns events stored before partitioning by the same rule, so a
    store's older and newer events go to one shard (tests/integration/test_event_partitions.py holds the two equal)."""
    h = _FNV_OFFSET
    for byte in store_id.encode():
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h % partitions


def partition_filter(partition: int) -> str:
    """The stored subjects of one partition's events (a shard consumer's own filter)."""
    return f"{ROOT}.store.*.{STORED_EVENTS}.{partition}.>"


def stored_event(store_id: str, kind: str) -> str:
    """The subject the events stream stores a store's event of this kind under (its partition computed here)."""
    return f"{store_root(store_id)}.{STORED_EVENTS}.{partition_of_store(store_id)}.{kind}"


def partition_of_subject(subject: str) -> int | None:
    """The partition token of a stored event subject; None for a subject stored before partitioning (or not one)."""
    parts = subject.split(".", 5)
    if len(parts) >= 5 and parts[3] == STORED_EVENTS and parts[4].isdigit():
        return int(parts[4])
    return None


def published_subject(subject: str) -> str:
    """The subject the store published an event on (its stored subject without the partition token)."""
    parts = subject.split(".", 5)
    if len(parts) == 6 and parts[3] == STORED_EVENTS and parts[4].isdigit():
        return ".".join((*parts[:3], "evt", parts[5]))
    return subject


def store_heartbeat(store_id: str) -> str:
    return f"{store_root(store_id)}.hb"


def store_stored_value(store_id: str, what: str) -> str:
    """Where a till asks for a hold ("hold") or gives one back ("release")."""
    return f"{store_root(store_id)}.sv.{what}"


def store_escrow_borrow(store_id: str) -> str:
    """Where the cloud asks a store to lend it escrow from its offline share (the store's box subscribes here)."""
    return f"{store_root(store_id)}.escrow.borrow"


def cloud_message_subject(store_id: str, kind: str) -> str:
    return f"{ROOT}.msg.{_store(store_id)}.{kind}"


def cloud_messages_filter(store_id: str) -> str:
    return f"{ROOT}.msg.{_store(store_id)}.>"


def store_from_subject(subject: str) -> str:
    """The store id inside an edge subject, e.g. fm.store.S001.evt.sale.committed -> S001."""
    parts = subject.split(".")
    if len(parts) < 4 or parts[0] != ROOT or parts[1] != "store" or not valid_store_id(parts[2]):
        raise ProtocolError(f"not a store subject: {subject!r}")
    return parts[2]


def cloud_messages_consumer(store_id: str) -> str:
    return f"store_{_store(store_id)}"


def store_inbox_prefix(store_id: str) -> str:
    return f"_INBOX_{_store(store_id)}"


def store_permissions(store_id: str) -> dict[str, dict[str, Any]]:
    """NATS authorization for one store's user: only its own subjects, consumer and inbox. Its own subjects cover
    its events, heartbeats and stored-value hold requests (`store_stored_value`); the cloud answers a request only
    on this store's inbox prefix, whatever reply subject the request names.

    Its subscriptions: its own inbox, and its own borrow subject (`store_escrow_borrow`) where the cloud asks it for
    escrow; it may answer such a request once, on the reply subject the request names, within a short time
    (`allow_responses`), and publish on no other reply subject.

    Never `$JS.API.>`: that would let a store read or delete other stores' streams. A JetStream publish needs
    no API right (the ack comes back on the reply inbox).
    """
    consumer = cloud_messages_consumer(store_id)
    return {
        "publish": {
            "allow": [
                f"{store_root(store_id)}.>",  # events, heartbeats, and:
                f"{store_root(store_id)}.sv.>",  # stored-value hold requests (kept explicit should the above narrow)
                f"$JS.API.CONSUMER.MSG.NEXT.{CLOUD_MESSAGES_STREAM}.{consumer}",
                f"$JS.API.CONSUMER.INFO.{CLOUD_MESSAGES_STREAM}.{consumer}",
                f"$JS.ACK.{CLOUD_MESSAGES_STREAM}.{consumer}.>",
            ]
        },
        "subscribe": {"allow": [f"{store_inbox_prefix(store_id)}.>", store_escrow_borrow(store_id)]},
        "allow_responses": {"max": 1, "expires": "5s"},
    }
