"""What the cloud believes of a store's stocktake (`StocktakePosted`), in `protocol.store_facts`' style: a store is
believed only about its own counts (the bridge has already checked the event came on the store's own subject),
within the bounds the message enforces, for products of the catalogue, and one note per stocktake id (a second
note under an id another event already recorded, for this store or another, is refused, not merged). Pure: the
shell passes in the ids already recorded and the catalogue's SKUs.
"""
from __future__ import annotations

from collections.abc import Iterable

from protocol.messages import Message
from protocol.stocktake_messages import StocktakePosted


def judge_stocktakes(events: Iterable[Message], recorded: dict[str, tuple[str, str]],
                     products: frozenset[str]) -> dict[str, str]:
    """event id -> why, for each `StocktakePosted` not believed. `recorded`: stocktake id -> (store, event id) of the
    note already kept for it."""
    seen = dict(recorded)
    refused: dict[str, str] = {}
    for e in events:
        if not isinstance(e, StocktakePosted):
            continue
        reason = ""
        first = seen.get(e.stocktake_id)
        if first is not None and first[1] != e.event_id:
            reason = f"stocktake {e.stocktake_id} was posted already (event {first[1]} of store {first[0]})"
        else:
            unknown = sorted({line.sku for line in e.lines} - products)
            if unknown:
                reason = f"stocktake {e.stocktake_id} counts unknown products {', '.join(unknown[:5])}"
        if reason:
            refused[e.event_id] = f"store {e.store_id} {e.KIND} refused: {reason}"
        else:
            seen[e.stocktake_id] = (e.store_id, e.event_id)
    return refused
