"""MemberLedger: stored value and points as a double-entry ledger, one shard of members.

Guarantees (checked by `audit()`):
- Double entry: every transfer moves an amount from one account to another, so per asset (fen, points) the
  balances of a shard always sum to zero. Member accounts are `m:<member>:sv` and `m:<member>:pts`; the others
  are the chain's (top-up clearing, sales, points issued).
- Transfer ids are made by the caller: a retry answers `exists` with the first result; the same id with different
  content answers `conflict` and changes nothing.
- A stored-value balance never goes below zero through an online spend. An offline spend settled on reconnect
  (the customer already left with the goods) is always recorded; it may take the balance below zero, up to the
  configured floor limit, and is **flagged** (`overdraft`), and flagged `over_floor` beyond it.
- Points are earned on spend (1 per yuan, either channel) and redeemed only from a sufficient balance.
- The member level follows the rolling 12-month spend.
"""
from __future__ import annotations

from actors.base import CommandError, IdempotentActor, need, ok, positive, rejected

OFFLINE_FLOOR_LIMIT_FEN = 5_000  # how far below zero offline stored-value spending may go before settlement
POINTS_PER_YUAN = 1
MONTH_MS = 30 * 24 * 3600 * 1000
ROLLING_MONTHS = 12
LEVELS = (("platinum", 2_000_000), ("gold", 500_000), ("silver", 100_000))  # rolling spend in fen
TOPUP_CLEARING, SALES, POINTS_ISSUED = "sys:topup_clearing", "sys:sales", "sys:points_issued"


def sv(member: str) -> str:
    return f"m:{member}:sv"


def pts(member: str) -> str:
    return f"m:{member}:pts"


class MemberLedger(IdempotentActor):
    def __init__(self, floor_limit_fen: int = OFFLINE_FLOOR_LIMIT_FEN) -> None:
        super().__init__()
        self.floor_limit_fen = floor_limit_fen
        self.balances: dict[str, int] = {}
        self.spend_by_month: dict[str, dict[int, int]] = {}
        self.flags: list[dict] = []

    def balance(self, account: str) -> int:
        return self.balances.get(account, 0)

    def _post(self, debit: str, credit: str, amount: int) -> list:
        self.balances[debit] = self.balance(debit) - amount
        self.balances[credit] = self.balance(credit) + amount
        return [debit, credit, amount]

    def level(self, member: str, now_ms: int) -> str:
        month = now_ms // MONTH_MS
        spent = sum(v for m, v in self.spend_by_month.get(member, {}).items() if month - m < ROLLING_MONTHS)
        return next((name for name, threshold in LEVELS if spent >= threshold), "regular")

    def member_view(self, member: str, now_ms: int) -> dict:
        return {"member_id": member, "stored_value_fen": self.balance(sv(member)), "points": self.balance(pts(member)),
                "level": self.level(member, now_ms)}

    def op_topup(self, c: dict, now_ms: int) -> dict:
        member, amount = need(c, "member"), positive(c, "amount_fen")
        entries = [self._post(TOPUP_CLEARING, sv(member), amount)]
        return ok(entries=entries, **self.member_view(member, now_ms))

    def op_spend(self, c: dict, now_ms: int) -> dict:
        member, amount = need(c, "member"), positive(c, "amount_fen")
        offline = c.get("offline", False) is True
        after = self.balance(sv(member)) - amount
        if after < 0 and not offline:
            return rejected("insufficient stored value", **self.member_view(member, now_ms))
        entries = [self._post(sv(member), SALES, amount)]
        flags = {}
        if after < 0:
            flags = {"overdraft": True, "over_floor": after < -self.floor_limit_fen}
            self.flags.append({"member": member, "transfer_id": c["id"], "balance_after": after, "at_ms": now_ms, **flags})
        earned = self._earn(member, amount, now_ms, entries)
        return ok(entries=entries, points_earned=earned, **flags, **self.member_view(member, now_ms))

    def op_record_spend(self, c: dict, now_ms: int) -> dict:
        """Spend paid another way (cash, wallet): it earns points and counts towards the level."""
        member, amount = need(c, "member"), positive(c, "amount_fen")
        entries: list = []
        earned = self._earn(member, amount, now_ms, entries)
        return ok(entries=entries, points_earned=earned, **self.member_view(member, now_ms))

    def _earn(self, member: str, amount: int, now_ms: int, entries: list) -> int:
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

    def op_refund(self, c: dict, now_ms: int) -> dict:
        member, amount = need(c, "member"), positive(c, "amount_fen")
        entries = [self._post(SALES, sv(member), amount)]
        return ok(entries=entries, **self.member_view(member, now_ms))

    def op_redeem_points(self, c: dict, now_ms: int) -> dict:
        member, points = need(c, "member"), positive(c, "points")
        if self.balance(pts(member)) < points:
            return rejected("insufficient points", **self.member_view(member, now_ms))
        entries = [self._post(pts(member), POINTS_ISSUED, points)]
        return ok(entries=entries, **self.member_view(member, now_ms))

    def op_expire(self, c: dict, now_ms: int) -> dict:
        return ok(noop=not self.forget_old_ids(now_ms))

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
        flagged = {f["member"] for f in self.flags}
        for account, value in self.balances.items():
            if account.endswith(":sv") and value < 0 and account.split(":")[1] not in flagged:
                problems.append(f"{account} is negative ({value}) without an offline overdraft flag")
        return problems

    def state_snapshot(self) -> dict:
        return {"floor": self.floor_limit_fen, "balances": self.balances, "flags": self.flags,
                "spend": {m: [[k, v] for k, v in months.items()] for m, months in self.spend_by_month.items()}}

    def restore_state(self, s: dict) -> None:
        self.floor_limit_fen, self.balances, self.flags = s["floor"], s["balances"], s["flags"]
        self.spend_by_month = {m: {k: v for k, v in months} for m, months in s["spend"].items()}
