"""The bridge's admission of a store's frames: within its rate (`protocol.rate`) and, once any were dropped, in
the store's own order (`protocol.seq_gate`).

A frame over its store's rate is not applied now: it is acked with the batch (JetStream holds nothing for it) and
never business-acked, so the store - whose outbox keeps every event until the cloud acks it - sends it again later,
from its oldest unacked event, in order (`edge.sync.StuckHead`). The store's later frames that arrive meanwhile
wait for it (the gate), so a store's events are applied in its order even when throttled: a grant never before the
receiving that makes it believable. No legitimate event is lost; a flooding store only slows itself down, and its
junk never reaches the decoder (but for one frame per batch, to learn where to gate), the database or the acks.

Limits of the ordering guarantee: the gates live in this process's memory - a bridge restarted while a store's
dropped events are still to come applies the store's later ones as they arrive (as before the gates existed), until
that store is throttled again; and a gate that waited `SeqGates.STALL_MS` for an event that never came (the store
set it aside) goes on past it.
"""
from __future__ import annotations

import logging

from cloud.messaging import refusals
from protocol import codec, subjects
from protocol.errors import ProtocolError
from protocol.rate import StoreRateLimits, StoreRates
from protocol.seq_gate import SeqGates

APPLIED_SEQS_CHUNK = 10_000  # rows per look at what a gated store already has applied
THROTTLE_NOTE_EVERY_MS = 10_000  # a store over its rate gets one dead-letter note this often (the console shows it)
log = logging.getLogger("freshmesh.bridge")


class Throttle:
    """Per-store admission for the bridge; `stats["throttled"]` counts the events not applied now."""

    def __init__(self, limits: StoreRateLimits, stats: dict) -> None:
        self.rates = StoreRates(limits)
        self.gates = SeqGates()
        self.stats = stats
        self._noted: dict[str, int] = {}  # store -> when its last "over the rate" note was written
        self._now: dict[str, int] = {}  # store -> frames not applied since its last note

    def within_rates(self, msgs, now_ms: int) -> list:
        """The messages within their store's rate, in their order. Once a store is over its rate the rest of its
        batch is dropped too, and the store is gated at the lowest sequence dropped (its first dropped frame is
        decoded for it; one that does not decode as the subject's store's event has no sequence, and gates
        nothing: junk never comes again)."""
        admitted, over = [], set()
        for m in msgs:
            store_id = refusals.store_of(m.subject)
            if store_id not in over and self.rates.admit(store_id, len(m.data), now_ms):
                admitted.append(m)
                continue
            if store_id not in over:
                over.add(store_id)
                self._gate_at(store_id, m, now_ms)
            self._count(store_id)
        return admitted

    def _gate_at(self, store_id: str, m, now_ms: int) -> None:
        try:
            event = codec.decode(m.data)
        except ProtocolError:
            return
        if event.store_id == store_id and isinstance(getattr(event, "seq", None), int):
            self.gates.hold_from(store_id, event.seq, now_ms)

    async def in_order(self, events: list, now_ms: int, db) -> list:
        """The decoded events to apply now: a gated store's in its sequence order, up to its first gap (what lies
        beyond is not applied, not business-acked, and counted as throttled: the store sends it again). Before
        holding any, the gate moves past what `edge_events` shows already applied (a gate set at a stale copy)."""
        for store_id in {e.store_id for e in events if self.gates.waits(e.store_id, e.seq)}:
            await self._move_past_applied(store_id, now_ms, db)
        order, held, resumed = self.gates.admit([(e.store_id, e.seq) for e in events], now_ms)
        for store_id in resumed:
            log.warning("store %s: the event its gate waited for never came back; going on from the next one",
                        store_id)
        for i in held:
            self._count(events[i].store_id)
        return [events[i] for i in order]

    async def _move_past_applied(self, store_id: str, now_ms: int, db) -> None:
        while (expect := self.gates.expecting(store_id)) is not None:
            seqs = [r["seq"] for r in await db.fetch(
                "select distinct seq from edge_events where store_id = $1 and seq >= $2 order by seq limit $3",
                store_id, expect, APPLIED_SEQS_CHUNK)]
            self.gates.seen(store_id, seqs, now_ms)
            if self.gates.expecting(store_id) != expect + APPLIED_SEQS_CHUNK:
                return  # a gap (or nothing applied past the gate): what is beyond it waits

    def _count(self, store_id: str) -> None:
        self.stats["throttled"] += 1
        self._now[store_id] = self._now.get(store_id, 0) + 1

    def notes(self, now_ms: int) -> list[tuple]:
        """One dead-letter row per store over its rate, at most every THROTTLE_NOTE_EVERY_MS: the console shows it
        among the refused events (the frames themselves are not kept: they will come again, or were junk)."""
        counts, self._now = self._now, {}
        rows = []
        for store_id, n in counts.items():
            if now_ms - self._noted.get(store_id, 0) >= THROTTLE_NOTE_EVERY_MS:
                self._noted[store_id] = now_ms
                lim = self.rates.limits
                rows.append((subjects.store_root(store_id) if store_id else "", store_id,
                             f"store {store_id} over its rate ({lim.events_per_s:g} events/s, "
                             f"{lim.bytes_per_s:g} bytes/s): {n} frame(s) not applied now; the store sends them again",
                             b"", 0, now_ms))
        return rows
