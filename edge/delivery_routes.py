"""Bodies of the store box's delivery endpoints (served with the lane API, `edge/lanes.py`):

- `POST /deliveries/{order_id}/returned` `{"to": "stock" | "shrinkage", "reason"}`: goods of an order no rider could
  deliver (the cloud sent `DeliveryReturned`) booked back on hand, or to shrinkage with a reason (spoiled, damaged,
  ...) -> 200 `{"order_id", "status", "on_hand"}`; again: the first answer, nothing moved twice.
- `POST /deliveries/{order_id}/own-staff` `{"staff_id"}`: the store's staff take a delivery order out instead of a
  rider; `POST /deliveries/{order_id}/delivered` `{"staff_id"}`: they handed it over. Each step reaches the cloud
  once (`StaffDelivery`), which moves the order as a rider's callbacks would.
The decisions are `edge/core/deliveries.py`.
"""
from __future__ import annotations

from protocol.messages import NAME_RE
from protocol.schema import record, require


@record
class ReturnedBody:
    to: str
    reason: str = ""

    def __post_init__(self) -> None:
        require(self.to in ("stock", "shrinkage"), "to: stock or shrinkage")
        require(len(self.reason) <= 32, "reason: at most 32 characters")


@record
class StaffBody:
    staff_id: str

    def __post_init__(self) -> None:
        require(bool(NAME_RE.fullmatch(self.staff_id)), "staff_id: 1-32 letters, digits, '_' or '-'")
