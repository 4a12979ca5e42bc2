"""Holds on stored value: a till that reaches the cloud sets a member's stored value aside before its sale commits,
and the sale's event captures it. Part of the MemberLedger (`actors.member_ledger`), kept apart for size.

Guarantees (within one ledger shard; a member's holds are all in their shard):
- A hold is granted only within the member's available stored value (the balance less live holds), only for a
  member the ledger has a stored-value account for, and a hold id is used once, even after its hold is gone.
- A store cannot freeze members' stored value: at most `LIVE_HOLDS_PER_STORE_MEMBER_MAX` live holds per (store,
  member), and at most `STORE_LIVE_HOLDS_MAX` holds of `STORE_HELD_MAX_FEN` in all per store (per shard: the
  chain-wide bound is that times the shards). A hold lapses after its TTL.
- Only the store that holds a hold releases or captures it; another store naming it changes nothing of it.
- A capture takes its hold once and debits the member in full only then; a capture without a valid hold (none,
  another member's, another store's, smaller, already captured) or of one that lapsed or was released meanwhile is
  believed only as an offline spend at that store, within the offline allowance (`MemberLedger._spend`).
"""
from __future__ import annotations

from typing import Any, ClassVar, TypedDict

from actors.base import IDEMPOTENCY_RETENTION_MS, Command, Query, Result, ok, rejected
from protocol.policy import HOLD_TTL_MS
from protocol.schema import record, require

# A hold stays live until its sale's event reaches the cloud (a second or two; longer while the bridge catches up),
# so one member paying several times in a row at one store has a few live at once; more is a store flooding.
LIVE_HOLDS_PER_STORE_MEMBER_MAX = 4
STORE_LIVE_HOLDS_MAX = 200  # a store's lanes paying by stored value at once, with room; bounds the ledger's memory
STORE_HELD_MAX_FEN = 500_000  # 5,000 yuan held by one store at once: far past 20 lanes' baskets


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


@record
class Hold(Command):
    """Set `amount_fen` of the member's stored value aside for a till sale at `store` about to commit; the command
    id is the hold id. Refused (`insufficient stored value`) past the available balance, and past the store's hold
    bounds. Lapses after `ttl_ms`. Values: hold_id, expires_ms, available_fen (after the hold), the view."""
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
    from the hold once. Without a valid hold it is believed only within the store's offline allowance and flagged.
    Values: entries, points_earned, captured (the hold was live), late (it had lapsed), violation, disputed_fen,
    the view."""
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
    """Give a live hold back (the till voided the sale). Only `store`, the one holding it, may; releasing one that is
    gone or another store's changes nothing. `store` None: the cloud's own release. Values: released, the view."""
    OP: ClassVar[str] = "release"
    member: str
    hold_id: str
    store: str | None = None


@record
class HeldQuery(Query):
    """How much of a member's stored value live holds set aside at `now_ms`."""
    member: str
    now_ms: int

    def answer(self, actor: Any) -> Any:
        return actor.held(self.member, self.now_ms)


class HoldsMixin:
    """The MemberLedger's holds: `op_hold`, `op_capture`, `op_release` and their lapse in `expire_holds`."""

    holds: dict[str, HoldRecord]  # live holds by hold id
    settled_holds: dict[str, SettledHold]  # captured, released or lapsed, for a day
    balances: dict[str, int]

    # provided by MemberLedger
    def member_view(self, member: str, now_ms: int) -> dict[str, Any]:
        raise NotImplementedError

    def _spend(self, member: str, amount: int, transfer_id: str, offline_at: str | None, now_ms: int,
               violation: str = "") -> Result:
        raise NotImplementedError

    def held(self, member: str, now_ms: int) -> int:
        """Stored value set aside by the member's live holds (one past its expiry no longer counts)."""
        return sum(h["amount_fen"] for h in self.holds.values() if h["member"] == member and h["expires_ms"] > now_ms)

    def available(self, member: str, now_ms: int) -> int:
        return self.balances.get(f"m:{member}:sv", 0) - self.held(member, now_ms)

    def _hold_refusal(self, c: Hold, now_ms: int) -> str:
        """Why the hold is not granted (the store's bounds, an unknown member), or ''."""
        if c.id in self.settled_holds:  # a hold id is used once, even after its hold is gone
            return f"hold {c.id} was already {self.settled_holds[c.id]['state']}"
        if f"m:{c.member}:sv" not in self.balances:
            return f"no stored value for member {c.member}"
        live = [h for h in self.holds.values() if h["store"] == c.store and h["expires_ms"] > now_ms]
        if sum(1 for h in live if h["member"] == c.member) >= LIVE_HOLDS_PER_STORE_MEMBER_MAX:
            return f"store {c.store} already holds member {c.member}'s stored value: pay or void that sale first"
        if len(live) >= STORE_LIVE_HOLDS_MAX or sum(h["amount_fen"] for h in live) + c.amount_fen > STORE_HELD_MAX_FEN:
            return f"store {c.store} holds too much stored value at once: pay or void its sales first"
        return ""

    def op_hold(self, c: Hold, now_ms: int) -> Result:
        member, amount = c.member, c.amount_fen
        why = self._hold_refusal(c, now_ms)
        if why:
            return rejected(why, **self.member_view(member, now_ms))
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
        if why:  # believed only as an offline spend at that store (within its allowance); the claim is a violation
            result = self._spend(member, amount, c.id, store, now_ms,
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
        if live is None or live["member"] != c.member or (c.store is not None and live["store"] != c.store):
            return ok(released=False, **self.member_view(c.member, now_ms))
        self._settle_hold(c.hold_id, "released", now_ms)
        return ok(released=True, **self.member_view(c.member, now_ms))

    def expire_holds(self, now_ms: int) -> bool:
        """Holds past their TTL lapse; holds settled a day ago are forgotten. Whether anything changed."""
        lapsed = [hold_id for hold_id, h in self.holds.items() if h["expires_ms"] <= now_ms]
        for hold_id in lapsed:
            self._settle_hold(hold_id, "lapsed", now_ms)
        cutoff = now_ms - IDEMPOTENCY_RETENTION_MS
        old = [hold_id for hold_id, h in self.settled_holds.items() if h["at_ms"] < cutoff]
        for hold_id in old:
            del self.settled_holds[hold_id]
        return bool(lapsed or old)
