"""Receiving a supplier's delivery note at the store, and writing stock off (shrinkage) by lot: pure decisions.

Guarantees (`receive_note`):
- A note is booked whole or not at all: every line is checked first (known SKU, quantities and cost in range, a
  well-formed lot, a use-by that is a calendar day and not already past - an expired delivery is refused) and a
  refusal names every bad line; nothing is booked then.
- Each line that brought goods is its own `StockMoved` (reason "receiving", `reference` the receiving id) into ONE
  named lot with its use-by, set explicitly: the supplier's lot, else one the store names (`R<note_no>-<n>`), with
  the use-by the note gives, else today + the product's shelf life. The lot's unit cost is recorded (`SetLotCost`;
  the note's, else the product's standard cost). The cloud's online share is granted after each line as
  `stock.receive` does (`escrow.grant_after_receiving`). One `GoodsReceived` names the whole note (expected and
  booked per line: over/under delivery) - all in one SQLite transaction, so exactly once to the cloud.
- Idempotent by the note (supplier + note number): the same note again answers the first result and books
  nothing; the same note with other lines is refused (409), naming the first receiving.

`shrink_lots` decides which lots a write-off takes: a named lot (its whole on-hand when no quantity is given),
else, whatever the reason, expired lots first, then first-expiry-first-out, unlotted last (`protocol.lots.fefo_for_loss`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, timedelta

from edge.core import escrow, stock
from edge.core.outcome import ChangeEscrow, Effect, InsertReceiving, MoveStock, Outcome, Publish, Refused, SetLotCost
from edge.core.state import Books, EventStamp, StockLevel
from protocol.errors import ProtocolError
from protocol.lots import UNLOTTED, LotDelta, LotLevel, check_lot, check_use_by, fefo_for_loss, is_expired, lot_for_arrival
from protocol.messages import EscrowGranted, StockMoved
from protocol.receiving_facts import COST_OVER_PRICE_MAX
from protocol.receiving_messages import (
    NOTE_NO_RE,
    RECEIVE_QTY_MAX,
    RECEIVING_LINES_MAX,
    SUPPLIER_MAX_CHARS,
    UNIT_COST_MAX_FEN,
    GoodsReceived,
    ReceivedLine,
)


@dataclass(frozen=True, slots=True)
class NoteLine:
    """One line as the receiving clerk entered it: `qty` what arrived (weighed goods: grams), `expected_qty` what
    the note says; cost, lot and use-by are optional (None / "")."""
    sku: str
    qty: int
    expected_qty: int
    unit_cost_fen: int | None = None
    lot: str = ""
    use_by: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    supplier: str
    note_no: str
    received_by: str
    lines: tuple[NoteLine, ...]

    def asked(self) -> str:
        """The note as asked, in one canonical text: the same note again must ask exactly this."""
        return json.dumps([self.supplier, self.note_no, self.received_by,
                           [[x.sku, x.qty, x.expected_qty, x.unit_cost_fen, x.lot, x.use_by] for x in self.lines]])


def store_lot_name(supplier: str, note_no: str, n: int) -> str:
    """The lot a store names for line `n` (1-based) of a note that gave none: unique per supplier, note and line
    (two suppliers' notes numbered alike must not share a lot, its use-by and its cost). The supplier is a short
    tag: up to 4 of its letters/digits and 4 hex of its hash; the whole name stays a valid lot (<= 40 characters),
    a long note number is replaced by its hash."""
    letters = "".join(ch for ch in supplier if ch.isascii() and ch.isalnum())[:4]
    tag = letters + hashlib.sha256(supplier.encode()).hexdigest()[:4]
    name = f"R{tag}-{note_no}-{n}"
    if len(name) > 40:
        name = f"R{tag}-{hashlib.sha256(note_no.encode()).hexdigest()[:16]}-{n}"
    return name


def use_by_after(day: str, shelf_life_days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=shelf_life_days)).isoformat() if shelf_life_days > 0 else ""


def _checked(note: Note, books: Books, day: str, lots: dict[str, list[LotLevel]]) -> list[ReceivedLine]:
    """The note's lines as they will be booked, or a refusal naming every line that is wrong. A line's lot that
    still has stock under another use-by is booked as a lot of its own (`protocol.lots.lot_for_arrival`)."""
    problems: list[str] = []
    unknown = 0
    if not note.supplier.strip() or len(note.supplier) > SUPPLIER_MAX_CHARS:
        problems.append(f"supplier: 1-{SUPPLIER_MAX_CHARS} characters")
    if not NOTE_NO_RE.match(note.note_no):
        problems.append("note_no: 1-32 letters, digits or '_./-'")
    if not 0 < len(note.lines) <= RECEIVING_LINES_MAX:
        problems.append(f"lines: 1-{RECEIVING_LINES_MAX}")
    out: list[ReceivedLine] = []
    seen: set[tuple[str, str]] = set()
    for n, line in enumerate(note.lines, 1):
        where = f"line {n} ({line.sku[:40]})"
        product = books.product(line.sku)
        if product is None:
            problems.append(f"{where}: unknown product")
            unknown += 1
            continue
        bad = []
        if not 0 <= line.qty <= RECEIVE_QTY_MAX or not 0 <= line.expected_qty <= RECEIVE_QTY_MAX:
            bad.append(f"qty and expected_qty: 0..{RECEIVE_QTY_MAX} ({'grams' if product.weighed else 'pieces'})")
        elif line.qty == 0 and line.expected_qty == 0:
            bad.append("nothing expected and nothing received")
        cost = product.cost_fen if line.unit_cost_fen is None else line.unit_cost_fen
        if not 0 <= cost <= min(UNIT_COST_MAX_FEN, COST_OVER_PRICE_MAX * product.price_fen):
            bad.append(f"unit_cost_fen: 0..{min(UNIT_COST_MAX_FEN, COST_OVER_PRICE_MAX * product.price_fen)} (per "
                       f"{'kg' if product.weighed else 'piece'}; at most {COST_OVER_PRICE_MAX} times the list price, "
                       "as the cloud believes)")
        lot = line.lot or store_lot_name(note.supplier, note.note_no, n)
        try:
            check_lot(lot, "lot")
            check_use_by(line.use_by, "use_by")
        except ProtocolError as exc:
            bad.append(str(exc))
        else:
            if line.use_by and is_expired(line.use_by, day):
                bad.append(f"use_by {line.use_by} is already past (today is {day}): an expired delivery is refused")
        if (line.sku, lot) in seen:
            bad.append(f"lot {lot} of {line.sku} is on two lines")
        seen.add((line.sku, lot))
        if bad:
            problems.append(f"{where}: {'; '.join(bad)}")
            continue
        use_by = line.use_by or use_by_after(day, product.shelf_life_days)
        lot = lot_for_arrival(lots.get(line.sku, ()), lot, use_by)
        out.append(ReceivedLine(sku=line.sku, lot=lot, use_by=use_by, qty=line.qty, expected_qty=line.expected_qty,
                                unit_cost_fen=cost))
    if problems:
        raise Refused(404 if unknown == len(problems) else 422, "; ".join(problems))
    return out


def receive_note(note: Note, done: InsertReceiving | None, books: Books, levels: dict[str, StockLevel],
                 ratios: dict[str, int], day: str, receiving_id: str, stamp: EventStamp,
                 lots: dict[str, list[LotLevel]] | None = None) -> Outcome:
    """Book a delivery note (see the module's guarantees). `done`: this note's earlier receiving, if any;
    `ratios`: the online share per SKU of the note (`edge.core.escrow.ratio_for`); `day`: the chain's day;
    `lots`: the note's SKUs' lots now (a lot still holding goods of another use-by is not merged into)."""
    if done is not None:
        if done.asked != note.asked():
            raise Refused(409, f"delivery note {note.note_no} of {note.supplier} was received already "
                               f"({done.receiving_id}) with other lines")
        return Outcome(reply=json.loads(done.reply))
    if books.catalogue is None:
        raise Refused(503, "no catalogue yet: the store has not received one from the cloud")
    lines = _checked(note, books, day, lots or {})
    now = dict(levels)
    effects: list[Effect] = []
    booked = []
    for line in lines:
        level = now.get(line.sku) or StockLevel(line.sku, 0, 0)
        if line.qty:
            on_hand = level.on_hand + line.qty
            effects.append(MoveStock(stamp.make(
                StockMoved, sku=line.sku, delta=line.qty, reason="receiving", shrinkage_reason="",
                on_hand_after=on_hand, reference=receiving_id,
                lots=(LotDelta(lot=line.lot, delta=line.qty, use_by=line.use_by),))))
            effects.append(SetLotCost(line.sku, line.lot, line.unit_cost_fen))
            grant = escrow.grant_after_receiving(on_hand, level.escrow, ratios.get(line.sku, 0))
            if grant:
                effects += [ChangeEscrow(line.sku, grant),
                            Publish(stamp.make(EscrowGranted, sku=line.sku, qty=grant,
                                               escrow_after=level.escrow + grant))]
            level = now[line.sku] = StockLevel(line.sku, on_hand, level.escrow + grant)
        booked.append({"sku": line.sku, "lot": line.lot, "use_by": line.use_by, "qty": line.qty,
                       "expected_qty": line.expected_qty, "variance": line.variance,
                       "unit_cost_fen": line.unit_cost_fen, "on_hand": level.on_hand, "escrow": level.escrow})
    event = stamp.make(GoodsReceived, receiving_id=receiving_id, supplier=note.supplier, note_no=note.note_no,
                       received_by=note.received_by, lines=tuple(lines))
    reply = {"receiving_id": receiving_id, "supplier": note.supplier, "note_no": note.note_no,
             "received_by": note.received_by, "at_ms": stamp.moment.wall_ms, "lines": booked,
             "over": sum(x.variance for x in lines if x.variance > 0),
             "under": -sum(x.variance for x in lines if x.variance < 0)}
    effects += [Publish(event), InsertReceiving(receiving_id, note.supplier, note.note_no, note.received_by,
                                                note.asked(), json.dumps(reply), stamp.moment.wall_ms)]
    return Outcome(reply=reply, effects=tuple(effects), last_seq=stamp.outcome_seq)


def shrink_lots(lots: list[LotLevel], qty: int | None, lot: str | None, reason: str, day: str) -> tuple[LotDelta, ...]:
    """Which lots a write-off of `qty` takes (negative deltas). A named `lot`: that lot only, and its whole on-hand
    when `qty` is None; without a lot, whatever the reason (spoiled, damaged, theft, expired): `fefo_for_loss` - the
    expired lots first (a write-off never leaves an expired lot full while unlotted stock goes negative), then
    first-expiry-first-out, unlotted stock last."""
    if lot is not None and lot != UNLOTTED:
        found = next((lv for lv in lots if lv.lot == lot), None)
        if found is None:
            raise Refused(404, f"no lot {lot} of this product here")
        take = found.on_hand if qty is None else qty
        if take <= 0:
            raise Refused(409, f"lot {lot} has nothing on hand to write off")
        if take > found.on_hand:
            raise Refused(409, f"lot {lot} has only {found.on_hand} on hand, not {take}")
        return (LotDelta(lot=lot, delta=-take, use_by=found.use_by),)
    if qty is None or qty <= 0:
        raise Refused(422, "qty: give a positive quantity (or a lot, to write its whole on-hand off)")
    return fefo_for_loss(lots, qty, day)


def write_off(sku: str, qty: int | None, reason: str, lot: str | None, recorded_by: str, note: str,
              shrinkage_id: str, books: Books, level: StockLevel, lots: list[LotLevel], day: str,
              stamp: EventStamp) -> Outcome:
    """Staff write stock off (`POST /shrinkage`): the lots it takes (`shrink_lots`), then `stock.shrink` - the
    movement (reference: the shrinkage id) with those lots, who and why, and the escrow reclaim when the loss eats
    into the cloud's share."""
    if books.catalogue is not None and sku not in books.catalogue:
        raise Refused(404, f"unknown product {sku!r}")
    taken = shrink_lots(lots, qty, lot, reason, day)
    return stock.shrink(sku, -sum(d.delta for d in taken), reason, level, stamp, lots=taken, recorded_by=recorded_by,
                        note=note, shrinkage_id=shrinkage_id, lot=lot or "")
