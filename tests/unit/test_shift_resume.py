"""Shifts across a restart (edge/core/shift_resume.py): the same cashier continues their shift the same day; anyone
else, or the next day, closes it (reported uncounted) and opens a new one; signing in over a cashier closes theirs."""
from __future__ import annotations

from edge.core.cashiers import OnDuty
from edge.core.shift_resume import LeftOpen, SignInPlan, plan_sign_in

LEFT = LeftOpen("SH1", "C1", "2026-11-30")


def test_the_same_cashier_continues_the_shift_a_restart_left_open():
    assert plan_sign_in("C1", None, [LEFT], "2026-11-30") == SignInPlan("SH1", ())


def test_another_cashier_or_the_next_day_closes_it_and_opens_a_new_shift():
    assert plan_sign_in("C2", None, [LEFT], "2026-11-30") == SignInPlan(None, ("SH1",))
    assert plan_sign_in("C1", None, [LEFT], "2026-12-01") == SignInPlan(None, ("SH1",))


def test_a_sign_in_over_a_cashier_closes_their_shift_and_any_left_open_once():
    duty = OnDuty("C1", "SH1", "1")
    assert plan_sign_in("C1", duty, [LEFT], "2026-11-30") == SignInPlan(None, ("SH1",))
    older = LeftOpen("SH0", "C9", "2026-11-29")
    assert plan_sign_in("C2", None, [older, LEFT], "2026-11-30") == SignInPlan(None, ("SH0", "SH1"))


def test_no_shift_open_opens_a_new_one():
    assert plan_sign_in("C1", None, [], "2026-11-30") == SignInPlan(None, ())
