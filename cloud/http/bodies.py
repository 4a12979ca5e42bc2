"""The bodies the HTTP API accepts, as typed records: a wrong field is refused with its path and the reason."""
from __future__ import annotations

from typing import Literal

from cloud.services.order_request import Location, OrderItem, OrderRequest
from protocol.schema import record, require

__all__ = ["Location", "OrderItem", "OrderRequest"]  # the order body is the orders service's own record


@record
class PayRequest:
    method: Literal["stored_value", "wallet_sim"]  # protocol.payments.ONLINE_METHODS
    points: int = 0  # points paying part of the order (protocol.points; the rest by `method`)


@record
class CancelRequest:
    reason: str = "customer"


@record
class CodeRequest:
    phone: str

    def __post_init__(self) -> None:
        require(0 < len(self.phone) <= 40, "phone: 1-40 characters")


@record
class SignInRequest:
    phone: str
    code: str

    def __post_init__(self) -> None:
        require(0 < len(self.phone) <= 40, "phone: 1-40 characters")
        require(self.code.isascii() and self.code.isdigit() and len(self.code) == 6, "code: the 6 digits sent by SMS")


@record
class TopUpRequest:
    amount_fen: int
    method: Literal["cash", "wallet_sim"] = "wallet_sim"  # cash is refused online (403): only at a till

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
    qty: int = 1  # the member is the one the flash pass names

    def __post_init__(self) -> None:
        require(self.qty > 0, "qty: must be positive")


@record
class OperatorSignInRequest:
    username: str
    password: str

    def __post_init__(self) -> None:
        require(0 < len(self.username) <= 40, "username: 1-40 characters")
        require(0 < len(self.password) <= 256, "password: 1-256 characters")


@record
class OperatorAccountRequest:
    username: str  # the account's shape is checked by protocol/roles.py (check_account, check_password)
    password: str
    role: Literal["hq_admin", "store_manager", "viewer", "stall_owner"]  # protocol.roles.ROLES
    store_id: str | None = None
    stall_id: str | None = None  # a stall_owner's stall (a stall of store_id: cloud/services/stalls.py)
