"""Production configuration as pure code: shard counts from the environment and the shard-map judgement, and the
streams' bounds (bytes and age) the cloud creates them with."""
from __future__ import annotations

import pytest
from nats.js.api import DiscardPolicy

from cloud.messaging import streams
from cloud.runtime.shard_map import ShardConfig, ShardConfigError, judge_shard_map


def test_shard_counts_from_the_environment() -> None:
    assert ShardConfig.from_env({}).counts() == {"stock_pool": 2, "member_ledger": 2}
    config = ShardConfig.from_env({"FRESHMESH_STOCK_SHARDS": "8", "FRESHMESH_LEDGER_SHARDS": "4"})
    assert config.counts() == {"stock_pool": 8, "member_ledger": 4}
    assert config.all_stock_pools()[-1] == "stock_pool-7" and len(config.all_member_ledgers()) == 4
    assert {config.stock_pool_name(f"SKU{i}") for i in range(200)} == set(config.all_stock_pools())


@pytest.mark.parametrize("value", ["0", "-3", "two", "1.5", "100000"])
def test_a_bad_shard_count_is_refused_by_name(value: str) -> None:
    with pytest.raises(ShardConfigError, match="FRESHMESH_LEDGER_SHARDS"):
        ShardConfig.from_env({"FRESHMESH_LEDGER_SHARDS": value})


def test_the_shard_map_is_recorded_kept_or_refused() -> None:
    four = ShardConfig(stock_pool=4, member_ledger=2)
    assert judge_shard_map(None, four, state_held=False) == "record"
    assert judge_shard_map({"stock_pool": 4, "member_ledger": 2}, four, state_held=True) == "keep"
    # other counts while the old shards hold nothing: nothing to move, the new counts are recorded
    assert judge_shard_map({"stock_pool": 2, "member_ledger": 2}, four, state_held=False) == "record"
    with pytest.raises(ShardConfigError) as refused:
        judge_shard_map({"stock_pool": 2, "member_ledger": 2}, four, state_held=True)
    said = str(refused.value)
    assert "stock_pool=2" in said and "stock_pool=4" in said and "FRESHMESH_STOCK_SHARDS" in said


def test_streams_are_bounded_in_bytes_and_age() -> None:
    bounds = streams.StreamBounds.from_env({})
    for config in (streams.events_stream_config(bounds), streams.cloud_messages_stream_config(bounds)):
        assert config.max_bytes and config.max_bytes > 0, config.name
        assert config.max_age and config.max_age >= streams.DUPLICATE_WINDOW_S, config.name
        assert config.max_msg_size == bounds.max_msg_size
    assert streams.events_stream_config(bounds).discard == DiscardPolicy.OLD  # a store re-sends from its outbox
    assert streams.cloud_messages_stream_config(bounds).discard == DiscardPolicy.NEW  # the only copy: refuse, loudly
    configured = streams.StreamBounds.from_env({"FRESHMESH_EVENTS_MAX_AGE_S": "86400",
                                                "FRESHMESH_CLOUD_MESSAGES_MAX_BYTES": "1048576"})
    assert streams.events_stream_config(configured).max_age == 86400
    assert streams.cloud_messages_stream_config(configured).max_bytes == 1048576
    assert streams.events_stream_config(bounds).num_replicas == 1
    clustered = streams.StreamBounds.from_env({"FRESHMESH_STREAM_REPLICAS": "3"})
    assert {streams.events_stream_config(clustered).num_replicas,
            streams.cloud_messages_stream_config(clustered).num_replicas} == {3}


@pytest.mark.parametrize("env", [{"FRESHMESH_EVENTS_MAX_BYTES": "0"}, {"FRESHMESH_CLOUD_MESSAGES_MAX_AGE_S": "-1"},
                                 {"FRESHMESH_EVENTS_MAX_AGE_S": "60"}, {"FRESHMESH_STREAM_REPLICAS": "2"}])
def test_an_unbounded_or_impossible_stream_limit_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(env))):
        streams.StreamBounds.from_env(env)


def _nats_config_args(argv: list[str]):
    import argparse

    from cloud.deploy.cli import add_arguments
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["nats-config", *argv])


def test_stores_csv_is_read_by_column_and_bad_ids_are_named(tmp_path) -> None:
    from cloud.deploy.cli import read_stores
    good = tmp_path / "stores.csv"
    good.write_text("name,store_id\nEast,S101\nWest,S102\n\n")
    assert read_stores(good) == ["S101", "S102"]
    bare = tmp_path / "bare.csv"
    bare.write_text("S201\nS202\n")
    assert read_stores(bare) == ["S201", "S202"]
    bad = tmp_path / "bad.csv"
    bad.write_text("store_id\nS301\nS 302\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: invalid store id 'S 302'"):
        read_stores(bad)
    twice = tmp_path / "twice.csv"
    twice.write_text("store_id\nS401\nS401\n")
    with pytest.raises(ValueError, match="appears twice"):
        read_stores(twice)


def test_generation_keeps_passwords_and_refuses_a_file_store_too_small(tmp_path) -> None:
    import json

    from cloud.deploy.cli import generate
    out = tmp_path / "out"
    generate(_nats_config_args(["--count", "2", "--out", str(out)]))
    first = json.loads((out / "boxes" / "S001.box.json").read_text())["nats_password"]
    cloud_env = (out / "cloud.env").read_text()
    generate(_nats_config_args(["--count", "3", "--out", str(out)]))  # one more store: nobody else's changes
    assert json.loads((out / "boxes" / "S001.box.json").read_text())["nats_password"] == first
    assert (out / "cloud.env").read_text() == cloud_env and (out / "leaf" / "S003.conf").exists()
    with pytest.raises(ValueError, match="max_file_store"):
        generate(_nats_config_args(["--count", "1", "--out", str(tmp_path / "small"), "--max-file-store", "1GB"]))
    with pytest.raises(ValueError, match="12XB"):
        generate(_nats_config_args(["--count", "1", "--out", str(tmp_path / "typo"), "--max-file-store", "12XB"]))
