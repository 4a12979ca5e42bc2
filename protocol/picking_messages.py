"""Edge events of picking an online order in the store's back room (issue 15, item 2).

Import them from `protocol.messages` (which registers them with the codec): this module needs the envelope from
there, and `protocol.messages` imports it back at its end to list them.

- `PickingStarted`: a picker took the order (the cloud moves the store's part to `picking`).
- `OrderPicked`: the picker finished: per ordered line what was picked (pieces, or the actual grams of a product sold
  by the kg), a substitute (another SKU, only if the customer allowed it) and the short quantity. The stock that left
  the shelf travels as `StockMoved` events (reason `pick`) committed with it.

Quantities are in the SKU's stock unit (pieces, or grams), like every order line.
"""
from __future__ import annotations

from typing import ClassVar

from protocol.messages import SKU_RE, Message
from protocol.schema import record, require

PICKED_LINES_MAX = 100  # an order has at most 100 lines (cloud/services/order_request.py)


@record
class PickedLine:
    sku: str
    ordered: int  # what the store's part of the order asked for
    picked: int  # what left the shelf for it: pieces, or grams actually weighed
    short: int  # ordered units neither picked nor substituted (0 for a weighed line picked within its tolerance)
    substitute_sku: str = ""  # another product picked instead of the short units ("" none)
    substitute_qty: int = 0  # in the substitute's stock unit

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"picked line: invalid sku {self.sku!r}")
        require(self.ordered > 0, f"picked line {self.sku}: ordered must be positive")
        require(self.picked >= 0 and self.short >= 0, f"picked line {self.sku}: picked and short must not be negative")
        require(self.substitute_qty >= 0, f"picked line {self.sku}: substitute_qty must not be negative")
        require(bool(self.substitute_sku) == (self.substitute_qty > 0),
                f"picked line {self.sku}: a substitute has a sku and a positive qty, or neither")
        require(self.substitute_sku == "" or bool(SKU_RE.match(self.substitute_sku)),
                f"picked line {self.sku}: invalid substitute sku {self.substitute_sku!r}")


@record
class PickingStarted(Message):
    KIND: ClassVar[str] = "order.picking_started"
    order_id: str


@record
class OrderPicked(Message):
    KIND: ClassVar[str] = "order.picked"
    order_id: str
    lines: tuple[PickedLine, ...]

    def check(self) -> None:
        require(0 < len(self.lines) <= PICKED_LINES_MAX, f"order.picked: 1..{PICKED_LINES_MAX} lines")
        require(len({line.sku for line in self.lines}) == len(self.lines), "order.picked: each sku once")
