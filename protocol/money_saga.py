"""Money movements and the saga of an order's money, as pure decisions (no I/O, time passed in).

Every movement of money has ONE id, written to the journal (`money_movements` in PostgreSQL) as `requested`
before it is attempted, and set `done` or `failed` once its outcome is known:
- `charge:<order>`: the order's payment (stored value through the MemberLedger, or a provider payment);
- `refund:<order>`: giving that charge back (the ledger's transfer id, or the provider's out_refund_no);
- `topup:<member>:<key hash>`: stored value bought through a provider (credited to the ledger on the provider's
  verified word only);
- `return:<provider txn>`: money the provider confirms it took for us that no movement credits (a payment made for an
  earlier attempt, or for another amount): given back through the provider, once per provider transaction.
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

from protocol import order_lifecycle as lifecycle

Kind = Literal["charge", "refund", "top_up"]
State = Literal["requested", "done", "failed"]
Step = Literal["none", "resolve_charge", "complete_order", "refund", "resolve_refund"]
Verdict = Literal["credit", "duplicate", "not_paid", "unknown", "wrong_amount", "wrong_merchant", "conflict"]

CURRENCY = "CNY"
# A saga step younger than this may still be running in the request that started it (the request deadline is
# 10 s): the sweeper and the audit leave it to that request.
SAGA_GRACE_MS = 12_000
PAID_STATUSES = lifecycle.PAID_STATUSES
OPEN_STATUSES = (lifecycle.PENDING, lifecycle.RESERVED)
# Terminal statuses of an order that will never be served: only these may have their charge refunded (a paid order
# refunded too would leave the customer the goods and the money).
ENDED_STATUSES = (*lifecycle.UNSERVED_STATUSES, lifecycle.REFUNDED)
RETURN_PREFIX = "return:"


def charge_id(order_id: str) -> str:
    return f"charge:{order_id}"


def refund_id(order_id: str) -> str:
    return f"refund:{order_id}"


def part_refund_id(order_id: str, part: str) -> str:
    """Giving back part of an order's charge for one reason (a picked weight, a short line, a return, an
    after-sales request); the full refund (`refund_id`) then gives back only what these left."""
    return f"refund:{order_id}:{part}"


def return_id(txn_id: str) -> str:
    """The refund of a provider transaction no movement credits: one per transaction, whoever notices it first."""
    return f"{RETURN_PREFIX}{txn_id}"


def attempt_name(name: str, attempt: int) -> str:
    """A name for one attempt (the provider's out_trade_no, the ledger's transfer id): the first attempt keeps the
    bare name, so ids written before attempts existed still match; a later one is tagged, because a closed provider
    payment or a refused ledger transfer cannot be tried again under the same name."""
    return name if attempt == 1 else f"{name}#{attempt}"


def may_refund(order_status: str | None) -> bool:
    """Whether an order's done charge may be given back: only once the order has ended unserved. The caller decides
    this under the order's row lock, so a concurrent completion cannot make it paid in between."""
    return order_status in ENDED_STATUSES


def store_notice_due(order_status: str, kind: str, notified_ms: int | None, updated_ms: int, now_ms: int,
                     grace_ms: int = SAGA_GRACE_MS) -> bool:
    """Whether a paid order's stores must be told again: the request that paid it ended (grace) without recording
    that the stores were told (it died between the two). Flash orders have no store to tell."""
    return (order_status == "paid" and kind != "flash" and notified_ms is None
            and now_ms - updated_ms >= grace_ms)


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


def _mismatch(movement: Movement, word: ProviderWord, mchid: str, what: str) -> tuple[Verdict, str] | None:
    """The checks every provider word passes before it may move money: our merchant, the movement's amount in CNY."""
    if word.mchid != mchid:
        return "wrong_merchant", f"merchant {word.mchid!r} is not this merchant"
    if word.currency != CURRENCY or word.amount_fen != movement.amount_fen:
        return "wrong_amount", (f"{what} {word.amount_fen} {word.currency} for a {movement.kind} of "
                                f"{movement.amount_fen} {CURRENCY}")
    return None


def judge_payment(movement: Movement | None, word: ProviderWord, mchid: str) -> tuple[Verdict, str]:
    """What a provider's word about a payment may do to the journal, and why. Only `credit` moves money."""
    if movement is None or movement.kind not in ("charge", "top_up"):
        return "unknown", f"no payment {word.out_no!r} was ever requested"
    if (wrong := _mismatch(movement, word, mchid, "paid")) is not None:
        return wrong
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
    if (wrong := _mismatch(movement, word, mchid, "refunded")) is not None:
        return wrong
    if word.state != "SUCCESS":
        return "not_paid", f"refund state {word.state}"
    if movement.state == "done":
        return "duplicate", f"refund {word.txn_id} was already recorded"
    return "credit", f"refund {word.txn_id}"


def to_return(verdict: Verdict, word: ProviderWord, mchid: str) -> bool:
    """Whether a payment word that credits nothing is money the provider took for us that must be given back: a
    SUCCESS to our merchant for a name no current movement answers to (an earlier attempt's payment, created by a
    request still in flight when the customer paid another way) or for another amount. Not a `conflict`: that
    transaction, or this payment, is already credited, and refunding its out_trade_no would give back the credited
    money. The caller confirms the word with the provider's own query before it refunds anything."""
    return word.state == "SUCCESS" and word.mchid == mchid and verdict in ("unknown", "wrong_amount")


def unmatched_charges(orders: dict[str, str], movements: list[tuple[str, Movement]], now_ms: int,
                      grace_ms: int = SAGA_GRACE_MS) -> list[str]:
    """Charges done whose order is neither paid (or fulfilled) nor refunded, past the grace time: each one is money
    taken for nothing; a refund done for an order that is paid (the customer kept goods and money); money the
    provider took that no movement credits and that is not given back yet. `orders`: order id -> status;
    `movements`: (order id, movement) for charges and refunds."""
    refunded = {order for order, m in movements
                if m.kind == "refund" and m.state == "done" and m.movement_id == refund_id(order)}
    problems = []
    for order, m in movements:
        if m.kind != "charge" or m.state != "done" or order in refunded or not due(m, now_ms, grace_ms):
            continue
        status = orders.get(order, "missing")
        if status not in PAID_STATUSES:
            problems.append(f"charge {m.movement_id} ({m.method}, {m.amount_fen} fen) is done but order {order} is "
                            f"{status} and nothing was refunded")
    for order, m in movements:
        if m.movement_id == refund_id(order) and m.state == "done" and orders.get(order) in PAID_STATUSES:
            problems.append(f"refund {m.movement_id} ({m.method}, {m.amount_fen} fen) is done but order {order} is "
                            f"{orders[order]}: paid and refunded")
        if m.movement_id.startswith(RETURN_PREFIX) and m.state == "requested" and due(m, now_ms, grace_ms):
            problems.append(f"refund {m.movement_id} ({m.method}, {m.amount_fen} fen): money the provider took (order "
                            f"{order}) that nothing credits is not given back yet")
    for order, m in movements:
        if m.kind == "refund" and m.state == "failed":
            problems.append(f"refund {m.movement_id} ({m.method}, {m.amount_fen} fen) failed: order {order}'s money "
                            f"was not given back")
    return problems


@dataclass(frozen=True)
class EndedMoney:
    """An order that ended unserved (or was refunded whole) and had extra charges taken (`charge:<order>:<part>`):
    what its charges took, what its refunds gave back (done), and when any of them last moved."""
    order_id: str
    status: str
    extras_fen: int
    charged_fen: int  # the charge and the extras, done
    refunded_fen: int  # every refund of the order, done
    last_ms: int


def unreturned_extras(ended: list[EndedMoney], now_ms: int, grace_ms: int = SAGA_GRACE_MS) -> list[str]:
    """Ended orders whose refunds give back less than their charges and extras took, past the grace time: an extra
    charge that completed after the full refund was counted (a Spend in flight at cancel) is kept for nothing.
    The order's plain charge left unrefunded is `unmatched_charges`' to name; this names the extras."""
    return [f"order {e.order_id} is {e.status} with {e.extras_fen} fen of extra charges done: its refunds give back "
            f"{e.refunded_fen} of the {e.charged_fen} fen taken"
            for e in ended
            if e.status not in PAID_STATUSES and e.refunded_fen < e.charged_fen and now_ms - e.last_ms >= grace_ms]
