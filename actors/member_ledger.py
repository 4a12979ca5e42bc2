"""MemberLedger: stored value and points as a double-entry ledger, one shard of members.

Guarantees (checked by `audit()`):
- Double entry: every transfer moves an amount from one account to another, so per asset (fen, points) the
  balances of a shard always sum to zero. Member accounts are `m:<member>:sv` and `m:<member>:pts`; the others
  are the chain's (top-up clearing, sales, points issued).
- Transfer ids are made by the caller: a retry answers `exists` with the first result; the same id with different
  content answers `conflict` and changes nothing.
- A stored-value balance never goes below zero through an online spend. An offline spend settled on reconnect
  (the customer already left with the goods) is always recorded; it may take the balance below zero, up to the
  configured floor limit, and is **flagged** (`overdraft`), and flagged `over_floor` beyond it. A member's flag
  stays while the balance is negative and is cleared when it is back at zero or above, so the flags are bounded
  by the members overdrawn right now.
- Points are earned on spend (1 per yuan, either channel) and redeemed only from a sufficient balance.
- The member level follows the rolling 12-month spend.
"""
from __future__ import annotations

from typing import Any, ClassVar, TypedDict

from actors.base import Command, IdempotentActor, Query, Result, ok, rejected
from protocol.policy import OFFLINE_FLOOR_LIMIT_FEN
from protocol.schema import record, require

POINTS_PER_YUAN = 1
MONTH_MS = 30 * 24 * 3600 * 1000
ROLLING_MONTHS = 12
LEVELS = (("platinum", 2_000_000), ("gold", 500_000), ("silver", 100_000))  # rolling spend in fen
TOPUP_CLEARING, SALES, POINTS_ISSUED = "sys:topup_clearing", "sys:sales", "sys:points_issued"
Entry = list[str | int]  # one transfer: [debit account, credit account, amount]


class OverdraftFlag(TypedDict):
    """The offline spend that took a member's stored value below zero."""
    member: str
    transfer_id: str
    balance_after: int
    at_ms: int
    overdraft: bool
    over_floor: bool  # beyond the configured floor limit


# ---- commands: every one names the member, which is also the shard key ---------------------------------------
@record
class TopUp(Command):
    """Stored value in (paid through a provider or at a till). Values: entries and the member's view."""
    OP: ClassVar[str] = "topup"
    member: str
    amount_fen: int

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.amount_fen > 0, "topup: amount_fen must be positive")


@record
class Spend(Command):
    """Pay from stored value. Online: refused (`insufficient stored value`) past the balance. `offline`: a till
    sale already made, always recorded, flagged when it overdraws. Values: entries, points_earned, the view."""
    OP: ClassVar[str] = "spend"
    member: str
    amount_fen: int
    offline: bool = False

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.amount_fen > 0, "spend: amount_fen must be positive")


@record
class RecordSpend(Command):
    """Spend paid another way (cash, wallet): earns points and counts towards the level."""
    OP: ClassVar[str] = "record_spend"
    member: str
    amount_fen: int

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.amount_fen > 0, "record_spend: amount_fen must be positive")


@record
class Refund(Command):
    """Stored value back to the member (a cancelled or failed order)."""
    OP: ClassVar[str] = "refund"
    member: str
    amount_fen: int

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.amount_fen > 0, "refund: amount_fen must be positive")


@record
class RedeemPoints(Command):
    """Spend points; refused (`insufficient points`) past the balance."""
    OP: ClassVar[str] = "redeem_points"
    member: str
    points: int

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.points > 0, "redeem_points: points must be positive")


@record
class MemberQuery(Query):
    """A member's stored value, points and level at `now_ms`."""
    member: str
    now_ms: int

    def answer(self, actor: Any) -> Any:
        return actor.member_view(self.member, self.now_ms)


def sv(member: str) -> str:
    return f"m:{member}:sv"


def pts(member: str) -> str:
    return f"m:{member}:pts"


class MemberLedger(IdempotentActor):
    COMMANDS = (TopUp, Spend, RecordSpend, Refund, RedeemPoints)

    def __init__(self, floor_limit_fen: int = OFFLINE_FLOOR_LIMIT_FEN) -> None:
        super().__init__()
        self.floor_limit_fen = floor_limit_fen
        self.balances: dict[str, int] = {}
        self.spend_by_month: dict[str, dict[int, int]] = {}
        # member -> the overdraft that flagged them, while their balance is negative
        self.flags: dict[str, OverdraftFlag] = {}

    def balance(self, account: str) -> int:
        return self.balances.get(account, 0)

    def _post(self, debit: str, credit: str, amount: int) -> Entry:
        self.balances[debit] = self.balance(debit) - amount
        self.balances[credit] = self.balance(credit) + amount
        for account in (debit, credit):  # an overdraft flag lasts while the balance is negative
            if account.endswith(":sv") and self.balances[account] >= 0:
                self.flags.pop(account.split(":")[1], None)
        return [debit, credit, amount]

    def level(self, member: str, now_ms: int) -> str:
        month = now_ms // MONTH_MS
        spent = sum(v for m, v in self.spend_by_month.get(member, {}).items() if month - m < ROLLING_MONTHS)
        return next((name for name, threshold in LEVELS if spent >= threshold), "regular")

    def member_view(self, member: str, now_ms: int) -> dict[str, Any]:
        return {"member_id": member, "stored_value_fen": self.balance(sv(member)), "points": self.balance(pts(member)),
                "level": self.level(member, now_ms)}

    def op_topup(self, c: TopUp, now_ms: int) -> Result:
        member, amount = c.member, c.amount_fen
        entries = [self._post(TOPUP_CLEARING, sv(member), amount)]
        return ok(entries=entries, **self.member_view(member, now_ms))

    def op_spend(self, c: Spend, now_ms: int) -> Result:
        member, amount, offline = c.member, c.amount_fen, c.offline
        after = self.balance(sv(member)) - amount
        if after < 0 and not offline:
            return rejected("insufficient stored value", **self.member_view(member, now_ms))
        entries = [self._post(sv(member), SALES, amount)]
        flags: dict[str, bool] = {}
        if after < 0:
            flags = {"overdraft": True, "over_floor": after < -self.floor_limit_fen}
            self.flags[member] = OverdraftFlag(member=member, transfer_id=c.id, balance_after=after, at_ms=now_ms,
                                               overdraft=True, over_floor=flags["over_floor"])
        earned = self._earn(member, amount, now_ms, entries)
        return ok(entries=entries, points_earned=earned, **flags, **self.member_view(member, now_ms))

    def op_record_spend(self, c: RecordSpend, now_ms: int) -> Result:
        """Spend paid another way (cash, wallet): it earns points and counts towards the level."""
        member, amount = c.member, c.amount_fen
        entries: list[Entry] = []
        earned = self._earn(member, amount, now_ms, entries)
        return ok(entries=entries, points_earned=earned, **self.member_view(member, now_ms))

    def _earn(self, member: str, amount: int, now_ms: int, entries: list[Entry]) -> int:
        """Any spend, in either channel and however paid: points (1 per yuan) and the rolling level spend."""
        earned = amount // 100 * POINTS_PER_YUAN
        if earned:
            entries.append(self._post(POINTS_ISSUED, pts(member), earned))
        self._record_spend(member, amount, now_ms)
        return earned

    def _record_spend(self, member: str, amount: int, now_ms: int) -> None:
        months = self.spend_by_month.setdefault(member, {})
        month = now_ms // MONTH_MS
        months[month] = months.get(month, 0) + amount
        for old in [m for m in months if month - m >= ROLLING_MONTHS]:
            del months[old]

    def op_refund(self, c: Refund, now_ms: int) -> Result:
        member, amount = c.member, c.amount_fen
        entries = [self._post(SALES, sv(member), amount)]
        return ok(entries=entries, **self.member_view(member, now_ms))

    def op_redeem_points(self, c: RedeemPoints, now_ms: int) -> Result:
        member, points = c.member, c.points
        if self.balance(pts(member)) < points:
            return rejected("insufficient points", **self.member_view(member, now_ms))
        entries = [self._post(pts(member), POINTS_ISSUED, points)]
        return ok(entries=entries, **self.member_view(member, now_ms))

    def op_expire(self, c: Command, now_ms: int) -> Result:
        return Result(status="ok", noop=not self.forget_old_ids(now_ms))

    def audit(self) -> list[str]:
        problems = []
        for asset, suffix in (("stored value", ":sv"), ("points", ":pts")):
            total = sum(v for a, v in self.balances.items() if a.endswith(suffix) or
                        (a in (TOPUP_CLEARING, SALES) if suffix == ":sv" else a == POINTS_ISSUED))
            if total != 0:
                problems.append(f"{asset} balances sum to {total}, not 0")
        for account, value in self.balances.items():
            if account.endswith(":pts") and value < 0:
                problems.append(f"{account} is negative: {value}")
        flagged = set(self.flags)
        for account, value in self.balances.items():
            if account.endswith(":sv") and value < 0 and account.split(":")[1] not in flagged:
                problems.append(f"{account} is negative ({value}) without an offline overdraft flag")
        return problems

    def state_snapshot(self) -> dict[str, Any]:
        return {"floor": self.floor_limit_fen, "balances": self.balances, "flags": self.flags,
                "spend": {m: [[k, v] for k, v in months.items()] for m, months in self.spend_by_month.items()}}

    def restore_state(self, s: dict[str, Any]) -> None:
        self.floor_limit_fen, self.balances = s["floor"], s["balances"]
        flags = s["flags"]
        if isinstance(flags, list):  # written before flags were kept per member, and never cleared then:
            by_member = {f["member"]: f for f in flags}  # keep only the members still overdrawn
            flags = {m: f for m, f in by_member.items() if self.balance(sv(m)) < 0}
        self.flags = flags
        self.spend_by_month = {m: {k: v for k, v in months} for m, months in s["spend"].items()}
