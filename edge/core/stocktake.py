"""Stocktakes at the store, as pure decisions (issue 16 item 4): a count session over all or part of the store,
blind counts entered while selling goes on, a manager's approval that posts the variances as movements.

Guarantees:
- Blind: the count sheet and the answer to a count never show a book quantity; only the manager's review does.
- Selling goes on: each count is recorded with the book quantity of its (sku, lot) AT THAT MOMENT (the actor's one
  mailbox orders counts and sales), and the variance is counted - that book. A sale after the count changes the
  book and the shelf alike, so it is no variance: posting the variance leaves on hand = counted - sold since.
- A recount of a (sku, lot) replaces the earlier count (with the book of its own moment).
- A scope is the whole store, categories of the catalogue, shelf areas of the store (its own map sku -> area, as
  it was when the count opened: the sheet's lines are fixed then) or a list of SKUs.
- Only one open stocktake per SKU: opening one over a SKU another open stocktake holds is refused, naming both.
- Approving (a cashier of the box's config with the manager role, PIN checked by the shell) posts in ONE outcome:
  one `StockMoved` reason "stocktake" per (sku, lot) with a non-zero variance, on that lot explicitly; per SKU the
  escrow follows like shrinkage (a loss that eats the cloud's share asks it back) or receiving (a gain grants the
  cloud its share); a `StocktakePosted` note with every counted line; and the session closed with its answer, so
  approving again answers the same and posts nothing more.
- Lines in scope nobody counted are not adjusted (the answer lists them) unless the manager approves with
  `zero_uncounted`: then each is counted as 0 against its book at approval.
- A variance that would leave the SKU's on hand negative (more sold since the count than was counted) is not
  posted; the answer names it to be counted again in a new stocktake. Nothing else is held up by it.
- A lot never goes below zero: a loss on a named lot takes at most what that lot has on hand at approval (sales
  since the count took from it first-expiry-first-out, though those goods were elsewhere on the shelf); the rest
  of the variance falls on the unlotted stock "" in the same movement (`variance_lots`), so the SKU's on hand is
  still counted - sold since, and the note's line keeps its whole variance.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from edge.core import escrow
from edge.core.outcome import (
    ChangeEscrow,
    CloseStocktake,
    Effect,
    MoveStock,
    OpenStocktake,
    Outcome,
    Publish,
    RecordCount,
    Refused,
)
from edge.core.state import Books, EventStamp, StockLevel
from protocol.lots import UNLOTTED, LotDelta, LotLevel, fefo_order
from protocol.messages import EscrowGranted, EscrowReclaimRequested, StockMoved
from protocol.pricing.catalogue import Product
from protocol.stocktake_messages import COUNT_MAX, STOCKTAKE_LINES_MAX, StocktakeLine, StocktakePosted, scope_text

Scope = str | dict  # "all" | {"categories": [...]} | {"areas": [...]} (edge.core.shelf_areas) | {"skus": [...]}


@dataclass
class Line:
    """One (sku, lot) of the count sheet, and its count once there is one."""
    sku: str
    lot: str
    use_by: str
    counted: int | None = None
    book: int | None = None  # the book quantity when it was counted
    counted_by: str = ""
    counted_ms: int = 0


@dataclass
class Stocktake:
    stocktake_id: str
    scope: Scope
    opened_by: str
    opened_ms: int
    status: str  # open | posted | cancelled
    lines: dict[tuple[str, str], Line] = field(default_factory=dict)
    reply: dict | None = None  # what approving or cancelling answered


@dataclass(frozen=True, slots=True)
class Approver:
    """Who approves, as the shell found them: `pin_ok` (the PIN matched a configured cashier), their role."""
    cashier_id: str
    pin_ok: bool
    role: str


def scoped_products(scope: Scope, books: Books, areas: Mapping[str, str] | None = None) -> list[Product]:
    """The catalogue's products a scope names; an unknown SKU, or a category or area (`areas`: the store's map
    sku -> area) with no product in it, is refused (404)."""
    if books.catalogue is None:
        raise Refused(503, "no catalogue yet: the store has not received one from the cloud")
    products = sorted(books.catalogue.by_sku.values(), key=lambda p: p.sku)
    if scope == "all":
        return products
    assert isinstance(scope, dict)
    if "categories" in scope:
        wanted = list(dict.fromkeys(scope["categories"]))
        empty = [c for c in wanted if not any(p.category == c for p in products)]
        if empty:
            raise Refused(404, f"scope.categories: no product in {', '.join(map(repr, empty))}")
        return [p for p in products if p.category in wanted]
    if "areas" in scope:
        placed = areas or {}
        wanted = list(dict.fromkeys(scope["areas"]))
        empty = [a for a in wanted if a not in placed.values()]
        if empty:
            raise Refused(404, f"scope.areas: no product placed in {', '.join(map(repr, empty[:10]))} (PUT /areas)")
        return [p for p in products if placed.get(p.sku) in wanted]
    unknown = [s for s in scope["skus"] if s not in books.catalogue]
    if unknown:
        raise Refused(404, f"scope.skus: unknown product {', '.join(map(repr, unknown[:10]))}")
    return [p for p in products if p.sku in set(scope["skus"])]


def sheet_json(st: Stocktake, books: Books, areas: Mapping[str, str] | None = None) -> dict:
    """The count sheet: what to count, by SKU and lot, with no book quantity (a blind count); each SKU with the
    shelf area it stands in (`areas`), area by area, so the staff walk the shop once."""
    placed = areas or {}
    by_sku: dict[str, list[Line]] = {}
    for line in st.lines.values():
        by_sku.setdefault(line.sku, []).append(line)
    sheet = []
    for sku in sorted(by_sku, key=lambda s: (placed.get(s, ""), s)):
        product = books.product(sku)
        lots = fefo_order(LotLevel(x.lot, x.use_by, 0) for x in by_sku[sku])
        sheet.append({"sku": sku, "name": product.name if product else sku,
                      "category": product.category if product else "", "area": placed.get(sku, ""), "unit": _unit(product),
                      "lots": [{"lot": lv.lot, "use_by": lv.use_by} for lv in lots]})
    return {"stocktake_id": st.stocktake_id, "status": st.status, "scope": st.scope, "opened_by": st.opened_by,
            "opened_ms": st.opened_ms, "lines": len(st.lines), "sheet": sheet}


def _unit(product: Product | None) -> str:
    return "g" if product is not None and product.weighed else "piece"


def open_count(stocktake_id: str, scope: Scope, opened_by: str, books: Books, lots: dict[str, list[LotLevel]],
               busy: dict[str, str], existing: Stocktake | None, now_ms: int,
               areas: Mapping[str, str] | None = None) -> Outcome:
    """Open a count session. `lots`: each scoped SKU's lots now; `busy`: SKU -> the open stocktake holding it.
    The sheet has, per SKU, its named lots with stock and the unlotted line "" (stock found without a lot)."""
    if existing is not None:  # the same id again: its sheet, nothing new
        if existing.scope != scope or existing.opened_by != opened_by:
            raise Refused(409, f"stocktake {stocktake_id} exists with another scope or opener")
        return Outcome(reply=sheet_json(existing, books, areas))
    products = scoped_products(scope, books, areas)
    held = sorted({(busy[p.sku], p.sku) for p in products if p.sku in busy})
    if held:
        names = ", ".join(f"{sku} (stocktake {sid})" for sid, sku in held[:10])
        raise Refused(409, f"only one open stocktake per SKU: {len(held)} of these SKUs are being counted: {names}"
                           "; approve or cancel that stocktake first")
    lines: list[tuple[str, str, str]] = []
    for p in products:
        named = [lv for lv in lots.get(p.sku, ()) if lv.lot != UNLOTTED and lv.on_hand != 0]
        lines += [(p.sku, lv.lot, lv.use_by) for lv in fefo_order(named)] + [(p.sku, UNLOTTED, "")]
    if len(lines) > STOCKTAKE_LINES_MAX:
        raise Refused(422, f"scope: {len(lines)} lines to count, more than {STOCKTAKE_LINES_MAX}: count by category")
    st = Stocktake(stocktake_id, scope, opened_by, now_ms, "open",
                   {(s, lot): Line(s, lot, use_by) for s, lot, use_by in lines})
    return Outcome(reply=sheet_json(st, books, areas),
                   effects=(OpenStocktake(stocktake_id, json.dumps(scope), opened_by, now_ms, tuple(lines)),))


def _open(st: Stocktake | None, stocktake_id: str) -> Stocktake:
    if st is None:
        raise Refused(404, f"no stocktake {stocktake_id} at this store")
    if st.status != "open":
        raise Refused(409, f"stocktake {stocktake_id} is {st.status}: it takes no more counts or decisions")
    return st


def count(st: Stocktake | None, stocktake_id: str, sku: str, lot: str, counted: int, counted_by: str,
          lots: list[LotLevel], now_ms: int) -> Outcome:
    """Record a count with the book of that (sku, lot) now (`lots`: the SKU's lots as the books hold them now).
    A lot not on the sheet may be counted if the store knows it (received after the sheet was made)."""
    st = _open(st, stocktake_id)
    if not any(s == sku for s, _ in st.lines):
        raise Refused(404, f"sku {sku} is not in stocktake {stocktake_id}'s scope")
    level = next((lv for lv in lots if lv.lot == lot), None)
    line = st.lines.get((sku, lot))
    if line is None and level is None:
        raise Refused(404, f"lot {lot!r} of {sku} is not known at this store: count it as unlotted (lot \"\")")
    if line is None and len(st.lines) >= STOCKTAKE_LINES_MAX:
        raise Refused(409, f"stocktake {stocktake_id} has {STOCKTAKE_LINES_MAX} lines: count lot {lot} as unlotted")
    if not 0 <= counted <= COUNT_MAX:
        raise Refused(422, f"counted: 0..{COUNT_MAX} (pieces, or grams if sold by the kg)")
    use_by = line.use_by if line is not None else level.use_by if level is not None else ""
    book = level.on_hand if level is not None else 0
    recount = line is not None and line.counted is not None
    return Outcome(reply={"stocktake_id": stocktake_id, "sku": sku, "lot": lot, "counted": counted,
                          "counted_by": counted_by, "recount": recount},
                   effects=(RecordCount(stocktake_id, sku, lot, use_by, counted, book, counted_by, now_ms),))


def value_fen(qty: int, unit_fen: int, product: Product | None) -> int:
    """`qty` (pieces, or grams) valued at `unit_fen` (per piece, or per kg), rounded to the fen, sign kept."""
    per = 1000 if product is not None and product.weighed else 1
    sign = -1 if qty < 0 else 1
    return sign * ((abs(qty) * unit_fen + per // 2) // per)


def _cost(costs: dict[tuple[str, str], int], sku: str, lot: str, product: Product | None) -> int:
    """The lot's recorded unit cost, else the product's standard cost (0: none known)."""
    return costs.get((sku, lot)) or (product.cost_fen if product is not None else 0)


def review(st: Stocktake | None, stocktake_id: str, books: Books, costs: dict[tuple[str, str], int]) -> dict:
    """The manager's view: each counted line with its book at count and variance (units, value at cost and price),
    and the lines not counted yet."""
    if st is None:
        raise Refused(404, f"no stocktake {stocktake_id} at this store")
    counted, uncounted = [], []
    totals = {"variance_cost_fen": 0, "variance_price_fen": 0}
    for line in sorted(st.lines.values(), key=lambda x: (x.sku, x.lot)):
        if line.counted is None or line.book is None:
            uncounted.append({"sku": line.sku, "lot": line.lot, "use_by": line.use_by})
            continue
        product = books.product(line.sku)
        variance = line.counted - line.book
        cost = value_fen(variance, _cost(costs, line.sku, line.lot, product), product)
        price = value_fen(variance, product.price_fen if product else 0, product)
        totals["variance_cost_fen"] += cost
        totals["variance_price_fen"] += price
        counted.append({"sku": line.sku, "lot": line.lot, "use_by": line.use_by, "unit": _unit(product),
                        "counted": line.counted, "book_at_count": line.book, "variance": variance,
                        "variance_cost_fen": cost, "variance_price_fen": price, "counted_by": line.counted_by,
                        "counted_ms": line.counted_ms})
    return {"stocktake_id": st.stocktake_id, "status": st.status, "scope": st.scope, "opened_by": st.opened_by,
            "opened_ms": st.opened_ms, "counted": counted, "uncounted": uncounted, **totals,
            **({"result": st.reply} if st.reply is not None else {})}


def check_approver(approver: Approver, stocktake_id: str) -> None:
    if not approver.pin_ok:
        raise Refused(401, f"{approver.cashier_id} could not be verified: unknown cashier or wrong PIN")
    if approver.role != "manager":
        raise Refused(403, f"{approver.cashier_id} is a {approver.role}, not a manager: only a manager approves "
                           f"stocktake {stocktake_id}")


def approve(st: Stocktake | None, stocktake_id: str, approver: Approver, zero_uncounted: bool, books: Books,
            lots: dict[str, list[LotLevel]], levels: dict[str, StockLevel], ratios: dict[str, int],
            costs: dict[tuple[str, str], int], stamp: EventStamp) -> Outcome:
    """Post the variances (see the module's guarantees). `lots`/`levels`: the books now, for the scoped SKUs;
    `ratios`: HQ's online share per SKU (a gain grants the cloud its share, as receiving does)."""
    check_approver(approver, stocktake_id)
    if st is not None and st.status == "posted" and st.reply is not None:
        return Outcome(reply=st.reply)  # approved already: the same answer, nothing posted twice
    st = _open(st, stocktake_id)
    posting: list[tuple[Line, int, int]] = []  # (line, counted, book)
    uncounted = []
    for line in sorted(st.lines.values(), key=lambda x: (x.sku, x.lot)):
        if line.counted is not None and line.book is not None:
            posting.append((line, line.counted, line.book))
        elif zero_uncounted:
            now = next((lv.on_hand for lv in lots.get(line.sku, ()) if lv.lot == line.lot), 0)
            posting.append((line, 0, now))
        else:
            uncounted.append({"sku": line.sku, "lot": line.lot})
    effects: list[Effect] = []
    adjusted, not_posted, noted = [], [], []
    for sku in sorted({line.sku for line, _, _ in posting}):
        product = books.product(sku)
        level = levels.get(sku) or StockLevel(sku, 0, 0)
        on_hand = level.on_hand
        # gains first, so a loss on one lot and a gain on another of the same SKU do not dip below zero between them
        mine = sorted((x for x in posting if x[0].sku == sku), key=lambda x: (-(x[1] - x[2]), x[0].lot))
        for line, counted_qty, book in mine:
            variance = counted_qty - book
            if variance and on_hand + variance < 0:
                not_posted.append({"sku": sku, "lot": line.lot, "counted": counted_qty, "book_at_count": book,
                                   "variance": variance, "why": f"on hand would be {on_hand + variance}: more was "
                                   "sold since the count than was counted; count it again in a new stocktake"})
                continue
            noted.append(StocktakeLine(sku=sku, lot=line.lot, unit=_unit(product),  # type: ignore[arg-type]
                                       counted=counted_qty, book=book, variance=variance,
                                       unit_cost_fen=_cost(costs, sku, line.lot, product),
                                       price_fen=product.price_fen if product else 0, counted_by=line.counted_by))
            if not variance:
                continue
            on_hand += variance
            lot_now = next((lv.on_hand for lv in lots.get(sku, ()) if lv.lot == line.lot), 0)
            moved = stamp.make(StockMoved, sku=sku, delta=variance, reason="stocktake", shrinkage_reason="",
                               on_hand_after=on_hand, reference=stocktake_id,
                               lots=variance_lots(line.lot, line.use_by, variance, lot_now))
            effects.append(MoveStock(moved))
            adjusted.append({"sku": sku, "lot": line.lot, "counted": counted_qty, "book_at_count": book,
                             "variance": variance, "on_hand_after": on_hand, "event_id": moved.event_id})
        effects += _escrow_follows(sku, on_hand, level, ratios.get(sku, 0), stamp)
    posted = stamp.make(StocktakePosted, stocktake_id=stocktake_id, scope=scope_text(st.scope),
                        opened_by=st.opened_by, opened_ms=st.opened_ms, approved_by=approver.cashier_id,
                        zero_uncounted=zero_uncounted, uncounted=len(uncounted), lines=tuple(noted))
    reply = {"stocktake_id": stocktake_id, "status": "posted", "approved_by": approver.cashier_id,
             "zero_uncounted": zero_uncounted, "adjusted": adjusted,
             "unchanged": sum(1 for x in noted if not x.variance), "not_posted": not_posted,
             "uncounted": uncounted,
             "uncounted_note": (f"{len(uncounted)} lines in scope were not counted and were not adjusted (approve "
                                "with zero_uncounted: true to count them as 0)") if uncounted else ""}
    effects += [Publish(posted), CloseStocktake(stocktake_id, "posted", approver.cashier_id, stamp.moment.wall_ms,
                                                json.dumps(reply))]
    return Outcome(reply=reply, effects=tuple(effects), last_seq=stamp.outcome_seq)


def variance_lots(lot: str, use_by: str, variance: int, lot_now: int) -> tuple[LotDelta, ...]:
    """How a posted variance falls on lots: all on its lot, except a loss greater than what a named lot has on hand
    now (`lot_now`) - that lot goes to zero and the rest falls on the unlotted stock."""
    if lot == UNLOTTED or variance >= 0 or lot_now + variance >= 0:
        return (LotDelta(lot=lot, delta=variance, use_by=use_by),)
    take = max(lot_now, 0)
    rest = LotDelta(lot=UNLOTTED, delta=variance + take)
    return (LotDelta(lot=lot, delta=-take, use_by=use_by), rest) if take else (rest,)


def _escrow_follows(sku: str, on_hand: int, level: StockLevel, ratio_bp: int, stamp: EventStamp) -> list[Effect]:
    """After a SKU's adjustments: a net loss below the cloud's share asks the difference back (like shrinkage), a
    net gain grants the cloud its share of what is now on hand (like receiving)."""
    if on_hand < level.on_hand:
        ask = escrow.reclaim_needed(on_hand, level.escrow)
        return [Publish(stamp.make(EscrowReclaimRequested, sku=sku, qty=ask))] if ask else []
    if on_hand > level.on_hand:
        grant = escrow.grant_after_receiving(on_hand, level.escrow, ratio_bp)
        if grant:
            return [ChangeEscrow(sku, grant),
                    Publish(stamp.make(EscrowGranted, sku=sku, qty=grant, escrow_after=level.escrow + grant))]
    return []


def cancel(st: Stocktake | None, stocktake_id: str, by: str, now_ms: int) -> Outcome:
    """Nothing is posted; the SKUs are free for another stocktake. Cancelling again answers the same."""
    if st is not None and st.status == "cancelled":
        return Outcome(reply={"stocktake_id": stocktake_id, "status": "cancelled"})
    st = _open(st, stocktake_id)
    reply = {"stocktake_id": stocktake_id, "status": "cancelled", "cancelled_by": by}
    return Outcome(reply=reply, effects=(CloseStocktake(stocktake_id, "cancelled", by, now_ms, json.dumps(reply)),))


def scoped_skus(st: Stocktake) -> Iterable[str]:
    return sorted({sku for sku, _ in st.lines})
