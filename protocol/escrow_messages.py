"""Messages about the channel split of a store's stock: the cloud borrowing escrow from a store's offline share
(core NATS request/reply on `fm.store.<id>.escrow.borrow`), and HQ's allocation ratio reaching the store (a cloud
message on the store's own JetStream consumer).

Registered in `protocol.messages` (REQUESTS, CLOUD_MESSAGES), so the one codec decodes them.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from protocol.ids import is_id
from protocol.messages import SKU_RE, Message
from protocol.schema import record, require

AllocationScope = Literal["sku", "category"]
BORROW_QTY_MAX = 10_000_000  # one borrow: pieces, or grams (the till's bound on one delivery)
CATEGORY_RE_MAX_CHARS = 40


def check_scope_key(scope: str, key: str, path: str) -> None:
    """A sku (as skus are spelled) or a category name (plain, short)."""
    if scope == "sku":
        require(bool(SKU_RE.match(key)), f"{path}: invalid sku {key[:60]!r}")
    else:
        require(scope == "category", f"{path}: scope must be 'sku' or 'category', not {scope[:20]!r}")
        require(0 < len(key) <= CATEGORY_RE_MAX_CHARS and key.isprintable(),
                f"{path}: a category is 1-{CATEGORY_RE_MAX_CHARS} printable characters")


@record
class EscrowBorrowRequested(Message):
    """The cloud asks the store for `qty` more units of `sku` to sell online (an order `order_ref` is short of them),
    and for nothing if it cannot lend at least `min_qty` (0: all of `qty`) - units lent that do not make the order
    possible would only move stock off the till's shelf. Answered by an `EscrowBorrowAnswered` on the request's
    reply subject. `borrow_id` is made by the cloud per try."""
    KIND: ClassVar[str] = "escrow.borrow"
    borrow_id: str
    sku: str
    qty: int
    order_ref: str = ""
    min_qty: int = 0

    @property
    def least(self) -> int:
        return self.min_qty or self.qty

    def check(self) -> None:
        require(is_id(self.borrow_id), f"escrow.borrow.borrow_id: not an id: {self.borrow_id[:60]!r}")
        require(bool(SKU_RE.match(self.sku)), f"escrow.borrow.sku: invalid sku {self.sku[:60]!r}")
        require(0 < self.qty <= BORROW_QTY_MAX, f"escrow.borrow.qty: 1..{BORROW_QTY_MAX}")
        require(len(self.order_ref) <= 80, "escrow.borrow.order_ref: at most 80 characters")
        require(0 <= self.min_qty <= self.qty, "escrow.borrow.min_qty: 0..qty")


@record
class EscrowBorrowAnswered(Message):
    """The store's answer: `lent` units (0: refused, `reason` says why) lent from its offline share, committed as
    the escrow grant `grant_event_id` (an `EscrowGranted` in its outbox: the cloud applies it once, whichever way it
    arrives first); `on_hand` and `escrow_after` are the store's level after the grant."""
    KIND: ClassVar[str] = "escrow.borrow_answer"
    borrow_id: str
    sku: str
    asked: int
    lent: int
    grant_event_id: str
    on_hand: int
    escrow_after: int
    reason: str = ""

    def check(self) -> None:
        require(0 <= self.lent <= self.asked, "escrow.borrow_answer: lent must be 0..asked")
        require((self.lent > 0) == bool(self.grant_event_id),
                "escrow.borrow_answer: a grant (and only a grant) names its grant_event_id")
        require(not self.grant_event_id or is_id(self.grant_event_id),
                f"escrow.borrow_answer.grant_event_id: not an id: {self.grant_event_id[:60]!r}")


@record
class AllocationSet(Message):
    """HQ sets the share of this store's on-hand of a SKU (or of every SKU of a category) offered online, in basis
    points. `version` grows per (store, scope, key): an older one arriving late never replaces a newer one."""
    KIND: ClassVar[str] = "allocation.set"
    scope: AllocationScope
    key: str
    ratio_bp: int
    version: int

    def check(self) -> None:
        check_scope_key(self.scope, self.key, "allocation.set")
        require(0 <= self.ratio_bp <= 10_000, "allocation.set.ratio_bp: 0..10000")
        require(self.version > 0, "allocation.set.version: must be positive")
