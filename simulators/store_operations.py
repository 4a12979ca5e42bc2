"""The demo's store operations, each a role working every store through its box's API (`Staff`) and the figures
the cloud recorded of it (`summary(db, since_ms)`), by the name the demo summary shows them under."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from simulators import ops_labels, ops_markdowns, ops_receiving, ops_restock, ops_stocktake, ops_transfers


@dataclass(frozen=True)
class Operation:
    Staff: type  # (fleet, rng, counts, stop) -> a StoreWork
    summary: Callable[[Any, int], Awaitable[dict]]  # (asyncpg connection, the run's start in epoch ms) -> figures


STORE_OPERATIONS: dict[str, Operation] = {
    "receiving": Operation(ops_receiving.OpsReceiving, lambda db, since: ops_receiving.summary(db, since)),
    "stocktake": Operation(ops_stocktake.StocktakeStaff, lambda db, since: ops_stocktake.summary(db)),
    "transfers": Operation(ops_transfers.TransferStaff, lambda db, since: ops_transfers.summary(db, since)),
    "markdowns": Operation(ops_markdowns.MarkdownStaff, lambda db, since: ops_markdowns.summary(db, since)),
    "labels": Operation(ops_labels.LabelOps, lambda db, since: ops_labels.summary(db, since_ms=since)),
    "restock": Operation(ops_restock.OpsRestock, lambda db, since: ops_restock.summary(db, since)),
}
