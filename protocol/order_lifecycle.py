"""The lifecycle of every online order (pickup, delivery, flash sale, split), as one pure state machine.

    pending ─reserve─► reserved ─pay─► paid ─start_picking─► picking ─picked─► ready
       └reject─► rejected  └expire─► expired, cancel─► cancelled (also from paid, picking, ready)
    pickup:   paid | picking | ready ─pick_up─► picked_up
    delivery: ready ─hand_to_rider─► out_for_delivery ─deliver─► delivered
              ready | out_for_delivery ─fail_delivery─► delivery_failed ─redispatch─► ready (or cancel)
              delivery_failed ─refund_part─► partially_refunded (a split delivery's failed part refunded, the rest
              delivered)
    picked_up | delivered ─complete─► completed (the after-sales window closed)
    handed over ─refund_part─► partially_refunded (a return, an after-sales refund of some lines)
    every paid status ─refund─► refunded (all the money back)

- A transition is `(status, event) -> status`; `step` answers the new status or raises `IllegalTransition` naming
  what was asked and what is allowed, so a late or repeated event (a rider's callback after the order was
  cancelled) is refused clearly instead of moving an order backwards.
- Facts that do not move the order (a picked weight, a substitution, a rider's position, a partial refund while
  picking) are `NOTES`: journaled on the order's timeline, status unchanged.
- A split order's parts (one per store) each follow the machine; the order shows `overall(parts)`, the least
  advanced part, so it is `ready` only when every store's part is.
- What an order SHOWS is `shown(status, group_held)`: the stored status, except `group_forming` for a paid order of
  a group buy held until its group forms (never stored: the money saga treats it as paid); every place that shows a
  status (the order's answer, its timeline, the operators' lists, the console) goes through it.
- `fulfilment` decides the branch: a pickup order is never handed to a rider, a delivery is never picked up at the
  counter. Flash-sale orders follow the branch of their fulfilment.
"""
from __future__ import annotations

from typing import Any, Literal

from protocol.errors import ProtocolError

Fulfilment = Literal["pickup", "delivery"]

PENDING, REJECTED, RESERVED, PAID = "pending", "rejected", "reserved", "paid"
PICKING, READY, OUT_FOR_DELIVERY, DELIVERY_FAILED = "picking", "ready", "out_for_delivery", "delivery_failed"
DELIVERED, PICKED_UP, COMPLETED = "delivered", "picked_up", "completed"
CANCELLED, EXPIRED, REFUNDED, PARTIALLY_REFUNDED = "cancelled", "expired", "refunded", "partially_refunded"

# in the order an order normally passes them (`overall` takes the least advanced part)
STATUSES = (PENDING, RESERVED, PAID, PICKING, READY, DELIVERY_FAILED, OUT_FOR_DELIVERY, DELIVERED, PICKED_UP,
            COMPLETED, PARTIALLY_REFUNDED, REFUNDED, CANCELLED, EXPIRED, REJECTED)
# Shown, never stored (issue 17): a paid order of a group buy held until its group forms (`orders.group_held`): its
# money is kept as a paid order's, it is not sent to its store, its member may still leave. `shown` derives it.
GROUP_FORMING = "group_forming"
# every status an order may show, in the same order (a held group order's right after paid)
SHOWN_STATUSES = tuple(s for stored in STATUSES for s in ((stored, GROUP_FORMING) if stored == PAID else (stored,)))
# the customer's money was taken and is still kept, whole or in part: a charge is matched by the order
PAID_STATUSES = (PAID, GROUP_FORMING, PICKING, READY, OUT_FOR_DELIVERY, DELIVERY_FAILED, DELIVERED, PICKED_UP, COMPLETED,
                 PARTIALLY_REFUNDED)
# the goods are (being) prepared or handed over: the order can no longer be cancelled by its customer
IN_STORE_STATUSES = (PICKING, READY, OUT_FOR_DELIVERY, DELIVERY_FAILED)
# nothing more happens to the order unless its customer asks for after-sales (a return, a refund)
FINAL_STATUSES = (DELIVERED, PICKED_UP, COMPLETED, PARTIALLY_REFUNDED, REFUNDED, CANCELLED, EXPIRED, REJECTED)
# ended without the goods: the charge, if any, is given back whole
UNSERVED_STATUSES = (CANCELLED, EXPIRED, REJECTED)
# the goods reached the customer: returns and after-sales refunds start from here
HANDED_OVER_STATUSES = (DELIVERED, PICKED_UP, COMPLETED, PARTIALLY_REFUNDED)
# customers may cancel themselves only before the store starts picking
CUSTOMER_CANCELLABLE = (RESERVED, PAID, GROUP_FORMING)

_COMMON: dict[tuple[str, str], str] = {
    (PENDING, "reserve"): RESERVED,
    (PENDING, "reject"): REJECTED,
    (RESERVED, "pay"): PAID,
    (RESERVED, "expire"): EXPIRED,
    (RESERVED, "cancel"): CANCELLED,
    (PAID, "cancel"): CANCELLED,
    (PICKING, "cancel"): CANCELLED,
    (READY, "cancel"): CANCELLED,
    (PAID, "start_picking"): PICKING,
    (PICKING, "picked"): READY,
    (DELIVERED, "complete"): COMPLETED,
    (PICKED_UP, "complete"): COMPLETED,
    **{(s, "refund"): REFUNDED for s in PAID_STATUSES},
    **{(s, "refund_part"): PARTIALLY_REFUNDED for s in HANDED_OVER_STATUSES},
}
_BRANCH: dict[str, dict[tuple[str, str], str]] = {
    "pickup": {
        # a customer at the counter may collect an order the store has not picked yet: it is picked there
        (PAID, "pick_up"): PICKED_UP,
        (PICKING, "pick_up"): PICKED_UP,
        (READY, "pick_up"): PICKED_UP,
    },
    "delivery": {
        (READY, "hand_to_rider"): OUT_FOR_DELIVERY,
        (READY, "fail_delivery"): DELIVERY_FAILED,  # no rider found
        (OUT_FOR_DELIVERY, "deliver"): DELIVERED,
        (OUT_FOR_DELIVERY, "fail_delivery"): DELIVERY_FAILED,  # the rider cancelled, nobody at the door
        (DELIVERY_FAILED, "redispatch"): READY,
        (DELIVERY_FAILED, "cancel"): CANCELLED,
        # a split delivery: one store's part failed twice and its share was refunded, the other parts delivered
        (DELIVERY_FAILED, "refund_part"): PARTIALLY_REFUNDED,
    },
}
# journaled on the timeline, the status unchanged
PICK_CLAIMED = "pick_claimed"
NOTES = frozenset({"created", "weighed", "substituted", "short", "rerouted", "refunded_part", "charged_extra",
                   "rider", "returned", "after_sales_requested", "after_sales_refused", "sent_to_store",
                   "payment_requested", "refund_requested",
                   # picking (issue 15 item 2): a store's part of a split order moved while the order waits for the
                   # others; a heavier weight the customer cannot be charged for is absorbed by the store
                   "part_picking", "part_ready", "part_picked_up", "absorbed",
                   # a store's OrderPicked claimed its part (once: cloud/services/pick_claims.py)
                   PICK_CLAIMED,
                   # restock (issue 16 item 7): accepted as a pre-sale (no stock held until it arrives), then its
                   # stock reserved at its store once received, and the store told to pick it
                   "presale", "presale_reserved",
                   # group buys (issue 17 item 2): a place taken in a group (paid, the order waits: not sent to its
                   # store), then the group formed (sent to the store as any paid order)
                   "group_joined", "group_formed",
                   # another member took or left a place of the order's group: its count as it stands now
                   "group_progress"})
EVENTS = frozenset({e for _, e in _COMMON} | {e for b in _BRANCH.values() for _, e in b} | NOTES)


class IllegalTransition(ProtocolError):
    """An event that the order's current status does not allow (the order does not move)."""

    def __init__(self, status: str, event: str, fulfilment: str) -> None:
        self.status, self.event, self.fulfilment = status, event, fulfilment
        allowed = sorted(allowed_events(fulfilment, status))
        super().__init__(f"a {fulfilment} order that is {status} cannot take {event!r}"
                         f" (allowed: {', '.join(allowed) if allowed else 'nothing, it has ended'})")


def step(fulfilment: str, status: str, event: str) -> str:
    """The status after `event`, or IllegalTransition. A note keeps the status (on any order that exists)."""
    if fulfilment not in _BRANCH:
        raise ProtocolError(f"fulfilment: must be pickup or delivery, not {fulfilment!r}")
    if event not in EVENTS:
        raise ProtocolError(f"event: unknown order event {event!r}")
    if event in NOTES:
        return status
    new = _BRANCH[fulfilment].get((status, event)) or _COMMON.get((status, event))
    if new is None:
        raise IllegalTransition(status, event, fulfilment)
    return new


def allowed_events(fulfilment: str, status: str) -> set[str]:
    """The status-changing events the order may take now."""
    table = {**_COMMON, **_BRANCH.get(fulfilment, {})}
    return {e for (s, e) in table if s == status}


def can(fulfilment: str, status: str, event: str) -> bool:
    try:
        step(fulfilment, status, event)
    except ProtocolError:
        return False
    return True


def overall(parts: list[str]) -> str:
    """A split order's status from its parts' (one per store): the least advanced one, so the customer is told
    `ready` or `delivered` only when every part is. Parts that ended unserved while others go on do not hold the
    order back (a part re-routed away and cancelled)."""
    if not parts:
        raise ProtocolError("an order has at least one part")
    live = [p for p in parts if p not in UNSERVED_STATUSES] or parts
    return min(live, key=STATUSES.index)


def is_final(status: str) -> bool:
    return status in FINAL_STATUSES


def shown(status: str, group_held: bool) -> str:
    """The status an order shows (to its member, operators, the console): its stored status, except that a paid order
    held for its group buy shows `group_forming` - it is not on its way to the store, whatever "paid" suggests."""
    return GROUP_FORMING if group_held and status == PAID else status


def status_text(status: str, group: tuple[int, int] | None = None) -> str:
    """A shown status in words: "group forming (2/3)" with the group's (places joined, size), else the status."""
    if status == GROUP_FORMING:
        return f"group forming ({group[0]}/{group[1]})" if group else "group forming"
    return status.replace("_", " ")


def shown_timeline(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline as shown: from the order's `group_joined` note until `group_formed`, a step that left it paid shows
    `group_forming`, with the group's count as it stood then (the joined note's place, then `group_progress`)."""
    held, count, out = False, None, []  # type: bool, tuple[int, int] | None, list[dict[str, Any]]
    for entry in entries:
        detail = entry.get("detail") or {}
        if entry["event"] == "group_joined":
            held, count = True, (int(detail.get("place") or 0), int(detail.get("size") or 0))
        elif entry["event"] == "group_progress":
            count = (int(detail.get("joined") or 0), int(detail.get("size") or 0))
        elif entry["event"] == "group_formed":
            held = False
        status = shown(entry["status"], held)
        out.append({**entry, "status": status, **({"status_text": status_text(status, count)}
                                                  if status == GROUP_FORMING else {})})
    return out


def why_open(status: str, fulfilment: str, now_ms: int, expires_ms: int | None = None,
             slot_start_ms: int | None = None, group: tuple[int, int, int] | None = None) -> str:
    """What an order that has not ended is waiting for, in words an operator acts on ("" once it has ended).
    `group`: (joined, size, closes_ms) of a held group order's group."""
    if is_final(status):
        return ""
    if status == GROUP_FORMING:
        if group is None:
            return "paid: held until its group buy forms (not sent to the store yet)"
        joined, size, closes_ms = group
        return (f"paid: held until its group buy forms ({joined}/{size} joined; the window closes in "
                f"{max((closes_ms - now_ms) // 60_000, 0)} min, then it is cancelled and refunded if short)")
    left = f" (payment deadline in {max((expires_ms - now_ms) // 1000, 0)} s)" if expires_ms is not None else ""
    slot = ""
    if slot_start_ms is not None:
        ahead_s = (slot_start_ms - now_ms) // 1000
        slot = f"; slot starts in {ahead_s // 60} min" if ahead_s >= 0 else f"; slot started {-ahead_s // 60} min ago"
    return {
        PENDING: "being placed: routing and reserving (an abandoned one is rejected by the sweeper)",
        RESERVED: f"waiting for the customer's payment{left}; unpaid it expires and its stock goes back",
        PAID: f"paid: waiting for the store to start picking{slot}",
        PICKING: f"being picked at the store{slot}",
        READY: ("picked: waiting for the customer to collect it" if fulfilment == "pickup"
                else "picked: waiting for a rider") + slot,
        OUT_FOR_DELIVERY: "with the rider",
        DELIVERY_FAILED: "delivery failed: waiting to be sent again or refunded",
    }.get(status, f"{status}: no rule says what it waits for")
