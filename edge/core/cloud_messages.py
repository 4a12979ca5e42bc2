"""Applying what the cloud sends the store, as pure decisions.

- A cloud message (order to fulfil, cancellation, escrow reply, member snapshot or erasure, catalogue or rule book)
  applies once: its event id is marked in the inbox by the same transaction as its effect, and one already marked
  answers "duplicate" with no effect (`seen` is what the shell found in the inbox).
- A catalogue or rule book older than the one in use never replaces it; one that does not parse is refused (the
  store keeps selling with what it has) - either way the message is marked applied, so it is not retried forever.
- A business ack drops the acked events from the outbox, raises the seq floor to the highest of them, and stops
  counting their stored value as unsettled. It needs no inbox mark: dropping rows twice changes nothing.
- A member's new balance names this store's spends it includes: they stop counting as unsettled with it. The
  cloud sends it before the ack; if it comes later (or never), the ack settles the spend and the balance follows:
  a spend is settled once, by whichever comes first, so nothing is counted twice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from edge.core import after_sales, deliveries, tickets
from edge.core.outcome import (
    ChangeEscrow,
    DropAcked,
    DropMember,
    Effect,
    InsertOrder,
    MarkApplied,
    Outcome,
    PrintTicket,
    SetAsideRefused,
    SetOrderStatus,
    SettleStoredValue,
    StoreBook,
    UpsertMember,
    UseBooks,
)
from edge.core.state import Books, Moment, stock_unit
from protocol import codec
from protocol.delivery_messages import DeliveryReturned
from protocol.errors import ProtocolError
from protocol.messages import (
    BusinessAck,
    CatalogueUpdated,
    EscrowReclaimed,
    MemberUpdated,
    Message,
    OrderCancelled,
    OrderToFulfil,
    RuleBookUpdated,
    SaleCommitted,
)
from protocol.pricing import Catalogue, load_rule_book
from protocol.return_messages import AfterSalesRequested


@dataclass(frozen=True, slots=True)
class AckedRow:
    """An outbox row a business ack names; `frame` is given for sale events only (to settle stored value)."""
    seq: int
    event_id: str
    kind: str
    frame: bytes | None = None


def apply_ack(ack: BusinessAck, rows: list[AckedRow], now_ms: int = 0) -> Outcome:
    """`rows`: the outbox rows the ack names that are still there (an ack for rows already dropped does nothing).
    An event the cloud refused (`refused`) leaves the outbox too, set aside with the reason: re-sending it would be
    refused again, forever; its stored value is not settled (the cloud did not take it)."""
    if not rows:
        return Outcome(reply="acked")
    effects: list[Effect] = []
    notes: list[str] = []
    refused = {a.event_id: a.detail for a in ack.acks if a.result == "refused"}
    if refused:
        aside = tuple((r.event_id, refused[r.event_id]) for r in rows if r.event_id in refused)
        effects.append(SetAsideRefused(aside, now_ms))
        notes += [f"the cloud refused event {event_id}: {why}" for event_id, why in aside]
    for row in rows:
        if row.frame is None or row.event_id in refused:
            continue
        try:
            settled = _stored_value(codec.decode(row.frame))
        except ProtocolError as exc:  # the cloud acked it, so it is gone from the outbox all the same
            notes.append(f"acked event {row.event_id} could not be read to settle stored value: {exc}")
            continue
        if settled:
            effects.append(settled)
    effects.append(DropAcked(tuple(r.event_id for r in rows), max(r.seq for r in rows)))
    return Outcome(reply="acked", effects=tuple(effects), notes=tuple(notes))


def _stored_value(sale) -> SettleStoredValue | None:
    """For an acked sale paid by stored value: its spends, which the cloud now holds."""
    if isinstance(sale, SaleCommitted) and sale.member_id:
        paid = [p for p in sale.payments if p.method == "stored_value"]
        if paid:
            return SettleStoredValue(sale.member_id, tuple(p.reference for p in paid), sum(p.amount_fen for p in paid))
    return None


def apply_cloud_message(message: Message, seen: bool, books: Books, now: Moment) -> Outcome:
    if seen:
        return Outcome(reply="duplicate")
    mark = MarkApplied(message.event_id, message.KIND, now.wall_ms)
    if isinstance(message, OrderToFulfil):
        return _order(message, books, mark)
    if isinstance(message, OrderCancelled):
        # an order being picked is cancelled too (nothing left the shelf until picking is done)
        cancel = SetOrderStatus(message.order_id, "cancelled", only_from=("to_pick", "picking"))
        return Outcome(reply="applied", effects=(mark, cancel))
    if isinstance(message, EscrowReclaimed):
        back = (ChangeEscrow(message.sku, -message.qty_returned),) if message.qty_returned else ()
        return Outcome(reply="applied", effects=(mark, *back))
    if isinstance(message, AfterSalesRequested):  # kept for the store's staff (edge.core.after_sales)
        return Outcome(reply="applied", effects=(mark, after_sales.received(message)))
    if isinstance(message, MemberUpdated):
        if message.erased:
            return Outcome(reply="applied", effects=(mark, DropMember(message.member_id)))
        return Outcome(reply="applied", effects=(mark, UpsertMember(message)))
    if isinstance(message, (CatalogueUpdated, RuleBookUpdated)):
        return _book(message, books, mark)
    if isinstance(message, DeliveryReturned):
        return deliveries.returned(message, mark)
    return Outcome(reply="applied", effects=(mark,), notes=(f"ignored a {message.KIND}: not a message for a store",))


def _order(order: OrderToFulfil, books: Books, mark: MarkApplied) -> Outcome:
    products = {line.sku: books.product(line.sku) for line in order.lines}
    lines = [{"sku": line.sku, "qty": line.qty, "amount_fen": line.amount_fen,  # amount: what a return gives back
              **({"unit": stock_unit(p)} if (p := products[line.sku]) else {})}
             for line in order.lines]
    payload = {"lines": lines, "fulfilment": order.fulfilment, "total_fen": order.total_fen,
               "member_id": order.member_id,  # who collects it: the till shows them masked
               "slot_start_ms": order.slot_start_ms, "allow_substitutions": order.allow_substitutions}
    return Outcome(reply="applied", effects=(mark, InsertOrder(order.order_id, order.pickup_code or None, payload)),
                   after=(PrintTicket(tickets.pick_ticket(order, products)),))


def _book(message: CatalogueUpdated | RuleBookUpdated, books: Books, mark: MarkApplied) -> Outcome:
    is_catalogue = isinstance(message, CatalogueUpdated)
    key = "catalogue" if is_catalogue else "rule_book"
    in_use = books.catalogue_version if is_catalogue else books.rule_book_version
    if in_use > message.version:  # an older book arriving late never replaces a newer one
        return Outcome(reply="applied", effects=(mark,),
                       notes=(f"kept {key} version {in_use}: version {message.version} is older",))
    text = message.payload.decode(errors="replace")
    if not is_catalogue and books.catalogue is None:
        return Outcome(reply="applied", effects=(mark,),
                       notes=(f"refused rule_book version {message.version}: no catalogue to check it against",))
    try:
        if is_catalogue:
            new = Books(Catalogue.from_data(json.loads(text)), books.rule_book, message.version, books.rule_book_version)
        else:
            catalogue = books.catalogue
            assert catalogue is not None  # checked above
            new = Books(catalogue, load_rule_book(json.loads(text), catalogue), books.catalogue_version, message.version)
    except (ProtocolError, ValueError, TypeError) as exc:
        return Outcome(reply="applied", effects=(mark,),
                       notes=(f"refused {key} version {message.version} from the cloud: {exc}",))
    return Outcome(reply="applied", effects=(mark, StoreBook(key, text, message.version)), after=(UseBooks(new),))
