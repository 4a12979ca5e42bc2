"""The store's copy of HQ's allocation ratios (per SKU and per category), as the StoreActor reads them to decide
escrow: grants on receiving, rebalancing on a new ratio, lending to the cloud. Written only through the
`SetAllocation` effect (edge/store_db.py), in the transaction that marks the cloud's message applied."""
from __future__ import annotations

from edge.store_db import StoreDb


async def ratios(db: StoreDb) -> tuple[dict[str, int], dict[str, int]]:
    """(by sku, by category)."""
    async with db.writer.execute("select scope, key, ratio_bp from allocations") as cur:
        rows = list(await cur.fetchall())
    by_sku = {key: ratio for scope, key, ratio in rows if scope == "sku"}
    by_category = {key: ratio for scope, key, ratio in rows if scope == "category"}
    return by_sku, by_category


async def kept_version(db: StoreDb, scope: str, key: str) -> int:
    async with db.writer.execute("select version from allocations where scope = ? and key = ?", (scope, key)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def listing(db: StoreDb) -> list[dict]:
    """Every ratio kept (for support and tests: what this box believes HQ set)."""
    async with db.reader.execute("select scope, key, ratio_bp, version from allocations order by scope, key") as cur:
        return [{"scope": r[0], "key": r[1], "ratio_bp": r[2], "version": r[3]} for r in await cur.fetchall()]
