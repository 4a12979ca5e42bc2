"""The state the store's pure core decides on, as plain records the shell loads and passes in, and the stamp that
numbers outgoing events (sequence, ids and time are handed to it; it reads no clock).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from protocol.messages import Message, Quantity, StockUnit
from protocol.pricing import BudgetLeft, Catalogue, RuleBook
from protocol.pricing.catalogue import Product


@dataclass(frozen=True, slots=True)
class StockLevel:
    """One SKU's stock at this store: what is on hand and how much of it is the cloud's online escrow."""
    sku: str
    on_hand: int
    escrow: int


@dataclass(frozen=True, slots=True)
class Member:
    """The store's cached copy of a member (what the till needs to recognise them and bound offline spending). The
    phone is not here: the cache finds a member by the phone's keyed hash and keeps only the masked form to show."""
    member_id: str
    phone_masked: str | None
    member_code: str | None
    level: str | None
    stored_value_fen: int
    points: int
    unsettled_fen: int  # stored value spent here that the cached balance does not include yet
    offline_unsettled_fen: int = 0  # the part of it spent without the cloud's hold (bounded by the offline allowance)

    def as_json(self) -> dict:
        return {"member_id": self.member_id, "phone": self.phone_masked, "member_code": self.member_code,
                "level": self.level, "stored_value_fen": self.stored_value_fen, "points": self.points,
                "unsettled_fen": self.unsettled_fen, "offline_spent_fen": self.offline_unsettled_fen,
                "coupons": None}  # the member's coupons, filled in by the lane (edge/coupons.py wallet_view)


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """An online order the store received to fulfil; `lines` are (sku, qty in the SKU's stock unit)."""
    order_id: str
    status: str  # to_pick | picked_up | cancelled
    lines: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Books:
    """The catalogue and the promotion book in use, with the versions the cloud sent them under (0: bootstrap)."""
    catalogue: Catalogue | None = None
    rule_book: RuleBook | None = None
    catalogue_version: int = 0
    rule_book_version: int = 0
    # what the tills may still give under each budget-capped rule: this store's offline share left (0 without one),
    # set by the store actor from its allowances (edge/core/budget_allowance.py); () before it is first set
    budgets_left: tuple[BudgetLeft, ...] = ()
    # the gift SKUs' on-hand stock as the store actor last read it (edge/core/gifts.py); None: not read
    gift_stock: Mapping[str, int] | None = None

    def product(self, sku: str) -> Product | None:
        return self.catalogue.by_sku.get(sku) if self.catalogue is not None else None


@dataclass(frozen=True, slots=True)
class Moment:
    """When a decision is made: the box clock's wall time and monotonic time, read by the shell."""
    wall_ms: int
    mono_ms: int


def stock_unit(product: Product) -> StockUnit:
    """Stock of a product sold by the kg is counted in grams; everything else in pieces."""
    return "g" if product.weighed else "piece"


def quantity_of(product: Product, amount: int) -> Quantity:
    return Quantity(amount=amount, unit=stock_unit(product))


M = TypeVar("M", bound=Message)


class EventStamp:
    """Gives each outgoing event its envelope: the store's next sequence number (after `last_seq`), a new id from
    `new_id`, and the decision's moment. The shell keeps `last_seq` in memory and adopts the outcome's once the
    events are committed, so a failed transaction leaves no gap and the sequence never goes back."""

    def __init__(self, store_id: str, last_seq: int, moment: Moment, new_id: Callable[[], str]) -> None:
        self.store_id, self.last_seq, self.moment, self.new_id = store_id, last_seq, moment, new_id
        self.used = False

    def make(self, cls: type[M], **body: Any) -> M:
        self.last_seq += 1
        self.used = True
        return cls(event_id=self.new_id(), store_id=self.store_id, seq=self.last_seq, wall_ms=self.moment.wall_ms,
                   mono_ms=self.moment.mono_ms, **body)

    @property
    def outcome_seq(self) -> int | None:
        return self.last_seq if self.used else None
