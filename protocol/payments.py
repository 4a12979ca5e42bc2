"""Payment methods and their rules, the same at the till and in the mall.

- cash: at a till only; the tendered amount must cover the total, the change is the difference.
- stored_value: the member's balance in the MemberLedger. Online (mall, or a till that reaches the cloud) it may
  not go below zero; a till that is offline may go down to `-OFFLINE_FLOOR_LIMIT_FEN`, settled on reconnect.
- wallet_sim: the simulated wallet provider (named as simulated wherever it shows). Online, a payment is created at
  the provider and counted only on its verified notification or query (`cloud/services/payments.py`,
  `protocol/money_saga.py`); at a till it is still approved on the spot.
Every payment has one reference, made from the sale or order it pays: a retry carries the same reference, so the
ledger applies it once.
"""
from __future__ import annotations

from typing import Literal

from protocol.money import format_fen
from protocol.policy import OFFLINE_FLOOR_LIMIT_FEN

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


def stored_value_shortfall(balance_fen: int, unsettled_fen: int, total_fen: int, online: bool,
                           floor_limit_fen: int = OFFLINE_FLOOR_LIMIT_FEN) -> str | None:
    """Why a stored-value payment is refused at a till, or None when it may go ahead: the balance known to the
    store, less its spends the cloud has not settled yet, must cover the total (down to the floor when offline)."""
    left = balance_fen - unsettled_fen - total_fen
    floor = 0 if online else -floor_limit_fen
    if left < floor:
        return (f"stored value short: balance after the sale would be {format_fen(left)} "
                f"(limit {format_fen(floor)}{'' if online else ' while offline'})")
    return None
