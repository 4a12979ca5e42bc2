"""The evaluator's markdown step (protocol/pricing/evaluator.py): a line's days to its use-by in the book's local
day, and the deepest markdown (end-of-day clearance by time of day, near-expiry by days to use-by) that matches it,
which sets the line's starting amount. Pure.
"""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from protocol.money import portion_fen, weighed_amount_fen
from protocol.pricing.catalogue import Product
from protocol.pricing.rules import Markdown

if TYPE_CHECKING:
    from protocol.pricing.evaluator import BasketLine


def use_by_day(text: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def days_to_use_by(use_by: str, now_ms: int, utc_offset_minutes: int) -> int | None:
    """Whole days from the book's local day at `now_ms` to `use_by` (0: the use-by day; negative: past it)."""
    day = use_by_day(use_by) if use_by else None
    if day is None:
        return None
    today = datetime.date(1970, 1, 1) + datetime.timedelta(minutes=now_ms // 60_000 + utc_offset_minutes)
    return (day - today).days


def marked_down(product: Product, line: BasketLine, list_fen: int, markdowns: list[Markdown],
                 days_left: int | None) -> tuple[Markdown | None, int]:
    """The deepest markdown that matches this line (ties: book order) and the line's amount under it."""
    best: tuple[Markdown | None, int] = (None, list_fen)
    for m in markdowns:
        if not m.matches_use_by(days_left):
            continue
        if m.percent_off_bp:
            amount = list_fen - portion_fen(list_fen, m.percent_off_bp)
        elif line.amount_fen:
            continue  # a label's amount without its measure: a per-unit price cannot be applied to it
        elif product.weighed:
            amount = weighed_amount_fen(line.weight_g, m.price_fen)
        else:
            amount = line.qty * m.price_fen
        if amount < best[1]:
            best = (m, amount)
    return best
