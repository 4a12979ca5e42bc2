"""No event can stall the bridge (issue 14): written as the attack and the fault, against the real stack.
(Stores S007 and S008, which no other test's edge box uses: their sequence numbers here start at 1 by hand.)

A store (here by hand, as a broken or hostile box would) publishes a sale whose lane holds a NUL, one whose lane is
17,000 characters, and garbage; an event that decodes but can never be applied is met too (the database refusing
its value, injected). Each is dead-lettered with its raw bytes and reason, the store is told it will never apply
(a `refused` business ack naming the event), and every other store's sales arrive within seconds. An event that
fails for a passing reason (the database briefly unreachable) is retried, not dead-lettered.
"""
from __future__ import annotations

import uuid

import asyncpg
import msgpack
import pytest
import pytest_asyncio

from protocol import codec, subjects
from protocol.messages import BusinessAck, Payment, Quantity, SaleCommitted, SaleLine
from tests.integration.harness import StoreLink, eventually, running_cloud

pytestmark = pytest.mark.integration
SKU = "EGG-EGGS-0160"


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"poison{uuid.uuid4().hex[:6]}-") as (services, url):
        yield services


def sale(link: StoreLink, lane: str = "1") -> SaleCommitted:
    return SaleCommitted(**link.next_envelope(), sale_id=f"P{uuid.uuid4().hex[:20]}", lane=lane,
                         lines=(SaleLine(sku=SKU, quantity=Quantity.pieces(1), amount_fen=990),), total_fen=990,
                         payments=(Payment(method="cash", amount_fen=990, reference=""),), member_id=None,
                         offline=False)


def with_lane(message: SaleCommitted, lane: str) -> bytes:
    """The frame of `message` with another lane: what no correct edge box sends (the record refuses it)."""
    body = msgpack.unpackb(codec.encode(message), raw=False)
    body["lane"] = lane
    return msgpack.packb(body, use_bin_type=True)


async def publish_frame(link: StoreLink, event_id: str, frame: bytes) -> None:
    await link.js.publish(subjects.store_event(link.store_id, SaleCommitted.KIND), frame,
                          headers={subjects.MSG_ID_HEADER: event_id})


async def applied(services, sale_ids: list[str]) -> bool:
    n = await services.cloud.db.fetchval("select count(*) from till_sales where sale_id = any($1::text[])", sale_ids)
    return n == len(sale_ids)


async def refused_acks(link: StoreLink, want: set[str]) -> dict[str, str]:
    got: dict[str, str] = {}
    for message in await link.commands(want=200, timeout_s=5):
        if isinstance(message, BusinessAck):
            got.update({a.event_id: a.detail for a in message.acks if a.result == "refused"})
    return {k: v for k, v in got.items() if k in want}


async def test_a_nul_a_17k_lane_and_garbage_do_not_stop_other_stores(cloud, stack):
    services = cloud
    async with StoreLink(stack, "S007") as hostile, StoreLink(stack, "S008") as other:
        nul, huge = sale(hostile), sale(hostile)
        await publish_frame(hostile, nul.event_id, with_lane(nul, "1\x00"))
        await publish_frame(hostile, huge.event_id, with_lane(huge, "L" * 17_000))
        garbage_id = f"01GARBAGE{uuid.uuid4().hex[:17].upper()}"
        await publish_frame(hostile, garbage_id, b"\xc1 not msgpack")
        fine = [sale(other) for _ in range(3)]
        for message in fine:
            await other.publish(message)
        assert await eventually(lambda: applied(services, [m.sale_id for m in fine]), timeout_s=10), \
            "another store's sales were held up"
        dead = await services.cloud.db.fetch("select reason, raw from dead_letters where subject like '%.S007.%' "
                                             "order by id desc limit 3")
        reasons = " | ".join(r["reason"] for r in dead)
        assert "control character '\\x00'" in reasons and "not a valid msgpack frame" in reasons, reasons
        assert b"\xc1 not msgpack" in [bytes(r["raw"]) for r in dead]
        told = await refused_acks(hostile, {nul.event_id, huge.event_id, garbage_id})
        assert set(told) == {nul.event_id, huge.event_id, garbage_id}, told  # the store stops re-sending them
        assert "\x00" not in told[nul.event_id] and len(told[huge.event_id]) <= 500


async def test_an_event_the_database_refuses_is_isolated_and_a_passing_failure_is_retried(cloud, stack, monkeypatch):
    services = cloud
    bridge = services.bridge
    real_record = bridge._record
    poison_sale, flaky_sale, fails_left = "", "", {"flaky": 2}

    async def record(conn, events):
        if any(getattr(e, "sale_id", None) == poison_sale for e in events):  # a value PostgreSQL will never take
            raise asyncpg.NumericValueOutOfRangeError("value out of range (injected)")
        if any(getattr(e, "sale_id", None) == flaky_sale for e in events) and fails_left["flaky"] > 0:
            fails_left["flaky"] -= 1  # the database gone for a moment
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation (injected)")
        await real_record(conn, events)
    monkeypatch.setattr(bridge, "_record", record)
    async with StoreLink(stack, "S007") as store, StoreLink(stack, "S008") as other:
        before, poison, flaky, after = sale(store), sale(store), sale(store), sale(store)
        poison_sale, flaky_sale = poison.sale_id, flaky.sale_id
        for message in (before, poison, flaky, after):
            await store.publish(message)
        others = [sale(other) for _ in range(2)]
        for message in others:
            await other.publish(message)
        good = [before.sale_id, flaky.sale_id, after.sale_id, *(m.sale_id for m in others)]
        assert await eventually(lambda: applied(services, good), timeout_s=20), "the events around the poison stalled"
        assert fails_left["flaky"] == 0  # it failed, was retried, and applied: not dead-lettered
        assert not await applied(services, [poison.sale_id])
        reason = await services.cloud.db.fetchval(
            "select reason from dead_letters where subject like '%.S007.%' order by id desc limit 1")
        assert "NumericValueOutOfRangeError" in reason
        told = await refused_acks(store, {poison.event_id, flaky.event_id})
        assert set(told) == {poison.event_id}
