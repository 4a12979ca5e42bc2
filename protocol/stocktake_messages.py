"""Messages of stocktakes (issue 16 item 4), registered in `protocol.messages`' EDGE_EVENTS.

- `StocktakePosted` (edge -> cloud, on the event path): a store's count session, approved by a manager on the box and
  posted there. Its stock adjustments travel as ordinary `StockMoved` events (reason "stocktake", `reference` the
  stocktake id, each on one lot), committed in the same SQLite transaction as this note; the note is what the
  cloud keeps to show variances: per (sku, lot) what was counted, what the book said at the moment of counting,
  and the variance posted (counted - book). Uncounted lines in scope are adjusted only when the manager asked for
  it (`zero_uncounted`: they are then counted as 0, book being their level at approval); otherwise they are only
  numbered in `uncounted`.
"""
from __future__ import annotations

import re
from typing import ClassVar

from protocol.ids import is_id
from protocol.lots import check_lot
from protocol.messages import NAME_RE, SKU_RE, Message, StockUnit
from protocol.schema import record, require

STOCKTAKE_LINES_MAX = 1_000  # every SKU and lot of a small format store; the note of that many fits a frame
COUNT_MAX = 100_000_000  # one (sku, lot) counted: pieces, or grams (100 t): as store_facts.STOCK_QTY_MAX
UNIT_COST_MAX_FEN = 100_000_000
# how the scope travels (`scope_text`)
SCOPE_RE = re.compile(r"^(all|categories:.{1,400}|areas:.{1,400}|skus:.{1,400})$", re.S)


def scope_text(scope: dict[str, list[str]] | str) -> str:
    """A stocktake's scope in one short text: "all", "categories:<a>,<b>", "areas:<a>,<b>" (the store's shelf areas)
    or "skus:<a>,<b>" (a long list cut)."""
    if scope == "all":
        return "all"
    assert isinstance(scope, dict)
    kind = next((k for k in ("categories", "areas") if k in scope), "skus")
    text = ",".join(scope[kind])
    return f"{kind}:{text[:397] + '...' if len(text) > 400 else text}"


@record
class StocktakeLine:
    sku: str
    lot: str  # "" = the SKU's unlotted stock
    unit: StockUnit
    counted: int  # what the staff counted (pieces, or grams)
    book: int  # what the store's books held of this (sku, lot) the moment it was counted
    variance: int  # counted - book: what was posted as a stocktake movement (0: nothing)
    unit_cost_fen: int  # the lot's cost if known, else the product's standard cost (per kg, or per piece)
    price_fen: int  # the product's price (per kg, or per piece) when posted
    counted_by: str  # who counted it ("" for a line zeroed at approval)

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"stocktake line: invalid sku {self.sku[:48]!r}")
        check_lot(self.lot, f"stocktake line {self.sku}: lot")
        require(0 <= self.counted <= COUNT_MAX, f"stocktake line {self.sku}: counted outside 0..{COUNT_MAX}")
        require(abs(self.book) <= COUNT_MAX, f"stocktake line {self.sku}: book outside -{COUNT_MAX}..{COUNT_MAX}")
        require(self.variance == self.counted - self.book,
                f"stocktake line {self.sku}: variance {self.variance} is not counted - book")
        require(0 <= self.unit_cost_fen <= UNIT_COST_MAX_FEN and 0 <= self.price_fen <= UNIT_COST_MAX_FEN,
                f"stocktake line {self.sku}: unit cost and price 0..{UNIT_COST_MAX_FEN} fen")
        require(self.counted_by == "" or bool(NAME_RE.fullmatch(self.counted_by)),
                f"stocktake line {self.sku}: counted_by is 1-32 letters, digits, '_' or '-'")


@record
class StocktakePosted(Message):
    KIND: ClassVar[str] = "stocktake.posted"
    stocktake_id: str
    scope: str  # `scope_text`
    opened_by: str
    opened_ms: int
    approved_by: str  # the manager (a cashier id with the manager role on the box)
    zero_uncounted: bool
    uncounted: int  # lines in scope nobody counted (not adjusted unless zero_uncounted; then they are lines here)
    lines: tuple[StocktakeLine, ...]

    def check(self) -> None:
        require(is_id(self.stocktake_id), f"stocktake.posted: not an id: {self.stocktake_id[:80]!r}")
        require(bool(SCOPE_RE.match(self.scope)), "stocktake.posted: scope is all, categories:..., areas:... or skus:...")
        for who, name in ((self.opened_by, "opened_by"), (self.approved_by, "approved_by")):
            require(bool(NAME_RE.fullmatch(who)), f"stocktake.posted: {name} is 1-32 letters, digits, '_' or '-'")
        require(len(self.lines) <= STOCKTAKE_LINES_MAX, f"stocktake.posted: at most {STOCKTAKE_LINES_MAX} lines")
        require(0 <= self.uncounted <= 1_000_000, "stocktake.posted: uncounted out of range")
        keys = [(line.sku, line.lot) for line in self.lines]
        require(len(set(keys)) == len(keys), "stocktake.posted: a (sku, lot) appears twice")
        require(not self.zero_uncounted or self.uncounted == 0,
                "stocktake.posted: with zero_uncounted every line in scope is a line")
