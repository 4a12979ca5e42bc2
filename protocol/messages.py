"""Every message edge and cloud exchange: typed, frozen, versioned.

Each message carries the envelope: `event_id` (made at its origin, ULID), `store_id` (the store it is
from, or for), `seq` (a per-store, per-direction sequence number: the edge numbers its events, the cloud
numbers its cloud messages to that store), `wall_ms` (origin wall clock, epoch ms) and `mono_ms` (origin
monotonic clock, ms) - both clocks, so lag is measurable and ordering survives a wall-clock step.

Quantities: a sale line carries a `Quantity` - an amount *with its unit* (pieces, or grams of a product sold by
the kg), so nothing downstream has to guess. Stock counts (`StockMoved.delta`, escrow, order lines) are integers in
the SKU's stock unit (`StockUnit`): pieces, or grams for a product sold by the kg. Money is fen.
"""
from __future__ import annotations

import re
from typing import ClassVar, Literal

from protocol.errors import ProtocolError
from protocol.ids import is_id
from protocol.lots import LotDelta, check_lots
from protocol.markdowns import MarkdownGiven, check_markdowns
from protocol.promotion_uses import RuleUse, check_promotions
from protocol.schema import record, require

PHONE_HASH_BYTES = 32  # HMAC-SHA256 (protocol.phones.lookup_hash)
STORE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
SKU_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")

MovementReason = Literal[
    "sale", "return", "receiving", "shrinkage", "stocktake", "transfer_in", "transfer_out",
    "escrow_grant", "escrow_reclaim", "pickup", "pick",
]
ShrinkageReason = Literal["", "spoiled", "expired", "damaged", "theft", "tasting", "weighing_loss", "other"]
PaymentMethod = Literal["cash", "stored_value", "wallet_sim", "points"]  # points: part of a sale (protocol.points)
LANE = re.compile(r"[A-Za-z0-9_-]{1,16}")  # a till lane's name: short and plain, it travels in every sale


def check_lane(lane: str, path: str = "lane") -> None:
    if not LANE.fullmatch(lane):
        raise ProtocolError(f"{path}: a lane is 1-16 letters, digits, '_' or '-', not {lane[:40]!r}")


AckResult = Literal["ok", "exists", "conflict", "refused"]  # refused: never to be applied (detail says why)
DeviceState = Literal["ok", "degraded", "down", "absent"]
Fulfilment = Literal["pickup", "delivery"]
StockUnit = Literal["piece", "g"]  # how a SKU's stock is counted: whole pieces, or grams (sold by the kg)


def valid_store_id(store_id: str) -> bool:
    return bool(STORE_ID_RE.match(store_id))


@record
class Message:
    """The envelope every message carries. Subclasses add their body and a KIND tag."""

    KIND: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: str
    store_id: str
    seq: int
    wall_ms: int
    mono_ms: int

    def __post_init__(self) -> None:
        require(is_id(self.event_id), f"{self.KIND}.event_id: not an id: {self.event_id!r}")
        require(valid_store_id(self.store_id), f"{self.KIND}.store_id: invalid store id {self.store_id!r}")
        require(self.seq >= 0, f"{self.KIND}.seq: must not be negative")
        require(self.wall_ms >= 0, f"{self.KIND}.wall_ms: must not be negative")
        self.check()

    def check(self) -> None:
        """Body invariants; overridden by messages that have any."""

    @property
    def kind(self) -> str:
        return self.KIND

    @property
    def schema_version(self) -> int:
        return self.SCHEMA_VERSION


# ---- parts -------------------------------------------------------------------------------------

@record
class Quantity:
    """How much of a SKU, with its unit: `amount` whole pieces, or `amount` grams of a product sold by the kg."""
    amount: int
    unit: StockUnit

    def __post_init__(self) -> None:
        require(self.amount > 0, f"quantity: amount must be positive, got {self.amount} {self.unit}")

    @classmethod
    def pieces(cls, n: int) -> Quantity:
        return cls(amount=n, unit="piece")

    @classmethod
    def grams(cls, g: int) -> Quantity:
        return cls(amount=g, unit="g")


@record
class SaleLine:
    sku: str
    quantity: Quantity  # what left the shelf, in the unit the SKU's stock is counted in
    amount_fen: int  # after line-level discounts

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"sale line: invalid sku {self.sku!r}")
        require(self.amount_fen >= 0, f"sale line {self.sku}: amount must not be negative")


@record
class Payment:
    method: PaymentMethod
    amount_fen: int
    reference: str  # provider or ledger transfer id; "" for cash

    def __post_init__(self) -> None:
        require(self.amount_fen > 0, f"payment {self.method}: amount must be positive")


@record
class OrderLine:
    sku: str
    qty: int  # in the SKU's stock unit: pieces, or grams of a product sold by the kg (see `StockUnit`)
    amount_fen: int

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"order line: invalid sku {self.sku!r}")
        require(self.qty > 0, f"order line {self.sku}: qty must be positive")


@record
class DeviceHealth:
    device: str  # "scale", "scanner", "printer", ...
    state: DeviceState
    detail: str


@record
class Ack:
    event_id: str
    seq: int
    result: AckResult
    detail: str


# ---- edge -> cloud (events, on JetStream) -----------------------------------------------------------

@record
class SaleCommitted(Message):
    KIND: ClassVar[str] = "sale.committed"
    # 2: a line carries `quantity` {amount, unit} instead of `qty` + `weighed` (a price-embedded label on a per-kg
    # product used to travel as "qty 1, not weighed", and took 1 g off stock)
    SCHEMA_VERSION: ClassVar[int] = 2
    sale_id: str
    lane: str
    lines: tuple[SaleLine, ...]
    total_fen: int
    payments: tuple[Payment, ...]
    member_id: str | None
    offline: bool  # paid while the store could not reach the cloud
    markdowns: tuple[MarkdownGiven, ...] = ()  # what markdown rules gave away on its lines (protocol.markdowns)
    promotions: tuple[RuleUse, ...] = ()  # every rule its basket used, with its saving (protocol.promotion_uses)
    stall: str = ""  # sold on a market stall's lane: that stall (protocol/stalls.py); "" = the store's own till

    def check(self) -> None:
        check_lane(self.lane, "sale.committed.lane")
        check_markdowns(self.markdowns, [line.sku for line in self.lines])
        check_promotions(self.promotions)
        require(len(self.lines) > 0, "sale.committed: a sale has at least one line")
        require(self.total_fen >= 0, "sale.committed: total must not be negative")
        paid = sum(p.amount_fen for p in self.payments)
        require(paid == self.total_fen, f"sale.committed: payments {paid} fen != total {self.total_fen} fen")


@record
class StockMoved(Message):
    KIND: ClassVar[str] = "stock.moved"
    sku: str
    delta: int  # signed, base units
    reason: MovementReason
    shrinkage_reason: ShrinkageReason
    on_hand_after: int
    reference: str  # sale id, transfer id, order id ... "" if none
    # how the delta falls on the SKU's lots (protocol.lots); a box fills it when it commits the movement, so
    # every movement it sends has them ("" is the unlotted stock); () from a box older than lots: all unlotted
    lots: tuple[LotDelta, ...] = ()

    def check(self) -> None:
        require(self.delta != 0, "stock.moved: delta must not be zero")
        check_lots(self.lots, self.delta, "stock.moved: lots")
        require(self.on_hand_after >= 0 or self.reason == "sale",
                "stock.moved: on_hand_after negative outside a sale")
        require((self.reason == "shrinkage") == (self.shrinkage_reason != ""),
                "stock.moved: shrinkage needs a shrinkage_reason, and only shrinkage has one")


@record
class EscrowGranted(Message):
    """The store hands the cloud `qty` more units of `sku` to sell online."""
    KIND: ClassVar[str] = "escrow.granted"
    sku: str
    qty: int
    escrow_after: int
    # lent for an order of the mall the cloud was short for (edge/core/lending.py): the mall's units, never shared out
    # to a marketplace's part of the escrow (actors/stock_pool.py). A box from before it sends none: not a loan
    loan: bool = False

    def check(self) -> None:
        require(self.qty > 0, "escrow.granted: qty must be positive")


@record
class EscrowReclaimRequested(Message):
    """The till sold past its share: the store asks for up to `qty` unreserved units back."""
    KIND: ClassVar[str] = "escrow.reclaim_requested"
    sku: str
    qty: int

    def check(self) -> None:
        require(self.qty > 0, "escrow.reclaim_requested: qty must be positive")


@record
class PickupCompleted(Message):
    KIND: ClassVar[str] = "pickup.completed"
    order_id: str
    pickup_code: str
    lane: str

    def check(self) -> None:
        check_lane(self.lane, "pickup.completed.lane")


HOLD_PREFIX = "hold:"  # a stored-value hold's id: "hold:" + an id made by the till
MEMBER_ID_MAX = 64
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # a cashier's id


def is_hold_id(text: str) -> bool:
    return text.startswith(HOLD_PREFIX) and is_id(text[len(HOLD_PREFIX):])


def _member(member_id: str, path: str) -> None:
    require(0 < len(member_id) <= MEMBER_ID_MAX, f"{path}: a member id is 1-{MEMBER_ID_MAX} characters")


@record
class CashToppedUp(Message):
    """A cashier signed in at a till took `amount_fen` in cash and credits it to the member's stored value, in shift
    `shift_id`. Committed at the store like a sale (outbox, exactly once); the cloud credits it once (the ledger
    transfer id is the event id) within the store's daily cash top-up cap."""
    KIND: ClassVar[str] = "stored_value.cash_topped_up"
    topup_id: str
    lane: str
    member_id: str
    amount_fen: int
    cashier_id: str
    shift_id: str

    def check(self) -> None:
        check_lane(self.lane, "stored_value.cash_topped_up.lane")
        _member(self.member_id, "stored_value.cash_topped_up.member_id")
        require(self.amount_fen > 0, "stored_value.cash_topped_up: amount_fen must be positive")
        require(bool(NAME_RE.fullmatch(self.cashier_id)), "stored_value.cash_topped_up: invalid cashier id")
        require(is_id(self.shift_id) and is_id(self.topup_id), "stored_value.cash_topped_up: shift and top-up ids")


@record
class Heartbeat(Message):
    KIND: ClassVar[str] = "heartbeat"
    # 2: `last_command_seq` became `last_cloud_message_seq` (commands are what actors apply; a store receives
    # cloud messages)
    SCHEMA_VERSION: ClassVar[int] = 2
    outbox_depth: int
    last_event_seq: int
    last_acked_seq: int
    last_cloud_message_seq: int
    devices: tuple[DeviceHealth, ...]
    rule_book_version: int
    # how long the oldest event still waiting for the cloud's business ack has waited (edge clock): a relay that is
    # stuck while heartbeats go on shows here, where the last received event's lag cannot show it
    unacked_age_ms: int = 0
    disk_free_bytes: int = -1  # free bytes of the box's data filesystem (-1: not reported; edge/disk.py)
    software_version: str = ""  # the box's freshmesh version ("": not reported)

    def check(self) -> None:
        require(self.outbox_depth >= 0, "heartbeat: outbox_depth must not be negative")
        require(self.unacked_age_ms >= 0, "heartbeat: unacked_age_ms must not be negative")
        require(self.disk_free_bytes >= -1, "heartbeat: disk_free_bytes must be -1 (unknown) or more")
        require(len(self.software_version) <= 64, "heartbeat: software_version longer than 64 characters")


# ---- store <-> cloud, request and reply (core NATS: the till waits a moment, never for long) --------------

@record
class HoldRequested(Message):
    """The till asks the cloud's ledger to set `amount_fen` of the member's stored value aside before its sale
    commits; the sale's payment then names `hold_id` and the cloud captures it. Answered by a `HoldAnswered`."""
    KIND: ClassVar[str] = "stored_value.hold"
    hold_id: str
    member_id: str
    amount_fen: int
    lane: str

    def check(self) -> None:
        require(is_hold_id(self.hold_id), f"stored_value.hold: not a hold id: {self.hold_id[:80]!r}")
        _member(self.member_id, "stored_value.hold.member_id")
        require(self.amount_fen > 0, "stored_value.hold: amount_fen must be positive")
        check_lane(self.lane, "stored_value.hold.lane")


@record
class HoldReleased(Message):
    """The till did not sell after all (the sale was refused or voided): the hold goes back at once."""
    KIND: ClassVar[str] = "stored_value.release"
    hold_id: str
    member_id: str

    def check(self) -> None:
        require(is_hold_id(self.hold_id), f"stored_value.release: not a hold id: {self.hold_id[:80]!r}")
        _member(self.member_id, "stored_value.release.member_id")


@record
class HoldAnswered(Message):
    """The ledger's answer to a `HoldRequested` (or a `HoldReleased`): granted until `expires_ms`, or refused with
    `reason`; `stored_value_fen` is the member's balance and `available_fen` what is left after live holds."""
    KIND: ClassVar[str] = "stored_value.hold_answer"
    hold_id: str
    granted: bool
    reason: str
    stored_value_fen: int
    available_fen: int
    expires_ms: int


# ---- cloud -> store (cloud messages, on JetStream, one consumer per store) -------------------------------

@record
class OrderToFulfil(Message):
    KIND: ClassVar[str] = "order.fulfil"
    SCHEMA_VERSION: ClassVar[int] = 2
    order_id: str
    fulfilment: Fulfilment
    lines: tuple[OrderLine, ...]
    total_fen: int
    pickup_code: str
    slot_start_ms: int
    slot_end_ms: int
    member_id: str | None
    # 2: the customer allowed substitutions (picking may give another product instead of a missing one)
    allow_substitutions: bool = False

    def check(self) -> None:
        require(len(self.lines) > 0, "order.fulfil: an order has at least one line")
        require(self.slot_end_ms >= self.slot_start_ms, "order.fulfil: slot ends before it starts")


@record
class EscrowReclaimed(Message):
    """The cloud returns `qty_returned` unreserved units (0 if all are reserved) for a reclaim request."""
    KIND: ClassVar[str] = "escrow.reclaimed"
    request_event_id: str
    sku: str
    qty_returned: int
    escrow_after: int

    def check(self) -> None:
        require(self.qty_returned >= 0, "escrow.reclaimed: qty_returned must not be negative")


@record
class OrderCancelled(Message):
    KIND: ClassVar[str] = "order.cancelled"
    order_id: str
    reason: str


@record
class CatalogueUpdated(Message):
    """The catalogue and variable-measure layouts as JSON (bytes), replacing the store's copy."""
    KIND: ClassVar[str] = "catalogue.updated"
    version: int
    payload: bytes


@record
class RuleBookUpdated(Message):
    """The promotion book as JSON (bytes), replacing the store's copy when its version is newer."""
    KIND: ClassVar[str] = "rule_book.updated"
    version: int
    payload: bytes


@record
class MemberUpdated(Message):
    """A member snapshot for the store's offline cache (identify by phone or member code, floor-limited spending),
    or, with `erased`, the word that the member is gone: the store drops them from its cache."""
    KIND: ClassVar[str] = "member.updated"
    # 2: no phone in clear. `phone_hash` is the phone's keyed hash under this store's own lookup key
    # (`protocol.policy.member_lookup_key`; empty when the cloud cannot compute it), `phone_masked` what receipts show;
    # `erased` tells the store to forget the member.
    SCHEMA_VERSION: ClassVar[int] = 3
    member_id: str
    phone_hash: bytes
    phone_masked: str
    member_code: str
    level: str
    stored_value_fen: int
    points: int
    erased: bool = False
    # 3: the payment references of this store's stored-value spends the balance already includes: the store stops
    # counting them as unsettled with the same snapshot, so whichever of the snapshot and the business ack comes
    # first, nothing is counted twice
    settles: tuple[str, ...] = ()

    def check(self) -> None:
        require(len(self.settles) <= 100, "member.updated: settles names at most 100 payments")
        require(len(self.phone_hash) in (0, PHONE_HASH_BYTES),
                f"member.updated: phone_hash has {len(self.phone_hash)} bytes, not 0 or {PHONE_HASH_BYTES}")
        require(not self.erased or (not self.phone_hash and not self.phone_masked and not self.member_code),
                "member.updated: an erased member carries no phone hash, masked phone or member code")


@record
class BusinessAck(Message):
    """The cloud applied (or had already applied) these edge events; the edge may drop their outbox rows."""
    KIND: ClassVar[str] = "ack"
    acks: tuple[Ack, ...]


from protocol.delivery_messages import DeliveryReturned, StaffDelivery  # noqa: E402 - it builds on the classes above

# picking's events need Message: defined there, imported from here (re-exported)
from protocol.picking_messages import OrderPicked as OrderPicked  # noqa: E402
from protocol.picking_messages import PickedLine as PickedLine  # noqa: E402
from protocol.picking_messages import PickingStarted as PickingStarted  # noqa: E402
from protocol.receiving_messages import GoodsReceived, ShrinkageRecorded  # noqa: E402 - likewise
from protocol.return_messages import AfterSalesDecided, AfterSalesRequested, GoodsReturned  # noqa: E402
from protocol.stocktake_messages import StocktakePosted  # noqa: E402
from protocol.transfer_messages import CLOUD_TRANSFER_MESSAGES, EDGE_TRANSFER_EVENTS  # noqa: E402

EDGE_EVENTS: tuple[type[Message], ...] = (
    SaleCommitted, StockMoved, EscrowGranted, EscrowReclaimRequested, PickupCompleted, Heartbeat, CashToppedUp,
    StaffDelivery, GoodsReturned, AfterSalesDecided, PickingStarted, OrderPicked, GoodsReceived, ShrinkageRecorded,
    StocktakePosted, *EDGE_TRANSFER_EVENTS,
)
from protocol.budget_messages import (  # noqa: E402 - likewise
    BudgetAllowanceGranted,
    BudgetShareReclaimed,
    BudgetUsed,
    MemberLimitsAnswered,
    MemberLimitsRequested,
)
from protocol.escrow_messages import AllocationSet, EscrowBorrowAnswered, EscrowBorrowRequested  # noqa: E402 - likewise
from protocol.restock_messages import ReorderPointsSet, RestockAlerted, RestockCleared  # noqa: E402 - likewise

EDGE_EVENTS += (RestockAlerted, RestockCleared, BudgetUsed)
from protocol.points_messages import POINTS_REQUESTS  # noqa: E402 - likewise

REQUESTS: tuple[type[Message], ...] = (HoldRequested, HoldReleased, HoldAnswered, EscrowBorrowRequested,
                                       EscrowBorrowAnswered, *POINTS_REQUESTS, MemberLimitsRequested,
                                       MemberLimitsAnswered)
CLOUD_MESSAGES: tuple[type[Message], ...] = (OrderToFulfil, OrderCancelled, EscrowReclaimed, CatalogueUpdated,
                                              RuleBookUpdated, MemberUpdated, BusinessAck, DeliveryReturned,
                                              AfterSalesRequested, AllocationSet, ReorderPointsSet,
                                              BudgetAllowanceGranted, BudgetShareReclaimed,
                                              *CLOUD_TRANSFER_MESSAGES)
from protocol.coupon_messages import COUPON_REQUESTS, EDGE_COUPON_EVENTS  # noqa: E402 - likewise

EDGE_EVENTS += EDGE_COUPON_EVENTS
from protocol.shift_messages import ShiftReported  # noqa: E402 - likewise

EDGE_EVENTS += (ShiftReported,)
REQUESTS += COUPON_REQUESTS
from protocol.till_member_messages import TILL_MEMBER_REQUESTS  # noqa: E402 - likewise (members registered at a till)

REQUESTS += TILL_MEMBER_REQUESTS
ALL_MESSAGES: dict[str, type[Message]] = {cls.KIND: cls for cls in EDGE_EVENTS + CLOUD_MESSAGES + REQUESTS}
