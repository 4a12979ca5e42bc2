"""MemberLedger: stored value and points as a double-entry ledger, one shard of members.

Guarantees (checked by `audit()`):
- Double entry: every transfer moves an amount from one account to another, so per asset (fen, points) the
  balances of a shard always sum to zero. Member accounts are `m:<member>:sv` and `m:<member>:pts`; the others
  are the chain's (top-up clearing, sales, points issued).
- Transfer ids are made by the caller: a retry answers `exists` with the first result; the same id with different
  content answers `conflict` and changes nothing.
- Holds: a till that reaches the cloud asks for a **hold** before its sale commits (`Hold`, the hold id made by
  the caller). A member's *available* stored value is the balance less their live holds; a hold or an online spend
  past it is refused (`insufficient stored value`), so online spending never overdraws. The sale's event
  **captures** its hold (`Capture`, once: a second capture of the same hold is a violation); a hold never captured
  is released (`Release`, a voided sale) or lapses after its TTL (`Expire` sweeps it).
- A stored-value balance never goes below zero through an online spend. An offline spend settled on reconnect
  (the customer already left with the goods) is always recorded; it may take the balance below zero and is
  **flagged** (`overdraft`). A member's flag stays while the balance is negative and is cleared when it is back
  at zero or above, so the flags are bounded by the members overdrawn right now.
- What a store claims is checked, and a claim that is not trusted is still **recorded** (the goods already left:
  refusing the spend would leave the ledger short of a sale that happened) but **flagged as a violation** that
  `audit()` reports: an "online" spend without a valid hold for that member and amount (none, another member's,
  another store's, smaller, already captured), and offline spends of one store that take a member below zero by
  more than the offline allowance (`floor_limit_fen`; `over_floor`). A capture of a hold that lapsed meanwhile
  (the box was cut off after its sale) counts as an offline spend.
- Points are earned on spend (1 per yuan, either channel) and redeemed only from a sufficient balance.
- The member level follows the rolling 12-month spend.
"""
from __future__ import annotations

from typing import Any, ClassVar, TypedDict

from actors.base import IDEMPOTENCY_RETENTION_MS, Command, IdempotentActor, Query, Result, ok, rejected
from protocol.policy import HOLD_TTL_MS, OFFLINE_ALLOWANCE_FEN
from protocol.schema import record, require

POINTS_PER_YUAN = 1
MONTH_MS = 30 * 24 * 3600 * 1000
ROLLING_MONTHS = 12
LEVELS = (("platinum", 2_000_000), ("gold", 500_000), ("silver", 100_000))  # rolling spend in fen
TOPUP_CLEARING, SALES, POINTS_ISSUED = "sys:topup_clearing", "sys:sales", "sys:points_issued"
Entry = list[str | int]  # one transfer: [debit account, credit account, amount]
VIOLATIONS_KEPT = 1_000  # violations listed one by one; beyond, only counted (audit still says how many)
LIVE_HOLDS_PER_MEMBER_MAX = 20  # a member pays at a few lanes at once at most; more is someone flooding the ledger
UNKNOWN_STORE = "?"  # an offline spend that names no store (recorded before spends named theirs)


class HoldRecord(TypedDict):
    """Stored value set aside for a till sale about to commit."""
    member: str
    amount_fen: int
    store: str
    expires_ms: int


class SettledHold(TypedDict):
    """A hold that is no longer live, remembered (for a day) so a late or second capture is recognised."""
    member: str
    amount_fen: int
    store: str
    state: str  # captured | released | lapsed
    at_ms: int


class Violation(TypedDict):
    """A stored-value spend a store claimed that the ledger does not trust (recorded all the same)."""
    member: str
    store: str
    transfer_id: str
    amount_fen: int
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
    """Pay from stored value. Online: refused (`insufficient stored value`) past the available balance (the
    balance less live holds). `offline`: a till sale already made at `store`, always recorded, flagged when it
    overdraws and a violation past the store's offline allowance. Values: entries, points_earned, the view."""
    OP: ClassVar[str] = "spend"
    member: str
    amount_fen: int
    offline: bool = False
    store: str | None = None

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.amount_fen > 0, "spend: amount_fen must be positive")


@record
class Hold(Command):
    """Set `amount_fen` of the member's stored value aside for a till sale at `store` about to commit; the command
    id is the hold id. Refused (`insufficient stored value`) past the available balance. Lapses after `ttl_ms`.
    Values: hold_id, expires_ms, available_fen (after the hold), the view."""
    OP: ClassVar[str] = "hold"
    member: str
    amount_fen: int
    store: str
    ttl_ms: int = HOLD_TTL_MS

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.amount_fen > 0, "hold: amount_fen must be positive")
        require(0 < self.ttl_ms <= 24 * 3600 * 1000, "hold: ttl_ms must be 1 ms to a day")


@record
class Capture(Command):
    """A till sale made against hold `hold_id` (the id is the sale's payment's own transfer id): the spend, taken
    from the hold once. Always recorded (the sale happened); without a valid hold it is flagged as a violation.
    Values: entries, points_earned, captured (the hold was live), late (it had lapsed), violation, the view."""
    OP: ClassVar[str] = "capture"
    member: str
    hold_id: str
    amount_fen: int
    store: str

    def __post_init__(self) -> None:
        Command.__post_init__(self)
        require(self.amount_fen > 0, "capture: amount_fen must be positive")


@record
class Release(Command):
    """Give a live hold back (the till voided the sale). Releasing one that is gone changes nothing.
    Values: released, the view."""
    OP: ClassVar[str] = "release"
    member: str
    hold_id: str


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


@record
class HeldQuery(Query):
    """How much of a member's stored value live holds set aside at `now_ms`."""
    member: str
    now_ms: int

    def answer(self, actor: Any) -> Any:
        return actor.held(self.member, self.now_ms)


def sv(member: str) -> str:
    return f"m:{member}:sv"


def pts(member: str) -> str:
    return f"m:{member}:pts"


class MemberLedger(IdempotentActor):
    COMMANDS = (TopUp, Spend, RecordSpend, Refund, RedeemPoints, Hold, Capture, Release)

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

    def held(self, member: str, now_ms: int) -> int:
        """Stored value set aside by the member's live holds (one past its expiry no longer counts)."""
        return sum(h["amount_fen"] for h in self.holds.values() if h["member"] == member and h["expires_ms"] > now_ms)

    def available(self, member: str, now_ms: int) -> int:
        return self.balance(sv(member)) - self.held(member, now_ms)

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
        """Post a spend. `offline_at`: the store of a spend made without a live hold, whose overdraft counts against
        that store's offline allowance; `violation`: why the claim is not trusted (recorded all the same)."""
        after = self.balance(sv(member)) - amount
        entries = [self._post(sv(member), SALES, amount)]
        flags: dict[str, bool] = {}
        if after < 0:
            over_floor = False
            if offline_at is not None:
                by_store = self.overdrawn_by.setdefault(member, {})
                by_store[offline_at] = by_store.get(offline_at, 0) + min(amount, -after)
                over_floor = by_store[offline_at] > self.floor_limit_fen
                if over_floor and not violation:
                    violation = (f"offline spends at store {offline_at} took member {member} "
                                 f"{by_store[offline_at]} fen below zero, past the offline allowance of "
                                 f"{self.floor_limit_fen} fen")
            flags = {"overdraft": True, "over_floor": over_floor}
            self.flags[member] = OverdraftFlag(member=member, transfer_id=transfer_id, balance_after=after,
                                               at_ms=now_ms, overdraft=True, over_floor=over_floor)
        if violation:
            self._violation(member, offline_at or "", transfer_id, amount, after, now_ms, violation)
            flags["violation"] = True
        earned = self._earn(member, amount, now_ms, entries)
        return ok(entries=entries, points_earned=earned, **flags, **self.member_view(member, now_ms))

    def _violation(self, member: str, store: str, transfer_id: str, amount: int, after: int, now_ms: int,
                   reason: str) -> None:
        if len(self.violations) >= VIOLATIONS_KEPT:
            self.violations_dropped += 1
            return
        self.violations[transfer_id] = Violation(member=member, store=store, transfer_id=transfer_id,
                                                 amount_fen=amount, balance_after=after, at_ms=now_ms, reason=reason)

    # ---- holds ------------------------------------------------------------------------------------------
    def op_hold(self, c: Hold, now_ms: int) -> Result:
        member, amount = c.member, c.amount_fen
        if c.id in self.settled_holds:  # a hold id is used once, even after its hold is gone
            return rejected(f"hold {c.id} was already {self.settled_holds[c.id]['state']}",
                            **self.member_view(member, now_ms))
        live = sum(1 for h in self.holds.values() if h["member"] == member and h["expires_ms"] > now_ms)
        if live >= LIVE_HOLDS_PER_MEMBER_MAX:
            return rejected(f"member {member} already has {live} holds: pay or void a sale first",
                            **self.member_view(member, now_ms))
        available = self.available(member, now_ms)
        if available < amount:
            return rejected("insufficient stored value", available_fen=available, **self.member_view(member, now_ms))
        expires = now_ms + c.ttl_ms
        self.holds[c.id] = HoldRecord(member=member, amount_fen=amount, store=c.store, expires_ms=expires)
        return ok(hold_id=c.id, expires_ms=expires, available_fen=available - amount, **self.member_view(member, now_ms))

    def _settle_hold(self, hold_id: str, state: str, now_ms: int) -> None:
        h = self.holds.pop(hold_id)
        self.settled_holds[hold_id] = SettledHold(member=h["member"], amount_fen=h["amount_fen"], store=h["store"],
                                                  state=state, at_ms=now_ms)

    def op_capture(self, c: Capture, now_ms: int) -> Result:
        member, amount, store, hold_id = c.member, c.amount_fen, c.store, c.hold_id
        live = self.holds.get(hold_id)
        if live is not None and live["expires_ms"] <= now_ms:  # past its TTL, not swept yet: it has lapsed
            self._settle_hold(hold_id, "lapsed", now_ms)
            live = None
        gone = self.settled_holds.get(hold_id)
        held = live or gone
        why = ""
        if held is None:
            why = f"no hold {hold_id}"
        elif held["member"] != member or held["store"] != store:
            why = f"hold {hold_id} is for member {held['member']} at store {held['store']}"
        elif amount > held["amount_fen"]:
            why = f"hold {hold_id} is for {held['amount_fen']} fen, less than {amount}"
        elif gone is not None and gone["state"] == "captured":
            why = f"hold {hold_id} was already captured"
        if why:
            result = self._spend(member, amount, c.id, None, now_ms,
                                 violation=f"online stored-value spend {c.id} of {amount} fen by member {member} at "
                                           f"store {store} without a valid hold: {why}")
            result.values["captured"] = False
            return result
        if live is not None:
            self._settle_hold(hold_id, "captured", now_ms)
            result = self._spend(member, amount, c.id, None, now_ms)
            result.values["captured"] = True
            return result
        # released or lapsed (the box was cut off after its sale): the till did sell against a hold it had, so it
        # counts as an offline spend, within the store's offline allowance
        assert gone is not None
        state = gone["state"]
        self.settled_holds[hold_id] = SettledHold(member=member, amount_fen=gone["amount_fen"], store=store,
                                                  state="captured", at_ms=now_ms)
        result = self._spend(member, amount, c.id, store, now_ms)
        result.values.update(captured=False, late=state)
        return result

    def op_release(self, c: Release, now_ms: int) -> Result:
        live = self.holds.get(c.hold_id)
        if live is None or live["member"] != c.member:
            return ok(released=False, **self.member_view(c.member, now_ms))
        self._settle_hold(c.hold_id, "released", now_ms)
        return ok(released=True, **self.member_view(c.member, now_ms))

    # ---- other spends, refunds, points ------------------------------------------------------------------
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
        """Holds past their TTL lapse (their stored value is available again); holds settled a day ago and old
        command ids are forgotten."""
        lapsed = [hold_id for hold_id, h in self.holds.items() if h["expires_ms"] <= now_ms]
        for hold_id in lapsed:
            self._settle_hold(hold_id, "lapsed", now_ms)
        cutoff = now_ms - IDEMPOTENCY_RETENTION_MS
        old = [hold_id for hold_id, h in self.settled_holds.items() if h["at_ms"] < cutoff]
        for hold_id in old:
            del self.settled_holds[hold_id]
        forgot = self.forget_old_ids(now_ms)
        return Result(status="ok", noop=not (forgot or lapsed or old))

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
        for v in self.violations.values():
            problems.append(f"violation: {v['reason']} (balance after: {v['balance_after']} fen)")
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
