"""Receiving and shrinkage on the store box's local API (served with the lanes; works with the cloud unreachable):

    POST /receivings   {"supplier", "note_no", "received_by" (cashier id), "lines": [{"sku", "qty" (pieces; grams
                       for a product sold by the kg), "expected_qty" (what the note says; default qty),
                       "unit_cost_fen" (per piece or per kg; default the product's cost), "lot", "use_by"
                       (YYYY-MM-DD)}]}
                       -> 201 {"receiving_id", "supplier", "note_no", "received_by", "at_ms", "lines": [{"sku", "lot",
                       "use_by", "qty", "expected_qty", "variance" (received - expected), "unit_cost_fen",
                       "on_hand", "escrow"}], "over", "under"}; the same note again answers the same; 409 the same
                       note with other lines; 404 an unknown product; 422 a bad line (each named)
    GET  /receivings?since=<epoch ms>   -> {"receivings": [...]} as answered, oldest first
    GET  /shrinkage?since=<epoch ms>    -> {"shrinkage": [{"shrinkage_id", "sku", "qty", "reason", "on_hand",
                       "at_ms"}]}, oldest first
    POST /shrinkage    {"sku", "qty" (pieces or grams), "reason" (spoiled|damaged|expired|theft|tasting|
                       weighing_loss|other), "lot" (optional: that lot; else first-expiry-first-out),
                       "recorded_by" (cashier id), "note", "shrinkage_id" (optional: an id the terminal made)}
                       -> 201 {"shrinkage_id", "sku", "qty", "reason", "lots": [{"lot", "qty", "use_by"}], "on_hand",
                       "escrow_reclaim_asked", ...}; reason "expired" with a lot and no qty writes the whole lot off;
                       409 more than is on hand (of the lot); 404 unknown product or lot

A cashier id must be one of the box's cashiers when it has any configured. Decisions: `edge/core/receiving.py`,
`edge/core/stock.py`; the actor's ops in `edge/store_actor.py` (`receive_note`, `shrink`).
"""
from __future__ import annotations

from starlette.routing import Route

from edge import receiving_db
from edge.core.receiving import Note, NoteLine
from edge.core.stock import SHRINKAGE_REASONS as REASONS
from edge.staff import known_cashier
from edge.store_actor import Refused
from protocol.digits import is_whole_number
from protocol.ids import is_id
from protocol.messages import NAME_RE, SKU_RE
from protocol.receiving_messages import NOTE_MAX_CHARS, RECEIVING_LINES_MAX
from protocol.schema import record, require

QTY_MAX = 10_000_000


@record
class NoteLineBody:
    sku: str
    qty: int
    expected_qty: int | None = None
    unit_cost_fen: int | None = None
    lot: str = ""
    use_by: str = ""

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"lines: invalid sku {self.sku[:40]!r}")
        require(0 <= self.qty <= QTY_MAX, f"lines {self.sku}: qty 0..{QTY_MAX} (pieces, or grams if sold by the kg)")
        require(self.expected_qty is None or 0 <= self.expected_qty <= QTY_MAX,
                f"lines {self.sku}: expected_qty 0..{QTY_MAX}")
        require(len(self.lot) <= 40 and len(self.use_by) <= 10, f"lines {self.sku}: lot or use_by too long")


@record
class ReceivingBody:
    supplier: str
    note_no: str
    received_by: str
    lines: tuple[NoteLineBody, ...]

    def __post_init__(self) -> None:
        require(bool(NAME_RE.fullmatch(self.received_by)), "received_by: a cashier id (1-32 letters, digits, '_' or '-')")
        require(0 < len(self.lines) <= RECEIVING_LINES_MAX, f"lines: 1-{RECEIVING_LINES_MAX} lines")

    def note(self) -> Note:
        return Note(self.supplier, self.note_no, self.received_by, tuple(
            NoteLine(x.sku, x.qty, x.qty if x.expected_qty is None else x.expected_qty, x.unit_cost_fen, x.lot,
                     x.use_by) for x in self.lines))


@record
class ShrinkageBody:
    sku: str
    reason: str
    recorded_by: str
    qty: int | None = None
    lot: str | None = None
    note: str = ""
    shrinkage_id: str | None = None

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"sku: invalid {self.sku[:40]!r}")
        require(self.reason in REASONS, f"reason: one of {', '.join(REASONS)}")
        require(bool(NAME_RE.fullmatch(self.recorded_by)), "recorded_by: a cashier id (1-32 letters, digits, '_' or '-')")
        require(self.qty is None or 0 < self.qty <= QTY_MAX, f"qty: 1..{QTY_MAX} (pieces, or grams if sold by the kg)")
        require(self.qty is not None or self.lot is not None, "qty: give a quantity, or a lot to write off whole")
        require(len(self.note) <= NOTE_MAX_CHARS, f"note: at most {NOTE_MAX_CHARS} characters")
        require(self.shrinkage_id is None or is_id(self.shrinkage_id), "shrinkage_id: not an id")


def routes(box, endpoint) -> list[Route]:
    """The receiving and shrinkage routes, wrapped by the lane API's `endpoint` (body limits, problems)."""
    async def receive(request, body: ReceivingBody):
        known_cashier(box, body.received_by, "received_by")
        return await box.actor.ask("receive_note", note=body.note())

    async def listed(request, body):
        raw = request.query_params.get("since", "0")
        if not is_whole_number(raw, 15):
            raise Refused(422, "since: epoch milliseconds")
        return {"receivings": await receiving_db.since(box.store_db.reader, int(raw))}

    async def written_off(request, body):
        raw = request.query_params.get("since", "0")
        if not is_whole_number(raw, 15):
            raise Refused(422, "since: epoch milliseconds")
        return {"shrinkage": await receiving_db.shrinkage_since(box.store_db.reader, int(raw))}

    async def shrink(request, body: ShrinkageBody):
        known_cashier(box, body.recorded_by, "recorded_by")
        return await box.actor.ask("shrink", sku=body.sku, qty=body.qty, reason=body.reason, lot=body.lot,
                                   recorded_by=body.recorded_by, note=body.note, shrinkage_id=body.shrinkage_id)

    return [Route("/receivings", endpoint(receive, ReceivingBody), methods=["POST"]),
            Route("/receivings", endpoint(listed), methods=["GET"]),
            Route("/shrinkage", endpoint(shrink, ShrinkageBody), methods=["POST"]),
            Route("/shrinkage", endpoint(written_off), methods=["GET"])]
