"""Messages of returns and after-sales (issue 15 item 6), registered in `protocol.messages`' lists.

- `GoodsReturned` (edge -> cloud, on the event path): a return taken at a till, committed at the store with its
  stock movements in one SQLite transaction. Either a till sale of this store (`sale_id`: the till already gave
  the money back, `refunds` say how: cash from the drawer, or stored value the cloud credits to the member) or an
  online order picked up at this store (`order_id`: nothing was paid out at the till; the cloud refunds through
  the order's original payment, at most what it computes for those lines).
- `AfterSalesRequested` (cloud -> store): a customer asks for a refund of a handed-over order's lines; the store's
  staff decide on the store box.
- `AfterSalesDecided` (edge -> cloud): the store's staff approved or refused such a request.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from protocol.ids import is_id
from protocol.messages import SKU_RE, Message, Payment, Quantity, check_lane
from protocol.schema import record, require

# Where a returned unit goes: back on the shelf, or out of stock as shrinkage with that reason.
Disposition = Literal["resaleable", "spoiled", "expired", "damaged", "other"]
DISPOSITIONS: tuple[str, ...] = ("resaleable", "spoiled", "expired", "damaged", "other")
RETURN_LINES_MAX = 200
REASON_MAX_CHARS = 500


@record
class ReturnLine:
    sku: str
    quantity: Quantity  # in the SKU's stock unit (pieces, or grams), as it was sold
    amount_fen: int  # given back for it (for an order: the store's estimate; the cloud refunds its own figure)
    disposition: Disposition

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"return line: invalid sku {self.sku!r}")
        require(self.amount_fen >= 0, f"return line {self.sku}: amount must not be negative")


@record
class ReturnDeduction:
    """What a return keeps back of its refund: the regular price of a gift the customer keeps although the basket
    no longer reaches the gift rule's spend (`edge.core.return_gifts`)."""
    rule_id: str
    sku: str
    amount_fen: int

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"return deduction: invalid sku {self.sku!r}")
        require(0 < len(self.rule_id) <= 64, "return deduction: rule_id 1-64 characters")
        require(self.amount_fen > 0, f"return deduction {self.sku}: amount must be positive")


@record
class GoodsReturned(Message):
    KIND: ClassVar[str] = "goods.returned"
    return_id: str
    sale_id: str  # the till sale returned, or "" for an online order
    order_id: str  # the online order returned, or "" for a till sale
    lane: str
    lines: tuple[ReturnLine, ...]
    total_fen: int
    refunds: tuple[Payment, ...]  # what the till paid out (a sale's method); none for an order (the cloud refunds)
    member_id: str | None
    # gifts kept past their rule (a till sale's): taken off the refund; total_fen = the lines less these
    deductions: tuple[ReturnDeduction, ...] = ()

    def check(self) -> None:
        check_lane(self.lane, "goods.returned.lane")
        require(is_id(self.return_id), f"goods.returned: not an id: {self.return_id[:80]!r}")
        require(bool(self.sale_id) != bool(self.order_id), "goods.returned: names exactly one of sale_id, order_id")
        require(0 < len(self.lines) <= RETURN_LINES_MAX, f"goods.returned: 1-{RETURN_LINES_MAX} lines")
        kept_back = sum(d.amount_fen for d in self.deductions)
        require(not self.order_id or not self.deductions, "goods.returned: only a till sale's return deducts a gift")
        require(len(self.deductions) <= RETURN_LINES_MAX, f"goods.returned: at most {RETURN_LINES_MAX} deductions")
        require(self.total_fen == sum(line.amount_fen for line in self.lines) - kept_back,
                "goods.returned: total_fen is not the sum of the lines less the deductions")
        require(self.total_fen >= 0, "goods.returned: the deductions exceed what the lines give back")
        paid = sum(p.amount_fen for p in self.refunds)
        require(not self.order_id or not self.refunds, "goods.returned: an order's refund is the cloud's, not the till's")
        require(not self.sale_id or paid == self.total_fen,
                f"goods.returned: refunds {paid} fen != total {self.total_fen} fen")


@record
class AfterSalesLine:
    sku: str
    qty: int  # in the SKU's stock unit

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"after-sales line: invalid sku {self.sku!r}")
        require(self.qty > 0, f"after-sales line {self.sku}: qty must be positive")


@record
class AfterSalesRequested(Message):
    """Cloud -> store: a customer's request for the store's staff to decide; sent again with `status` approved or
    refused once it is decided in the cloud (an operator's decision), so the store's list shows it decided."""
    KIND: ClassVar[str] = "after_sales.requested"
    request_id: str
    order_id: str
    lines: tuple[AfterSalesLine, ...]
    amount_fen: int
    reason: str
    with_return: bool
    status: Literal["requested", "approved", "refused"] = "requested"

    def check(self) -> None:
        require(0 < len(self.lines) <= RETURN_LINES_MAX, f"after_sales.requested: 1-{RETURN_LINES_MAX} lines")
        require(len(self.reason) <= REASON_MAX_CHARS, "after_sales.requested: reason too long")


@record
class AfterSalesDecided(Message):
    """Edge -> cloud: the store's staff approved or refused a request (`reason` says why when refused)."""
    KIND: ClassVar[str] = "after_sales.decided"
    request_id: str
    order_id: str
    approved: bool
    reason: str
    staff: str

    def check(self) -> None:
        require(len(self.reason) <= REASON_MAX_CHARS, "after_sales.decided: reason too long")
        require(self.approved or bool(self.reason.strip()), "after_sales.decided: a refusal says why")
