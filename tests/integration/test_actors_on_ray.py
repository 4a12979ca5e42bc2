"""The actors on real Ray + PostgreSQL: durability, recovery after a kill -9, exact flash sale, no double apply."""
from __future__ import annotations

import asyncio
import os
import random
import signal

import asyncpg
import pytest

from actors.base import AuditQuery
from actors.flash_lease import LeaseHolder
from actors.flash_sale import LeaseSync, OpenSale, SaleStatusQuery
from actors.member_ledger import MemberQuery, TopUp
from actors.stock_pool import Confirm, Grant, PositionsQuery, Reserve
from cloud.runtime.calls import ActorCalls
from cloud.runtime.shard_map import ShardConfig

pytestmark = pytest.mark.integration


async def wait_until(predicate, timeout_s=20.0):
    for _ in range(int(timeout_s / 0.1)):
        if await predicate():
            return True
        await asyncio.sleep(0.1)
    return False


async def kill_and_wait_restart(client, name):
    pid = (await client.info(name))["pid"]
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: _pid_changed(client, name, pid))
    return pid


async def _pid_changed(client, name, old):
    try:
        return (await client.info(name))["pid"] != old
    except Exception:  # noqa: BLE001 - restarting
        return False


async def test_reserve_confirm_expire_and_state_survives_a_crash(stack, ray_runtime, actor_prefix):
    client = ActorCalls(stack.database_url, expire_every_ms=100)
    pool = ShardConfig(prefix=actor_prefix).stock_pool_name("EGGS")
    results = await client.call(pool, [
        Grant(id="g1", store="S001", sku="EGGS", qty=10),
        Reserve(id="r1", reservation_id="R1", order_id="O1", store="S001", sku="EGGS", qty=3),
        Reserve(id="r2", reservation_id="R2", order_id="O2", store="S001", sku="EGGS", qty=4, ttl_ms=300),
        Confirm(id="c1", reservation_id="R1", sku="EGGS"),
    ])
    assert [r.status for r in results] == ["ok"] * 4
    confirmed = results[3]
    positions = PositionsQuery(store="S001")

    async def expired():
        view = (await client.ask(pool, positions))[0]
        return view["pending"] == 0
    assert await wait_until(expired), "the unpaid reservation did not expire"
    before = await client.ask(pool, positions)
    assert (before[0]["confirmed"], before[0]["available"]) == (3, 7)

    await kill_and_wait_restart(client, pool)
    assert await client.ask(pool, positions) == before
    (retried,) = await client.call(pool, [Confirm(id="c1", reservation_id="R1", sku="EGGS")])
    assert retried.status == "exists" and retried.first == confirmed  # the first answer, rebuilt from the journal
    assert await client.ask(pool, AuditQuery()) == []


async def test_flash_sale_of_100_with_1000_attempts_from_300_members_sells_exactly_100(stack, ray_runtime, actor_prefix):
    client = ActorCalls(stack.database_url)
    gate = ShardConfig(prefix=actor_prefix).flash_sale_name("F100")
    import time
    now = lambda: time.time_ns() // 1_000_000  # noqa: E731
    start = now()
    opened = await client.call(gate, [OpenSale(id="open", sale_id="F100", sku="EGGS", quantity=100, price_fen=990,
                                               starts_ms=start - 1000, ends_ms=start + 600_000, per_member_limit=1,
                                               rate_per_s=100_000)])
    assert opened[0].status == "ok"
    rng = random.Random(11)
    attempts = [(f"o{i}", f"m{rng.randint(1, 300)}") for i in range(1000)]
    member_of = dict(attempts)
    accepted: dict[str, str] = {}

    async def worker(w: int):
        first = (await client.call(gate, [LeaseSync(id=f"w{w}-init", worker=f"w{w}", want=10)]))[0]
        assert first.succeeded, first
        holder = LeaseHolder(f"w{w}", first.settled.values, now(), block=10)
        mine = attempts[w::4]
        n = 0
        for i in range(0, len(mine), 25):
            for order_id, member in mine[i:i + 25]:
                holder.admit(order_id, member, 1, now())
            n += 1
            verdicts = holder.take_results((await client.call(gate, [holder.sync_command(f"w{w}-{n}", now())]))[0])
            accepted.update({o: member_of[o] for o, v in verdicts.items() if v == "accepted"})
            holder.drain_queue(now())
        for _ in range(5):  # requests waiting for units another worker holds get them (or sold out), then a verdict
            n += 1
            verdicts = holder.take_results((await client.call(gate, [holder.sync_command(f"w{w}-{n}", now())]))[0])
            accepted.update({o: member_of[o] for o, v in verdicts.items() if v == "accepted"})
            holder.drain_queue(now())

    await asyncio.gather(*(worker(w) for w in range(4)))
    status = await client.ask(gate, SaleStatusQuery())
    assert status["sold"] == 100 == len(accepted)
    members = list(accepted.values())
    assert len(members) == len(set(members)), "a member bought more than one"
    assert await client.ask(gate, AuditQuery()) == []


async def test_kill_mid_batch_loses_nothing_and_applies_nothing_twice(stack, ray_runtime, actor_prefix):
    client = ActorCalls(stack.database_url)
    shards = ShardConfig(prefix=actor_prefix)
    pool, ledger = shards.stock_pool_name("RICE"), shards.member_ledger_name("M1")
    assert (await client.call(pool, [Grant(id="g", store="S001", sku="RICE", qty=1_000_000)]))[0].status == "ok"
    n = 120
    batches = [[Reserve(id=f"r{b}-{i}", reservation_id=f"R{b}-{i}", order_id=f"O{b}-{i}", store="S001", sku="RICE",
                        qty=1) for i in range(300)] for b in range(n)]
    topups = [[TopUp(id=f"t{b}-{i}", member="M1", amount_fen=7) for i in range(300)] for b in range(n)]
    done = {pool: 0, ledger: 0}

    async def send(name, work):
        for batch in work:
            results = await client.call(name, batch)
            assert all(r.succeeded for r in results), results[:3]  # ok, or ok the first time (a retry)
            done[name] += 1

    senders = asyncio.gather(send(pool, batches), send(ledger, topups))
    while min(done.values()) < 3:  # kill once both are well under way, never after they finished
        await asyncio.sleep(0.01)
    assert not senders.done() and max(done.values()) < n, "the work finished before the kill: make it bigger"
    await kill_and_wait_restart(client, pool)
    await kill_and_wait_restart(client, ledger)
    await senders
    assert (await client.info(pool))["reconstructed"] and (await client.info(ledger))["reconstructed"]
    view = (await client.ask(pool, PositionsQuery(store="S001")))[0]
    assert view["pending"] == n * 300, "a reservation was lost or applied twice"
    member = await client.ask(ledger, MemberQuery(member="M1", now_ms=0))
    assert member["stored_value_fen"] == n * 300 * 7, "a top-up was lost or applied twice"
    assert await client.ask(pool, AuditQuery()) == [] and await client.ask(ledger, AuditQuery()) == []
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetchval("select count(*) from actor_journal where actor = $1", pool)
        assert rows == 1 + n * 300  # the grant and each reservation, journaled exactly once
    finally:
        await conn.close()
