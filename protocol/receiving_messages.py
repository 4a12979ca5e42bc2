"""Messages of receiving and shrinkage (issue 16 items 1 and 3), registered in `protocol.messages`' EDGE_EVENTS.

- `GoodsReceived` (edge -> cloud): a supplier's delivery note received at the store: per line what the note said
  (`expected_qty`), what was booked (`qty`, into `lot` with its `use_by`) and its unit cost. Each line's stock came
  in as its own `StockMoved` (reason "receiving", lots set) committed with this event in one SQLite transaction;
  this note-level event is what the cloud keeps as the receiving (over/under-delivery, lot costs).
- `ShrinkageRecorded` (edge -> cloud): who wrote stock off and why (a note), naming the `StockMoved` (reason
  "shrinkage") that took the stock out; that movement carries the lots and the quantity the loss report values.

Quantities are integers in the SKU's stock unit (pieces, or grams for a product sold by the kg); money is fen;
unit costs are per piece, or per kg for a weighed product (the unit of `price_fen`).
"""
from __future__ import annotations

import re
from typing import ClassVar

from protocol.ids import is_id
from protocol.lots import check_lot, check_use_by
from protocol.messages import NAME_RE, SKU_RE, Message, ShrinkageReason
from protocol.schema import CONTROL_CHARACTERS, record, require

RECEIVING_LINES_MAX = 100
RECEIVE_QTY_MAX = 10_000_000  # one line of one delivery: pieces, or grams (10 t)
UNIT_COST_MAX_FEN = 10_000_000  # 100,000 yuan a piece or a kg: anything dearer is a typo or an attack
SUPPLIER_MAX_CHARS = 64
NOTE_NO_RE = re.compile(r"^[A-Za-z0-9_./-]{1,32}$")
NOTE_MAX_CHARS = 200


def check_text(text: str, most: int, path: str) -> None:
    require(len(text) <= most, f"{path}: at most {most} characters")
    require(not CONTROL_CHARACTERS.search(text), f"{path}: no control characters")


@record
class ReceivedLine:
    sku: str
    lot: str  # named by the supplier, or by the store ("R<note>-<n>"); "" only if the product has no shelf life
    use_by: str  # YYYY-MM-DD, or "" when neither the note nor the product's shelf life gives one
    qty: int  # booked: what arrived (0: nothing of it came)
    expected_qty: int  # what the delivery note says
    unit_cost_fen: int

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"received line: invalid sku {self.sku[:48]!r}")
        check_lot(self.lot, f"received line {self.sku}: lot")
        check_use_by(self.use_by, f"received line {self.sku}: use_by")
        require(0 <= self.qty <= RECEIVE_QTY_MAX, f"received line {self.sku}: qty 0..{RECEIVE_QTY_MAX}")
        require(0 <= self.expected_qty <= RECEIVE_QTY_MAX, f"received line {self.sku}: expected_qty 0..{RECEIVE_QTY_MAX}")
        require(self.qty > 0 or self.expected_qty > 0, f"received line {self.sku}: neither expected nor received")
        require(0 <= self.unit_cost_fen <= UNIT_COST_MAX_FEN,
                f"received line {self.sku}: unit_cost_fen 0..{UNIT_COST_MAX_FEN}")

    @property
    def variance(self) -> int:
        """Over (+) or under (-) delivery against the note."""
        return self.qty - self.expected_qty


@record
class GoodsReceived(Message):
    KIND: ClassVar[str] = "goods.received"
    receiving_id: str
    supplier: str
    note_no: str
    received_by: str  # the cashier (store staff) id who received it
    lines: tuple[ReceivedLine, ...]

    def check(self) -> None:
        require(is_id(self.receiving_id), f"goods.received: not an id: {self.receiving_id[:80]!r}")
        require(len(self.supplier.strip()) > 0, "goods.received: supplier is empty")
        check_text(self.supplier, SUPPLIER_MAX_CHARS, "goods.received.supplier")
        require(bool(NOTE_NO_RE.match(self.note_no)), f"goods.received: note_no {self.note_no[:40]!r} is not 1-32 "
                                                        "letters, digits or '_./-'")
        require(bool(NAME_RE.fullmatch(self.received_by)), "goods.received: received_by is not a cashier id")
        require(0 < len(self.lines) <= RECEIVING_LINES_MAX, f"goods.received: 1-{RECEIVING_LINES_MAX} lines")
        keys = [(line.sku, line.lot) for line in self.lines]
        require(len(set(keys)) == len(keys), "goods.received: a (sku, lot) appears on two lines")


@record
class ShrinkageRecorded(Message):
    KIND: ClassVar[str] = "shrinkage.recorded"
    shrinkage_id: str  # also the `reference` of the StockMoved that took the stock out
    movement_event_id: str
    sku: str
    qty: int
    reason: ShrinkageReason
    lot: str  # the named lot written off, or "" (taken first-expiry-first-out: the movement's lots say which)
    recorded_by: str
    note: str

    def check(self) -> None:
        require(is_id(self.shrinkage_id) and is_id(self.movement_event_id), "shrinkage.recorded: not an id")
        require(bool(SKU_RE.match(self.sku)), f"shrinkage.recorded: invalid sku {self.sku[:48]!r}")
        require(0 < self.qty <= RECEIVE_QTY_MAX * 10, "shrinkage.recorded: qty out of range")
        require(self.reason != "", "shrinkage.recorded: a reason")
        check_lot(self.lot, "shrinkage.recorded.lot")
        require(bool(NAME_RE.fullmatch(self.recorded_by)), "shrinkage.recorded: recorded_by is not a cashier id")
        check_text(self.note, NOTE_MAX_CHARS, "shrinkage.recorded.note")
