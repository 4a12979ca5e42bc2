"""Budget-capped promotion rules at the till (pure): applied only within this store's offline share.

The cloud's PromotionBudgets actor carves a share of each capped rule's budget out for the store and says so in
`BudgetAllowanceGranted` (the total granted so far). The till prices with what is left of the share
(`PricingContext.budgets_left`): a capped rule the store holds no share of gives nothing at this till, so no store
can give away more than the cloud granted it, online or not. Each sale that used a capped rule takes its fen from
the share in the sale's own transaction and reports it to the cloud (`BudgetUsed`, exactly once through the outbox),
which debits the store's share and may grant more. Per-member limits: edge/core/member_limits.py.

When the cloud takes back the unused part of the share (`BudgetShareReclaimed`: the rule ended, changed or was
withdrawn, or the share sat unused), the till stops using what it had left: the store's granted total becomes
what its tills used (a later grant, a higher total, gives it a share again). Uses the store made before it heard
are still reported and the cloud counts them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.core.outcome import Effect, GrantAllowance, Outcome, Publish, UseAllowance, UseBooks
from edge.core.state import EventStamp
from protocol.budget_messages import BudgetAllowanceGranted, BudgetShareReclaimed, BudgetUse, BudgetUsed, MemberRuleUse
from protocol.pricing import BudgetLeft, PricedBasket, RuleBook


@dataclass(frozen=True, slots=True)
class ReclaimAllowance:
    """The store's share of the rule ends at what its tills used (edge/budget_db.py), unless a grant made after this
    take-back (`generation`) was heard already."""
    rule_id: str
    generation: int = 0


def budgets_left(book: RuleBook | None, allowances: Mapping[str, tuple[int, int]]) -> tuple[BudgetLeft, ...]:
    """Per capped rule of the book: its share granted less what was used (`allowances`: rule -> (granted, used));
    0 when the store holds no share of it."""
    if book is None:
        return ()
    out = []
    for r in book.rules:
        if r.budget_fen:
            granted, used = allowances.get(r.id, (0, 0))
            out.append(BudgetLeft(rule_id=r.id, fen=max(granted - used, 0)))
    return tuple(out)


def changes(outcome: Outcome) -> bool:
    """Whether the shares left may differ after this outcome: a grant, a sale's use, or a new book."""
    return (any(isinstance(e, (GrantAllowance, UseAllowance, ReclaimAllowance)) for e in outcome.effects)
            or any(isinstance(a, UseBooks) for a in outcome.after))


def apply_grant(message: BudgetAllowanceGranted) -> Outcome:
    """The cloud's grant: the store keeps the highest total it heard (a duplicate or a late one changes nothing; one
    older than the store's last take-back is ignored)."""
    return Outcome(reply="applied", effects=(GrantAllowance(message.rule_id, message.granted_fen,
                                                            message.generation),))


def apply_reclaim(message: BudgetShareReclaimed) -> Outcome:
    """The cloud took the unused share back: nothing left of it at this till."""
    # executed by edge/budget_db.py, like coupons'
    effects: tuple[Any, ...] = (ReclaimAllowance(message.rule_id, message.generation),)
    return Outcome(reply="applied", effects=effects)


def sale_uses(priced: PricedBasket, book: RuleBook | None, sale_id: str, stamp: EventStamp, member_id: str = "",
              offline: bool = False, member_uses: tuple[MemberRuleUse, ...] = ()) -> list[Effect]:
    """What the sale gave under capped rules: taken from the shares, and reported to the cloud with the sale; with
    the member's uses of per-member-limited rules (edge/core/member_limits.py), counted in the cloud."""
    if book is None:
        return []
    uses = [BudgetUse(rule_id=a.rule_id, fen=a.saving_fen) for a in priced.applied
            if a.saving_fen > 0 and (r := book.by_id.get(a.rule_id)) is not None and r.budget_fen]
    member_uses = member_uses if member_id else ()
    if not uses and not member_uses:
        return []
    effects: list[Effect] = [UseAllowance(u.rule_id, u.fen) for u in uses]
    effects.append(Publish(stamp.make(BudgetUsed, sale_id=sale_id, uses=tuple(uses), member_id=member_id,
                                      offline=offline, member_uses=member_uses)))
    return effects
