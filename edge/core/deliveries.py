"""A store's part in deliveries, as pure decisions: goods that came back (no rider could deliver them) booked back on
hand or to shrinkage, and orders the store's own staff deliver.

- `returned` applies the cloud's `DeliveryReturned`: the order is marked `returned` (its lines kept: the order row
  is made if the store never had it), so staff see what to book; applied once by its event id (the inbox).
- `book_returned`: what this store's picker took off the shelf for the order (`returned_lines` of its pick records:
  the picked units or weighed grams, and any substitute - never the ordered lines, whose short units never left and
  whose grams were not what the scale said) comes back on hand (`StockMoved` reason `return`); booked
  `to: shrinkage`, it then leaves again as shrinkage with the staff's reason, so the journal says what happened and
  on-hand stays right. An order the store never picked brings nothing back.
  The movements, the outbox rows and the order's new status commit in one transaction; booking again answers the
  first booking and moves nothing.
- `staff_delivery`: the store's staff take a picked delivery order out (`out`) and hand it over (`delivered`); each
  step is a `StaffDelivery` event through the outbox (exactly once to the cloud). Repeating a step answers as
  before; a step out of order (delivered before out, out before the order is picked) or on an order that is not a
  delivery is refused: an unpicked order's stock has not left the shelf, and the cloud would refuse to hand it to a
  rider anyway (the order would stay paid with nothing moving).
"""
from __future__ import annotations

from collections.abc import Iterable

from edge.core.outcome import Effect, InsertOrder, MarkApplied, MoveStock, Outcome, Publish, Refused, SetOrderStatus
from edge.core.state import StockLevel
from edge.core.stock import SHRINKAGE_REASONS
from protocol.delivery_messages import DeliveryReturned, StaffDelivery
from protocol.lots import back_in_unlotted
from protocol.messages import PickedLine, StockMoved

RETURNED, BOOKED_STOCK, BOOKED_SHRINKAGE = "returned", "returned_to_stock", "returned_to_shrinkage"
OUT_WITH_STAFF, DELIVERED_BY_STAFF = "out_with_staff", "delivered_by_staff"
PICKED = "picked"  # edge/core/picking.py: the goods are off the shelf and packed: only then can they go out
STAFF_STEPS = {"out": OUT_WITH_STAFF, "delivered": DELIVERED_BY_STAFF}
# statuses at the store from which staff can no longer take the order out (ended, or its goods came back)
NOT_DELIVERABLE = ("cancelled", "picked_up", RETURNED, BOOKED_STOCK, BOOKED_SHRINKAGE)


def returned(message: DeliveryReturned, mark: MarkApplied) -> Outcome:
    payload = {"lines": [{"sku": line.sku, "qty": line.qty} for line in message.lines], "fulfilment": "delivery",
               "returned_reason": message.reason}
    return Outcome(reply="applied", effects=(mark, InsertOrder(message.order_id, None, payload),
                                             SetOrderStatus(message.order_id, RETURNED)))


def returned_lines(picks: Iterable[PickedLine]) -> tuple[tuple[str, int], ...]:
    """What left the shelf for the order, per SKU (its stock unit: pieces or grams): the picked amount of each line
    and its substitute. Short units never left; a weighed line left what the scale said, not what was ordered."""
    out: dict[str, int] = {}
    for pick in picks:
        if pick.picked:
            out[pick.sku] = out.get(pick.sku, 0) + pick.picked
        if pick.substitute_sku and pick.substitute_qty:
            out[pick.substitute_sku] = out.get(pick.substitute_sku, 0) + pick.substitute_qty
    return tuple(out.items())


def book_returned(order_id: str, status: str | None, lines: tuple[tuple[str, int], ...], to: str, reason: str,
                  levels: dict[str, StockLevel], stamp) -> Outcome:
    """Book a returned order's goods `to` stock or shrinkage (`reason`: a shrinkage reason); `lines`: what left the
    shelf (`returned_lines` of the store's pick records)."""
    if status is None:
        raise Refused(404, f"no order {order_id} at this store")
    if status in (BOOKED_STOCK, BOOKED_SHRINKAGE):
        return Outcome(reply={"order_id": order_id, "status": status})
    if status != RETURNED:
        raise Refused(409, f"order {order_id} is {status}: only goods the cloud sent back ({RETURNED}) are booked")
    if to not in ("stock", "shrinkage"):
        raise Refused(422, "to: stock or shrinkage")
    if to == "shrinkage" and reason not in SHRINKAGE_REASONS:
        raise Refused(422, f"reason: for shrinkage one of {', '.join(SHRINKAGE_REASONS)}")
    effects: list[Effect] = []
    now = dict(levels)
    for sku, qty in lines:
        level = now.get(sku) or StockLevel(sku, 0, 0)
        back = level.on_hand + qty
        effects.append(MoveStock(stamp.make(StockMoved, sku=sku, delta=qty, reason="return", shrinkage_reason="",
                                            on_hand_after=back, reference=order_id)))
        if to == "shrinkage":
            back -= qty
            effects.append(MoveStock(stamp.make(StockMoved, sku=sku, delta=-qty, reason="shrinkage",
                                                shrinkage_reason=reason, on_hand_after=back, reference=order_id,
                                                lots=back_in_unlotted(qty))))
        now[sku] = StockLevel(sku, back, level.escrow)
    booked = BOOKED_STOCK if to == "stock" else BOOKED_SHRINKAGE
    effects.append(SetOrderStatus(order_id, booked, only_from=RETURNED))
    return Outcome(reply={"order_id": order_id, "status": booked,
                          "on_hand": {sku: now[sku].on_hand for sku, _ in lines}},
                   effects=tuple(effects), last_seq=stamp.outcome_seq)


def staff_delivery(order_id: str, status: str | None, fulfilment: str | None, step: str, staff_id: str,
                   stamp) -> Outcome:
    if status is None:
        raise Refused(404, f"no order {order_id} at this store")
    if fulfilment != "delivery":
        raise Refused(409, f"order {order_id} is a {fulfilment} order: only deliveries go out with staff")
    if step not in STAFF_STEPS:
        raise Refused(422, "step: out or delivered")
    after = STAFF_STEPS[step]
    if status == after or (step == "out" and status == DELIVERED_BY_STAFF):
        return Outcome(reply={"order_id": order_id, "status": status})  # the step again: as the first time
    if status in NOT_DELIVERABLE:
        raise Refused(409, f"order {order_id} is {status} at this store: it cannot go out for delivery")
    if step == "out" and status != PICKED:
        raise Refused(409, f"order {order_id} is {status} at this store: pick it first (POST /picking/orders/"
                           f"{order_id}/done); only picked goods go out for delivery")
    if step == "delivered" and status != OUT_WITH_STAFF:
        raise Refused(409, f"order {order_id} is {status}: staff take it out (POST .../own-staff) before delivering")
    event = stamp.make(StaffDelivery, order_id=order_id, step=step, staff_id=staff_id)
    return Outcome(reply={"order_id": order_id, "status": after},
                   effects=(Publish(event), SetOrderStatus(order_id, after, only_from=status)),
                   last_seq=stamp.outcome_seq)
