"""Messages of promotion budgets at the tills (issue 17, item 4), registered in `protocol.messages`' lists.

- `BudgetAllowanceGranted` (cloud -> store): the store's offline share of a budget-capped rule, as the TOTAL fen
  granted to this store for the rule so far (the cloud's PromotionBudgets actor carved it out of the budget). A
  total, not a delta: the store keeps the highest it heard, so a duplicate or a late message changes nothing.
- `BudgetUsed` (edge -> cloud): what one till sale gave under capped rules; the cloud debits the store's share.
"""
from __future__ import annotations

from typing import ClassVar

from protocol.messages import Message
from protocol.pricing.rules import RULE_ID_RE
from protocol.schema import record, require

FEN_MAX = 10**12


@record
class BudgetAllowanceGranted(Message):
    KIND: ClassVar[str] = "budget.allowance"
    rule_id: str
    granted_fen: int

    def check(self) -> None:
        require(bool(RULE_ID_RE.match(self.rule_id)), f"budget.allowance.rule_id: invalid {self.rule_id[:70]!r}")
        require(0 <= self.granted_fen <= FEN_MAX, f"budget.allowance.granted_fen: 0..{FEN_MAX}")


@record
class BudgetUse:
    rule_id: str
    fen: int

    def __post_init__(self) -> None:
        require(bool(RULE_ID_RE.match(self.rule_id)), f"budget use: invalid rule id {self.rule_id[:70]!r}")
        require(0 < self.fen <= FEN_MAX, f"budget use {self.rule_id}: fen 1..{FEN_MAX}")


@record
class BudgetUsed(Message):
    KIND: ClassVar[str] = "budget.used"
    sale_id: str
    uses: tuple[BudgetUse, ...]

    def check(self) -> None:
        require(0 < len(self.uses) <= 100, "budget.used: 1..100 uses")
        require(len({u.rule_id for u in self.uses}) == len(self.uses), "budget.used: each rule once")
