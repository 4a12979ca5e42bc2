"""Messages about deliveries between the cloud and a store.

- `DeliveryReturned` (cloud -> store): no rider could deliver the order (its money was given back): its goods come
  back to the store, and staff book each line back on hand or to shrinkage with a reason (through the store's own
  exactly-once event path: `StockMoved`).
- `StaffDelivery` (store -> cloud): the store's own staff deliver an order instead of a rider: `out` when they
  leave with it, `delivered` when the customer has it. The cloud moves the order as a rider's callbacks would
  (`hand_to_rider`, `deliver`), believing it only about an order allocated to that store.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from protocol.messages import Message, OrderLine
from protocol.schema import record, require


@record
class DeliveryReturned(Message):
    KIND: ClassVar[str] = "delivery.returned"
    order_id: str
    lines: tuple[OrderLine, ...]
    reason: str

    def check(self) -> None:
        require(len(self.lines) > 0, "delivery.returned: at least one line comes back")
        require(len(self.reason) <= 200, "delivery.returned: reason of at most 200 characters")


StaffStep = Literal["out", "delivered"]


@record
class StaffDelivery(Message):
    KIND: ClassVar[str] = "delivery.staff"
    order_id: str
    step: StaffStep
    staff_id: str

    def check(self) -> None:
        require(0 < len(self.order_id) <= 64, "delivery.staff: order_id of 1-64 characters")
        require(0 < len(self.staff_id) <= 32, "delivery.staff: staff_id of 1-32 characters")
