"""Level changes reach the tills promptly: every ledger answer names the member's level; when it differs from the
level the stores were last told, every store is sent a MemberUpdated at once (not at the next top-up).

Which stores, and why: every store keeps the whole chain's member cache (members are registered into every store,
`Members.register` → `notify_stores`), so that any member can be identified and priced at any till, offline too.
A member's level is a fact of the chain, not of one store, so the new level goes to every store, like a
registration does.

Guarantees:
- What the stores were last told is one row per member in `member_levels` (migration 28), shared by every API
  process and changed only by a conditional UPDATE (or INSERT ... ON CONFLICT DO NOTHING), never per process.
- The stores are told BEFORE the row changes: a push that fails leaves the old level in the row, so the member's
  next ledger answer (any spend, top-up, refund, query by an order) tries again. Two processes seeing the same
  change at once may both tell the stores: harmless, a MemberUpdated replaces the store's cached view.
- A member first seen as "regular" is only recorded (registration already told every store); any other level,
  or any change, is pushed.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from actors.base import Result

log = logging.getLogger("freshmesh.member_levels")

MIGRATION_28 = """
    create table if not exists member_levels (
        member_id   text primary key,
        level       text not null,          -- the level the stores were last told
        changed_ms  bigint not null
    );
    -- what budget-capped rules gave online orders, as the PromotionBudgets actor consumed it (reports, the demo's
    -- summary); the actor is the authority, this is its record for SQL readers
    create table if not exists budget_uses (
        order_id       text not null,       -- an online order, or a till sale (channel 'offline')
        rule_id        text not null,
        fen            bigint not null,
        member_id      text not null,
        store_id       text not null,
        used_ms        bigint not null,
        given_back_ms  bigint,              -- the order was cancelled or expired: the budget came back
        channel        text not null default 'online',
        primary key (order_id, rule_id)
    );
"""


class MemberLevels:
    def __init__(self, cloud, tell_stores: Callable[[str], Awaitable[None]]) -> None:
        """`tell_stores(member_id)`: sends the member's current view to every store (Members.balance_changed)."""
        self.cloud, self.tell_stores = cloud, tell_stores
        self.known: dict[str, str] = {}  # this process's last word per member: spares a query per ledger answer

    async def on_ledger_result(self, result: Result) -> None:
        """Hooked on every MemberLedger command's answer (MemberLedgerClient.on_result)."""
        settled = result.settled
        member, level = settled.get("member_id"), settled.get("level")
        if not member or not level or self.known.get(member) == level:
            return
        try:
            await self.seen(member, level)
        except Exception:  # noqa: BLE001 - the ledger's answer stands; the next one tries again
            log.exception("member %s: level %s not passed on", member, level)

    async def seen(self, member: str, level: str) -> bool:
        """The ledger says `member` is `level` now: True when this call told the stores."""
        db = self.cloud.db
        was = await db.fetchval("select level from member_levels where member_id = $1", member)
        if was == level or (was is None and level == "regular"):
            if was is None:
                await db.execute("insert into member_levels (member_id, level, changed_ms) values ($1, $2, $3) "
                                 "on conflict (member_id) do nothing", member, level, self.cloud.now_ms())
            self.known[member] = level
            return False
        await self.tell_stores(member)  # first: a failure leaves the row as it was, and the next answer retries
        if was is None:
            won = await db.fetchval("insert into member_levels (member_id, level, changed_ms) values ($1, $2, $3) "
                                    "on conflict (member_id) do nothing returning member_id", member, level,
                                    self.cloud.now_ms())
        else:
            won = await db.fetchval("update member_levels set level = $2, changed_ms = $3 where member_id = $1 "
                                    "and level = $4 returning member_id", member, level, self.cloud.now_ms(), was)
        self.known[member] = level
        log.info("member %s: level %s -> %s, told every store", member, was or "regular", level)
        return bool(won)
