"""What a store box may tell the cloud: the rules by which the cloud believes an edge event (DESIGN.md 4b).

A store is believed only about its own facts: its sales and cash top-ups (naming members that exist), its stock
movements (within sane bounds), its escrow grants (bounded by what it reported on hand), and pickups of orders
allocated to it and paid. Anything else is refused with a reason; the bridge dead-letters it, tells the store and
shows it on the console. Pure: the shell gathers what the cloud knows (`Known`) for one batch and passes it in;
nothing here reads a database, an actor or a clock.

Guarantees of `judge`:
- an event is refused only for what it says, never for what another store said;
- events are judged in the order given (the batch's order, which is each store's sequence order): a grant is
  measured against the on-hand of the movements before it in the same batch, and grants accepted earlier in the
  batch count against later ones;
- every refusal names the event's store, what it claimed and why it is not believed.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from protocol import order_lifecycle as lifecycle
from protocol.delivery_messages import StaffDelivery
from protocol.messages import (
    CashToppedUp,
    EscrowGranted,
    EscrowReclaimRequested,
    Message,
    OrderPicked,
    PickingStarted,
    PickupCompleted,
    SaleCommitted,
    StockMoved,
)
from protocol.picking import judge_picked
from protocol.policy import chain_day

# One SKU's stock at one store, in its stock unit (pieces, or grams): 100 t of a product sold by the kg. No store
# holds more; anything bigger is an attack or a corrupted counter, and would overflow sums downstream.
STOCK_QTY_MAX = 100_000_000
# One till sale: 1,000,000 yuan. A real basket is far below; a bigger one is not believed.
SALE_TOTAL_MAX_FEN = 100_000_000
PICKUP_STATUSES = lifecycle.PAID_STATUSES
# A store's cash top-up counts against the daily cap of the chain day it was taken on (as its till counted it), if
# that day is believable: not in the future and at most this far back (a store cut off for a week); otherwise the
# day the cloud received it, so a store cannot spread top-ups over made-up days to pass the cap.
CASH_DAY_LOOKBACK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class OrderFacts:
    """What the cloud knows of one online order: enough to judge a pickup of it."""
    order_id: str
    kind: str
    status: str
    stores: frozenset[str]  # the stores its allocation names
    parts: dict[str, dict[str, int]] = field(default_factory=dict)  # store -> sku -> qty of its part
    allow_substitutions: bool = False
    # store -> its part's status (`order_parts`; a store with no row yet is at the order's status) and the event
    # that claimed its picking (`picking.PICK_CLAIM` on the timeline): a part is picked once, by one event
    part_status: dict[str, str] = field(default_factory=dict)
    pick_claims: dict[str, str] = field(default_factory=dict)


@dataclass
class Known:
    """What the cloud knows for one batch (gathered by the shell, for the ids and pairs the batch names).

    `on_hand`: each (store, sku)'s last reported on-hand (store_stock); `escrow`: the cloud's escrow per (store, sku)
    as its stock pool holds it; `members`: which of the named member ids exist; `orders`: the named orders found.
    """
    members: set[str] = field(default_factory=set)
    orders: dict[str, OrderFacts] = field(default_factory=dict)
    on_hand: dict[tuple[str, str], int] = field(default_factory=dict)
    escrow: dict[tuple[str, str], int] = field(default_factory=dict)
    tolerances: dict[str, int] = field(default_factory=dict)  # sku -> catch-weight tolerance (bp), weighed products
    products: frozenset[str] = frozenset()  # the catalogue's skus (a substitute must be one)
    # grants the cloud already judged and applied when the store lent them on request (a borrow): `escrow` includes
    # them, so they are not judged again (their second apply is a no-op by id)
    applied_grants: set[str] = field(default_factory=set)


def named_members(events: Iterable[Message]) -> set[str]:
    return {e.member_id for e in events if isinstance(e, (SaleCommitted, CashToppedUp)) and e.member_id}


def cash_day(wall_ms: int, received_ms: int) -> date:
    """The chain day whose cash top-up cap a top-up taken at `wall_ms` (the till's clock) and received at
    `received_ms` counts against: its own day when believable, else the received day (`CASH_DAY_LOOKBACK_MS`)."""
    believable = received_ms - CASH_DAY_LOOKBACK_MS <= wall_ms <= received_ms
    return chain_day(wall_ms if believable else received_ms)


def named_orders(events: Iterable[Message]) -> set[str]:
    return {e.order_id for e in events if isinstance(e, PickupCompleted | StaffDelivery | PickingStarted | OrderPicked)}


def granted_pairs(events: Iterable[Message]) -> set[tuple[str, str]]:
    return {(e.store_id, e.sku) for e in events if isinstance(e, EscrowGranted)}


def judge(events: Iterable[Message], known: Known) -> dict[str, str]:
    """event id -> why the cloud does not believe it, for each event refused; the others may be applied."""
    on_hand = dict(known.on_hand)
    escrow = dict(known.escrow)
    refused: dict[str, str] = {}
    picked: dict[tuple[str, str], str] = {}  # (order, store) -> the OrderPicked believed earlier in this batch
    for e in events:
        reason = _judge_one(e, known, on_hand, escrow)
        if not reason and isinstance(e, OrderPicked):
            first = picked.setdefault((e.order_id, e.store_id), e.event_id)
            if first != e.event_id:
                reason = f"picked lines of order {e.order_id}: this store's part was picked by event {first}"
        if reason:
            refused[e.event_id] = f"store {e.store_id} {e.KIND} refused: {reason}"
        elif isinstance(e, StockMoved):
            on_hand[(e.store_id, e.sku)] = e.on_hand_after
        elif isinstance(e, EscrowGranted) and e.event_id not in known.applied_grants:
            escrow[(e.store_id, e.sku)] = escrow.get((e.store_id, e.sku), 0) + e.qty
        elif isinstance(e, EscrowReclaimRequested):  # at most what it asks back returns: a later grant may refill it
            key = (e.store_id, e.sku)
            if key in escrow:
                escrow[key] = max(escrow[key] - e.qty, 0)
    return refused


def _judge_one(e: Message, known: Known, on_hand: dict[tuple[str, str], int], escrow: dict[tuple[str, str], int]) -> str:
    if isinstance(e, SaleCommitted):
        return judge_sale(e, known.members)
    if isinstance(e, CashToppedUp):  # the daily cap is judged by the shell, against what it recorded (locked)
        return "" if e.member_id in known.members else f"cash top-up {e.topup_id}: no member {e.member_id!r}"
    if isinstance(e, StockMoved):
        return judge_movement(e)
    if isinstance(e, EscrowGranted):
        if e.event_id in known.applied_grants:
            return ""
        return judge_grant(e, on_hand.get((e.store_id, e.sku)), escrow.get((e.store_id, e.sku), 0))
    if isinstance(e, EscrowReclaimRequested):
        return "" if e.qty <= STOCK_QTY_MAX else f"reclaim of {e.qty} exceeds {STOCK_QTY_MAX}"
    if isinstance(e, PickupCompleted):
        return judge_pickup(e, known.orders.get(e.order_id))
    if isinstance(e, StaffDelivery):
        return judge_staff_delivery(e, known.orders.get(e.order_id))
    if isinstance(e, (PickingStarted, OrderPicked)):
        return judge_picking(e, known.orders.get(e.order_id), known.tolerances, known.products)
    return ""


def judge_sale(e: SaleCommitted, members: set[str]) -> str:
    if e.total_fen > SALE_TOTAL_MAX_FEN:
        return f"sale {e.sale_id} total {e.total_fen} fen exceeds {SALE_TOTAL_MAX_FEN}"
    for line in e.lines:
        if not 0 < abs(line.quantity.amount) <= STOCK_QTY_MAX:
            return f"sale {e.sale_id} line {line.sku} quantity {line.quantity.amount} outside 1..{STOCK_QTY_MAX}"
    if e.member_id and e.member_id not in members:
        return f"sale {e.sale_id} names member {e.member_id!r}, who does not exist"
    return ""


def judge_movement(e: StockMoved) -> str:
    if abs(e.delta) > STOCK_QTY_MAX:
        return f"movement of {e.delta} {e.sku} exceeds {STOCK_QTY_MAX}"
    if abs(e.on_hand_after) > STOCK_QTY_MAX:
        return f"on-hand {e.on_hand_after} of {e.sku} exceeds {STOCK_QTY_MAX}"
    return ""


def judge_grant(e: EscrowGranted, on_hand: int | None, escrow_now: int) -> str:
    """A store can hand the cloud only units it has: the escrow after the grant must fit in its reported on-hand."""
    if e.qty > STOCK_QTY_MAX:
        return f"grant of {e.qty} {e.sku} exceeds {STOCK_QTY_MAX}"
    if on_hand is None:
        return f"grant of {e.qty} {e.sku}, of which the store never reported any on hand"
    if escrow_now + e.qty > on_hand:
        return (f"grant of {e.qty} {e.sku} would make the cloud's escrow {escrow_now + e.qty}, more than the "
                f"{on_hand} the store reported on hand")
    return ""


def judge_pickup(e: PickupCompleted, order: OrderFacts | None) -> str:
    if order is None:
        return f"pickup of order {e.order_id}, which does not exist"
    if e.store_id not in order.stores:  # a flash order is a store's once assigned; before, it names its sale only
        return f"pickup of order {e.order_id}, which is not allocated to this store"
    if order.status not in PICKUP_STATUSES:
        return f"pickup of order {e.order_id}, which is {order.status}, not paid"
    return ""


def judge_staff_delivery(e: StaffDelivery, order: OrderFacts | None) -> str:
    """A store's staff may deliver only a paid delivery order allocated to that store."""
    if order is None:
        return f"staff delivery of order {e.order_id}, which does not exist"
    if e.store_id not in order.stores:
        return f"staff delivery of order {e.order_id}, which is not allocated to this store"
    if order.kind != "delivery":
        return f"staff delivery of order {e.order_id}, which is a {order.kind} order"
    if order.status not in lifecycle.PAID_STATUSES:
        return f"staff delivery of order {e.order_id}, which is {order.status}, not paid"
    return ""


PICKABLE = (lifecycle.PAID, lifecycle.PICKING)  # a part still to be picked


def judge_picking(e: PickingStarted | OrderPicked, order: OrderFacts | None, tolerances: dict[str, int],
                  products: frozenset[str] = frozenset()) -> str:
    """A store picks only its own part of a paid order (a flash order once assigned to it: before, its allocation
    names only its sale), once: the part must still be paid or being picked - never one picked, handed over or
    delivered, whatever the order says - and an `OrderPicked` says only what that part allows
    (`protocol.picking.judge_picked`), with substitutes from the catalogue (`products`). A second `OrderPicked` for a
    part (a replay with a new event id) is refused: its refunds and re-routes would run twice.

    An `OrderPicked` of an order cancelled before it arrived (the store picked while it lagged) is believed too, if
    its part was never picked at the cloud: the goods left the shelf and the escrow with them at the store, so the
    cloud applies the stock side (no money: `cloud/services/picking.py`) and the two escrows agree again."""
    what = "picking" if isinstance(e, PickingStarted) else "picked lines"
    if order is None:
        return f"{what} of order {e.order_id}, which does not exist"
    if e.store_id not in order.stores:
        return f"{what} of order {e.order_id}, which is not allocated to this store"
    claim = order.pick_claims.get(e.store_id)
    if isinstance(e, OrderPicked) and claim is not None:
        if claim == e.event_id:
            return ""  # its own redelivery: the effects it began finish (each by its id)
        return f"{what} of order {e.order_id}: this store's part was picked already (event {claim})"
    cancelled_late = isinstance(e, OrderPicked) and order.status == lifecycle.CANCELLED
    if order.status not in PICKABLE and not cancelled_late:
        return f"{what} of order {e.order_id}, which is {order.status}, not paid and still to pick"
    part = order.part_status.get(e.store_id, order.status if not cancelled_late else lifecycle.PAID)
    if part not in PICKABLE:
        return f"{what} of order {e.order_id}: this store's part is {part}, not still to pick"
    if isinstance(e, OrderPicked):
        why = judge_picked(e, order.parts.get(e.store_id, {}), tolerances, order.allow_substitutions)
        if not why and products:
            unknown = sorted({line.substitute_sku for line in e.lines if line.substitute_sku} - products)
            if unknown:
                why = f"order {e.order_id}: substitutes {unknown} are not products of the catalogue"
        return why
    return ""
