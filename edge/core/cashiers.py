"""Cashiers at the lanes and the cash they take for stored value, as pure decisions.

- A cashier signs in at a lane with their PIN (checked by the shell against the box's configured argon2 hash): that
  opens a shift, journaled (`OpenShift`); signing out, or another cashier signing in at the lane, closes it.
- A cash top-up of a member's stored value is taken only at a lane with a signed-in cashier, for a member the till
  identified, up to `CASH_TOPUP_MAX_FEN` at once and within the store's daily cap (the cloud checks the cap too,
  and believes a store about its own cash only within it). It commits like a sale - the journal row with the
  cashier and shift, and the event for the cloud, in one transaction - and the cloud credits it once (by event id).
  The till's cached balance is not raised by it: the cloud's new balance comes back as a member snapshot, so a
  refused top-up never shows as spendable.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.core.outcome import CloseShift, Effect, OpenShift, Outcome, Publish, RecordTopUp, Refused
from edge.core.state import EventStamp, Member
from protocol.messages import CashToppedUp
from protocol.money import format_fen


@dataclass(frozen=True, slots=True)
class OnDuty:
    """The cashier signed in at a lane, and their shift."""
    cashier_id: str
    shift_id: str
    lane: str


def sign_in(lane: str, cashier_id: str, pin_ok: bool, shift_id: str, now_ms: int, on_duty: OnDuty | None
            ) -> tuple[Outcome, OnDuty]:
    """`pin_ok`: the shell's verdict on the PIN (False also for a cashier the box does not know: the answer is the
    same, so a guess learns nothing). The lane's previous shift, if any, is closed."""
    if not pin_ok:
        raise Refused(401, f"cashier {cashier_id} could not sign in at lane {lane}: unknown cashier or wrong PIN")
    effects: list[Effect] = [CloseShift(on_duty.shift_id, now_ms)] if on_duty else []
    effects.append(OpenShift(shift_id, cashier_id, lane, now_ms))
    duty = OnDuty(cashier_id, shift_id, lane)
    return Outcome(reply={"lane": lane, "cashier_id": cashier_id, "shift_id": shift_id}, effects=tuple(effects)), duty


def sign_out(lane: str, on_duty: OnDuty | None, now_ms: int) -> Outcome:
    if on_duty is None:
        return Outcome(reply={"lane": lane, "signed_out": None})
    return Outcome(reply={"lane": lane, "signed_out": on_duty.cashier_id, "shift_id": on_duty.shift_id},
                   effects=(CloseShift(on_duty.shift_id, now_ms),))


def top_up(lane: str, on_duty: OnDuty | None, member: Member | None, amount_fen: int, taken_today_fen: int,
           day_cap_fen: int, one_max_fen: int, topup_id: str, stamp: EventStamp) -> Outcome:
    """`taken_today_fen`: the cash top-ups this store took since the chain day began."""
    if on_duty is None:
        raise Refused(403, f"no cashier is signed in at lane {lane}: a cash top-up needs a signed-in cashier")
    if member is None:
        raise Refused(409, "a top-up needs a member: identify the member first")
    if not 0 < amount_fen <= one_max_fen:
        raise Refused(422, f"amount_fen: a cash top-up is 1 fen to {format_fen(one_max_fen)}")
    if taken_today_fen + amount_fen > day_cap_fen:
        raise Refused(409, f"cash top-ups at this store today would reach {format_fen(taken_today_fen + amount_fen)}, "
                           f"past the daily cap of {format_fen(day_cap_fen)}")
    event = stamp.make(CashToppedUp, topup_id=topup_id, lane=lane, member_id=member.member_id, amount_fen=amount_fen,
                       cashier_id=on_duty.cashier_id, shift_id=on_duty.shift_id)
    journal = RecordTopUp(topup_id, lane, member.member_id, amount_fen, on_duty.cashier_id, on_duty.shift_id,
                          stamp.moment.wall_ms)
    return Outcome(reply={"topup_id": topup_id, "member_id": member.member_id, "amount_fen": amount_fen,
                          "cashier_id": on_duty.cashier_id, "shift_id": on_duty.shift_id},
                   effects=(journal, Publish(event)), last_seq=stamp.outcome_seq)
