"""Messages about deliveries between the cloud and a store.

- `DeliveryReturned` (cloud -> store): no rider could deliver the order (its money was given back): its goods come
  back to the store, and staff book each line back on hand or to shrinkage with a reason (through the store's own
  exactly-once event path: `StockMoved`).
"""
from __future__ import annotations

from typing import ClassVar

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
