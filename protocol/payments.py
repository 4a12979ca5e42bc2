"""Payment methods and their rules, the same at the till and in the mall.

- cash: at a till only; the tendered amount must cover the total, the change is the difference.
- stored_value: the member's balance in the MemberLedger. Online (the mall, or a till that reaches the cloud) it is
  held at the cloud first and may not go below the available balance; a till that is offline (or whose hold
  request timed out) sells only within the per-member offline allowance (`offline_shortfall`), settled on
  reconnect.
- wallet_sim: the simulated wallet provider (named as simulated wherever it shows). Online, a payment is created at
  the provider and counted only on its verified notification or query (`cloud/services/payments.py`,
  `protocol/money_saga.py`); at a till it is still approved on the spot.
Every payment has one reference, made from the sale or order it pays: a retry carries the same reference, so the
ledger applies it once.
"""
from __future__ import annotations

from typing import Literal

from protocol.money import format_fen
from protocol.policy import OFFLINE_ALLOWANCE_FEN

Method = Literal["cash", "stored_value", "wallet_sim"]
TILL_METHODS: tuple[Method, ...] = ("cash", "stored_value", "wallet_sim")
ONLINE_METHODS: tuple[Method, ...] = ("stored_value", "wallet_sim")


def reference(method: Method, paid_for: str) -> str:
    """The one id of a payment for a sale or an order (the ledger's transfer id for stored value)."""
    return {"cash": "", "stored_value": f"sv:{paid_for}", "wallet_sim": f"sim-{paid_for}"}[method]


def cash_change(tendered_fen: int, total_fen: int) -> int | str:
    """The change to give, or why the cash is refused."""
    if tendered_fen < total_fen:
        return f"cash tendered {format_fen(tendered_fen)} is less than the total {format_fen(total_fen)}"
    return tendered_fen - total_fen


def offline_shortfall(balance_fen: int, unsettled_fen: int, offline_unsettled_fen: int, total_fen: int,
                      allowance_fen: int = OFFLINE_ALLOWANCE_FEN) -> str | None:
    """Why a stored-value payment without the cloud's hold is refused at a till, or None when it may go ahead. The
    store's spends of this member made without a hold and not settled yet, with this one, stay within the offline
    allowance; and the balance the store knows, less everything unsettled there, may go at most the allowance
    below zero. (So an honest store takes a member below zero by at most the allowance, as the cloud checks.)"""
    if offline_unsettled_fen + total_fen > allowance_fen:
        return (f"stored value offline limit: {format_fen(offline_unsettled_fen)} already spent here without the "
                f"cloud, {format_fen(total_fen)} more would pass the offline allowance of {format_fen(allowance_fen)}")
    left = balance_fen - unsettled_fen - total_fen
    if left < -allowance_fen:
        return (f"stored value short: balance after the sale would be {format_fen(left)} "
                f"(limit {format_fen(-allowance_fen)} while offline)")
    return None
