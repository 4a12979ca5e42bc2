"""cloud.messaging.throttle: a store over its rate is gated at the lowest event it had dropped; junk gates nothing."""
from __future__ import annotations

from dataclasses import dataclass

from cloud.messaging.throttle import Throttle
from protocol import codec, subjects
from protocol.ids import IdFactory
from protocol.messages import StockMoved
from protocol.rate import StoreRateLimits


@dataclass
class Msg:
    subject: str
    data: bytes


IDS = IdFactory(lambda: 1_700_000_000_000, iter(range(1, 10**6)).__next__)


def moved(store: str, seq: int) -> StockMoved:
    return StockMoved(event_id=IDS.new(), store_id=store, seq=seq, wall_ms=1, mono_ms=1, sku="SKU-1",
                      delta=1, reason="receiving", shrinkage_reason="", on_hand_after=seq, reference="")


def frame(event: StockMoved) -> Msg:
    return Msg(subjects.store_event(event.store_id, event.KIND), codec.encode(event))


def throttle() -> Throttle:
    return Throttle(StoreRateLimits(events_per_s=1, events_burst=2), {"throttled": 0})


def test_a_store_over_its_rate_is_gated_at_its_first_dropped_event_and_its_later_ones_wait():
    t = throttle()
    events = [moved("S001", n) for n in (1, 2, 3, 4)]
    admitted = t.within_rates([frame(e) for e in events], now_ms=0)
    assert [codec.decode(m.data).seq for m in admitted] == [1, 2]
    assert t.gates.expecting("S001") == 3 and t.stats["throttled"] == 2
    # a second later the bucket has room for one: the store's newest event, admitted by the rate, is held
    assert t.in_order([codec.decode(m.data) for m in t.within_rates([frame(moved("S001", 5))], 1_000)], 1_000) == []
    assert t.stats["throttled"] == 3
    # its re-send from the head applies in order
    again = t.within_rates([frame(moved("S001", n)) for n in (3, 4)], 3_000)
    assert [e.seq for e in t.in_order([codec.decode(m.data) for m in again], 3_000)] == [3, 4]
    rows = t.notes(20_000)  # (one note per store every THROTTLE_NOTE_EVERY_MS)
    assert len(rows) == 1 and "3 frame(s) not applied now" in rows[0][2]


def test_junk_over_the_rate_gates_nothing():
    t = throttle()
    junk = Msg(subjects.store_event("S002", "sale.committed"), b"\xff" * 100)
    assert len(t.within_rates([junk, junk, junk], 0)) == 2
    assert not t.gates.gated("S002")
