"""The money saga's decisions, without servers: what the sweeper does from any point a crash leaves an order's
money at, which provider words may credit, and the audit's invariant."""
from __future__ import annotations

import dataclasses

import pytest

from protocol.money_saga import (
    SAGA_GRACE_MS,
    EndedMoney,
    Movement,
    ProviderWord,
    attempt_name,
    judge_payment,
    judge_refund,
    may_refund,
    next_step,
    return_id,
    store_notice_due,
    to_return,
    unmatched_charges,
    unreturned_extras,
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
    ("picked_up", mv(), None, "none"),
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


def test_attempt_names_keep_the_first_attempt_bare():
    assert attempt_name("charge:o1", 1) == "charge:o1"
    assert attempt_name("sv:o1", 3) == "sv:o1#3"


@pytest.mark.parametrize(("status", "ok"), [("cancelled", True), ("expired", True), ("rejected", True),
                                            ("paid", False), ("picked_up", False), ("reserved", False),
                                            ("pending", False), (None, False)])
def test_only_an_ended_order_is_refunded(status, ok):
    # a completion that lost the race to another one must not refund a paid order
    assert may_refund(status) is ok


def test_audit_names_a_refund_done_for_a_paid_order():
    now = 100_000
    movements = [("o1", mv(updated=0)), ("o1", mv("refund", "done"))]
    problems = unmatched_charges({"o1": "paid"}, movements, now)
    assert len(problems) == 1 and "paid and refunded" in problems[0]
    assert unmatched_charges({"o1": "cancelled"}, movements, now) == []


def test_money_nothing_credits_is_returned_and_audited_until_it_is():
    assert to_return("unknown", word("charge:o1"), "m1")  # an earlier attempt's payment
    assert to_return("wrong_amount", word(amount=1), "m1")
    assert not to_return("conflict", word(), "m1")  # already credited: refunding it would give back credited money
    assert not to_return("unknown", word(state="NOTPAY"), "m1")
    assert not to_return("unknown", word(mchid="other"), "m1")
    now = 100_000
    pending = mv("refund", "requested", updated=0, method="wallet_sim", mid=return_id("T9"))
    problems = unmatched_charges({}, [("o1", pending)], now)
    assert len(problems) == 1 and "return:T9" in problems[0] and "not given back" in problems[0]
    assert unmatched_charges({}, [("o1", dataclasses.replace(pending, state="done"))], now) == []
    # a return done is not the order's refund: it neither matches the order's charge nor flags a paid order
    assert unmatched_charges({"o1": "paid"}, [("o1", dataclasses.replace(pending, state="done"))], now) == []


@pytest.mark.parametrize(("status", "kind", "notified", "updated", "due_"), [
    ("paid", "pickup", None, 0, True),
    ("paid", "pickup", None, 99_000, False),  # its request may still be telling the stores
    ("paid", "pickup", 5, 0, False),
    ("paid", "flash", None, 0, False),
    ("picked_up", "pickup", None, 0, False),
])
def test_a_paid_order_the_stores_were_not_told_of_is_told_again(status, kind, notified, updated, due_):
    assert store_notice_due(status, kind, notified, updated, 100_000) is due_


def ended(status="cancelled", extras=120, charged=681, refunded=561, last=0) -> EndedMoney:
    return EndedMoney("o1", status, extras, charged, refunded, last)


def test_audit_names_an_extra_charge_kept_on_an_ended_order_once_past_the_grace_time():
    now = SAGA_GRACE_MS + 1
    named = unreturned_extras([ended()], now)
    assert len(named) == 1 and "o1" in named[0] and "561 of the 681" in named[0]
    assert unreturned_extras([ended(last=now)], now) == []  # the refund of it may still be on its way
    assert unreturned_extras([ended(refunded=681)], now) == []  # given back whole
    assert unreturned_extras([ended(status="picked_up")], now) == []  # served: the extra is the customer's price
    assert unreturned_extras([ended(status="refunded", refunded=600)], now) != []
