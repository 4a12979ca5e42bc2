"""Markdowns as a sale reports them: which rule gave how much away on which line of a till sale (pure records).

A sale's `markdowns` say, per marked-down line, the markdown rule that set its price, the SKU and lot, and the fen
it gave away (list amount - marked-down amount, before any basket rule). The cloud records them with the sale, so
that what clearance costs is reported as markdown (by rule, store and day) and not lost in the total. This module
imports no other message module (protocol.lots names lots): protocol.messages imports it for SaleCommitted.
"""
from __future__ import annotations

import re

from protocol.lots import check_lot
from protocol.schema import record, require

RULE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # as protocol.pricing.rules names rules
MARKDOWN_FEN_MAX = 100_000_000  # one line: a million yuan is not a markdown, it is a mistake


@record
class MarkdownGiven:
    rule_id: str
    line: int  # the index of the sale line it marked down
    sku: str
    saving_fen: int
    lot: str = ""

    def __post_init__(self) -> None:
        where = f"markdown of line {self.line}"
        require(bool(RULE_ID_RE.match(self.rule_id)), f"{where}: invalid rule id {self.rule_id[:70]!r}")
        check_lot(self.lot, f"{where}: lot")
        require(0 < self.saving_fen <= MARKDOWN_FEN_MAX, f"{where}: saving_fen must be 1..{MARKDOWN_FEN_MAX}")
        require(self.line >= 0, f"{where}: line must not be negative")


def check_markdowns(markdowns: tuple[MarkdownGiven, ...], line_skus: list[str]) -> None:
    """Each markdown names a line of the sale, with that line's SKU, at most once."""
    seen: set[int] = set()
    for m in markdowns:
        require(m.line < len(line_skus) and line_skus[m.line] == m.sku,
                f"sale.committed: markdown {m.rule_id} names line {m.line} ({m.sku}), not a line of this sale")
        require(m.line not in seen, f"sale.committed: line {m.line} is marked down twice")
        seen.add(m.line)
