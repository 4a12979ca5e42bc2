"""What the cloud believes of a store's stocktake (`StocktakePosted`), in `protocol.store_facts`' style: a store is
believed only about its own counts (the bridge has already checked the event came on the store's own subject),
within the bounds the message enforces, for products of the catalogue, and one note per stocktake id (a second
note under an id another event already recorded, for this store or another, is refused, not merged), and only if
its variances are the stock the store moved for it: per SKU, the sum of its lines' variances is the sum of the
`StockMoved` events with reason "stocktake" naming the stocktake (the box stamps them before the note, so they are
recorded already or earlier in the same batch). Pure: the shell passes in the ids already recorded, the catalogue's
SKUs and those movements.
"""
from __future__ import annotations

from collections.abc import Iterable

from protocol.messages import Message, StockMoved
from protocol.stocktake_messages import StocktakePosted


def stocktake_moves(events: Iterable[Message]) -> dict[tuple[str, str, str], int]:
    """(store, stocktake id, sku) -> the stock the batch's stocktake movements moved."""
    moved: dict[tuple[str, str, str], int] = {}
    for e in events:
        if isinstance(e, StockMoved) and e.reason == "stocktake":
            key = (e.store_id, e.reference, e.sku)
            moved[key] = moved.get(key, 0) + e.delta
    return moved


def judge_stocktakes(events: Iterable[Message], recorded: dict[str, tuple[str, str]], products: frozenset[str],
                     moved: dict[tuple[str, str, str], int]) -> dict[str, str]:
    """event id -> why, for each `StocktakePosted` not believed. `recorded`: stocktake id -> (store, event id) of the
    note already kept for it; `moved`: (store, stocktake id, sku) -> what its stocktake movements moved, recorded
    and in this batch."""
    seen = dict(recorded)
    refused: dict[str, str] = {}
    for e in events:
        if not isinstance(e, StocktakePosted):
            continue
        reason = ""
        variances: dict[str, int] = {}
        for line in e.lines:
            variances[line.sku] = variances.get(line.sku, 0) + line.variance
        moves = {sku: qty for (store, sid, sku), qty in moved.items() if (store, sid) == (e.store_id, e.stocktake_id)}
        differ = sorted(sku for sku in set(variances) | set(moves) if variances.get(sku, 0) != moves.get(sku, 0))
        first = seen.get(e.stocktake_id)
        if first is not None and first[1] != e.event_id:
            reason = f"stocktake {e.stocktake_id} was posted already (event {first[1]} of store {first[0]})"
        else:
            unknown = sorted({line.sku for line in e.lines} - products)
            if unknown:
                reason = f"stocktake {e.stocktake_id} counts unknown products {', '.join(unknown[:5])}"
            elif differ:
                sku = differ[0]
                reason = (f"stocktake {e.stocktake_id}: variance {variances.get(sku, 0)} of {sku} is not what its "
                          f"stocktake movements moved ({moves.get(sku, 0)})")
        if reason:
            refused[e.event_id] = f"store {e.store_id} {e.KIND} refused: {reason}"
        else:
            seen[e.stocktake_id] = (e.store_id, e.event_id)
    return refused
