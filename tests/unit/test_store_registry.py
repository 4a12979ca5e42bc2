"""StoreRegistry: liveness, lag p99 (cached until the store's next event) and one store's view."""
from actors.store_registry import StoreRegistry


def test_view_of_one_store_and_of_all():
    r = StoreRegistry(offline_after_ms=5_000)
    r.heartbeat("S002", 1_000, outbox_depth=3, last_event_seq=9, last_acked_seq=7, devices={"scale": "ok"})
    r.heartbeat("S001", 1_000, outbox_depth=0, last_event_seq=0, last_acked_seq=0, devices={})
    r.event("S002", seq=8, wall_ms=900, now_ms=1_000)
    assert [s["store_id"] for s in r.view(2_000)] == ["S001", "S002"]
    (one,) = r.view(2_000, "S002")
    assert one["online"] and one["outbox_depth"] == 3 and one["sequence_gap"] == 1 and one["lag_ms"] == 100
    assert r.view(2_000, "S999") == []
    (late,) = r.view(6_001, "S002")
    assert not late["online"] and late["offline_since_ms"] == 1_000


def test_lag_p99_follows_new_events():
    r = StoreRegistry()
    for i in range(100):
        r.event("S001", seq=i + 1, wall_ms=0, now_ms=10 + i)  # lags 10..109
    assert r.view(200, "S001")[0]["lag_p99_ms"] == 108
    assert r.view(200, "S001")[0]["lag_p99_ms"] == 108  # asked again: the same (cached)
    r.event("S001", seq=101, wall_ms=0, now_ms=5_000)
    assert r.view(200, "S001")[0]["lag_p99_ms"] == 109  # a new event is seen at once
    for i in range(20):
        r.event("S001", seq=102 + i, wall_ms=0, now_ms=5_000)
    assert r.view(200, "S001")[0]["lag_p99_ms"] == 5_000
