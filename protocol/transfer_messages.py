"""Messages of transfers between stores (issue 16 item 5), registered in `protocol.messages`' lists.

A transfer moves stock from store A (`from_store`) to store B (`to_store`) in three steps, each committed at the
edge with its stock movements in one SQLite transaction and synced exactly once:

- `TransferRequested` (edge -> cloud, from B): B's staff ask A for `lines`. (HQ or routing may ask instead: the
  cloud records the transfer itself.) Either way the cloud tells A with a `TransferToDispatch` (cloud -> A).
- `TransferDispatched` (edge -> cloud, from A): what left A, per SKU and lot with its use-by (the `transfer_out`
  movements carry the same lots). The cloud keeps it in transit and tells B with a `TransferArriving` (cloud -> B).
- `TransferCancelled` (cloud -> A and B): HQ cancelled a transfer not dispatched yet.
- `TransferReceived` (edge -> cloud, from B): what arrived, per SKU and lot (the `transfer_in` movements put it
  into the same lots); the cloud records the discrepancies (dispatched - received per line).

Quantities are integers in the SKU's stock unit (pieces, or grams of a product sold by the kg).
"""
from __future__ import annotations

from typing import ClassVar

from protocol.ids import is_id
from protocol.lots import check_lot, check_use_by
from protocol.messages import NAME_RE, SKU_RE, Message, valid_store_id
from protocol.schema import record, require

TRANSFER_LINES_MAX = 100
TRANSFER_QTY_MAX = 10_000_000  # one line: pieces, or grams (10 t), the till's bound on one delivery
REASON_MAX_CHARS = 200


def _staff(who: str, path: str) -> None:
    require(bool(NAME_RE.fullmatch(who)), f"{path}: 1-32 letters, digits, '_' or '-', not {who[:40]!r}")


def _other_store(me: str, other: str, path: str) -> None:
    require(valid_store_id(other), f"{path}: invalid store id {other[:40]!r}")
    require(other != me, f"{path}: a transfer is between two different stores")


@record
class TransferLine:
    """Asked: `qty` of `sku`."""
    sku: str
    qty: int

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"transfer line: invalid sku {self.sku[:40]!r}")
        require(0 < self.qty <= TRANSFER_QTY_MAX, f"transfer line {self.sku}: qty 1..{TRANSFER_QTY_MAX}")


@record
class TransferLotLine:
    """Dispatched or received: `qty` of `sku` from (into) lot `lot` ("" unlotted) with its use-by ("" none)."""
    sku: str
    lot: str
    use_by: str
    qty: int

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"transfer line: invalid sku {self.sku[:40]!r}")
        check_lot(self.lot, f"transfer line {self.sku}: lot")
        check_use_by(self.use_by, f"transfer line {self.sku}: use_by")
        require(0 <= self.qty <= TRANSFER_QTY_MAX, f"transfer line {self.sku}: qty 0..{TRANSFER_QTY_MAX}")


def _lines(lines: tuple[TransferLine, ...] | tuple[TransferLotLine, ...], path: str, positive: bool) -> None:
    require(0 < len(lines) <= TRANSFER_LINES_MAX, f"{path}: 1-{TRANSFER_LINES_MAX} lines")
    keys = [(x.sku, getattr(x, "lot", "")) for x in lines]
    require(len(set(keys)) == len(keys), f"{path}: a sku (and lot) appears once")
    if positive:
        require(all(x.qty > 0 for x in lines), f"{path}: every line's qty is positive")


@record
class TransferRequested(Message):
    """Edge -> cloud: this store (the receiving one, `store_id`) asks `from_store` for `lines`."""
    KIND: ClassVar[str] = "transfer.requested"
    transfer_id: str
    from_store: str
    lines: tuple[TransferLine, ...]
    requested_by: str
    reason: str

    def check(self) -> None:
        require(is_id(self.transfer_id), f"transfer.requested: not an id: {self.transfer_id[:60]!r}")
        _other_store(self.store_id, self.from_store, "transfer.requested.from_store")
        _lines(self.lines, "transfer.requested.lines", positive=True)
        _staff(self.requested_by, "transfer.requested.requested_by")
        require(len(self.reason) <= REASON_MAX_CHARS, "transfer.requested: reason too long")


@record
class TransferDispatched(Message):
    """Edge -> cloud: this store (`from`, `store_id`) sent `lines` to `to_store`; its `transfer_out` movements with
    `reference` = transfer id took them off its stock in the same transaction."""
    KIND: ClassVar[str] = "transfer.dispatched"
    transfer_id: str
    to_store: str
    lines: tuple[TransferLotLine, ...]
    dispatched_by: str

    def check(self) -> None:
        require(is_id(self.transfer_id), f"transfer.dispatched: not an id: {self.transfer_id[:60]!r}")
        _other_store(self.store_id, self.to_store, "transfer.dispatched.to_store")
        _lines(self.lines, "transfer.dispatched.lines", positive=True)
        _staff(self.dispatched_by, "transfer.dispatched.dispatched_by")


@record
class TransferReceived(Message):
    """Edge -> cloud: this store (`to`, `store_id`) received `lines` of a transfer from `from_store` (a line of 0:
    nothing of it arrived); its `transfer_in` movements put them into the same lots."""
    KIND: ClassVar[str] = "transfer.received"
    transfer_id: str
    from_store: str
    lines: tuple[TransferLotLine, ...]
    received_by: str

    def check(self) -> None:
        require(is_id(self.transfer_id), f"transfer.received: not an id: {self.transfer_id[:60]!r}")
        _other_store(self.store_id, self.from_store, "transfer.received.from_store")
        _lines(self.lines, "transfer.received.lines", positive=False)
        _staff(self.received_by, "transfer.received.received_by")


@record
class TransferToDispatch(Message):
    """Cloud -> A (`store_id`): send `lines` to `to_store`."""
    KIND: ClassVar[str] = "transfer.to_dispatch"
    transfer_id: str
    to_store: str
    lines: tuple[TransferLine, ...]
    requested_by: str
    reason: str

    def check(self) -> None:
        require(is_id(self.transfer_id), f"transfer.to_dispatch: not an id: {self.transfer_id[:60]!r}")
        _other_store(self.store_id, self.to_store, "transfer.to_dispatch.to_store")
        _lines(self.lines, "transfer.to_dispatch.lines", positive=True)
        require(len(self.requested_by) <= 64, "transfer.to_dispatch: requested_by too long")
        require(len(self.reason) <= REASON_MAX_CHARS, "transfer.to_dispatch: reason too long")


@record
class TransferArriving(Message):
    """Cloud -> B (`store_id`): `from_store` dispatched `lines` (per lot, with use-by) of what was asked (`asked_lines`)."""
    KIND: ClassVar[str] = "transfer.arriving"
    transfer_id: str
    from_store: str
    asked_lines: tuple[TransferLine, ...]
    lines: tuple[TransferLotLine, ...]
    dispatched_by: str
    reason: str

    def check(self) -> None:
        require(is_id(self.transfer_id), f"transfer.arriving: not an id: {self.transfer_id[:60]!r}")
        _other_store(self.store_id, self.from_store, "transfer.arriving.from_store")
        _lines(self.lines, "transfer.arriving.lines", positive=True)
        require(len(self.asked_lines) <= TRANSFER_LINES_MAX, "transfer.arriving: too many asked lines")
        require(len(self.reason) <= REASON_MAX_CHARS, "transfer.arriving: reason too long")


EDGE_TRANSFER_EVENTS: tuple[type[Message], ...] = (TransferRequested, TransferDispatched, TransferReceived)


@record
class TransferCancelled(Message):
    """Cloud -> A and B (`store_id`): the transfer was cancelled before it was dispatched (`reason` says why). A store
    that dispatched it already (offline) keeps its dispatch: the goods left, and the cloud takes the dispatch."""
    KIND: ClassVar[str] = "transfer.cancelled"
    transfer_id: str
    reason: str

    def check(self) -> None:
        require(is_id(self.transfer_id), f"transfer.cancelled: not an id: {self.transfer_id[:60]!r}")
        require(len(self.reason) <= REASON_MAX_CHARS, "transfer.cancelled: reason too long")


CLOUD_TRANSFER_MESSAGES: tuple[type[Message], ...] = (TransferToDispatch, TransferArriving, TransferCancelled)
