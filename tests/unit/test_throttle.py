"""cloud.messaging.throttle: a store over its rate is gated at the lowest event it had dropped; junk gates nothing."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from cloud.messaging import throttle as throttle_module
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


@dataclass
class AppliedSeqs:
    """`edge_events` as the throttle asks it: the seqs of a store at or past one, in order."""
    seqs: dict[str, set[int]] = field(default_factory=dict)

    async def fetch(self, sql: str, store_id: str, from_seq: int, limit: int) -> list[dict]:
        return [{"seq": s} for s in sorted(s for s in self.seqs.get(store_id, ()) if s >= from_seq)][:limit]


def in_order(t: Throttle, msgs, now_ms: int, db=None) -> list[int]:
    events = [codec.decode(m.data) for m in msgs]
    return [e.seq for e in asyncio.run(t.in_order(events, now_ms, db or AppliedSeqs()))]


def throttle() -> Throttle:
    return Throttle(StoreRateLimits(events_per_s=1, events_burst=2), {"throttled": 0})


def test_a_store_over_its_rate_is_gated_at_its_first_dropped_event_and_its_later_ones_wait():
    t = throttle()
    events = [moved("S001", n) for n in (1, 2, 3, 4)]
    admitted = t.within_rates([frame(e) for e in events], now_ms=0)
    assert [codec.decode(m.data).seq for m in admitted] == [1, 2]
    assert t.gates.expecting("S001") == 3 and t.stats["throttled"] == 2
    # a second later the bucket has room for one: the store's newest event, admitted by the rate, is held
    assert in_order(t, t.within_rates([frame(moved("S001", 5))], 1_000), 1_000) == []
    assert t.stats["throttled"] == 3
    # its re-send from the head applies in order
    again = t.within_rates([frame(moved("S001", n)) for n in (3, 4)], 3_000)
    assert in_order(t, again, 3_000) == [3, 4]
    rows = t.notes(20_000)  # (one note per store every THROTTLE_NOTE_EVERY_MS)
    assert len(rows) == 1 and "3 frame(s) not applied now" in rows[0][2]


def test_junk_over_the_rate_gates_nothing():
    t = throttle()
    junk = Msg(subjects.store_event("S002", "sale.committed"), b"\xff" * 100)
    assert len(t.within_rates([junk, junk, junk], 0)) == 2
    assert not t.gates.gated("S002")


def test_a_gate_set_at_a_stale_copy_does_not_hold_the_store_back(monkeypatch):
    """A re-send of long-applied events (seq 1, 2) is what went over the rate: the store's new events (seq 40 on)
    must not wait for events 3..39, which it was acked for and never sends again."""
    monkeypatch.setattr(throttle_module, "APPLIED_SEQS_CHUNK", 7)  # what is applied is read a chunk at a time
    t = throttle()
    t.within_rates([frame(moved("S001", n)) for n in (1, 1, 2)], 0)
    assert t.gates.expecting("S001") == 2
    applied = AppliedSeqs({"S001": set(range(1, 40))})
    assert in_order(t, [frame(moved("S001", 41)), frame(moved("S001", 40))], 2_000, applied) == [40, 41]
