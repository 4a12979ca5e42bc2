"""The scale-out suite's rate: counted only while every instance holds shards, away from the start and the tail."""
from loadtest.scaleout import _spread_rate, _summary


def samples(rows):
    return [{"t": t, "applied": a, "holders": h} for t, a, h in rows]


def test_the_rate_counts_only_the_samples_where_every_instance_holds_shards():
    # 0-2 s one instance held everything (fast start on a warm shard), then both: 100 events/s
    rows = samples([(0.0, 0, 1), (1.0, 300, 1), (2.0, 600, 1), (3.0, 700, 2), (4.0, 800, 2), (5.0, 900, 2),
                    (6.0, 1000, 2)])
    rate = _spread_rate(rows, instances=2, total=1000)
    assert rate == {"per_s": 100, "window_s": 2.0, "window_events": 200}  # 700 -> 900: 1000 is past 95 %


def test_no_window_gives_no_rate_and_no_scaling():
    rows = samples([(0.0, 0, 1), (1.0, 1000, 1)])
    assert _spread_rate(rows, instances=2, total=1000)["per_s"] is None
    assert _summary({1: {"per_s": 10}, 2: {"per_s": None}}, "events_per_s")["scaling"] is None
    assert _summary({1: {"per_s": 10}, 2: {"per_s": 19}}, "events_per_s")["scaling"] == 0.95
