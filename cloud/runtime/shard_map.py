"""Shard routing: stable (crc32) so that every process and every restart agrees where a key lives.

Shard counts are configuration (`ShardConfig.from_env`: FRESHMESH_STOCK_SHARDS, FRESHMESH_LEDGER_SHARDS), but a
count is part of where state lives: `shard_of(key, n)` sends most keys elsewhere when n changes, and a key's stock
or balance would then be looked up in an actor that never saw it. So the counts a chain's actors were made with are
recorded once (cloud/runtime/shard_guard.py), and a process configured with other counts refuses to start
(`judge_shard_map`), unless those actors hold no state yet (a new chain, or one whose sharded actors were never
used), when the new counts are simply recorded. There is no silent re-routing.
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SHARDS = 1024  # far past any cluster's need; a typo such as 20000 is refused rather than making 20000 actors
STOCK_SHARDS_ENV, LEDGER_SHARDS_ENV = "FRESHMESH_STOCK_SHARDS", "FRESHMESH_LEDGER_SHARDS"
# actor names' prefix: two chains (or a test's cloud and the test session's) sharing one Ray keep their actors apart
ACTOR_PREFIX_ENV = "FRESHMESH_ACTOR_PREFIX"
PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{0,32}$")


def shard_of(key: str, shards: int) -> int:
    return zlib.crc32(key.encode()) % shards


class ShardConfigError(ValueError):
    """A shard count that is not a whole number in 1..MAX_SHARDS, or one that disagrees with the recorded map."""


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ShardConfigError(f"{name}={text!r}: give a whole number of shards (1..{MAX_SHARDS})") from None
    if not 1 <= value <= MAX_SHARDS:
        raise ShardConfigError(f"{name}={value}: the number of shards must be between 1 and {MAX_SHARDS}")
    return value


@dataclass(frozen=True)
class ShardConfig:
    """How many actors of each sharded kind; configuration, so a bigger cluster just raises the numbers (before its
    actors hold state: see the module docstring)."""
    stock_pool: int = 2
    member_ledger: int = 2
    prefix: str = ""  # lets tests and load runs keep their actors (and journals) apart

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, prefix: str = "") -> ShardConfig:
        import os
        env = os.environ if env is None else env
        prefix = prefix or env.get(ACTOR_PREFIX_ENV, "").strip()
        if not PREFIX_RE.match(prefix):
            raise ShardConfigError(f"{ACTOR_PREFIX_ENV}: at most 32 letters, digits, '_' or '-', got {prefix[:40]!r}")
        return cls(stock_pool=_count(env, STOCK_SHARDS_ENV, cls.stock_pool),
                   member_ledger=_count(env, LEDGER_SHARDS_ENV, cls.member_ledger), prefix=prefix)

    def counts(self) -> dict[str, int]:
        return {"stock_pool": self.stock_pool, "member_ledger": self.member_ledger}

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

    def all_sharded(self) -> list[str]:
        return self.all_stock_pools() + self.all_member_ledgers()


def judge_shard_map(recorded: Mapping[str, int] | None, configured: ShardConfig, state_held: bool) -> str:
    """What to do with the configured counts, given the recorded ones and whether the recorded shards hold state:
    "record" (nothing recorded, or nothing to move), "keep" (they agree); raises ShardConfigError otherwise, naming
    both maps and the way out."""
    wanted = configured.counts()
    if recorded is None or dict(recorded) == wanted:
        return "record" if recorded is None else "keep"
    if not state_held:
        return "record"
    said = ", ".join(f"{kind}={recorded.get(kind)}" for kind in wanted)
    asked = ", ".join(f"{kind}={count}" for kind, count in wanted.items())
    raise ShardConfigError(
        f"actors{' with prefix ' + repr(configured.prefix) if configured.prefix else ''} were sharded as {said} and "
        f"hold state, but this process is configured with {asked} ({STOCK_SHARDS_ENV}, {LEDGER_SHARDS_ENV}): a "
        f"different count routes keys to shards that never saw them, so the cloud will not start. Run every cloud "
        f"process with the recorded counts (see README, 'Shard counts').")
