"""A till sale as a pure decision: check the payment, then say what the sale changes.

`pay()` returns an Outcome whose effects - the sale row, one journaled stock movement per line, the sale event,
any escrow reclaim request, the member's unsettled stored value - the shell commits in ONE transaction; the
receipt is an after-effect, so it prints only once the sale is durable. The till never waits on the network:
selling past the offline share goes through and asks the cloud for the difference back (DESIGN.md section 3).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge.core import escrow, tickets
from edge.core.cart import Cart, price
from edge.core.outcome import AddUnsettled, Effect, ForgetCart, InsertSale, MoveStock, Outcome, PrintTicket, Publish, Refused
from edge.core.state import Books, EventStamp, StockLevel
from protocol import payments
from protocol.messages import EscrowReclaimRequested, Payment, SaleCommitted, SaleLine, StockMoved
from protocol.policy import OFFLINE_FLOOR_LIMIT_FEN


@dataclass(frozen=True, slots=True)
class PayRequest:
    lane: str
    method: str  # checked against protocol.payments.TILL_METHODS
    tendered_fen: int = 0


@dataclass(frozen=True, slots=True)
class Till:
    """Who sells, and under which limits (the box's configuration and its connection state)."""
    store_id: str
    online: bool
    floor_limit_fen: int = OFFLINE_FLOOR_LIMIT_FEN


def till_method(name: str) -> payments.Method:
    for method in payments.TILL_METHODS:
        if method == name:
            return method
    raise Refused(422, f"unknown payment method {name!r}: one of {', '.join(payments.TILL_METHODS)}")


def settle(name: str, total_fen: int, tendered_fen: int, cart: Cart, till: Till, sale_id: str
           ) -> tuple[tuple[Payment, ...], int]:
    """(payments, change) for the sale, or Refused saying why this payment cannot go through."""
    method, change = till_method(name), 0
    if method == "cash":
        verdict = payments.cash_change(tendered_fen, total_fen)
        if isinstance(verdict, str):
            raise Refused(409, verdict)
        change = verdict
    elif method == "stored_value":
        if cart.member is None:
            raise Refused(409, "stored value needs a member: identify the member first")
        short = payments.stored_value_shortfall(cart.member.stored_value_fen, cart.member.unsettled_fen, total_fen,
                                                till.online, till.floor_limit_fen)
        if short:
            raise Refused(409, short)
    if not total_fen:  # a basket the promotions made free: nothing is paid, by any method
        return (), change
    return (Payment(method=method, amount_fen=total_fen, reference=payments.reference(method, sale_id)),), change


def sold_stock(lines: tuple[SaleLine, ...], levels: Mapping[str, StockLevel], sale_id: str, stamp: EventStamp
               ) -> list[Effect]:
    """One journaled movement per line, and an escrow reclaim request where the till sold into the cloud's share.
    Two lines of one SKU (two weighings) move it twice; each sees the level the one before left."""
    effects: list[Effect] = []
    now = dict(levels)
    for line in lines:
        level = now.get(line.sku) or StockLevel(line.sku, 0, 0)
        on_hand = level.on_hand - line.quantity.amount
        now[line.sku] = StockLevel(line.sku, on_hand, level.escrow)
        effects.append(MoveStock(stamp.make(StockMoved, sku=line.sku, delta=-line.quantity.amount, reason="sale",
                                            shrinkage_reason="", on_hand_after=on_hand, reference=sale_id)))
        ask = escrow.reclaim_needed(on_hand, level.escrow)
        if ask:
            effects.append(Publish(stamp.make(EscrowReclaimRequested, sku=line.sku, qty=ask)))
    return effects


def pay(cart: Cart, books: Books, request: PayRequest, till: Till, sale_id: str,
        levels: Mapping[str, StockLevel], stamp: EventStamp) -> Outcome:
    """`levels`: the current stock of the cart's SKUs (missing = none yet). `sale_id` and `stamp` are made by the
    shell (ids and the moment are passed in)."""
    if not cart.lines:
        raise Refused(409, "the cart is empty")
    now_ms = stamp.moment.wall_ms
    priced = price(cart, books, till.store_id, now_ms)
    total = priced.total_fen
    paid, change = settle(request.method, total, request.tendered_fen, cart, till, sale_id)
    lines = tuple(SaleLine(sku=line.sku, quantity=line.quantity, amount_fen=pl.amount_fen)
                  for line, pl in zip(cart.lines, priced.lines, strict=True))
    member_id = cart.member.member_id if cart.member else None
    sale = stamp.make(SaleCommitted, sale_id=sale_id, lane=request.lane, lines=lines, total_fen=total,
                      payments=paid, member_id=member_id, offline=not till.online)
    effects: list[Effect] = [InsertSale(sale_id=sale_id, lane=request.lane, total_fen=total, lines=lines, payments=paid,
                          member_id=member_id, offline=not till.online, at_ms=now_ms),
               Publish(sale)]
    effects += sold_stock(lines, levels, sale_id, stamp)
    if request.method == "stored_value" and member_id and total:
        effects.append(AddUnsettled(member_id, total))
    printed = tickets.receipt(till.store_id, sale_id, priced, request.method, request.tendered_fen, change,
                              cart.member.phone_masked if cart.member else None)
    # The cart goes before the receipt prints: a failed print must not leave a paid cart to be paid again.
    return Outcome(reply={"sale_id": sale_id, "total_fen": total, "change_fen": change, "offline": not till.online},
                   effects=tuple(effects), after=(ForgetCart(request.lane), PrintTicket(printed)),
                   last_seq=stamp.outcome_seq)
