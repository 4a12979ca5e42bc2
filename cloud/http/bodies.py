"""The bodies the HTTP API accepts, as typed records: a wrong field is refused with its path and the reason."""
from __future__ import annotations

from typing import Literal

from protocol.schema import record, require


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
        require(0 < self.qty <= 100_000, f"items: qty of {self.sku} must be 1..100000 (pieces, or grams if sold by the kg)")


@record
class OrderRequest:
    fulfilment: Literal["pickup", "delivery"]
    items: tuple[OrderItem, ...]
    slot_start: str  # RFC 3339
    member_id: str | None = None
    store_id: str | None = None  # pickup: the chosen store
    location: Location | None = None  # delivery address (and pickup: where to look for alternatives)
    coupons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require(0 < len(self.items) <= 100, "items: between 1 and 100 lines")
        require(len({i.sku for i in self.items}) == len(self.items), "items: each sku once")
        if self.fulfilment == "delivery":
            require(self.location is not None, "location: required for delivery")
        else:
            require(self.store_id is not None, "store_id: required for pickup")


@record
class PayRequest:
    method: Literal["stored_value", "wallet_sim"]  # protocol.payments.ONLINE_METHODS


@record
class CancelRequest:
    reason: str = "customer"


@record
class MemberRequest:
    phone: str

    def __post_init__(self) -> None:
        digits = self.phone.lstrip("+")
        require(digits.isdigit() and 6 <= len(digits) <= 15, "phone: 6-15 digits, optionally with a leading +")


@record
class TopUpRequest:
    amount_fen: int
    method: Literal["cash", "wallet_sim"] = "wallet_sim"

    def __post_init__(self) -> None:
        require(0 < self.amount_fen <= 10_000_000, "amount_fen: 1..10000000 (up to 100,000 yuan)")


@record
class FlashSaleRequest:
    sku: str
    quantity: int
    price_fen: int
    starts_at: str
    ends_at: str
    per_member_limit: int = 1
    rate_per_s: int = 1000

    def __post_init__(self) -> None:
        require(self.quantity > 0, "quantity: must be positive")
        require(self.price_fen > 0, "price_fen: must be positive")
        require(self.per_member_limit > 0, "per_member_limit: must be positive")
        require(self.rate_per_s > 0, "rate_per_s: must be positive")


@record
class FlashOrderRequest:
    member_id: str
    qty: int = 1

    def __post_init__(self) -> None:
        require(self.qty > 0, "qty: must be positive")
