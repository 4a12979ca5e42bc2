"""Stock decisions other than sales: receiving (and the escrow grant it earns the cloud), shrinkage, and handing
an online order over at pickup. Each is a journaled movement (DESIGN.md section 3: `sum of movements = on_hand`),
decided from the level the shell passes in; quantities are in the SKU's stock unit (pieces, or grams).
"""
from __future__ import annotations

from typing import get_args

from edge.core import escrow
from edge.core.outcome import ChangeEscrow, Effect, MoveStock, Outcome, Publish, Refused, SetOrderStatus
from edge.core.state import Books, EventStamp, PendingOrder, StockLevel
from protocol.errors import ProtocolError
from protocol.lots import LotDelta, chain_day, is_expired
from protocol.messages import EscrowGranted, EscrowReclaimRequested, PickupCompleted, ShrinkageReason, StockMoved
from protocol.receiving_messages import ShrinkageRecorded

RECEIVE_MAX = 10_000_000  # one delivery of one SKU: pieces, or grams (10 t)
SHRINKAGE_REASONS = tuple(r for r in get_args(ShrinkageReason) if r)


def receive(sku: str, qty: int, books: Books, level: StockLevel, ratio_bp: int, stamp: EventStamp,
            lot: str = "", use_by: str = "") -> Outcome:
    """Goods arrive (into `lot` with its use-by, or unlotted): on_hand rises, and the cloud is granted its online
    share of what is now on hand. A lot past its use-by is not taken in."""
    if books.catalogue is not None and sku not in books.catalogue:
        raise Refused(404, f"unknown product {sku!r}")
    if not 0 < qty <= RECEIVE_MAX:
        raise Refused(422, f"qty: 1..{RECEIVE_MAX} (pieces, or grams if sold by the kg)")
    if use_by and not lot:  # goods with a use-by but no lot number: their use-by names their lot
        lot = f"D{use_by.replace('-', '')}"
    try:
        lots = (LotDelta(lot=lot, delta=qty, use_by=use_by),) if lot else ()
    except ProtocolError as exc:
        raise Refused(422, str(exc)) from None
    if is_expired(use_by, chain_day(stamp.moment.wall_ms)):
        raise Refused(422, f"lot {lot or '(unlotted)'} of {sku} passed its use-by {use_by}: not received")
    on_hand = level.on_hand + qty
    moved = stamp.make(StockMoved, sku=sku, delta=qty, reason="receiving", shrinkage_reason="", on_hand_after=on_hand,
                       reference="", lots=lots)
    effects: list[Effect] = [MoveStock(moved)]
    grant = escrow.grant_after_receiving(on_hand, level.escrow, ratio_bp)
    if grant:
        effects += [ChangeEscrow(sku, grant),
                    Publish(stamp.make(EscrowGranted, sku=sku, qty=grant, escrow_after=level.escrow + grant))]
    return Outcome(reply={"sku": sku, "on_hand": on_hand, "escrow": level.escrow + grant}, effects=tuple(effects),
                   last_seq=stamp.outcome_seq)


def shrink(sku: str, qty: int, reason: str, level: StockLevel, stamp: EventStamp, lots: tuple[LotDelta, ...] = (),
           recorded_by: str = "", note: str = "", shrinkage_id: str = "", lot: str = "") -> Outcome:
    """Stock lost with a reason; if the loss eats into the cloud's share, ask for the difference back. `lots`: the
    lots it leaves (`edge.core.receiving.shrink_lots`; none: the store fills them first-expiry-first-out). Recorded
    by staff (`recorded_by`), the movement's reference is the shrinkage id and a `ShrinkageRecorded` says who and
    why, in the same transaction."""
    if reason not in SHRINKAGE_REASONS:
        raise Refused(422, f"shrinkage reason: one of {', '.join(SHRINKAGE_REASONS)}")
    if qty <= 0:
        raise Refused(422, "qty: must be positive")
    if qty > level.on_hand:
        raise Refused(409, f"{sku}: only {max(level.on_hand, 0)} on hand, cannot write off {qty}")
    on_hand = level.on_hand - qty
    moved = stamp.make(StockMoved, sku=sku, delta=-qty, reason="shrinkage", shrinkage_reason=reason,
                       on_hand_after=on_hand, reference=shrinkage_id, lots=lots)
    effects: list[Effect] = [MoveStock(moved)]
    if recorded_by:
        effects.append(Publish(stamp.make(ShrinkageRecorded, shrinkage_id=shrinkage_id, movement_event_id=moved.event_id,
                                          sku=sku, qty=qty, reason=reason, lot=lot, recorded_by=recorded_by,
                                          note=note)))
    ask = escrow.reclaim_needed(on_hand, level.escrow)
    if ask:
        effects.append(Publish(stamp.make(EscrowReclaimRequested, sku=sku, qty=ask)))
    reply = {"sku": sku, "on_hand": on_hand, "escrow_reclaim_asked": ask}
    if shrinkage_id:
        reply |= {"shrinkage_id": shrinkage_id, "qty": qty, "reason": reason, "recorded_by": recorded_by,
                  "note": note, "lots": [{"lot": d.lot, "qty": -d.delta, "use_by": d.use_by} for d in lots]}
    return Outcome(reply=reply, effects=tuple(effects), last_seq=stamp.outcome_seq)


def pickup(order: PendingOrder | None, pickup_code: str, lane: str, levels: dict[str, StockLevel],
           stamp: EventStamp) -> Outcome:
    """The customer collects an online order: its units leave the shelf and the cloud's escrow (they were reserved
    against it), unless it was picked in the back room (`edge.core.picking`): then they left already. Picking up
    twice answers the first result and changes nothing."""
    if order is None:
        raise Refused(404, f"no order with pickup code {pickup_code}")
    if order.status == "picked_up":
        return Outcome(reply={"order_id": order.order_id, "status": order.status})
    if order.status == "picking":
        raise Refused(409, f"order {order.order_id} is being picked: finish picking it first")
    if order.status not in ("to_pick", "picked"):
        raise Refused(409, f"order {order.order_id} is {order.status}")
    effects: list[Effect] = []
    now = dict(levels)
    # a picked order's goods left the shelf (and the escrow) when picking was done: it is only handed over
    for sku, qty in order.lines if order.status == "to_pick" else ():
        level = now.get(sku) or StockLevel(sku, 0, 0)
        now[sku] = StockLevel(sku, level.on_hand - qty, level.escrow - qty)
        effects.append(MoveStock(stamp.make(StockMoved, sku=sku, delta=-qty, reason="pickup", shrinkage_reason="",
                                            on_hand_after=level.on_hand - qty, reference=order.order_id),
                                 escrow_delta=-qty))
    effects += [Publish(stamp.make(PickupCompleted, order_id=order.order_id, pickup_code=pickup_code, lane=lane)),
                SetOrderStatus(order.order_id, "picked_up")]
    return Outcome(reply={"order_id": order.order_id, "status": "picked_up"}, effects=tuple(effects),
                   last_seq=stamp.outcome_seq)
