"""Which store the cloud asks next to lend escrow from its offline share for one online order (pure; the asking
is `cloud/services/borrowing.py`).

A loan moves units from a store's till share to its online escrow: asking every short store at once for the whole
shortfall would pull loans from N stores' shelves for an order that one of them serves. So stores are asked one at
a time, nearest first, and only while the order is not covered:
- an order some store can already serve alone needs nothing;
- else the nearest store not asked yet that could serve it alone once it lends (its escrow plus what it has on hand
  beyond it covers every line) is asked for its own shortfall only;
- else (no store could serve it alone) the nearest store not asked yet with spare units of a line the stores
  together are still short of is asked for that, and no more: a split plan can then serve it; but only when the
  stores not asked yet could lend all that is lacking - a loan that cannot make the order possible is not taken.
The caller re-reads availability after each answer (a store may lend less than asked) and asks again.
"""
from __future__ import annotations

Availability = dict[str, dict[str, int]]  # store -> sku -> units available online
Spare = dict[tuple[str, str], int]  # (store, sku) -> units on hand beyond the escrow (what it might lend)


def _short(items: dict[str, int], have: dict[str, int]) -> dict[str, int]:
    return {sku: qty - have.get(sku, 0) for sku, qty in items.items() if have.get(sku, 0) < qty}


def next_ask(items: dict[str, int], stores: list[str], availability: Availability, spare: Spare,
             asked: set[str]) -> tuple[str, dict[str, int]] | None:
    """(store, {sku: units to ask}) for the next loan, or None when the order is covered or nobody can lend.
    `stores`: nearest first; `asked`: stores asked already for this order (each is asked at most once)."""
    if any(not _short(items, availability.get(store, {})) for store in stores):
        return None
    for store in stores:
        if store in asked:
            continue
        short = _short(items, availability.get(store, {}))
        if all(spare.get((store, sku), 0) >= units for sku, units in short.items()):
            return store, short
    together = {sku: qty - sum(availability.get(s, {}).get(sku, 0) for s in stores) for sku, qty in items.items()}
    left = [s for s in stores if s not in asked]
    if any(units > sum(spare.get((s, sku), 0) for s in left) for sku, units in together.items()):
        return None  # loans could not make the order possible: none is taken from a shelf for nothing
    for store in stores:
        if store in asked:
            continue
        ask = {sku: min(units, spare.get((store, sku), 0)) for sku, units in together.items() if units > 0}
        ask = {sku: units for sku, units in ask.items() if units > 0}
        if ask:
            return store, ask
    return None
