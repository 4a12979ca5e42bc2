"""`freshmesh stack --check`: prove the stack works end to end, saying what was verified.

1. PostgreSQL answers a query over asyncpg.
2. JetStream: the store publishes an event on its own subject (deduplicated by Nats-Msg-Id), the cloud pulls
   and decodes it; the cloud sends a cloud message that the store pulls from its own consumer.
3. Authorization: the store is refused on another store's subject and another store's consumer.
"""
from __future__ import annotations

import asyncio
import os

import asyncpg
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from cloud.messaging import streams
from protocol import codec, subjects
from protocol.ids import IdFactory
from protocol.messages import Ack, BusinessAck, PickupCompleted


def _ids(clock_ms) -> IdFactory:
    return IdFactory(clock_ms, lambda: int.from_bytes(os.urandom(10), "big"))


async def check_postgres(database_url: str) -> str:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        total = await conn.fetchval("select $1::int + $2::int", 40, 2)
        version = await conn.fetchval("show server_version")
    finally:
        await conn.close()
    if total != 42:
        raise AssertionError(f"PostgreSQL computed {total} for 40 + 2")
    return f"PostgreSQL {version}: select 40 + 2 = {total}"


async def connect_store(address: str, store_id: str, password: str, errors: list[str]):
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await nats.connect(address, user=f"store_{store_id}", password=password, error_cb=on_error,
                              inbox_prefix=subjects.store_inbox_prefix(store_id), allow_reconnect=False,
                              connect_timeout=5)


def _refused(errors: list[str], subject: str) -> bool:
    """nats-server answers 'Permissions Violation for Publish to "<subject>"' (nats-py lowercases it)."""
    return any("permissions violation" in e.lower() and subject.lower() in e.lower() for e in errors)


async def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def check_nats(nats_url: str, address: str, store_id: str, store_password: str, other_store: str) -> list[str]:
    import time
    now_ms = lambda: time.time_ns() // 1_000_000  # noqa: E731 - the shell reads the clock
    ids = _ids(now_ms)
    report = []
    cloud = await nats.connect(nats_url, connect_timeout=5, allow_reconnect=False)
    errors: list[str] = []
    store = await connect_store(address, store_id, store_password, errors)
    try:
        js = cloud.jetstream()
        await streams.ensure_streams(js)
        await streams.ensure_store_consumer(js, store_id)
        await streams.ensure_store_consumer(js, other_store)

        event = PickupCompleted(event_id=ids.new(), store_id=store_id, seq=1, wall_ms=now_ms(), mono_ms=0,
                                order_id=ids.new(), pickup_code="123456", lane="1")
        store_js = store.jetstream()
        headers = {subjects.MSG_ID_HEADER: event.event_id}
        first = await store_js.publish(subjects.store_event(store_id, event.KIND), codec.encode(event), headers=headers)
        again = await store_js.publish(subjects.store_event(store_id, event.KIND), codec.encode(event), headers=headers)
        if first.duplicate or not again.duplicate:
            raise AssertionError("JetStream did not deduplicate a republished event id")
        report.append(f"JetStream: store {store_id} published {event.KIND} (seq {first.seq}); "
                      "the same Nats-Msg-Id again was deduplicated")

        # an ephemeral consumer of that one subject, from its last message: the stream holds every store's events
        # (some from hostile stores, undecodable on purpose in the tests), and the bridge's own consumers are
        # left alone
        pull = await js.pull_subscribe(subjects.stored_event(store_id, event.KIND), stream=subjects.EVENTS_STREAM,
                                       config=ConsumerConfig(deliver_policy=DeliverPolicy.LAST,
                                                             ack_policy=AckPolicy.EXPLICIT))
        (msg,) = await pull.fetch(1, timeout=5)
        got = codec.decode(msg.data)
        await msg.ack()
        await pull.unsubscribe()
        if got.event_id != event.event_id:
            raise AssertionError(f"JetStream gave {got.event_id} as the last event on its subject, not {event.event_id}")
        report.append(f"JetStream: cloud pulled and decoded {got.KIND} {got.event_id} from {subjects.EVENTS_STREAM}")

        ack = BusinessAck(event_id=ids.new(), store_id=store_id, seq=1, wall_ms=now_ms(), mono_ms=0,
                          acks=(Ack(event_id=event.event_id, seq=event.seq, result="ok", detail=""),))
        await js.publish(subjects.cloud_message_subject(store_id, ack.KIND), codec.encode(ack),
                         headers={subjects.MSG_ID_HEADER: ack.event_id})
        inbound = await store_js.pull_subscribe_bind(durable=subjects.cloud_messages_consumer(store_id),
                                                      stream=subjects.CLOUD_MESSAGES_STREAM)
        found = False
        while not found:
            (msg,) = await inbound.fetch(1, timeout=5)
            found = codec.decode(msg.data).event_id == ack.event_id
            await msg.ack()
        report.append(f"JetStream: store {store_id} pulled its business ack from consumer "
                      f"{subjects.cloud_messages_consumer(store_id)} "
                      f"(as its own user, on inbox {subjects.store_inbox_prefix(store_id)})")

        forged = subjects.store_event(other_store, event.KIND)
        await store.publish(forged, codec.encode(event))
        await store.flush()
        if not await wait_for(lambda: _refused(errors, forged)):
            raise AssertionError(f"store {store_id} was not refused on {forged}; errors: {errors}")
        report.append(f"Authorization: store {store_id} refused on {forged} "
                      f"({next(e for e in errors if forged.lower() in e.lower())})")

        other_consumer = subjects.cloud_messages_consumer(other_store)
        other_next = f"$JS.API.CONSUMER.MSG.NEXT.{subjects.CLOUD_MESSAGES_STREAM}.{other_consumer}"
        await store.publish(other_next, b"1")
        await store.flush()
        if not await wait_for(lambda: _refused(errors, other_next)):
            raise AssertionError(f"store {store_id} was not refused pulling {other_store}'s cloud messages")
        report.append(f"Authorization: store {store_id} refused pulling {other_store}'s cloud-message consumer")
    finally:
        await store.close()
        await cloud.close()
    return report


async def run_check(nats_url: str, nats_address: str, database_url: str, store_password_of) -> list[str]:
    report = [await check_postgres(database_url)]
    report += await check_nats(nats_url, nats_address, "S001", store_password_of("S001"), "S002")
    return report
