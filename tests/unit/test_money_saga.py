"""The money saga's decisions, without servers: what the sweeper does from any point a crash leaves an order's
money at, which provider words may credit, and the audit's invariant."""
from __future__ import annotations

import pytest

from protocol.money_saga import (
    SAGA_GRACE_MS,
    Movement,
    ProviderWord,
    judge_payment,
    judge_refund,
    next_step,
    unmatched_charges,
)


def mv(kind="charge", state="done", amount=561, updated=0, txn=None, method="stored_value", mid=None) -> Movement:
    return Movement(mid or f"{kind}:o1", kind, method, amount, state, updated, txn)


def word(out_no="charge:o1", state="SUCCESS", amount=561, currency="CNY", mchid="m1", txn="T1") -> ProviderWord:
    return ProviderWord(out_no=out_no, txn_id=txn, state=state, amount_fen=amount, currency=currency, mchid=mchid)


@pytest.mark.parametrize(("status", "charge", "refund", "step"), [
    ("reserved", None, None, "none"),
    ("reserved", mv(state="failed"), None, "none"),
    ("reserved", mv(state="requested"), None, "resolve_charge"),
    ("cancelled", mv(state="requested"), None, "resolve_charge"),
    ("reserved", mv(), None, "complete_order"),  # charged, then the request died before the order was paid
    ("paid", mv(), None, "none"),
    ("fulfilled", mv(), None, "none"),
    ("expired", mv(), None, "refund"),  # the money came after the order expired
    ("cancelled", mv(), None, "refund"),  # cancelled, and the refund never started
    ("cancelled", mv(), mv("refund", "requested"), "resolve_refund"),  # the refund was left half-way
    ("cancelled", mv(), mv("refund", "done"), "none"),
])
def test_next_step_from_every_point(status, charge, refund, step):
    assert next_step(status, charge, refund) == step


def test_only_a_verified_matching_success_credits():
    pending = mv(state="requested", method="wallet_sim")
    assert judge_payment(pending, word(), "m1")[0] == "credit"
    assert judge_payment(None, word(), "m1")[0] == "unknown"
    assert judge_payment(pending, word(amount=560), "m1")[0] == "wrong_amount"
    assert judge_payment(pending, word(currency="USD"), "m1")[0] == "wrong_amount"
    assert judge_payment(pending, word(mchid="other"), "m1")[0] == "wrong_merchant"
    assert judge_payment(pending, word(state="NOTPAY"), "m1")[0] == "not_paid"
    done = mv(state="done", method="wallet_sim", txn="T1")
    assert judge_payment(done, word(), "m1")[0] == "duplicate"
    assert judge_payment(done, word(txn="T2"), "m1")[0] == "conflict"
    assert judge_payment(mv("refund", "requested"), word(), "m1")[0] == "unknown"  # a refund is not a payment
    assert judge_payment(mv(state="failed"), word(), "m1")[0] == "credit"  # closed, then paid after all: money is in


def test_refund_words():
    pending = mv("refund", "requested", method="wallet_sim")
    assert judge_refund(pending, word("refund:o1"), "m1")[0] == "credit"
    assert judge_refund(pending, word("refund:o1", amount=1), "m1")[0] == "wrong_amount"
    assert judge_refund(mv("refund", "done"), word("refund:o1"), "m1")[0] == "duplicate"
    assert judge_refund(None, word("refund:o1"), "m1")[0] == "unknown"


def test_audit_counts_an_unmatched_charge_after_the_grace_time_only():
    now = 100_000
    old, fresh = now - SAGA_GRACE_MS, now - 1
    assert unmatched_charges({"o1": "reserved"}, [("o1", mv(updated=fresh))], now) == []  # still in its request
    problems = unmatched_charges({"o1": "reserved"}, [("o1", mv(updated=old))], now)
    assert len(problems) == 1 and "charge:o1" in problems[0] and "reserved" in problems[0]
    assert unmatched_charges({"o1": "paid"}, [("o1", mv(updated=old))], now) == []
    assert unmatched_charges({"o1": "cancelled"}, [("o1", mv(updated=old)), ("o1", mv("refund", "done"))], now) == []
    failed = unmatched_charges({"o1": "cancelled"}, [("o1", mv(updated=old)), ("o1", mv("refund", "failed"))], now)
    assert len(failed) == 2 and "failed" in failed[1]
