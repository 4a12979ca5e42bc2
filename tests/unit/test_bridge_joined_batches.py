"""One instance applies the batches its shards' workers fetched meanwhile together, as one apply, under every one
of their fences; a lost shard's batch is neither recorded nor acked, and the others still are
(cloud/messaging/bridge_shards.py: `BridgeShards._apply_joined`)."""
from __future__ import annotations

import asyncio

import pytest

from cloud.messaging.bridge_shards import BridgeShards, _Batch
from cloud.messaging.shard_leases import APPLYING, Fence, ShardLost


class Msg:
    def __init__(self, name: str) -> None:
        self.name, self.is_acked = name, False

    async def ack(self) -> None:
        assert not self.is_acked, f"{self.name} acked twice"
        self.is_acked = True


def fence(shard: int) -> Fence:
    return Fence(shards=4, shard=shard, owner="me", generation=7, lease_s=10.0)


def batch(shard: int, *names: str) -> _Batch:
    msgs = [Msg(n) for n in names]
    return _Batch(shard, msgs, msgs, fence(shard))


async def test_batches_fetched_while_one_applies_are_applied_together_under_all_their_fences():
    applied: list[tuple[list[str], tuple]] = []
    first_started, release = asyncio.Event(), asyncio.Event()

    async def apply(msgs):
        applied.append(([m.name for m in msgs], APPLYING.get()))
        first_started.set()
        if len(applied) == 1:
            await release.wait()  # the first apply is slow: the others' batches arrive meanwhile

    shards = BridgeShards(None, "", apply)
    b0, b1, b2 = batch(0, "a1", "a2"), batch(1, "b1"), batch(2, "c1", "c2")
    first = asyncio.create_task(shards._apply_joined(b0))
    await first_started.wait()
    rest = [asyncio.create_task(shards._apply_joined(b)) for b in (b1, b2)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *rest)
    assert applied == [(["a1", "a2"], (fence(0),)), (["b1", "c1", "c2"], (fence(1), fence(2)))]
    assert all(m.is_acked for b in (b0, b1, b2) for m in b.msgs[-1:])
    assert shards.stats["applied"] == 5


async def test_a_lost_shard_is_found_alone_and_only_its_batch_is_refused():
    applied: list[list[str]] = []
    gate = asyncio.Event()

    async def apply(msgs):
        fences = APPLYING.get()
        if len(msgs) == 1 and msgs[0].name == "hold":
            await gate.wait()
        elif any(f.shard == 1 for f in fences):  # shard 1 went to another instance: its fence fails the apply
            raise ShardLost("shard 1/4: lease generation 7 of me is no longer current")
        applied.append([m.name for m in msgs])

    shards = BridgeShards(None, "", apply)
    holder = asyncio.create_task(shards._apply_joined(batch(3, "hold")))
    await asyncio.sleep(0)
    b0, b1, b2 = batch(0, "a1"), batch(1, "b1", "b2"), batch(2, "c1")
    waiting = [asyncio.create_task(shards._apply_joined(b)) for b in (b0, b1, b2)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(holder, *waiting, return_exceptions=True)
    assert results[0] is None and results[1] is None and results[3] is None
    assert isinstance(results[2], ShardLost)
    assert applied == [["hold"], ["a1"], ["c1"]]  # the joint apply failed whole; each then alone
    assert b0.msgs[-1].is_acked and b2.msgs[-1].is_acked and not any(m.is_acked for m in b1.msgs)


async def test_an_error_of_the_joint_apply_reaches_every_batch_in_it():
    async def apply(msgs):
        raise RuntimeError("database gone")

    shards = BridgeShards(None, "", apply)
    with pytest.raises(RuntimeError, match="database gone"):
        await shards._apply_joined(batch(0, "a1"))
