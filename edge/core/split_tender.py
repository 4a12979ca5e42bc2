"""Split payments at the till (issue 19.2): part of a sale by one tender, the rest by another - e.g. 20.00 of stored
value and the rest in cash, or part by the (simulated) wallet and the rest in cash. Pure.

The sale event already carries its tenders (`SaleCommitted.payments`: method, amount_fen, reference; they add up
to the total), so a split sale is one sale with two payments: the cloud captures the stored-value part exactly
once (`cloud.messaging.stored_value.spend_commands`, the transfer id from the event id) and the cash part is what
the shift's expected cash counts (the cash payment's amount is the cash kept: tendered less change).

All or nothing: the shell (`edge/split_pay.py`) first authorises the first tender (a stored-value hold at the cloud,
or offline within the allowance), then the sale commits with both tenders in ONE SQLite transaction. If the second
tender fails (cash short, the cart changed, a refusal of any kind), nothing is sold and the first tender is given
back at once (the hold released); nothing is ever held for an open sale.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.core.outcome import Refused
from protocol.money import format_fen

FIRST_METHODS = ("stored_value", "wallet_sim")  # what may pay a part; cash is always the rest, never the first
REST_METHODS = ("cash", "wallet_sim")


@dataclass(frozen=True, slots=True)
class Tender:
    """The first tender of a split sale: `amount_fen` of the total paid by `method`; the sale's method pays the rest."""
    method: str
    amount_fen: int


def split_refusal(first: Tender, rest_method: str, total_fen: int, with_points: bool = False) -> str | None:
    """Why this split cannot pay a sale of `total_fen`, or None. A split has two different tenders, each paying a
    positive part (a first tender of the whole total is not a split: pay by that method alone)."""
    if with_points:
        return "a split payment cannot also take points: pay points with one method, or split without points"
    if first.method not in FIRST_METHODS:
        return f"split: the first tender must be one of {', '.join(FIRST_METHODS)}, not {first.method!r}"
    if rest_method not in REST_METHODS:
        return f"split: the rest must be paid by one of {', '.join(REST_METHODS)}, not {rest_method!r}"
    if first.method == rest_method:
        return f"split: both tenders are {rest_method}; a split takes two different methods"
    if first.amount_fen <= 0:
        return "split: the first tender's amount must be positive"
    if first.amount_fen >= total_fen:
        return (f"split: the first tender of {format_fen(first.amount_fen)} must be less than the total "
                f"{format_fen(total_fen)} (pay by {first.method} alone)")
    return None


def check_split(first: Tender, rest_method: str, total_fen: int, with_points: bool = False) -> None:
    why = split_refusal(first, rest_method, total_fen, with_points)
    if why:
        raise Refused(422, why)
