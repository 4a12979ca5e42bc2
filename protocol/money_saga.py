"""Money movements and the saga of an order's money, as pure decisions (no I/O, time passed in).

Every movement of money has ONE id, written to the journal (`money_movements` in PostgreSQL) as `requested`
before it is attempted, and set `done` or `failed` once its outcome is known:
- `charge:<order>`: the order's payment (stored value through the MemberLedger, or a provider payment);
- `refund:<order>`: giving that charge back (the ledger's transfer id, or the provider's out_refund_no);
- `topup:<member>:<key hash>`: stored value bought through a provider (credited to the ledger on the provider's
  verified word only).
The ids are also the ledger's transfer ids and the provider's out_trade_no / out_refund_no, so retrying any step
after a crash, a timeout or a duplicate notification applies it at most once.

`next_step` tells the sweeper what to do for one order from its status and its two movements, whatever point a
crash left it at; `judge_payment` / `judge_refund` decide what a provider's notification (or query answer) may do.
Guarantee (checked by `/audit`, `unmatched_charges`): once the sweeper has run past `SAGA_GRACE_MS`, every charge
that is done is matched by a paid (or fulfilled) order or by a refund.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["charge", "refund", "top_up"]
State = Literal["requested", "done", "failed"]
Step = Literal["none", "resolve_charge", "complete_order", "refund", "resolve_refund"]
Verdict = Literal["credit", "duplicate", "not_paid", "unknown", "wrong_amount", "wrong_merchant", "conflict"]

CURRENCY = "CNY"
# A saga step younger than this may still be running in the request that started it (the request deadline is
# 10 s): the sweeper and the audit leave it to that request.
SAGA_GRACE_MS = 12_000
PAID_STATUSES = ("paid", "fulfilled")
OPEN_STATUSES = ("pending", "reserved")


def charge_id(order_id: str) -> str:
    return f"charge:{order_id}"


def refund_id(order_id: str) -> str:
    return f"refund:{order_id}"


@dataclass(frozen=True)
class Movement:
    """One movement as the journal has it."""
    movement_id: str
    kind: Kind
    method: str
    amount_fen: int
    state: State
    updated_ms: int
    provider_txn_id: str | None = None


@dataclass(frozen=True)
class ProviderWord:
    """What a provider said about a payment or a refund (a verified notification or a query's answer)."""
    out_no: str  # our movement id (out_trade_no or out_refund_no)
    txn_id: str  # the provider's transaction (or refund) id
    state: str  # payments: SUCCESS | NOTPAY | CLOSED | PAYERROR | REFUND; refunds: SUCCESS | PROCESSING | ABNORMAL
    amount_fen: int
    currency: str
    mchid: str


def next_step(order_status: str, charge: Movement | None, refund: Movement | None) -> Step:
    """What finishes or undoes one order's money, from where a crash (or a late notification) left it."""
    if refund is not None:
        return "resolve_refund" if refund.state == "requested" else "none"
    if charge is None or charge.state == "failed":
        return "none"
    if charge.state == "requested":
        return "resolve_charge"  # ask the ledger (same transfer id) or the provider what became of it
    if order_status in PAID_STATUSES:
        return "none"
    if order_status == "reserved":
        return "complete_order"  # confirm its reservations and mark it paid; refund when they cannot be confirmed
    return "refund"  # cancelled, expired, rejected: money taken for an order that will not be served


def due(movement: Movement, now_ms: int, grace_ms: int = SAGA_GRACE_MS) -> bool:
    """True when the request that started this step has certainly ended (its deadline passed)."""
    return now_ms - movement.updated_ms >= grace_ms


def judge_payment(movement: Movement | None, word: ProviderWord, mchid: str) -> tuple[Verdict, str]:
    """What a provider's word about a payment may do to the journal, and why. Only `credit` moves money."""
    if movement is None or movement.kind not in ("charge", "top_up"):
        return "unknown", f"no payment {word.out_no!r} was ever requested"
    if word.mchid != mchid:
        return "wrong_merchant", f"merchant {word.mchid!r} is not this merchant"
    if word.currency != CURRENCY or word.amount_fen != movement.amount_fen:
        return "wrong_amount", (f"paid {word.amount_fen} {word.currency} for a payment of {movement.amount_fen} "
                                f"{CURRENCY}")
    if word.state != "SUCCESS":
        return "not_paid", f"payment state {word.state}"
    if movement.state == "done":
        if movement.provider_txn_id not in (None, word.txn_id):
            return "conflict", (f"already paid by transaction {movement.provider_txn_id}, now {word.txn_id}")
        return "duplicate", f"transaction {word.txn_id} was already credited"
    return "credit", f"transaction {word.txn_id}"  # requested, or failed (closed) and paid after all: the money is in


def judge_refund(movement: Movement | None, word: ProviderWord, mchid: str) -> tuple[Verdict, str]:
    """The same for a refund: only `credit` (the refund is done) changes the journal."""
    if movement is None or movement.kind != "refund":
        return "unknown", f"no refund {word.out_no!r} was ever requested"
    if word.mchid != mchid:
        return "wrong_merchant", f"merchant {word.mchid!r} is not this merchant"
    if word.currency != CURRENCY or word.amount_fen != movement.amount_fen:
        return "wrong_amount", f"refunded {word.amount_fen} {word.currency} for a refund of {movement.amount_fen}"
    if word.state != "SUCCESS":
        return "not_paid", f"refund state {word.state}"
    if movement.state == "done":
        return "duplicate", f"refund {word.txn_id} was already recorded"
    return "credit", f"refund {word.txn_id}"


def unmatched_charges(orders: dict[str, str], movements: list[tuple[str, Movement]], now_ms: int,
                      grace_ms: int = SAGA_GRACE_MS) -> list[str]:
    """Charges done whose order is neither paid (or fulfilled) nor refunded, past the grace time: each one is money
    taken for nothing. `orders`: order id -> status; `movements`: (order id, movement) for charges and refunds."""
    refunded = {order for order, m in movements if m.kind == "refund" and m.state == "done"}
    problems = []
    for order, m in movements:
        if m.kind != "charge" or m.state != "done" or order in refunded or not due(m, now_ms, grace_ms):
            continue
        status = orders.get(order, "missing")
        if status not in PAID_STATUSES:
            problems.append(f"charge {m.movement_id} ({m.method}, {m.amount_fen} fen) is done but order {order} is "
                            f"{status} and nothing was refunded")
    for order, m in movements:
        if m.kind == "refund" and m.state == "failed":
            problems.append(f"refund {m.movement_id} ({m.method}, {m.amount_fen} fen) failed: order {order}'s money "
                            f"was not given back")
    return problems
