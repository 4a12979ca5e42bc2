"""The pure parts of sharing the edge events among bridge instances (cloud/messaging/bridge_shards.py)."""
from __future__ import annotations

import pytest

from cloud.messaging.bridge_shards import (
    BRIDGE_SHARDS,
    consumer_name,
    consumer_names,
    current_consumers,
    fair_share,
    parse_consumer,
    shard_of_store,
    shard_of_subject,
)
from cloud.messaging.shard_leases import LeaseTimes, locally_valid_until, stalled
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


def test_a_stored_event_is_in_the_shard_its_partition_token_names_and_an_older_one_in_its_stores():
    """Stored since partitioning: the server's partition token decides (the bridge never recomputes it). Stored
    before: the store's partition by the server's rule, so that a store's older and newer events meet in one
    shard."""
    for store in [f"S{i:03d}" for i in range(1, 60)]:
        k = subjects.partition_of_store(store)
        stored = f"fm.store.{store}.evts.{k}.sale.committed"
        assert shard_of_subject(stored) == k == shard_of_subject(subjects.store_event(store, "sale.committed"))
        assert subjects.partition_of_subject(stored) == k
        assert subjects.published_subject(stored) == subjects.store_event(store, "sale.committed")
    assert shard_of_subject("fm.store.S001.evts.3.sale.committed") == 3  # the token, whatever the store
    assert subjects.partition_of_subject("fm.store.S001.evt.sale.committed") is None
    assert subjects.published_subject("fm.store.S001.evt.x") == "fm.store.S001.evt.x"
    assert subjects.published_subject("fm.store.S001.evts.x.y") == "fm.store.S001.evts.x.y"  # no token: as it is


def test_the_partition_is_32_bit_fnv1a_of_the_store_id():
    """The NATS server's partition function (its known FNV-1a vectors); tests/integration/test_event_partitions.py
    holds it equal to what a real server stores."""
    assert subjects.partition_of_store("", 2**32 - 1) == 0x811C9DC5 % (2**32 - 1)
    assert subjects.partition_of_store("a", 2**32 - 1) == 0xE40C292C % (2**32 - 1)
    assert subjects.partition_of_store("foobar", 2**32 - 1) == 0xBF9CF968 % (2**32 - 1)


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


def test_each_holding_of_a_shard_has_its_own_consumer_and_the_newest_is_current():
    assert consumer_name(2, 4, 7) == "cloud_events_p2of4_g7"
    assert parse_consumer("cloud_events_p2of4_g7") == (2, 4, 7)
    assert parse_consumer("cloud_events_p2of4") == (2, 4, 0)  # generation 0: named without one
    assert parse_consumer("cloud_events") is None and parse_consumer("store_S001") is None
    assert parse_consumer("cloud_events_2of4_g7") is None  # before partitioning: another family, never current
    names = ["cloud_events_p0of4_g3", "cloud_events_p0of4_g12", "cloud_events_p1of4", "cloud_events_p1of8_g99",
             "cloud_events_p3of4_g2", "cloud_events_2of4_g40", "store_S001"]
    assert current_consumers(names) == {0: "cloud_events_p0of4_g12", 1: "cloud_events_p1of4",
                                        3: "cloud_events_p3of4_g2"}


def test_lease_times_and_the_local_view_of_a_lease():
    times = LeaseTimes.from_env({"FRESHMESH_BRIDGE_LEASE_S": "3", "FRESHMESH_BRIDGE_STALL_S": "20"})
    assert (times.lease_s, times.stall_s, times.renew_every_s) == (3.0, 20.0, 1.0)
    assert LeaseTimes.from_env({}) == LeaseTimes()
    with pytest.raises(ValueError, match="positive"):
        LeaseTimes(lease_s=0)
    # a renewal sent at 100 s is ours until 103 s by our clock at the latest (PostgreSQL stamped it later)
    assert locally_valid_until(100.0, 3.0) == 103.0
    assert stalled(10.0, 31.0, 20.0) and not stalled(10.0, 30.0, 20.0)
