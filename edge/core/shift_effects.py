"""The durable effects of cashiers' shifts at the till (`edge.shift_ops`), executed by `edge.shifts_db` in the
store actor's transaction like every other effect (`edge.core.outcome.Effect` names them). Plain data, no I/O."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecordFloat:
    """The opening float of a shift: what the cashier put in the drawer (by denomination, or one amount: `counted`
    empty). Once per shift: a second float for the same shift is refused before it gets here."""
    shift_id: str
    float_fen: int
    counted: tuple[tuple[int, int], ...]  # (denomination fen, pieces)
    at_ms: int


@dataclass(frozen=True, slots=True)
class RecordVoid:
    """A cart voided at a lane (its lines never sold): counted in the report of `shift_id` (the lane's shift)."""
    lane: str
    lines: int
    at_ms: int
    shift_id: str = ""


@dataclass(frozen=True, slots=True)
class ShiftEntry:
    """A sale or a return made at a lane while `shift_id` was its shift, with it in its transaction: the cash-up
    counts the shift's own, whatever the wall clock said (a clock set back must not drop a sale from the drawer)."""
    kind: str  # "sale" or "return"
    ref: str  # its sale id or return id
    shift_id: str


@dataclass(frozen=True, slots=True)
class RecordShiftReport:
    """The shift's cash-up as closed (the view the till shows again), kept next to the report event sent."""
    shift_id: str
    lane: str
    report: str  # JSON: the cash-up view
    closed_ms: int


@dataclass(frozen=True, slots=True)
class RecordSaleCash:
    """What the customer handed over for a sale's cash tender and the change given back (the sale's payments keep the
    cash kept: tendered - change), so the cash-up shows the change as its own line. With the sale, in its
    transaction."""
    sale_id: str
    tendered_fen: int
    change_fen: int


ShiftEffect = RecordFloat | RecordVoid | RecordShiftReport | RecordSaleCash | ShiftEntry
