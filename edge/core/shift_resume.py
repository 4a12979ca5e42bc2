"""What a cashier's sign-in does to the lane's shifts, as a pure decision (issue 19: shifts survive a restart).

The box forgets who is signed in when it restarts (a PIN is asked again), but a shift it had open stays open in its
journal (`shifts`, closed_ms null). At the next sign-in at the lane:
- the same cashier, the same chain day, one shift left open: the shift CONTINUES (no new shift, no report yet: its
  cash-up and close come later, counted as usual);
- anyone else, or the next day: the shift(s) left open are CLOSED, each reported uncounted (no count was taken), and
  a new shift opens;
- a cashier signed in over another through the lane API closes the other's shift the same way (reported uncounted).
So every shift the box opened is closed once and reported once. No I/O: the shell passes in the open shifts.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.core.cashiers import OnDuty


@dataclass(frozen=True, slots=True)
class LeftOpen:
    """A shift the box's journal has open at the lane (from before a restart, or the signed-in cashier's)."""
    shift_id: str
    cashier_id: str
    opened_day: str  # the chain day it opened on


@dataclass(frozen=True, slots=True)
class SignInPlan:
    resume: str | None  # the shift id that continues, or None: a new shift opens
    close: tuple[str, ...]  # the shift ids to close uncounted first (reported)


def plan_sign_in(cashier_id: str, on_duty: OnDuty | None, left_open: list[LeftOpen], today: str) -> SignInPlan:
    """`left_open`: every shift open at the lane in the journal (the on-duty one among them, if any)."""
    ids = [s.shift_id for s in left_open]
    if on_duty is not None:  # signed in over a cashier in this process's life: theirs ends, uncounted
        return SignInPlan(None, tuple(dict.fromkeys([on_duty.shift_id, *ids])))
    if len(left_open) == 1 and left_open[0].cashier_id == cashier_id and left_open[0].opened_day == today:
        return SignInPlan(left_open[0].shift_id, ())
    return SignInPlan(None, tuple(ids))
