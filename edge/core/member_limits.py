"""Per-member limits (`Rule.per_member_limit`) at the till (pure): one chain-wide count, the cloud's.

A member's uses of a limited rule are counted by the cloud's one PromotionBudgets actor, online orders and till
sales alike. When a member is identified at a lane online, the lane asks the cloud for the member's uses
(`MemberLimitsRequested`, a short timeout) and the cart keeps the answer (`MemberLimits.cloud`). The till then
prices with every limited rule the member used up at 0 (`PricingContext.budgets_left`), and the cart says why it
did not apply ("limit of 1 per member reached").

Without the cloud's answer (offline, or no answer in time) the till cannot know the member's uses elsewhere: it
gives a limited rule only within this store's offline allowance (`OFFLINE_MEMBER_USES` per member, rule and chain
day, counted from this store's own offline sales) and never past the limit as this store alone knows it. Every
sale's uses of limited rules go to the cloud with the sale (`BudgetUsed.member_uses`, exactly once through the
outbox), which adds them to the member's count; a use past the limit there is believed (the sale stands) and
recorded as a conflict the operator sees.

Online the member's count is the cloud's answer plus this store's uses recorded since that answer (`cloud_at_ms`,
the store's clock when the answer reached the cart: `here_since_cloud`), which the answer cannot know of; and never
less than this store's own count (`here`, every sale here: its sales the cloud has not applied yet).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.budget_messages import MemberRuleUse
from protocol.pricing import BudgetLeft, PricedBasket, RuleBook

OFFLINE_MEMBER_USES = 1  # policy: uses of one limited rule by one member per chain day at one store, offline


@dataclass(frozen=True, slots=True)
class MemberLimits:
    """What the till knows of the cart's member's uses of limited rules."""
    member_id: str
    cloud: Mapping[str, int] | None = None  # rule -> uses, the cloud's answer (None: no answer, offline)
    here: Mapping[str, int] = field(default_factory=dict)  # rule -> uses by this store's sales (ever)
    here_offline_today: Mapping[str, int] = field(default_factory=dict)  # rule -> this store's offline uses today
    cloud_at_ms: int = 0  # when the cloud's answer reached the cart (this store's clock)
    here_since_cloud: Mapping[str, int] = field(default_factory=dict)  # rule -> uses here recorded since `cloud_at_ms`

    @property
    def offline(self) -> bool:
        return self.cloud is None


@dataclass(frozen=True, slots=True)
class RecordMemberUse:
    """A row of this store's uses of limited rules (edge/budget_db.py), in the sale's transaction."""
    member_id: str
    rule_id: str
    sale_id: str
    day: str
    offline: bool
    at_ms: int


def blocked(book: RuleBook | None, limits: MemberLimits | None) -> dict[str, str]:
    """rule -> why the member may not use it at this till now (nothing without a member: no limit applies to a
    sale to nobody, as online)."""
    if book is None or limits is None:
        return {}
    out = {}
    for r in book.rules:
        limit = r.per_member_limit
        if not limit:
            continue
        here = limits.here.get(r.id, 0)
        if limits.cloud is not None:
            if max(limits.cloud.get(r.id, 0) + limits.here_since_cloud.get(r.id, 0), here) >= limit:
                out[r.id] = f"limit of {limit} per member reached"
        elif here >= limit:
            out[r.id] = f"limit of {limit} per member reached"
        elif limits.here_offline_today.get(r.id, 0) >= OFFLINE_MEMBER_USES:
            out[r.id] = (f"offline: at most {OFFLINE_MEMBER_USES} use of this promotion per member a day without "
                         f"the cloud")
    return out


def with_blocked(budgets: tuple[BudgetLeft, ...], why: Mapping[str, str]) -> tuple[BudgetLeft, ...]:
    """The budgets the till prices with: each blocked rule at 0 (whatever share of a fen cap it holds)."""
    if not why:
        return budgets
    return tuple(b for b in budgets if b.rule_id not in why) + tuple(BudgetLeft(rule_id=r, fen=0) for r in sorted(why))


def notes(why: Mapping[str, str], unblocked: PricedBasket) -> list[dict]:
    """The cart's word on each blocked rule that would have applied (priced without the blocks: `unblocked`)."""
    would = {a.rule_id: a.name for a in unblocked.applied if a.saving_fen > 0}
    return [{"rule_id": rid, "name": would[rid], "message": msg} for rid, msg in sorted(why.items()) if rid in would]


def member_uses(priced: PricedBasket, book: RuleBook | None) -> tuple[MemberRuleUse, ...]:
    """The limited rules this sale used (each once per sale, as an online order)."""
    if book is None:
        return ()
    return tuple(MemberRuleUse(rule_id=a.rule_id, per_member_limit=r.per_member_limit) for a in priced.applied
                 if a.saving_fen > 0 and (r := book.by_id.get(a.rule_id)) is not None and r.per_member_limit)


def recorded(uses: tuple[MemberRuleUse, ...], member_id: str, offline: bool, sale_id: str, day: str, now_ms: int
             ) -> list[Any]:
    """The sale's rows of this store's uses (edge/budget_db.py executes them, like the coupons' redemptions)."""
    return [RecordMemberUse(member_id, u.rule_id, sale_id, day, offline, now_ms) for u in uses] if member_id else []
