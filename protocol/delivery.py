"""Delivery by riders, as pure decisions both the cloud and the simulated rider platform compute the same way.

- Terms of a store: a delivery fee (`fee_fen`) unless the basket reaches the free-delivery threshold, and a slot
  cut-off (a delivery slot starting sooner than `cutoff_min` from now cannot be promised: the store needs the time
  to pick and a rider to come).
- The rider platform's callbacks are signed with HMAC-SHA256 under the app secret both sides hold, over
  `TIMESTAMP\\nNONCE\\nBODY\\n` (the shape Dada, Meituan and SF same-city use: an app key, a timestamp, a nonce and
  a signature), and believed only within ±`TOLERANCE_S` of our clock; inside the window a replay is caught by the
  callback's own id.
- `lifecycle_event` maps a platform status to the order's lifecycle event, or to a note (`rider`) when the status
  does not move the order (accepted, arrived at the store, a position on the way).
- `implied_events` and `order_path`: a rider's word that skips a step (a lost `picked_up`) and a split order that
  follows its store parts move the order along the lifecycle, never around it.
- `next_step_after_failure` decides what a failed delivery leads to: another rider once, then a refund and the
  goods back to the store.
No I/O; time is passed in.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol import order_lifecycle as lifecycle
from protocol import partner_signing
from protocol.errors import ProtocolError

RIDERS = partner_signing.Scheme("Rider")  # Rider-Timestamp, Rider-Nonce, Rider-Signature, Rider-App-Key
TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER, APP_KEY_HEADER = (
    RIDERS.timestamp_header, RIDERS.nonce_header, RIDERS.signature_header, RIDERS.app_key_header)
TOLERANCE_S = partner_signing.TOLERANCE_S
DISPATCH_ATTEMPTS_MAX = 2  # the first rider, and one redispatch to find another; then the order is refunded

DEFAULT_FEE_FEN = 500
DEFAULT_FREE_FROM_FEN = 3900
DEFAULT_CUTOFF_MIN = 60

# what the platform says about a delivery, in the order it normally happens
ACCEPTED, ARRIVED, PICKED_UP, DELIVERING, DELIVERED = (
    "accepted", "arrived_at_store", "picked_up", "delivering", "delivered")
FAILED, CANCELLED = "failed", "cancelled"
STATUSES = (ACCEPTED, ARRIVED, PICKED_UP, DELIVERING, DELIVERED, FAILED, CANCELLED)
ENDED = (DELIVERED, FAILED, CANCELLED)
# why a delivery failed, as the platform says it
REASONS = ("no_rider", "rider_cancelled", "customer_absent", "cancelled_by_merchant", "other")

_EVENTS = {PICKED_UP: "hand_to_rider", DELIVERED: "deliver", FAILED: "fail_delivery", CANCELLED: "fail_delivery"}


def lifecycle_event(status: str) -> str:
    """The order's lifecycle event for a platform status; `rider` (a timeline note) for the ones that do not move
    the order. ProtocolError for a status the platform does not have."""
    if status not in STATUSES:
        raise ProtocolError(f"status: unknown rider status {status!r} (known: {', '.join(STATUSES)})")
    return _EVENTS.get(status, "rider")


def implied_events(order_status: str, status: str) -> tuple[str, ...]:
    """Lifecycle events a rider status implies before its own, given the order's status: word that the rider is on
    the way (`delivering`) or has `delivered` while the order is still `ready` means the `picked_up` callback was
    lost or overtaken - the goods did leave with the rider, so the order is handed to them first (else `deliver`
    is refused from `ready` and the order waits for a rider forever)."""
    if order_status == "ready" and status in (DELIVERING, DELIVERED):
        return ("hand_to_rider",)
    return ()


# the order-level events a delivery's parts move it by, in the order they are tried when the order follows its parts
ORDER_EVENTS = ("hand_to_rider", "deliver", "fail_delivery", "redispatch", "refund_part", "refund")


def order_path(status: str, target: str, steps_max: int = 3) -> tuple[str, ...]:
    """The shortest run of delivery events that brings a delivery order from `status` to `target` (its parts'
    overall status), () when it is there or cannot get there (the order then stays as it is; a later part step
    brings it on). A split order's parts move one at a time, so the order may need two steps at once: a part that
    failed twice is refunded while the other is already delivered (delivery_failed -> partially_refunded), or a
    part's `delivered` was heard while the order still waited on another part's pickup."""
    if status == target:  # (not round a loop back to where it is: out, failed, redispatched)
        return ()
    paths: list[tuple[str, tuple[str, ...]]] = [(status, ())]
    seen = {status}
    for _ in range(steps_max):
        nxt = []
        for at, path in paths:
            for event in ORDER_EVENTS:
                if not lifecycle.can("delivery", at, event):
                    continue
                after = lifecycle.step("delivery", at, event)
                if after == target:
                    return (*path, event)
                if after not in seen:
                    seen.add(after)
                    nxt.append((after, (*path, event)))
        paths = nxt
    return ()


def next_step_after_failure(attempt: int) -> str:
    """After the `attempt`-th try (1, 2, ...) of a store's part failed: `redispatch` (find another rider) or
    `give_up` (refund that part - the order in full when it is the last part left - and its goods go back to its
    store). A split order counts its stores' tries apart."""
    return "redispatch" if attempt < DISPATCH_ATTEMPTS_MAX else "give_up"


# ---- a store's terms ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Terms:
    fee_fen: int = DEFAULT_FEE_FEN
    free_from_fen: int = DEFAULT_FREE_FROM_FEN  # a basket of at least this much is delivered free
    cutoff_min: int = DEFAULT_CUTOFF_MIN

    def fee_for(self, basket_fen: int) -> int:
        """The delivery fee for a basket worth `basket_fen` (after its discounts)."""
        return 0 if basket_fen >= self.free_from_fen else self.fee_fen

    def cutoff_problem(self, slot_start_ms: int, now_ms: int) -> str | None:
        """None when a delivery slot starting at `slot_start_ms` may still be booked now; else why not."""
        cutoff_ms = slot_start_ms - self.cutoff_min * 60_000
        if now_ms <= cutoff_ms:
            return None
        return (f"slot_start: delivery slots close {self.cutoff_min} min before they start; this one closed "
                f"{(now_ms - cutoff_ms) // 60_000} min ago; choose a later slot")


# ---- signatures: the rider platform's scheme (protocol/partner_signing.py) ------------------------------------------
message, signature = partner_signing.message, partner_signing.signature
signed_headers, verify = RIDERS.signed_headers, RIDERS.verify


def mask_phone(phone: str) -> str:
    """A rider's phone as shown on the customer's timeline: 138****8000."""
    digits = "".join(c for c in phone if c.isdigit())
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) <= 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"
