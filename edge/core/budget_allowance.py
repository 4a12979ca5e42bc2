"""Budget-capped promotion rules at the till (pure): applied only within this store's offline share.

The cloud's PromotionBudgets actor carves a share of each capped rule's budget out for the store and says so in
`BudgetAllowanceGranted` (the total granted so far). The till prices with what is left of the share
(`PricingContext.budgets_left`): a capped rule the store holds no share of gives nothing at this till, so no store
can give away more than the cloud granted it, online or not. Each sale that used a capped rule takes its fen from
the share in the sale's own transaction and reports it to the cloud (`BudgetUsed`, exactly once through the outbox),
which debits the store's share and may grant more. Per-member limits are not enforced at the till (a member's uses
are known to the cloud only); see the issue 17 notes.
"""
from __future__ import annotations

from collections.abc import Mapping

from edge.core.outcome import Effect, GrantAllowance, Outcome, Publish, UseAllowance, UseBooks
from edge.core.state import EventStamp
from protocol.budget_messages import BudgetAllowanceGranted, BudgetUse, BudgetUsed
from protocol.pricing import BudgetLeft, PricedBasket, RuleBook


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
    return (any(isinstance(e, (GrantAllowance, UseAllowance)) for e in outcome.effects)
            or any(isinstance(a, UseBooks) for a in outcome.after))


def apply_grant(message: BudgetAllowanceGranted) -> Outcome:
    """The cloud's grant: the store keeps the highest total it heard (a duplicate or a late one changes nothing)."""
    return Outcome(reply="applied", effects=(GrantAllowance(message.rule_id, message.granted_fen),))


def sale_uses(priced: PricedBasket, book: RuleBook | None, sale_id: str, stamp: EventStamp) -> list[Effect]:
    """What the sale gave under capped rules: taken from the shares, and reported to the cloud with the sale."""
    if book is None:
        return []
    uses = [BudgetUse(rule_id=a.rule_id, fen=a.saving_fen) for a in priced.applied
            if a.saving_fen > 0 and (r := book.by_id.get(a.rule_id)) is not None and r.budget_fen]
    if not uses:
        return []
    effects: list[Effect] = [UseAllowance(u.rule_id, u.fen) for u in uses]
    effects.append(Publish(stamp.make(BudgetUsed, sale_id=sale_id, uses=tuple(uses))))
    return effects
