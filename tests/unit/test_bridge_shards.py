"""The pure parts of sharing the edge events among bridge instances (cloud/messaging/bridge_shards.py)."""
from __future__ import annotations

from cloud.messaging.bridge_shards import (
    BRIDGE_SHARDS,
    consumer_name,
    consumer_names,
    fair_share,
    shard_of_store,
    shard_of_subject,
)
from protocol import subjects


def test_a_store_is_in_one_shard_whatever_the_subject_of_its_event():
    for store in [f"S{i:03d}" for i in range(1, 60)]:
        shard = shard_of_store(store)
        assert 0 <= shard < BRIDGE_SHARDS
        for kind in ("sale.committed", "stock.moved", "pickup.completed"):
            assert shard_of_subject(subjects.store_event(store, kind)) == shard


def test_the_stores_spread_over_every_shard():
    assert {shard_of_store(f"S{i:03d}") for i in range(1, 60)} == set(range(BRIDGE_SHARDS))


def test_a_subject_naming_no_store_goes_to_one_shard_only():
    assert shard_of_subject("fm.store") == 0 and shard_of_subject("junk.subject.here.x") == 0


def test_fair_share_covers_every_shard_and_never_asks_for_none():
    for members in range(0, 10):
        share = fair_share(BRIDGE_SHARDS, members)
        assert share >= 1 and share * max(members, 1) >= BRIDGE_SHARDS
    assert fair_share(4, 1) == 4 and fair_share(4, 2) == 2 and fair_share(4, 3) == 2 and fair_share(4, 8) == 1


def test_shard_consumers_are_named_apart_from_each_other_and_by_the_count():
    names = {consumer_name(k) for k in range(BRIDGE_SHARDS)} | {consumer_name(0, 8)}
    assert len(names) == BRIDGE_SHARDS + 1
    assert all(n.startswith(subjects.EVENTS_CONSUMER) for n in names)
    assert consumer_names() == [consumer_name(k) for k in range(BRIDGE_SHARDS)]
