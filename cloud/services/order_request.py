"""An online order as the customer asks for it: fulfilment, items, slot, store or address, coupons (the member is
the signed-in one, never a field of the body).

A record the orders service takes (and the HTTP layer parses a body into): a wrong field is refused with its path
and the reason.
"""
from __future__ import annotations

from typing import Literal

from protocol.schema import record, require

MAX_LINES = 100
MAX_QTY = 100_000  # pieces, or grams of an item sold by the kg


@record
class Location:
    lat: float
    lon: float

    def __post_init__(self) -> None:
        require(-90 <= self.lat <= 90 and -180 <= self.lon <= 180, "location: lat must be -90..90 and lon -180..180")


@record
class OrderItem:
    sku: str
    qty: int = 0  # pieces, or grams for items sold by the kg

    def __post_init__(self) -> None:
        require(0 < self.qty <= MAX_QTY,
                f"items: qty of {self.sku} must be 1..{MAX_QTY} (pieces, or grams if sold by the kg)")


@record
class OrderRequest:
    fulfilment: Literal["pickup", "delivery"]
    items: tuple[OrderItem, ...]
    slot_start: str  # RFC 3339
    store_id: str | None = None  # pickup: the chosen store
    location: Location | None = None  # delivery address (and pickup: where to look for alternatives)
    coupons: tuple[str, ...] = ()
    allow_substitutions: bool = False  # the store may pick another product for one it is short of
    presale: bool = False  # out of stock now: accept it as a pre-sale if supply is due (cloud/services/presale.py)

    def __post_init__(self) -> None:
        check_basket(self)


def check_basket(request) -> None:
    """An order's or a cart's lines and where they go: 1..MAX_LINES lines, each sku once, a delivery's address or
    a pickup's store."""
    require(0 < len(request.items) <= MAX_LINES, f"items: between 1 and {MAX_LINES} lines")
    require(len({i.sku for i in request.items}) == len(request.items), "items: each sku once")
    if request.fulfilment == "delivery":
        require(request.location is not None, "location: required for delivery")
    else:
        require(request.store_id is not None, "store_id: required for pickup")
