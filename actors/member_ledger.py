"""MemberLedger: stored value and points as a double-entry ledger, one shard of members.

Guarantees (checked by `audit()`):
- Double entry: every transfer moves an amount from one account to another, so per asset (fen, points) the
  balances of a shard always sum to zero. Member accounts are `m:<member>:sv` and `m:<member>:pts`; the others
  are the chain's (top-up clearing, sales, points issued, and `sys:disputed:<store>`: what a store owes for
  stored-value spends it claimed and the ledger did not believe).
- Transfer ids are made by the caller: a retry answers `exists` with the first result; the same id with different
  content answers `conflict` and changes nothing.
- Holds (`actors.ledger_holds`): a till that reaches the cloud holds the amount before its sale commits and the
  sale's event captures it. A member's *available* stored value is the balance less their live holds; a hold or an
  online spend past it is refused (`insufficient stored value`), so online spending never overdraws.
- **A store's say-so never takes a member's money past what is believed.** A till sale is a fact (the goods left)
  and is always recorded in full, but the member is debited only what is believed: a valid captured hold in full;
  an offline spend (or a capture without a valid hold, or of one that lapsed) only up to the member's available
  stored value plus what is left of that store's offline allowance (`floor_limit_fen`: how far that store's
  offline spends may take the member below zero). The rest is booked to `sys:disputed:<store>`, the store owes it,
  and it is a **violation** `audit()` reports (as is any claimed capture without a valid hold). So one store takes
  a member at most the allowance below zero (n stores: n times the allowance, each owing its own).
- A negative stored-value balance is **flagged** (`overdraft`) while it lasts; the flag is cleared at zero or
  above, so the flags are bounded by the members overdrawn right now.
- Points are earned on what the member was debited or paid (1 per yuan) and redeemed only from a sufficient
  balance. The member level follows the rolling 12-month spend.
"""
from __future__ import annotations

from typing import Any, ClassVar, TypedDict

from actors.base import Command, IdempotentActor, Query, Result, ok, rejected
from actors.ledger_holds import Capture, HeldQuery, Hold, HoldRecord, HoldsMixin, Release, SettledHold
from protocol.policy import OFFLINE_ALLOWANCE_FEN
from protocol.schema import record, require

POINTS_PER_YUAN = 1
MONTH_MS = 30 * 24 * 3600 * 1000
ROLLING_MONTHS = 12
LEVELS = (("platinum", 2_000_000), ("gold", 500_000), ("silver", 100_000))  # rolling spend in fen
TOPUP_CLEARING, SALES, POINTS_ISSUED = "sys:topup_clearing", "sys:sales", "sys:points_issued"
DISPUTED = "sys:disputed:"  # + store: stored value a store's sales claimed beyond what the ledger believed
Entry = list[str | int]  # one transfer: [debit account, credit account, amount]
VIOLATIONS_KEPT = 1_000  # violations listed one by one; beyond, only counted (audit still says how many)
UNKNOWN_STORE = "?"  # an offline spend that names no store (recorded before spends named theirs)


class Violation(TypedDict):
    """A stored-value spend a store claimed that the ledger does not trust: recorded, the member debited only what
    is believed, `disputed_fen` booked to the store."""
    member: str
    store: str
    transfer_id: str
    amount_fen: int
    disputed_fen: int
    balance_after: int
    at_ms: int
    reason: str


class OverdraftFlag(TypedDict):
    """The offline spend that took a member's stored value below zero."""
    member: str
    transfer_id: str
    balance_after: int
    at_ms: int
    overdraft: bool
    over_floor: bool  # a store claimed more than its offline allowance (the rest is disputed, not the member's)


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
    """Pay from stored value. Online: refused (`insufficient stored value`) past the available balance (the
    balance less live holds). `offline`: a till sale already made at `store`, always recorded; the member is debited
    within the store's offline allowance, the rest disputed to the store (a violation). Values: entries,
    points_earned, overdraft/over_floor/violation/disputed_fen when so, the view."""
    OP: ClassVar[str] = "spend"
    member: str
    amount_fen: int
    offline: bool = False
    store: str | None = None

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
class GrantPoints(Command):
    """Points to the member from the chain (`sys:points_issued`): a redemption given back (the order it paid ended
    unserved), a survey answered. `why` says which (for the audit trail)."""
    OP: ClassVar[str] = "grant_points"
    member: str
    points: int
    why: str

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.points > 0, "grant_points: points must be positive")


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


__all__ = ["Capture", "HeldQuery", "Hold", "Release"]  # the hold commands, with the others, from here


class MemberLedger(HoldsMixin, IdempotentActor):
    COMMANDS = (TopUp, Spend, RecordSpend, Refund, RedeemPoints, GrantPoints, Hold, Capture, Release)

    def __init__(self, floor_limit_fen: int = OFFLINE_ALLOWANCE_FEN) -> None:
        super().__init__()
        self.floor_limit_fen = floor_limit_fen  # the per-member offline allowance, per store
        self.balances: dict[str, int] = {}
        self.spend_by_month: dict[str, dict[int, int]] = {}
        # member -> the overdraft that flagged them, while their balance is negative
        self.flags: dict[str, OverdraftFlag] = {}
        self.holds: dict[str, HoldRecord] = {}  # live holds by hold id
        self.settled_holds: dict[str, SettledHold] = {}  # captured, released or lapsed, for a day
        # member -> store -> how far that store's offline spends took the member below zero (while negative)
        self.overdrawn_by: dict[str, dict[str, int]] = {}
        self.violations: dict[str, Violation] = {}  # by transfer id, the first VIOLATIONS_KEPT
        self.violations_dropped = 0

    def balance(self, account: str) -> int:
        return self.balances.get(account, 0)

    def _post(self, debit: str, credit: str, amount: int) -> Entry:
        self.balances[debit] = self.balance(debit) - amount
        self.balances[credit] = self.balance(credit) + amount
        for account in (debit, credit):  # an overdraft flag lasts while the balance is negative
            if account.endswith(":sv") and self.balances[account] >= 0:
                member = account.split(":")[1]
                self.flags.pop(member, None)
                self.overdrawn_by.pop(member, None)
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
        member, amount = c.member, c.amount_fen
        if not c.offline and self.available(member, now_ms) < amount:
            return rejected("insufficient stored value", **self.member_view(member, now_ms))
        store = (c.store or UNKNOWN_STORE) if c.offline else None
        return self._spend(member, amount, c.id, store, now_ms)

    def _spend(self, member: str, amount: int, transfer_id: str, offline_at: str | None, now_ms: int,
               violation: str = "") -> Result:
        """Post a spend. `offline_at`: the store of a spend made without a live hold: the member is debited at most
        their available stored value plus what is left of that store's offline allowance, the rest is booked to the
        store (`sys:disputed:<store>`). `violation`: why the claim is not trusted (recorded all the same)."""
        believed, below, used = amount, 0, 0
        if offline_at is not None:
            room = max(self.available(member, now_ms), 0)
            used = self.overdrawn_by.get(member, {}).get(offline_at, 0)
            believed = min(amount, room + max(self.floor_limit_fen - used, 0))
            below = max(believed - room, 0)  # taken from the allowance: below zero, or below the member's holds
        disputed = amount - believed
        entries = [self._post(sv(member), SALES, believed)] if believed else []
        if below:  # set after posting: a balance still >= 0 (only below the holds) must not clear what was used
            self.overdrawn_by.setdefault(member, {})[offline_at or UNKNOWN_STORE] = used + below
        if disputed:  # the goods left, so the sale is recorded in full: what is not believed, the store owes
            entries.append(self._post(DISPUTED + (offline_at or UNKNOWN_STORE), SALES, disputed))
            violation = violation or (
                f"offline stored-value spend {transfer_id} of {amount} fen by member {member} at store {offline_at} "
                f"past the offline allowance of {self.floor_limit_fen} fen")
        after = self.balance(sv(member))
        flags: dict[str, Any] = {}
        if after < 0:
            flags = {"overdraft": True, "over_floor": bool(disputed)}
            self.flags[member] = OverdraftFlag(member=member, transfer_id=transfer_id, balance_after=after,
                                               at_ms=now_ms, overdraft=True, over_floor=bool(disputed))
        if violation:
            self._violation(member, offline_at or "", transfer_id, amount, disputed, after, now_ms, violation)
            flags.update(violation=True, disputed_fen=disputed)
        earned = self._earn(member, believed, now_ms, entries)
        return ok(entries=entries, points_earned=earned, **flags, **self.member_view(member, now_ms))

    def _violation(self, member: str, store: str, transfer_id: str, amount: int, disputed: int, after: int,
                   now_ms: int, reason: str) -> None:
        if len(self.violations) >= VIOLATIONS_KEPT:
            self.violations_dropped += 1
            return
        self.violations[transfer_id] = Violation(member=member, store=store, transfer_id=transfer_id,
                                                 amount_fen=amount, disputed_fen=disputed, balance_after=after,
                                                 at_ms=now_ms, reason=reason)

    # ---- other spends, refunds, points ------------------------------------------------------------------
    def op_record_spend(self, c: RecordSpend, now_ms: int) -> Result:
        """Spend paid another way (cash, wallet): it earns points and counts towards the level."""
        member, amount = c.member, c.amount_fen
        entries: list[Entry] = []
        earned = self._earn(member, amount, now_ms, entries)
        return ok(entries=entries, points_earned=earned, **self.member_view(member, now_ms))

    def _earn(self, member: str, amount: int, now_ms: int, entries: list[Entry]) -> int:
        """Any spend, in either channel and however paid: points (1 per yuan) and the rolling level spend."""
        if amount <= 0:
            return 0
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

    def op_grant_points(self, c: GrantPoints, now_ms: int) -> Result:
        entries = [self._post(POINTS_ISSUED, pts(c.member), c.points)]
        return ok(entries=entries, **self.member_view(c.member, now_ms))

    def op_expire(self, c: Command, now_ms: int) -> Result:
        """Holds past their TTL lapse (their stored value is available again); holds settled a day ago and old
        command ids are forgotten."""
        lapsed = self.expire_holds(now_ms)
        forgot = self.forget_old_ids(now_ms)
        return Result(status="ok", noop=not (forgot or lapsed))

    def audit(self) -> list[str]:
        problems = []
        for asset, suffix in (("stored value", ":sv"), ("points", ":pts")):
            total = sum(v for a, v in self.balances.items() if a.endswith(suffix) or
                        ((a in (TOPUP_CLEARING, SALES) or a.startswith(DISPUTED)) if suffix == ":sv"
                         else a == POINTS_ISSUED))
            if total != 0:
                problems.append(f"{asset} balances sum to {total}, not 0")
        for account, value in self.balances.items():
            if account.endswith(":pts") and value < 0:
                problems.append(f"{account} is negative: {value}")
        flagged = set(self.flags)
        for account, value in self.balances.items():
            if account.endswith(":sv") and value < 0 and account.split(":")[1] not in flagged:
                problems.append(f"{account} is negative ({value}) without an offline overdraft flag")
        for v in self.violations.values():
            problems.append(f"violation: {v['reason']} (member debited {v['amount_fen'] - v.get('disputed_fen', 0)}"
                            f" fen, balance after: {v['balance_after']} fen)")
        for account, value in sorted(self.balances.items()):
            if account.startswith(DISPUTED) and value:
                problems.append(f"disputed: store {account[len(DISPUTED):]} owes {-value} fen of stored-value spends "
                                f"it claimed and the ledger did not believe ({account})")
        if self.violations_dropped:
            problems.append(f"violation: {self.violations_dropped} more not listed")
        return problems

    def state_snapshot(self) -> dict[str, Any]:
        return {"floor": self.floor_limit_fen, "balances": self.balances, "flags": self.flags,
                "spend": {m: [[k, v] for k, v in months.items()] for m, months in self.spend_by_month.items()},
                "holds": self.holds, "settled_holds": self.settled_holds, "overdrawn_by": self.overdrawn_by,
                "violations": self.violations, "violations_dropped": self.violations_dropped}

    def restore_state(self, s: dict[str, Any]) -> None:
        self.floor_limit_fen, self.balances = s["floor"], s["balances"]
        flags = s["flags"]
        if isinstance(flags, list):  # written before flags were kept per member, and never cleared then:
            by_member = {f["member"]: f for f in flags}  # keep only the members still overdrawn
            flags = {m: f for m, f in by_member.items() if self.balance(sv(m)) < 0}
        self.flags = flags
        self.spend_by_month = {m: {k: v for k, v in months} for m, months in s["spend"].items()}
        # snapshots from before holds have none of these
        self.holds, self.settled_holds = s.get("holds", {}), s.get("settled_holds", {})
        self.overdrawn_by, self.violations = s.get("overdrawn_by", {}), s.get("violations", {})
        self.violations_dropped = s.get("violations_dropped", 0)
