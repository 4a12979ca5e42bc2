"""What a decision of the store's pure core returns: an `Outcome` - the answer for the asker, the **effects** to
make durable (all in one SQLite transaction, in order) and what to do **after** that transaction committed.

The split is the guarantee, not a convention: a receipt or pick ticket is an after-effect, so it can only print
once the sale (or order) it shows is durable; a new catalogue is used only once it is stored. Effects name what
changes in domain words; `edge.store_db` turns each into SQL. Every record here is plain data (no I/O).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.core.shift_effects import ShiftEffect
from edge.core.state import Books
from protocol.messages import MemberUpdated, Message, Payment, PickedLine, SaleLine, StockMoved


class Refused(ValueError):
    """A business refusal with an HTTP-ish status (409 not enough paid, 404 unknown pickup code, ...)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


# ---- effects: durable, in one transaction -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MoveStock:
    """A journaled stock movement: on_hand changes by `event.delta` (escrow by `escrow_delta`), the movement is
    journaled and `event` goes to the outbox."""
    event: StockMoved
    escrow_delta: int = 0


@dataclass(frozen=True, slots=True)
class SetLotCost:
    """What one unit of a lot cost (from the supplier's delivery note): what losses of it are valued at."""
    sku: str
    lot: str
    unit_cost_fen: int


@dataclass(frozen=True, slots=True)
class ChangeEscrow:
    """The cloud's online share of a SKU changes (a grant after receiving, units the cloud gave back)."""
    sku: str
    delta: int


@dataclass(frozen=True, slots=True)
class Publish:
    """An event for the cloud: an outbox row, sent by the relay and kept until the cloud's business ack."""
    event: Message


@dataclass(frozen=True, slots=True)
class InsertSale:
    sale_id: str
    lane: str
    total_fen: int
    lines: tuple[SaleLine, ...]
    payments: tuple[Payment, ...]
    member_id: str | None
    offline: bool
    at_ms: int


@dataclass(frozen=True, slots=True)
class AddUnsettled:
    """Stored value a member spent at this store that the cached balance does not include yet, by its payment
    reference (the hold id, or "sv:<sale id>" for a spend made without the cloud's hold: `offline`)."""
    member_id: str
    amount_fen: int
    reference: str
    offline: bool


@dataclass(frozen=True, slots=True)
class SettleStoredValue:
    """The cloud took these stored-value spends (a business ack): they no longer count as unsettled. Settling one
    already settled (by the member's new balance, which names it) changes nothing."""
    member_id: str
    references: tuple[str, ...]
    amount_fen: int  # their total: what a cache from before spends were kept one by one still counts


@dataclass(frozen=True, slots=True)
class RecordTopUp:
    """A cash top-up taken at a lane by its signed-in cashier, journaled with the shift."""
    topup_id: str
    lane: str
    member_id: str
    amount_fen: int
    cashier_id: str
    shift_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class OpenShift:
    """A cashier signed in at a lane: the shift their cash is journaled under."""
    shift_id: str
    cashier_id: str
    lane: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class CloseShift:
    shift_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class InsertOrder:
    """An online order to fulfil (kept as it is if the order is already known)."""
    order_id: str
    pickup_code: str | None
    payload: dict


@dataclass(frozen=True, slots=True)
class SetOrderStatus:
    order_id: str
    status: str
    only_from: str | tuple[str, ...] | None = None  # change only an order in this status (one of these)


@dataclass(frozen=True, slots=True)
class RecordPick:
    """What the picker recorded for one line of an order being picked (replacing an earlier record of it)."""
    order_id: str
    line: PickedLine


@dataclass(frozen=True, slots=True)
class UpsertMember:
    """A member snapshot for the offline cache. This store's spends the snapshot names (`settles`) are in its
    balance and stop counting as unsettled; the others stay unsettled."""
    member: MemberUpdated


@dataclass(frozen=True, slots=True)
class DropMember:
    """The member was erased in the cloud: the store forgets them (their cached row goes, with what it held)."""
    member_id: str


@dataclass(frozen=True, slots=True)
class MarkApplied:
    """A cloud message's id goes into the inbox with its effect, so a redelivery changes nothing."""
    event_id: str
    kind: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class StoreBook:
    """The catalogue or the rule book (JSON text) and its version, as the store's copy."""
    key: str  # "catalogue" | "rule_book"
    text: str
    version: int


@dataclass(frozen=True, slots=True)
class DropAcked:
    """The cloud applied these events: their outbox rows go, and the seq floor rises to the highest of them, so a
    restart with an empty outbox still continues above every seq ever published."""
    event_ids: tuple[str, ...]
    seq_floor: int


@dataclass(frozen=True, slots=True)
class SetAsideRefused:
    """The cloud refused these events for good (each with why): their outbox rows are kept aside, frame and reason,
    for the store's staff and support to see, instead of being re-sent forever. Applied before the DropAcked that
    removes them from the outbox."""
    refusals: tuple[tuple[str, str], ...]  # (event id, the cloud's reason)
    at_ms: int


@dataclass(frozen=True, slots=True)
class InsertReturn:
    """A return taken at a lane (edge.core.returns): `source` is "sale:<id>" or "order:<id>"; `lines` are
    (sku, qty, fen given back, disposition)."""
    return_id: str
    source: str
    lane: str
    method: str
    total_fen: int
    lines: tuple[tuple[str, int, int, str], ...]
    at_ms: int
    refunds: tuple[tuple[str, int], ...] = ()  # (method, fen) given back by each way (GoodsReturned.refunds)


@dataclass(frozen=True, slots=True)
class StoreAfterSales:
    """A customer's after-sales request the cloud sent, kept for the store's staff to decide (once: a redelivered
    request changes nothing, a decided one stays decided; `status` decided in the cloud marks it so here)."""
    request_id: str
    order_id: str
    status: str
    payload: dict


@dataclass(frozen=True, slots=True)
class DecideAfterSales:
    request_id: str
    status: str  # approved | refused
    reason: str
    staff: str
    at_ms: int



@dataclass(frozen=True, slots=True)
class SetAllocation:
    """HQ's online share for a SKU or a category at this store, kept with its version (a newer one replaces it)."""
    scope: str  # "sku" | "category"
    key: str
    ratio_bp: int
    version: int


@dataclass(frozen=True, slots=True)
class InsertReceiving:
    """A delivery note received (edge.core.receiving): `asked` the note as asked (a repeat must match it), `reply`
    the JSON answered, answered again to a repeat."""
    receiving_id: str
    supplier: str
    note_no: str
    received_by: str
    asked: str
    reply: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class OpenStocktake:
    """A count session opens (edge.core.stocktake): its count sheet, the (sku, lot, use_by) lines to count."""
    stocktake_id: str
    scope: str  # JSON: "all" | {"categories": [...]} | {"skus": [...]}
    opened_by: str
    at_ms: int
    lines: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, slots=True)
class SetShelfAreas:
    """The store's whole shelf-area map replaced (edge.core.shelf_areas): (sku, area) pairs, who set it and when."""
    areas: tuple[tuple[str, str], ...]
    set_by: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class RecordCount:
    """A count of one (sku, lot) with the book quantity at that moment; a recount replaces it."""
    stocktake_id: str
    sku: str
    lot: str
    use_by: str
    counted: int
    book: int
    counted_by: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class CloseStocktake:
    """The session is posted (approved) or cancelled; `reply` (JSON) is what approving it answered, for a retry."""
    stocktake_id: str
    status: str  # posted | cancelled
    by: str
    at_ms: int
    reply: str


@dataclass(frozen=True, slots=True)
class SaveTransfer:
    """A transfer between stores as this store knows it (`edge.core.transfers.Transfer`), kept whole: inserted, or
    replacing the row of the same id (`edge.transfers_db`)."""
    transfer: Any


@dataclass(frozen=True, slots=True)
class SetReorderPoint:
    """HQ's reorder point and target for a SKU here, kept with its version (only a newer one replaces it)."""
    sku: str
    reorder_point: int
    target: int
    version: int


@dataclass(frozen=True, slots=True)
class OpenRestockAlert:
    """The SKU's projected stock fell below its point: the alert is kept open until `CloseRestockAlert`."""
    alert_id: str
    sku: str
    on_hand: int
    owed: int
    reorder_point: int
    target: int
    suggested_qty: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class CloseRestockAlert:
    alert_id: str
    at_ms: int


RestockEffect = SetReorderPoint | OpenRestockAlert | CloseRestockAlert


@dataclass(frozen=True, slots=True)
class GrantAllowance:
    """The store's total offline share of a capped rule's budget, as the cloud granted it (the highest is kept, of
    grants no older than the store's last take-back: `generation`, edge/budget_db.py)."""
    rule_id: str
    granted_fen: int
    generation: int = 0


@dataclass(frozen=True, slots=True)
class UseAllowance:
    """A till sale gave `fen` under a capped rule: taken from the store's share (edge/core/budget_allowance.py)."""
    rule_id: str
    fen: int


Effect = (MoveStock | ChangeEscrow | Publish | InsertSale | AddUnsettled | SettleStoredValue | InsertOrder
          | SetOrderStatus | RecordPick | UpsertMember | DropMember | MarkApplied | StoreBook | SetAsideRefused | DropAcked
          | RecordTopUp | OpenShift | CloseShift | InsertReturn | StoreAfterSales | DecideAfterSales | SetAllocation
          | SetLotCost | InsertReceiving | OpenStocktake | RecordCount | CloseStocktake | SaveTransfer | SetShelfAreas
          | RestockEffect | GrantAllowance | UseAllowance | ShiftEffect)


# ---- after the commit ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PrintTicket:
    ticket: bytes  # ESC/POS


@dataclass(frozen=True, slots=True)
class ForgetCart:
    lane: str


@dataclass(frozen=True, slots=True)
class UseBooks:
    books: Books


AfterEffect = PrintTicket | ForgetCart | UseBooks


@dataclass(frozen=True, slots=True)
class Outcome:
    reply: Any
    effects: tuple[Effect, ...] = ()
    after: tuple[AfterEffect, ...] = ()
    last_seq: int | None = None  # the highest event seq the effects use (None: no event made)
    notes: tuple[str, ...] = field(default=())  # for the log: what was refused or skipped, and why

    @property
    def publishes(self) -> bool:
        return any(isinstance(e, (Publish, MoveStock)) for e in self.effects)
