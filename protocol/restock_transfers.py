"""When a store runs short, another store's surplus goes first (issue 16 item 5: a transfer driven by the cloud
when a shortage needs it). Pure: the shell passes in the stores that hold the SKU, their distance and what they
keep for themselves.

A store gives only its surplus: what it holds (less what its open online orders still take) above what it keeps
for itself: its own target, never less than its reorder point (so giving never raises an alert there, nor does its
next sale), or, without a point set by HQ, a floor the chain keeps on every shelf. The nearest store with a surplus
is asked, for at most what the short store needs. Nothing is asked when no store has a surplus worth moving (the
supplier's order covers it).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

KEEP_FLOOR_PIECES = 20  # a store without a target of its own keeps this much of a piece SKU for its own till
KEEP_FLOOR_G = 5_000  # and this much of a SKU sold by the kg (grams)
MIN_TRANSFER_PIECES = 2  # fewer than this is not worth a trip
MIN_TRANSFER_G = 500


@dataclass(frozen=True, slots=True)
class Holder:
    """A store that holds the SKU: its last reported on-hand less what its online orders still owe, its own target
    and reorder point (None: none set) and how far it is."""
    store_id: str
    on_hand: int
    target: int | None
    distance_m: float
    reorder_point: int | None = None


def surplus(holder: Holder, weighed: bool) -> int:
    if holder.target is None and holder.reorder_point is None:
        keep = KEEP_FLOOR_G if weighed else KEEP_FLOOR_PIECES
    else:
        keep = max(holder.target or 0, holder.reorder_point or 0)
    return max(holder.on_hand - keep, 0)


def source(holders: Iterable[Holder], need: int, weighed: bool) -> tuple[str, int] | None:
    """(the store to ask, how much) for a shortage of `need`, or None when no store's surplus is worth moving."""
    least = MIN_TRANSFER_G if weighed else MIN_TRANSFER_PIECES
    if need < least:
        return None
    for holder in sorted(holders, key=lambda h: (h.distance_m, h.store_id)):
        qty = min(need, surplus(holder, weighed))
        if qty >= least:
            return holder.store_id, qty
    return None
