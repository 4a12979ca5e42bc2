"""Every NATS subject, stream and consumer name, in one place.

Per-store subjects make per-store permissions possible: a store publishes only under
`fm.store.<its id>.>`, pulls only its own cloud-message consumer and reads replies only on its own inbox prefix.

  fm.store.<store>.evt.<kind>   edge events (JetStream stream FM_EDGE_EVENTS, deduplicated by Nats-Msg-Id)
  fm.store.<store>.hb           heartbeats (core NATS: a lost one is replaced by the next)
  fm.store.<store>.sv.<what>    stored-value holds asked for and released by the till (core NATS request/reply,
                                answered by the cloud's `stored_value` queue group on the store's own inbox)
  fm.store.<store>.escrow.borrow the cloud asks the store for more online escrow (core NATS request/reply: only that
                                store's box subscribes; it answers on the request's reply subject)
  fm.msg.<store>.<kind>         cloud messages to one store (stream FM_CLOUD_MESSAGES, consumer store_<store>)
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
EVENTS_CONSUMER = "cloud_events"  # the cloud's durable consumer over all edge events
MSG_ID_HEADER = "Nats-Msg-Id"


def _store(store_id: str) -> str:
    if not valid_store_id(store_id):
        raise ProtocolError(f"invalid store id {store_id!r} (letters, digits, '_' and '-', 1-32 chars)")
    return store_id


def store_root(store_id: str) -> str:
    return f"{ROOT}.store.{_store(store_id)}"


def store_event(store_id: str, kind: str) -> str:
    return f"{store_root(store_id)}.evt.{kind}"


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
