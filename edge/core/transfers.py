"""Transfers between stores at the edge, as pure decisions (issue 16 item 5): request (at the receiving store B),
dispatch (at the sending store A), receive (at B), and what the cloud's transfer messages do here.

Guarantees:
- Every step is idempotent by the transfer id: a request, dispatch or receipt done already answers its first
  result and changes nothing; a cloud message applies once (its event id goes into the inbox with its effect).
- A dispatch takes stock off this store only for what was asked of it (per SKU at most the asked quantity), out of
  named lots or first-expiry-first-out over the lots that are not expired, never past what is on hand of a lot
  (an expired lot is never sent: it waits to be written off). Each SKU's `transfer_out` movement carries its lots,
  and if the loss eats into the cloud's online escrow the store asks for the difference back (as shrinkage does).
- A receipt puts stock into the same lots (lot name and use-by as dispatched) by `transfer_in` movements, with the
  escrow grant receiving earns; what was dispatched and did not arrive (or arrived over) is kept as the
  discrepancy per line, and a receipt past `over_receipt_max` of a line is refused (nothing made out of nothing).
- A step's movements, the transfer row and its event for the cloud commit in one SQLite transaction (the shell),
  so the store works offline and the cloud hears each step exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edge.core import escrow
from edge.core.outcome import ChangeEscrow, Effect, MarkApplied, MoveStock, Outcome, Publish, Refused, SaveTransfer
from edge.core.state import Books, EventStamp, StockLevel
from protocol.lots import LotDelta, LotLevel, fefo, is_expired, lot_for_arrival
from protocol.messages import EscrowGranted, EscrowReclaimRequested, StockMoved
from protocol.transfer_facts import discrepancies, over_receipt_max
from protocol.transfer_messages import (
    TransferArriving,
    TransferCancelled,
    TransferDispatched,
    TransferLine,
    TransferLotLine,
    TransferReceived,
    TransferRequested,
    TransferToDispatch,
)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer as this store keeps it. `direction`: "in" (this store receives: it asked, or the cloud told it of
    one arriving) or "out" (this store sends). `status`: in: requested -> arriving -> received; out: to_dispatch ->
    dispatched. Lines are (sku, qty) asked, and (sku, lot, use_by, qty) sent and received."""
    transfer_id: str
    direction: str
    other_store: str
    status: str
    asked: tuple[tuple[str, int], ...]
    reason: str = ""
    requested_by: str = ""
    sent: tuple[tuple[str, str, str, int], ...] = ()
    dispatched_by: str = ""
    received: tuple[tuple[str, str, str, int], ...] = ()
    received_by: str = ""
    updated_ms: int = 0

    def as_json(self, store_id: str) -> dict[str, Any]:
        from_store, to_store = (store_id, self.other_store) if self.direction == "out" else (self.other_store, store_id)
        out: dict[str, Any] = {
            "transfer_id": self.transfer_id, "direction": self.direction, "from_store": from_store,
            "to_store": to_store, "status": self.status, "reason": self.reason, "requested_by": self.requested_by,
            "lines": [{"sku": s, "qty": q} for s, q in self.asked]}
        if self.sent:
            out["dispatched"] = [{"sku": s, "lot": lot, "use_by": u, "qty": q} for s, lot, u, q in self.sent]
            out["dispatched_by"] = self.dispatched_by
        if self.status == "received":
            out["received"] = [{"sku": s, "lot": lot, "use_by": u, "qty": q} for s, lot, u, q in self.received]
            out["received_by"] = self.received_by
            out["discrepancies"] = discrepancies(self.sent, self.received)
        return out


# ---- step 1: the receiving store asks -----------------------------------------------------------------------

def request(transfer_id: str, store_id: str, from_store: str, lines: list[tuple[str, int]], requested_by: str,
            reason: str, known: Transfer | None, books: Books, stamp: EventStamp) -> Outcome:
    if known is not None:  # asked already (a retry after a lost answer): its first result
        return Outcome(reply=known.as_json(store_id))
    if from_store == store_id:
        raise Refused(422, "from_store: a store cannot ask itself for a transfer")
    for sku, _ in lines:
        if books.catalogue is not None and sku not in books.catalogue:
            raise Refused(404, f"lines: unknown product {sku!r}")
    asked = _merged(lines)
    event = stamp.make(TransferRequested, transfer_id=transfer_id, from_store=from_store,
                       lines=tuple(TransferLine(sku=s, qty=q) for s, q in asked), requested_by=requested_by,
                       reason=reason)
    transfer = Transfer(transfer_id, "in", from_store, "requested", asked, reason, requested_by,
                        updated_ms=stamp.moment.wall_ms)
    return Outcome(reply=transfer.as_json(store_id), effects=(SaveTransfer(transfer), Publish(event)),
                   last_seq=stamp.outcome_seq)


def _merged(lines: list[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    total: dict[str, int] = {}
    for sku, qty in lines:
        total[sku] = total.get(sku, 0) + qty
    return tuple(total.items())


# ---- what the cloud sends ----------------------------------------------------------------------------------

def told(message: TransferToDispatch | TransferArriving | TransferCancelled, seen: bool, known: Transfer | None,
         at_ms: int) -> Outcome:
    """A transfer to dispatch from here, or one dispatched to here, or cancelled: kept for the staff (once: a
    redelivery, or a message about a transfer this store has gone further with, changes nothing - a transfer
    dispatched here before its cancellation arrived stays dispatched: the goods left; and one dispatched to here
    after HQ cancelled it here arrives all the same)."""
    if seen:
        return Outcome(reply="duplicate")
    mark = MarkApplied(message.event_id, message.KIND, at_ms)
    if isinstance(message, TransferCancelled):
        if known is None or known.status not in ("to_dispatch", "requested"):
            return Outcome(reply="applied", effects=(mark,))
        cancelled = replace(known, status="cancelled", reason=message.reason or known.reason, updated_ms=at_ms)
        return Outcome(reply="applied", effects=(mark, SaveTransfer(cancelled)))
    if isinstance(message, TransferToDispatch):
        if known is not None:
            return Outcome(reply="applied", effects=(mark,))
        asked = tuple((x.sku, x.qty) for x in message.lines)
        row = Transfer(message.transfer_id, "out", message.to_store, "to_dispatch", asked, message.reason,
                       message.requested_by, updated_ms=at_ms)
        return Outcome(reply="applied", effects=(mark, SaveTransfer(row)))
    # an arrival over a cancelled request wins (as in the cloud): A dispatched before it heard, the goods are on
    # their way here and must be received, or they are lost from both stores
    if known is not None and (known.direction != "in" or known.status not in ("requested", "cancelled")):
        return Outcome(reply="applied", effects=(mark,))
    sent = tuple((x.sku, x.lot, x.use_by, x.qty) for x in message.lines)
    asked = tuple((x.sku, x.qty) for x in message.asked_lines)
    row = Transfer(message.transfer_id, "in", message.from_store, "arriving", asked, message.reason,
                   known.requested_by if known else "", sent, message.dispatched_by, updated_ms=at_ms)
    return Outcome(reply="applied", effects=(mark, SaveTransfer(row)))


# ---- step 2: the sending store dispatches ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send:
    """A dispatch line as staff enter it: `qty` of `sku`, from lot `lot` (None: first-expiry-first-out)."""
    sku: str
    qty: int
    lot: str | None = None


def dispatch(transfer: Transfer | None, transfer_id: str, store_id: str, sends: list[Send], dispatched_by: str,
             levels: dict[str, StockLevel], lots: dict[str, list[LotLevel]], day: str, stamp: EventStamp) -> Outcome:
    """`levels`/`lots`: the SKUs' stock and lots here now; `day`: the chain day (expired lots are not sent)."""
    if transfer is None:
        raise Refused(404, f"no transfer {transfer_id} at this store")
    if transfer.direction != "out":
        raise Refused(409, f"transfer {transfer_id} comes to this store from {transfer.other_store}: it is received "
                           "here, not dispatched")
    if transfer.status == "dispatched":
        return Outcome(reply=transfer.as_json(store_id))
    if transfer.status != "to_dispatch":
        raise Refused(409, f"transfer {transfer_id} is {transfer.status}, not to dispatch")
    taken = _taken(transfer, sends, lots, day)
    effects: list[Effect] = []
    for sku, deltas in taken.items():
        qty = -sum(d.delta for d in deltas)
        level = levels.get(sku) or StockLevel(sku, 0, 0)
        if qty > level.on_hand:
            raise Refused(409, f"lines {sku}: {qty} to send, {level.on_hand} on hand")
        on_hand = level.on_hand - qty
        effects.append(MoveStock(stamp.make(StockMoved, sku=sku, delta=-qty, reason="transfer_out", shrinkage_reason="",
                                            on_hand_after=on_hand, reference=transfer_id, lots=tuple(deltas))))
        ask = escrow.reclaim_needed(on_hand, level.escrow)
        if ask:
            effects.append(Publish(stamp.make(EscrowReclaimRequested, sku=sku, qty=ask)))
    sent = tuple((sku, d.lot, d.use_by, -d.delta) for sku, deltas in taken.items() for d in deltas)
    effects.append(Publish(stamp.make(TransferDispatched, transfer_id=transfer_id, to_store=transfer.other_store,
                                      lines=tuple(TransferLotLine(sku=s, lot=lot, use_by=u, qty=q)
                                                  for s, lot, u, q in sent),
                                      dispatched_by=dispatched_by)))
    done = replace(transfer, status="dispatched", sent=sent, dispatched_by=dispatched_by, updated_ms=stamp.moment.wall_ms)
    effects.append(SaveTransfer(done))
    return Outcome(reply=done.as_json(store_id), effects=tuple(effects), last_seq=stamp.outcome_seq)


def _taken(transfer: Transfer, sends: list[Send], lots: dict[str, list[LotLevel]], day: str) -> dict[str, list[LotDelta]]:
    """Per SKU, the lots each send line takes from (named, or first-expiry-first-out), checked against what was asked
    and what each lot holds; lines of one SKU add up."""
    if not sends:
        raise Refused(422, "lines: at least one line to send")
    asked = dict(transfer.asked)
    left = {sku: {lv.lot: lv for lv in levels} for sku, levels in lots.items()}
    taken: dict[str, dict[str, LotDelta]] = {}
    total: dict[str, int] = {}
    for send in sends:
        if send.sku not in asked:
            raise Refused(409, f"lines {send.sku}: not asked of this store in transfer {transfer.transfer_id}")
        total[send.sku] = total.get(send.sku, 0) + send.qty
        if total[send.sku] > asked[send.sku]:
            raise Refused(409, f"lines {send.sku}: {total[send.sku]} to send, {asked[send.sku]} asked")
        here = left.setdefault(send.sku, {})
        deltas = _from_lot(send, here.get(send.lot), day) if send.lot is not None else \
            fefo(list(here.values()), send.qty, day)
        for d in deltas:
            level = here.get(d.lot) or LotLevel(d.lot, d.use_by, 0)
            if level.on_hand + d.delta < 0:
                what = f"lot {d.lot}" if d.lot else "unlotted stock (the lots not expired are used up)"
                raise Refused(409, f"lines {send.sku}: {-d.delta} to take from {what}, {max(level.on_hand, 0)} there")
            here[d.lot] = replace(level, on_hand=level.on_hand + d.delta)
            before = taken.setdefault(send.sku, {}).get(d.lot)
            taken[send.sku][d.lot] = d if before is None else replace(before, delta=before.delta + d.delta)
    return {sku: list(by_lot.values()) for sku, by_lot in taken.items()}


def _from_lot(send: Send, level: LotLevel | None, day: str) -> tuple[LotDelta, ...]:
    if level is None or level.on_hand <= 0:
        raise Refused(409, f"lines {send.sku}: no lot {send.lot or '(unlotted)'} of it on hand here")
    if is_expired(level.use_by, day):
        raise Refused(409, f"lines {send.sku}: lot {send.lot} is past its use-by {level.use_by}: it is not sent")
    return (LotDelta(lot=level.lot, delta=-send.qty, use_by=level.use_by),)


# ---- step 3: the receiving store receives ------------------------------------------------------------------

def receive(transfer: Transfer | None, transfer_id: str, store_id: str, got: list[tuple[str, str, int]],
            received_by: str, levels: dict[str, StockLevel], ratios: dict[str, int], stamp: EventStamp,
            lots: dict[str, list[LotLevel]] | None = None) -> Outcome:
    """`got`: (sku, lot, qty) counted in; a dispatched line not named arrived as 0. `ratios`: HQ's online share per
    SKU here (the escrow grant, as receiving earns). `lots`: the SKUs' lots here now: a dispatched lot whose name
    still holds goods of another use-by here comes in under a lot of its own (`protocol.lots.lot_for_arrival`; the
    receipt's lines keep the dispatched names)."""
    if transfer is None:
        raise Refused(404, f"no transfer {transfer_id} at this store")
    if transfer.direction != "in":
        raise Refused(409, f"transfer {transfer_id} goes from this store to {transfer.other_store}: it is dispatched "
                           "here, not received")
    if transfer.status == "received":
        return Outcome(reply=transfer.as_json(store_id))
    if transfer.status != "arriving":
        raise Refused(409, f"transfer {transfer_id} is {transfer.status}: not dispatched yet" if
                      transfer.status == "requested" else f"transfer {transfer_id} is {transfer.status}")
    sent = {(s, lot): (u, q) for s, lot, u, q in transfer.sent}
    counted: dict[tuple[str, str], int] = {}
    for sku, lot, qty in got:
        if (sku, lot) not in sent:
            raise Refused(409, f"lines {sku}: lot {lot or '(unlotted)'} was not dispatched in transfer {transfer_id}")
        if (sku, lot) in counted:
            raise Refused(422, f"lines {sku}: lot {lot or '(unlotted)'} appears twice")
        if qty > over_receipt_max(sent[(sku, lot)][1]):
            raise Refused(409, f"lines {sku}: {qty} received of lot {lot or '(unlotted)'}, {sent[(sku, lot)][1]} "
                               f"dispatched (at most {over_receipt_max(sent[(sku, lot)][1])} is taken in)")
        counted[(sku, lot)] = qty
    received = tuple((s, lot, u, counted.get((s, lot), 0)) for (s, lot), (u, _) in sent.items())
    effects: list[Effect] = []
    by_sku: dict[str, list[LotDelta]] = {}
    for s, lot, u, q in received:
        if q:
            by_sku.setdefault(s, []).append(LotDelta(lot=lot_for_arrival((lots or {}).get(s, ()), lot, u), delta=q,
                                                     use_by=u))
    for sku, deltas in by_sku.items():
        qty = sum(d.delta for d in deltas)
        level = levels.get(sku) or StockLevel(sku, 0, 0)
        on_hand = level.on_hand + qty
        effects.append(MoveStock(stamp.make(StockMoved, sku=sku, delta=qty, reason="transfer_in", shrinkage_reason="",
                                            on_hand_after=on_hand, reference=transfer_id, lots=tuple(deltas))))
        grant = escrow.grant_after_receiving(on_hand, level.escrow, ratios.get(sku, 0))
        if grant:
            effects += [ChangeEscrow(sku, grant),
                        Publish(stamp.make(EscrowGranted, sku=sku, qty=grant, escrow_after=level.escrow + grant))]
    effects.append(Publish(stamp.make(TransferReceived, transfer_id=transfer_id, from_store=transfer.other_store,
                                      lines=tuple(TransferLotLine(sku=s, lot=lot, use_by=u, qty=q)
                                                  for s, lot, u, q in received),
                                      received_by=received_by)))
    done = replace(transfer, status="received", received=received, received_by=received_by,
                   updated_ms=stamp.moment.wall_ms)
    effects.append(SaveTransfer(done))
    return Outcome(reply=done.as_json(store_id), effects=tuple(effects), last_seq=stamp.outcome_seq)
