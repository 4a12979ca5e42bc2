"""Lots: fresh goods come in lots with a use-by date, and stock is kept per (SKU, lot) (DESIGN.md section 3).

Pure rules both sides compute identically:

- A movement's lots (`LotDelta`) split its delta across lots; they add up to the movement's delta. The lot ""
  is the store's unlotted stock: goods received without a lot, and whatever a sale takes beyond the lots on record
  (a till sale always goes through, so the unlotted lot may go negative until a stocktake puts it right).
- First-expiry-first-out (`fefo`): goods leave from the lot with the earliest use-by first; an expired lot is
  never sold or picked from (it waits to be written off); unlotted stock goes last.
- A use-by date is a calendar day of the chain ("YYYY-MM-DD"): goods may be sold ON their use-by day, not after
  it (`is_expired`). "Today" is the chain's business day (`chain_day`), in its time zone.
- A lot's name is 1-40 letters, digits or '_./-' (`check_lot`, the one definition; "" is the unlotted stock). A
  GS1 lot (AI 10) may use more of the GS1 character set (!"%&'()*+,:;<=>? too): `lot_name` gives such a lot its
  canonical name, each other character replaced by '_' and a short hash of the code's own spelling appended
  ("-" and 6 hex digits), so two lots that differ only there stay two lots; a lot already in the set is itself.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from protocol import policy
from protocol.errors import ProtocolError
from protocol.schema import record, require

LOT_RE = re.compile(r"^[A-Za-z0-9_./-]{1,40}$")
USE_BY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
UNLOTTED = ""
LOTS_PER_MOVEMENT_MAX = 64  # one movement spread over more lots than this is refused (a shelf holds a few)
LOT_MAX = 40
_NOT_LOT_CHAR = re.compile(r"[^A-Za-z0-9_./-]")
_HASH_HEX = 6


def check_lot(lot: str, path: str = "lot") -> None:
    if lot != UNLOTTED and not LOT_RE.match(lot):
        raise ProtocolError(f"{path}: a lot is 1-40 letters, digits or '_./-', not {lot[:48]!r}")


def is_lot(lot: str) -> bool:
    """A valid lot name, or "" (the unlotted stock)."""
    return lot == UNLOTTED or bool(LOT_RE.match(lot))


def lot_name(code_lot: str) -> str:
    """The canonical lot name of a lot as a code spells it (GS1 AI 10): itself when it is a valid name, else each
    character outside [A-Za-z0-9_./-] replaced by '_' (cut to fit) and "-" + 6 hex digits of its SHA-256 appended.
    "" stays "" (no lot)."""
    if is_lot(code_lot):
        return code_lot
    digest = hashlib.sha256(code_lot.encode("utf-8")).hexdigest()[:_HASH_HEX]
    base = _NOT_LOT_CHAR.sub("_", code_lot)[:LOT_MAX - _HASH_HEX - 1]
    return f"{base}-{digest}"


def check_use_by(use_by: str, path: str = "use_by") -> None:
    """"" (none known) or a real calendar day YYYY-MM-DD."""
    if use_by == "":
        return
    if not USE_BY_RE.match(use_by):
        raise ProtocolError(f"{path}: a date YYYY-MM-DD, not {use_by[:24]!r}")
    try:
        date.fromisoformat(use_by)
    except ValueError:
        raise ProtocolError(f"{path}: {use_by} is not a calendar day") from None


@record
class LotDelta:
    """How much of one movement's delta falls on one lot (and, when goods come in, that lot's use-by)."""
    lot: str
    delta: int
    use_by: str = ""

    def __post_init__(self) -> None:
        check_lot(self.lot, "lots.lot")
        check_use_by(self.use_by, "lots.use_by")
        require(self.delta != 0, f"lot {self.lot or '(unlotted)'}: delta must not be zero")


@dataclass(frozen=True, slots=True)
class LotLevel:
    """One lot of one SKU at a store: its use-by ("" unknown) and what is on hand of it."""
    lot: str
    use_by: str
    on_hand: int


def chain_day(wall_ms: int) -> str:
    """The chain's business day at `wall_ms`, as YYYY-MM-DD."""
    return policy.chain_day(wall_ms).isoformat()


def is_expired(use_by: str, day: str) -> bool:
    """Past its use-by on `day` (ISO dates compare as strings); a lot without a use-by never expires."""
    return bool(use_by) and use_by < day


def days_left(use_by: str, day: str) -> int | None:
    """Days from `day` to the use-by (0 on the use-by day, negative once expired); None without a use-by."""
    if not use_by:
        return None
    return (date.fromisoformat(use_by) - date.fromisoformat(day)).days


def check_lots(lots: Iterable[LotDelta], delta: int, path: str = "lots") -> None:
    """A movement's lots: each lot once, no more than LOTS_PER_MOVEMENT_MAX, adding up to the movement's delta."""
    lots = tuple(lots)
    if not lots:
        return
    require(len(lots) <= LOTS_PER_MOVEMENT_MAX, f"{path}: at most {LOTS_PER_MOVEMENT_MAX} lots in one movement")
    names = [lot.lot for lot in lots]
    require(len(set(names)) == len(names), f"{path}: a lot appears twice")
    total = sum(lot.delta for lot in lots)
    require(total == delta, f"{path}: add up to {total}, not the movement's delta {delta}")


def fefo_order(levels: Iterable[LotLevel]) -> list[LotLevel]:
    """Lots in the order goods leave them: earliest use-by first, lots without a use-by after, unlotted last."""
    return sorted(levels, key=lambda lv: (lv.lot == UNLOTTED, lv.use_by == "", lv.use_by, lv.lot))


def fefo(levels: Iterable[LotLevel], qty: int, day: str) -> tuple[LotDelta, ...]:
    """Take `qty` (> 0) out: from the non-expired lots with stock, first expiry first, then from unlotted stock
    (which may go negative). Answers negative deltas, one per lot touched."""
    if qty <= 0:
        raise ValueError("fefo takes a positive quantity")
    return _take_in_order([lv for lv in fefo_order(levels) if lv.lot != UNLOTTED and lv.on_hand > 0
                           and not is_expired(lv.use_by, day)], qty)


def _take_in_order(ordered: list[LotLevel], qty: int) -> tuple[LotDelta, ...]:
    """`qty` out of lots with stock, in the order given, each down to zero; the rest out of unlotted stock."""
    taken: list[LotDelta] = []
    left = qty
    for level in ordered:
        if left == 0:
            break
        n = min(left, level.on_hand)
        taken.append(LotDelta(lot=level.lot, delta=-n, use_by=level.use_by))
        left -= n
    if left:
        taken.append(LotDelta(lot=UNLOTTED, delta=-left))
    return tuple(taken)


def take(levels: Iterable[LotLevel], qty: int, day: str, lot: str = UNLOTTED) -> tuple[LotDelta, ...]:
    """Take `qty` (> 0) out for a sale whose code named `lot` ("" none): up to what is on hand of that lot (when
    the box knows it and it has not expired), the rest first-expiry-first-out (`fefo`). A lot the box does not know,
    or has none of, is not created nor driven below zero: the sale takes from the other lots / unlotted stock. Only
    the unlotted lot may go negative."""
    levels = list(levels)
    first: tuple[LotDelta, ...] = ()
    named = next((lv for lv in levels if lot and lv.lot == lot), None)
    if named is not None and named.on_hand > 0 and not is_expired(named.use_by, day):
        n = min(qty, named.on_hand)
        first, qty = (LotDelta(lot=lot, delta=-n, use_by=named.use_by),), qty - n
    if not qty:
        return first
    return first + fefo([lv for lv in levels if lv is not named], qty, day)


def after(levels: Iterable[LotLevel], taken: Iterable[LotDelta]) -> list[LotLevel]:
    """The lots once `taken` has moved (a lot not on record yet is added)."""
    out = {lv.lot: lv for lv in levels}
    for d in taken:
        lv = out.get(d.lot) or LotLevel(d.lot, d.use_by, 0)
        out[d.lot] = LotLevel(lv.lot, lv.use_by or d.use_by, lv.on_hand + d.delta)
    return list(out.values())


def lot_for_arrival(levels: Iterable[LotLevel], lot: str, use_by: str) -> str:
    """The lot goods arriving as `lot` with `use_by` go into (receiving, and any goods coming INTO a named lot): the
    lot itself, unless it still has stock under another use-by - then a lot of its own, `<lot>_<yyyymmdd>` (bounded
    to 40 characters, valid per `check_lot`), so goods of two use-bys never merge (the earlier date would hide the
    later goods' expiry, or the later date the earlier's). A lot that ran out takes the new use-by (see
    `edge.lots_db.move`); unlotted goods and goods without a use-by go where they were named."""
    if lot == UNLOTTED or not use_by:
        return lot
    held = next((lv for lv in levels if lv.lot == lot), None)
    if held is None or held.on_hand <= 0 or held.use_by in ("", use_by):
        return lot
    return _dated(lot, use_by)


def arrival_names(lot: str, use_by: str) -> frozenset[str]:
    """Every name `lot_for_arrival` may give goods of `lot` with `use_by` (for a check that goods came into the lot
    they were sent as, e.g. a transfer's receipt against its dispatch)."""
    return frozenset({lot, _dated(lot, use_by)} if lot != UNLOTTED and use_by else {lot})


def _dated(lot: str, use_by: str) -> str:
    suffix = "_" + use_by.replace("-", "")
    return lot[:40 - len(suffix)] + suffix


def fefo_for_loss(levels: Iterable[LotLevel], qty: int, day: str) -> tuple[LotDelta, ...]:
    """Take `qty` (> 0) out as a write-off (spoiled, damaged, theft, expired): from ALL lots with stock - expired
    ones first (they are what is lost first), then first expiry first - and only then from unlotted stock (which
    may go negative). Unlike `fefo` (selling), expired lots are not skipped. Answers negative deltas."""
    if qty <= 0:
        raise ValueError("fefo_for_loss takes a positive quantity")
    return _take_in_order(sorted((lv for lv in levels if lv.lot != UNLOTTED and lv.on_hand > 0),
                                 key=lambda lv: (not is_expired(lv.use_by, day), lv.use_by == "", lv.use_by, lv.lot)),
                          qty)


def back_in_unlotted(qty: int) -> tuple[LotDelta, ...]:
    """Goods that came back (unlotted) and go straight out again (written off): out of the unlotted stock they went
    into, not out of the oldest lot."""
    return (LotDelta(lot=UNLOTTED, delta=-qty),)


def sellable(levels: Iterable[LotLevel], day: str) -> int:
    """What may still be sold of these lots on `day`: everything on hand but expired lots."""
    return sum(lv.on_hand for lv in levels if lv.on_hand > 0 and not is_expired(lv.use_by, day))
