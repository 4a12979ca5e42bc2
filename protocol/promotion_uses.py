"""Promotion uses as a sale reports them: which rules of the promotion book a till sale's basket used, and the fen
each gave away (pure records).

A till sale's `promotions` list every rule the evaluator applied to its basket (item discounts, spend thresholds,
coupons, member prices, group prices, markdowns too: `AppliedRule` of protocol.pricing.evaluator) with its saving.
The cloud records them with the sale (cloud/messaging/promotion_uses.py) so that the promotion-effect report can say,
per rule, channel and store, how often it was used, what it gave away and what baskets with it sold compared with
baskets without it. An online order's are recorded from its own pricing (the same evaluator) when it is placed.
This module imports no other message module: protocol.messages imports it for SaleCommitted.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from protocol.schema import record, require

RULE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # as protocol.pricing.rules names rules (and "member-price:gold")
PROMOTIONS_MAX = 64  # one basket: more rules than a book would ever stack is a mistake
SAVING_FEN_MAX = 100_000_000  # a million yuan off one basket is not a promotion


@record
class RuleUse:
    rule_id: str
    saving_fen: int  # what the rule gave away on this basket (0: a rule that applied without a saving, a gift)

    def __post_init__(self) -> None:
        require(bool(RULE_ID_RE.match(self.rule_id)), f"promotion: invalid rule id {self.rule_id[:70]!r}")
        require(0 <= self.saving_fen <= SAVING_FEN_MAX, f"promotion {self.rule_id}: saving_fen 0..{SAVING_FEN_MAX}")


def check_promotions(promotions: tuple[RuleUse, ...]) -> None:
    """Each rule at most once per sale, and in all no more given away than one basket plausibly could."""
    require(len(promotions) <= PROMOTIONS_MAX, f"sale.committed: at most {PROMOTIONS_MAX} promotions")
    ids = [p.rule_id for p in promotions]
    require(len(set(ids)) == len(ids), "sale.committed: a promotion is named twice")
    require(sum(p.saving_fen for p in promotions) <= SAVING_FEN_MAX,
            f"sale.committed: the promotions give away more than {SAVING_FEN_MAX} fen")


class _Applied(Protocol):
    rule_id: str
    saving_fen: int


def uses_of(applied: Iterable[_Applied]) -> tuple[RuleUse, ...]:
    """The RuleUses of a priced basket's `applied` rules (protocol.pricing.evaluator.AppliedRule)."""
    return tuple(RuleUse(rule_id=a.rule_id, saving_fen=max(0, a.saving_fen)) for a in applied)
