"""Taking back a store's unused share of a capped rule's budget (issue 17): when the rule ends (its window closed),
is withdrawn from the book or its cap changed, or the share sat unused for `SHARE_IDLE_MS`, the unused part goes back
to the chain's budget and the store is told (`BudgetShareReclaimed`: its till stops using it).

Guarantees:
- The decision is pure (`actors.promotion_budgets.reclaim_reason`); the taking back is one `ReclaimShare` command on
  the one PromotionBudgets actor whose id derives from the store, the rule, the share and the store's reported uses:
  two cloud processes checking at once take it back once, and a share granted again later can be taken back again.
- What the store already used (reported or not yet) stays counted: the actor takes back only share less reported
  uses, and a use the store reports after the reclaim is counted from what the budget has left.
- Checked with the store's share top-ups (cloud/messaging/budgets.py): at most every `CHECK_EVERY_MS` per store the
  bridge hears from. A reclaim for idleness is not followed by a new grant to that store for `SHARE_IDLE_MS` (the
  store's tills have no use for it); an ended rule is granted to nobody.
"""
from __future__ import annotations

import functools
import hashlib
import logging

from actors.promotion_budgets import ReclaimShare, reclaim_reason
from cloud.messaging import to_stores
from protocol.budget_messages import BudgetShareReclaimed

SHARE_IDLE_MS = 6 * 3_600_000  # a share no sale used for this long goes back to the chain's budget
log = logging.getLogger("freshmesh.budgets")


def reclaim_id(store: str, rule_id: str, held: dict) -> str:
    key = f"{store}/{rule_id}/{held['share']}/{held['store_used']}"
    return "reclaim:" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def regrant_blocked(rule, held: dict | None, now_ms: int) -> bool:
    """Whether the store may not get a new share of the rule now: the rule ended, or its share was taken back as
    idle less than `SHARE_IDLE_MS` ago."""
    if rule.ends_ms and now_ms >= rule.ends_ms:
        return True
    reclaimed = (held or {}).get("reclaimed") or {}
    return reclaimed.get("reason") == "idle" and now_ms - int(reclaimed.get("ms", 0)) < SHARE_IDLE_MS


async def check(cloud, store: str) -> dict[str, int]:
    """The store's unused shares that are due taken back, and the store told; {rule: fen returned}. Raises when the
    actor does not answer (checked again at the store's next heartbeat)."""
    budgets = cloud.actors.budgets
    held = await budgets.store_shares(store)
    now, book, returned = cloud.now_ms(), cloud.world.rule_book, {}
    for rule_id, h in sorted(held.items()):
        reason = reclaim_reason(book.by_id.get(rule_id), h, now, SHARE_IDLE_MS)
        if reason is None:
            continue
        r = await budgets.send(ReclaimShare(id=reclaim_id(store, rule_id, h), store=store, rule_id=rule_id,
                                            reason=reason))
        fen = int(r.settled.get("returned_fen", 0) or 0)
        if fen:
            returned[rule_id] = fen
            log.info("store %s: %d fen of rule %s's share back to the budget (%s)", store, fen, rule_id, reason)
            await to_stores.send(cloud, store, functools.partial(BudgetShareReclaimed, rule_id=rule_id,
                                                                 returned_fen=fen, reason=reason,
                                                                 generation=int(r.settled.get("generation", 0))))
    return returned
