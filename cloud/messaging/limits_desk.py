"""Per-member limits at the tills, on the cloud's side: the tills' `MemberLimitsRequested` over NATS request/reply
(`fm.store.*.budget.limits`, queue group `budget-limits`: any cloud process answers).

Guarantees (with `StoreDesk`'s: a store asks only about itself, answers go only to its own inbox, requests in
flight are bounded):
- The answer is the member's uses of each asked rule as the one PromotionBudgets actor counts them now: online
  orders' and every store's reported till sales' uses (one chain-wide count). Reading changes nothing.
- A store gets at most `ASKS_PER_STORE_PER_MINUTE` answers a minute (per cloud process): every store knows every
  member, so the pace of its tills identifying members is the bound. Past it, or when the actor does not answer,
  the till times out and sells within its offline allowance (edge/core/member_limits.py).
"""
from __future__ import annotations

import logging

from cloud.messaging.store_desk import StoreDesk
from protocol.budget_messages import (
    LIMITS_QUEUE,
    LIMITS_SUBJECTS_ALL,
    MemberLimitsAnswered,
    MemberLimitsRequested,
    RuleUses,
)

REQUESTS_IN_FLIGHT_MAX = 500
ASKS_PER_STORE_PER_MINUTE = 120
log = logging.getLogger("freshmesh.budget_limits")


class LimitsDesk(StoreDesk):
    subject = LIMITS_SUBJECTS_ALL
    queue = LIMITS_QUEUE
    kinds = (MemberLimitsRequested,)
    in_flight_max = REQUESTS_IN_FLIGHT_MAX
    log = log
    what = "member limits"
    kind_name = "member limits"
    stats_keys = ("answered", "paced")

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        self._asks: dict[str, tuple[int, int]] = {}  # store -> (minute, answers in it)

    def admit(self, request, store_id: str) -> bool:
        minute = self.cloud.now_ms() // 60_000
        at, n = self._asks.get(store_id, (minute, 0))
        n = n if at == minute else 0
        if n >= ASKS_PER_STORE_PER_MINUTE:
            self.stats["paced"] += 1
            log.warning("store %s asked for more than %d members' limits a minute: not answered", store_id,
                        ASKS_PER_STORE_PER_MINUTE)
            return False
        if len(self._asks) > 10_000:
            self._asks.clear()
        self._asks[store_id] = (minute, n + 1)
        return True

    def reference(self, request) -> str:
        return str(request.member_id)

    async def decide(self, request, store_id: str) -> MemberLimitsAnswered:
        views = await self.cloud.actors.budgets.budgets(list(request.rule_ids), request.member_id)
        self.stats["answered"] += 1
        return MemberLimitsAnswered(event_id=self.cloud.ids.new(), store_id=store_id, seq=0,
                                    wall_ms=self.cloud.now_ms(), mono_ms=0, member_id=request.member_id,
                                    uses=tuple(RuleUses(rule_id=rid, uses=int(v.get("member_uses", 0)))
                                               for rid, v in views.items()))
