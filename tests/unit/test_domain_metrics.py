"""The chain's state as Prometheus metrics (cloud/http/domain_metrics.py), from real console snapshots (pure)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cloud.console.snapshot import ConsoleMemory, build_snapshot
from cloud.http.domain_metrics import ScrapeInputs, families, reason_class
from tests.unit.test_console import CFG, T0, actor, inputs, registry_row, stats


class _C:
    def __init__(self, i):
        self.i = i

    def collect(self):
        return families(self.i)


def samples(scrape: ScrapeInputs) -> dict[tuple, float]:
    registry = CollectorRegistry()
    registry.register(_C(scrape))
    text = generate_latest(registry).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def snapshot_of(now, **kw):
    return build_snapshot(inputs(now, **kw), ConsoleMemory(), CFG)


def test_store_state_is_exported_and_an_offline_stores_last_values_are_not_passed_off_as_current():
    snap = snapshot_of(T0, registry=[
        registry_row("S001", T0 - 1000, lag=12_000, outbox=4, devices={"scale": "ok", "scanner": "down"}),
        registry_row("S002", T0 - 95_000, online=False, lag=7, outbox=9, offline_since=T0 - 90_000)])
    got = samples(ScrapeInputs(version="9.9", snapshot=snap))
    assert got[("freshmesh_store_online", (("store", "S001"),))] == 1
    assert got[("freshmesh_store_lag_ms", (("store", "S001"),))] == 12_000
    assert got[("freshmesh_store_outbox_depth", (("store", "S001"),))] == 4
    assert got[("freshmesh_store_device_state", (("device", "scanner"), ("state", "down"), ("store", "S001")))] == 1
    assert got[("freshmesh_store_online", (("store", "S002"),))] == 0
    assert got[("freshmesh_store_offline_seconds", (("store", "S002"),))] == 90
    assert got[("freshmesh_store_heartbeat_age_seconds", (("store", "S002"),))] == 95
    # its lag and devices are last-known: not exported as if they were now
    assert ("freshmesh_store_lag_ms", (("store", "S002"),)) not in got
    assert not [k for k in got if k[0] == "freshmesh_store_device_state" and ("store", "S002") in k[1]]
    # a store never heard from is said as such (S003: the registry answered, S003 never came)
    assert ("freshmesh_store_unseen_seconds", (("store", "S003"),)) in got
    assert got[("freshmesh_build_info", (("version", "9.9"),))] == 1


def test_actor_health_restarts_queue_batch_and_flash_units():
    memory = ConsoleMemory()
    a = [actor("p-stock_pool-0", restarts=0), actor("p-flash_sale-F1", state="DEAD")]
    build_snapshot(inputs(T0, actors=a, actor_stats={"p-stock_pool-0": stats(commands=10, queue=3)}), memory, CFG)
    a[0] = actor("p-stock_pool-0", restarts=2, pid=101)
    snap = build_snapshot(inputs(T0 + 1000, actors=a, actor_stats={"p-stock_pool-0": stats(commands=4, queue=5)},
                                 business=None), memory, CFG)
    snap["business"] = {"flash": [{"sale_id": "F1", "sku": "K1", "quantity": 100, "sold": 30, "leased": 20,
                                   "remaining": 50}]}
    got = samples(ScrapeInputs(version="1", snapshot=snap))
    pool = (("actor", "p-stock_pool-0"), ("kind", "stock_pool"), ("shard", "0"))
    assert got[("freshmesh_actor_restarts_total", pool)] == 2
    assert got[("freshmesh_actor_health", (*pool[:1], ("health", "restarted"), *pool[1:]))] == 1
    assert got[("freshmesh_actor_queue", pool)] == 5 and got[("freshmesh_actor_batch", pool)] == 3
    dead = (("actor", "p-flash_sale-F1"), ("health", "dead"), ("kind", "flash_sale"), ("shard", "F1"))
    assert got[("freshmesh_actor_health", dead)] == 1
    for state, n in (("sold", 30), ("leased", 20), ("remaining", 50)):
        assert got[("freshmesh_flash_units", (("sale", "F1"), ("sku", "K1"), ("state", state)))] == n


def test_jetstream_dead_letters_and_sources_that_could_not_be_read():
    got = samples(ScrapeInputs(
        version="1", snapshot=None,
        consumers=[{"stream": "FM_EDGE_EVENTS", "consumer": "cloud_events", "pending": 7, "ack_pending": 2,
                    "redelivered": 1, "acked_stream_seq": 1234}],
        dead_letters=[{"store_id": "S044", "reason": "not a valid msgpack frame: ExtraData: x", "count": 2},
                      {"store_id": "S044", "reason": "escrow 11, more than the 10 the store reported on hand",
                       "count": 3},
                      {"store_id": "S044", "reason": "pickup.completed: order O1 not allocated to this store",
                       "count": 1},
                      {"store_id": "S044", "reason": "could not be applied: KeyError: 'x'", "count": 1}]))
    key = (("consumer", "cloud_events"), ("stream", "FM_EDGE_EVENTS"))
    assert got[("freshmesh_jetstream_consumer_pending", key)] == 7
    assert got[("freshmesh_jetstream_consumer_acked_stream_seq_total", key)] == 1234
    assert got[("freshmesh_dead_letters", (("reason", "malformed"), ("store", "S044")))] == 2
    assert got[("freshmesh_dead_letters", (("reason", "refused"), ("store", "S044")))] == 4
    assert got[("freshmesh_dead_letters", (("reason", "unapplicable"), ("store", "S044")))] == 1
    assert got[("freshmesh_scrape_source_up", (("source", "console"),))] == 0
    assert got[("freshmesh_scrape_source_up", (("source", "jetstream"),))] == 1
    assert not [k for k in got if k[0].startswith("freshmesh_store_")]  # no zeros made up for a missing source


def test_reason_classes():
    assert reason_class("frame of 5000000 bytes exceeds 1048576") == "malformed"
    assert reason_class("sale.committed: schema_version 9 is not supported (this build reads 1)") == "malformed"
    assert reason_class("event for store S002 arrived on store S001's subject") == "malformed"
    assert reason_class("member 'M-made-up-0001', who does not exist") == "refused"
