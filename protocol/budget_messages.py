"""Messages of promotion budgets at the tills (issue 17, item 4), registered in `protocol.messages`' lists.

- `BudgetAllowanceGranted` (cloud -> store): the store's offline share of a budget-capped rule, as the TOTAL fen
  granted to this store for the rule so far (the cloud's PromotionBudgets actor carved it out of the budget). A
  total, not a delta: the store keeps the highest it heard, so a duplicate or a late message changes nothing.
- `BudgetUsed` (edge -> cloud): what one till sale gave under capped rules; the cloud debits the store's share.
  With an identified member it also names the per-member-limited rules the sale used (`member_uses`), which the
  cloud adds to the member's one chain-wide count (a use past the limit is believed and recorded as a conflict).
- `BudgetShareReclaimed` (cloud -> store): the cloud took back the unused part of the store's share (the rule ended,
  was withdrawn or changed, or the share sat unused); the till stops using what it had left of it. Its `generation`
  (this take-back's number, from 1; 0 from a cloud before generations: always applied) orders it against grants.
- `MemberLimitsRequested` -> `MemberLimitsAnswered` (core NATS request/reply on `fm.store.<store>.budget.limits`,
  like the coupon hold): the member's uses of per-member-limited rules as the cloud's PromotionBudgets counts them,
  asked when a member is identified at a lane online.
"""
from __future__ import annotations

from typing import ClassVar

from protocol.messages import Message
from protocol.pricing.rules import RULE_ID_RE
from protocol.schema import record, require

FEN_MAX = 10**12
LIMIT_MAX = 10_000
GENERATION_MAX = 10**9


@record
class BudgetAllowanceGranted(Message):
    KIND: ClassVar[str] = "budget.allowance"
    rule_id: str
    granted_fen: int
    generation: int = 0  # the store's take-backs of the rule's share before this grant

    def check(self) -> None:
        require(bool(RULE_ID_RE.match(self.rule_id)), f"budget.allowance.rule_id: invalid {self.rule_id[:70]!r}")
        require(0 <= self.granted_fen <= FEN_MAX, f"budget.allowance.granted_fen: 0..{FEN_MAX}")
        require(0 <= self.generation <= GENERATION_MAX, f"budget.allowance.generation: 0..{GENERATION_MAX}")


@record
class BudgetUse:
    rule_id: str
    fen: int

    def __post_init__(self) -> None:
        require(bool(RULE_ID_RE.match(self.rule_id)), f"budget use: invalid rule id {self.rule_id[:70]!r}")
        require(0 < self.fen <= FEN_MAX, f"budget use {self.rule_id}: fen 1..{FEN_MAX}")


@record
class MemberRuleUse:
    """One use of a per-member-limited rule by the sale's member, with the limit the till priced with."""
    rule_id: str
    per_member_limit: int

    def __post_init__(self) -> None:
        require(bool(RULE_ID_RE.match(self.rule_id)), f"member use: invalid rule id {self.rule_id[:70]!r}")
        require(0 < self.per_member_limit <= LIMIT_MAX, f"member use {self.rule_id}: limit 1..{LIMIT_MAX}")


@record
class BudgetUsed(Message):
    KIND: ClassVar[str] = "budget.used"
    sale_id: str
    uses: tuple[BudgetUse, ...]
    member_id: str = ""  # the sale's member ("" none): `member_uses` count against them
    offline: bool = False  # the till sold without the cloud's answer on the member's uses
    member_uses: tuple[MemberRuleUse, ...] = ()

    def check(self) -> None:
        require(len(self.uses) + len(self.member_uses) > 0 and len(self.uses) <= 100 and len(self.member_uses) <= 100,
                "budget.used: 1..100 uses or member uses")
        require(len({u.rule_id for u in self.uses}) == len(self.uses), "budget.used: each rule once")
        require(len({u.rule_id for u in self.member_uses}) == len(self.member_uses),
                "budget.used.member_uses: each rule once")
        require(not self.member_uses or 0 < len(self.member_id) <= 64, "budget.used: member uses need a member_id")


@record
class BudgetShareReclaimed(Message):
    KIND: ClassVar[str] = "budget.reclaimed"
    rule_id: str
    returned_fen: int  # what went back to the chain's budget
    reason: str  # ended | withdrawn | changed | idle
    generation: int = 0  # this take-back's number for the store and rule (0: a cloud before generations)

    def check(self) -> None:
        require(0 <= self.generation <= GENERATION_MAX, f"budget.reclaimed.generation: 0..{GENERATION_MAX}")
        require(bool(RULE_ID_RE.match(self.rule_id)), f"budget.reclaimed.rule_id: invalid {self.rule_id[:70]!r}")
        require(0 <= self.returned_fen <= FEN_MAX, f"budget.reclaimed.returned_fen: 0..{FEN_MAX}")
        require(self.reason in ("ended", "withdrawn", "changed", "idle"), "budget.reclaimed.reason: unknown")


LIMITS_SUBJECTS_ALL = "fm.store.*.budget.limits"
LIMITS_QUEUE = "budget-limits"  # the cloud's queue group: any one cloud process answers


def limits_subject(store_id: str) -> str:
    return f"fm.store.{store_id}.budget.limits"


@record
class MemberLimitsRequested(Message):
    KIND: ClassVar[str] = "budget.member_limits"
    member_id: str
    rule_ids: tuple[str, ...]

    def check(self) -> None:
        require(0 < len(self.member_id) <= 64, "budget.member_limits.member_id: a member id")
        require(0 < len(self.rule_ids) <= 100, "budget.member_limits.rule_ids: 1..100 rules")
        for rid in self.rule_ids:
            require(bool(RULE_ID_RE.match(rid)), f"budget.member_limits.rule_ids: invalid {rid[:70]!r}")


@record
class RuleUses:
    rule_id: str
    uses: int

    def __post_init__(self) -> None:
        require(bool(RULE_ID_RE.match(self.rule_id)) and self.uses >= 0, "rule uses: a rule id and uses >= 0")


@record
class MemberLimitsAnswered(Message):
    KIND: ClassVar[str] = "budget.member_limits_answer"
    member_id: str
    uses: tuple[RuleUses, ...]

    def check(self) -> None:
        require(len(self.uses) <= 100, "budget.member_limits_answer.uses: at most 100")
