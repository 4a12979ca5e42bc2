"""Shard routing: stable (crc32) so that every process and every restart agrees where a key lives."""
from __future__ import annotations

import zlib
from dataclasses import dataclass


def shard_of(key: str, shards: int) -> int:
    return zlib.crc32(key.encode()) % shards


@dataclass(frozen=True)
class ShardConfig:
    """How many actors of each sharded kind; configuration, so a bigger cluster just raises the numbers."""
    stock_pool: int = 2
    member_ledger: int = 2
    prefix: str = ""  # lets tests and load runs keep their actors (and journals) apart

    def stock_pool_name(self, sku: str) -> str:
        return f"{self.prefix}stock_pool-{shard_of(sku, self.stock_pool)}"

    def member_ledger_name(self, member: str) -> str:
        return f"{self.prefix}member_ledger-{shard_of(member, self.member_ledger)}"

    def flash_sale_name(self, sale_id: str) -> str:
        return f"{self.prefix}flash_sale-{sale_id}"

    def order_router_name(self) -> str:
        return f"{self.prefix}order_router"

    def promotion_budgets_name(self) -> str:
        """One actor for the chain: every budget-capped rule's remaining fen (few commands: one per capped order)."""
        return f"{self.prefix}promotion_budgets"

    def all_stock_pools(self) -> list[str]:
        return [f"{self.prefix}stock_pool-{i}" for i in range(self.stock_pool)]

    def all_member_ledgers(self) -> list[str]:
        return [f"{self.prefix}member_ledger-{i}" for i in range(self.member_ledger)]
