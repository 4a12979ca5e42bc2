"""Per-store sequence gates: once the cloud has dropped a store's event (over its rate), it applies that store's
events only in the store's own order.

Why: a dropped event comes back only when the store sends its unacked events again (`edge.sync.StuckHead`, from
its oldest unacked one, in order). Meanwhile the store's later events keep arriving, and without a gate they would
be applied first - a grant before the receiving that makes it believable (`protocol.store_facts` then refuses a
legitimate grant for good), an older on-hand report after a newer one.

How: a store's sequence numbers are contiguous (`edge.core.state.EventStamp`). `hold_from(store, seq)` gates the
store at the lowest sequence it had dropped; from then on, within each batch, the store's events are taken in
sequence order: one at or below the next expected sequence passes (older ones and duplicates are for the event ids
to sort out) and one that equals it moves the expectation on; one beyond a gap is held (not applied now - the store
sends it again). A gate stays for the store (in memory: a restarted bridge starts with none, which is as before
this gate existed - the store's re-send is still in its order).

A gate set at a stale copy (a re-send of an event already applied, dropped over the rate) would wait for events the
store was acked for and never sends again: the shell tells the gate what the cloud has already applied
(`seen`), and the expectation moves past it.

The one way a gate could still wait forever: the expected event will never come (the store was told it was refused
before it could be decoded, and set it aside). So a gate that has not moved for `STALL_MS` - several of the store's
re-send rounds - while events beyond it arrive resumes at the lowest of them, logged by the caller. Pure: time is
passed in.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class SeqGates:
    # Longer than a re-send round (StuckHead: 30 s after the head stops moving, checked every 5 s, then twice as
    # long): a gate that has waited this long is waiting for an event the store no longer has to send.
    STALL_MS: int = 120_000
    _expect: dict[str, int] = field(default_factory=dict)  # store -> the next sequence it may apply
    _moved_ms: dict[str, int] = field(default_factory=dict)  # store -> when its gate last moved (or was set)

    def gated(self, store_id: str) -> bool:
        return store_id in self._expect

    def expecting(self, store_id: str) -> int | None:
        return self._expect.get(store_id)

    def hold_from(self, store_id: str, seq: int, now_ms: int) -> None:
        """The store had its event `seq` dropped: gate it there. A store already gated keeps its expectation (a
        dropped event below it was one already seen - a re-send - and lowering it would wait for events the store
        has been acked for and will never send again)."""
        if store_id not in self._expect:
            self._expect[store_id] = seq
            self._moved_ms[store_id] = now_ms

    def waits(self, store_id: str, seq: int) -> bool:
        """Whether the store's event `seq` is beyond its gate (would be held now)."""
        return store_id in self._expect and seq > self._expect[store_id]

    def seen(self, store_id: str, seqs: Iterable[int], now_ms: int) -> None:
        """Sequences of the store that the cloud has already applied: the expectation moves on through those
        contiguous with it (they will not come again, or come as duplicates)."""
        if store_id not in self._expect:
            return
        for seq in sorted(seqs):
            if seq > self._expect[store_id]:
                break
            if seq == self._expect[store_id]:
                self._expect[store_id] = seq + 1
                self._moved_ms[store_id] = now_ms

    def admit(self, items: Sequence[tuple[str, int]], now_ms: int) -> tuple[list[int], list[int], list[str]]:
        """Given a batch's events as (store, seq) in arrival order: (the indices to apply, in the order to apply
        them; the indices held back; the stores whose stalled gate resumed past a gap). An ungated store's events
        keep their place; a gated store's passing events take its places in the batch, in sequence order."""
        by_store: dict[str, list[int]] = {}
        for i, (store_id, _) in enumerate(items):
            if store_id in self._expect:
                by_store.setdefault(store_id, []).append(i)
        passing: dict[str, list[int]] = {}
        held: list[int] = []
        resumed: list[str] = []
        for store_id, indices in by_store.items():
            ordered = sorted(indices, key=lambda i: items[i][1])
            ok, late = self._walk(store_id, ordered, items, now_ms)
            if late and not ok and now_ms - self._moved_ms[store_id] >= self.STALL_MS:
                self._expect[store_id] = items[late[0]][1]  # resume at the lowest that came
                resumed.append(store_id)
                ok, late = self._walk(store_id, ordered, items, now_ms)
            passing[store_id], held = ok, held + late
        order: list[int] = []
        taken = {store_id: 0 for store_id in passing}
        for i, (store_id, _) in enumerate(items):
            if store_id not in passing:
                order.append(i)
            elif taken[store_id] < len(passing[store_id]):
                order.append(passing[store_id][taken[store_id]])
                taken[store_id] += 1
        return order, sorted(held), resumed

    def _walk(self, store_id: str, ordered: list[int], items: Sequence[tuple[str, int]],
              now_ms: int) -> tuple[list[int], list[int]]:
        ok, late = [], []
        for i in ordered:
            seq = items[i][1]
            if seq > self._expect[store_id]:
                late.append(i)
                continue
            if seq == self._expect[store_id]:
                self._expect[store_id] = seq + 1
                self._moved_ms[store_id] = now_ms
            ok.append(i)
        return ok, late
