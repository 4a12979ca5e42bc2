"""The HQ reports' pure parts (issue 21 build 5): which reports exist and how each may be asked for, the query
parsed and checked (every wrong parameter named), which days are read from the settled rollup and which are
refreshed first, the KPI arithmetic, and the CSV rendering. No I/O, no clock: `today` is passed in.

Guarantees:
- `parse_query` accepts exactly: `from`, `to` (chain days YYYY-MM-DD, inclusive, at most RANGE_DAYS_MAX apart),
  `store`, `category` (only on the reports that can split by category), `group_by` (one of the report's), `format`
  (json | csv; an `Accept: text/csv` asks for CSV too). Anything else is a `ReportInputError` naming it.
- The KPI arithmetic is integer fen and basis points, rounded half up, and never divides by zero (0 when there is
  nothing to divide by).
"""
from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

RANGE_DAYS_MAX = 366
# A chain day is settled (its rollup rows refreshed once and then only read) this many days after it ended: a store
# box that was offline up to this long still has its sales counted. Days after it are refreshed when read.
SETTLE_AFTER_DAYS = 3
CHAIN = "*"  # the store id of rollup rows that add up the whole chain
NON_MEMBER = "non_member"  # the level of baskets without a member
DEFAULT_LEVEL = "regular"  # a member never recorded at another level (cloud/services/member_levels.py)
NO_SEGMENT = "none"  # a member the segment run has not placed (or a non-member)


@dataclass(frozen=True)
class ReportKind:
    name: str
    groups: tuple[str, ...]  # the first is the default
    by_category: bool  # may be narrowed to one category
    columns: tuple[str, ...]  # the rows' fields, in CSV order


REPORTS: dict[str, ReportKind] = {k.name: k for k in (
    ReportKind("channel-split", ("day", "store", "store_day"), True,
               ("key", "till_tickets", "till_sales_fen", "online_tickets", "online_sales_fen", "sales_fen",
                "online_share_bp")),
    ReportKind("store-kpis", ("store", "day"), True,
               ("key", "sales_fen", "tickets", "avg_ticket_fen", "items", "items_per_ticket", "online_share_bp",
                "returned_fen", "shrinkage_at_price_fen", "shrinkage_rate_bp")),
    ReportKind("member-contribution", ("level_segment", "level", "segment"), False,
               ("level", "segment", "till_tickets", "till_sales_fen", "online_tickets", "online_sales_fen",
                "sales_fen", "tickets", "avg_ticket_fen", "sales_share_bp")),
    ReportKind("promotion-effect", ("rule", "rule_channel"), False,
               ("rule_id", "name", "channel", "uses", "discount_fen", "sales_with_fen", "avg_basket_with_fen",
                "baskets_without", "sales_without_fen", "avg_basket_without_fen")),
    ReportKind("shrinkage", ("reason", "category", "store", "day"), True,
               ("key", "lines", "pieces", "grams", "value_at_cost_fen", "value_at_price_fen", "unpriced_lines",
                "rate_bp")),
    ReportKind("flash-sales", ("sale",), False,
               ("sale_id", "sku", "starts_day", "quantity", "price_fen", "orders", "units_sold", "sales_fen",
                "units_unpaid", "members", "sell_through_bp")),
)}
FORMATS = ("json", "csv")
PARAMS = frozenset({"from", "to", "store", "category", "group_by", "format", "lang"})
TEXT_MAX = 64


class ReportInputError(ValueError):
    """A report was asked for wrongly; the message names the parameter and what is wrong with it."""


@dataclass(frozen=True)
class ReportQuery:
    report: ReportKind
    start: date
    end: date
    store: str | None
    category: str | None
    group_by: str
    fmt: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def parse_day(text: str, name: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ReportInputError(f"{name}: a day YYYY-MM-DD, got {text[:TEXT_MAX]!r}") from None


def parse_query(name: str, params: Mapping[str, str], accept: str = "") -> ReportQuery:
    """The report `name` as asked for by the query `params` (and the Accept header), or `ReportInputError`."""
    kind = REPORTS.get(name)
    if kind is None:
        raise ReportInputError(f"report: one of {', '.join(REPORTS)}, got {name[:TEXT_MAX]!r}")
    unknown = sorted(set(params) - PARAMS)
    if unknown:
        raise ReportInputError(f"{unknown[0][:TEXT_MAX]}: not a parameter of the reports "
                               f"(from, to, store, category, group_by, format)")
    if "from" not in params or "to" not in params:
        raise ReportInputError("from and to: both required, days YYYY-MM-DD")
    start, end = parse_day(params["from"], "from"), parse_day(params["to"], "to")
    if end < start:
        raise ReportInputError(f"to: {end} is before from {start}")
    if (end - start).days >= RANGE_DAYS_MAX:
        raise ReportInputError(f"from/to: at most {RANGE_DAYS_MAX} days at once, got {(end - start).days + 1}")
    store = _text(params, "store")
    category = _text(params, "category")
    if category is not None and not kind.by_category:
        raise ReportInputError(f"category: the {name} report is not split by category")
    group_by = params.get("group_by") or kind.groups[0]
    if group_by not in kind.groups:
        raise ReportInputError(f"group_by: one of {', '.join(kind.groups)} for {name}, got {group_by[:TEXT_MAX]!r}")
    fmt = params.get("format") or ("csv" if "text/csv" in accept else "json")
    if fmt not in FORMATS:
        raise ReportInputError(f"format: json or csv, got {fmt[:TEXT_MAX]!r}")
    return ReportQuery(kind, start, end, store, category, group_by, fmt)


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name) or None
    if value is not None and (len(value) > TEXT_MAX or not value.isprintable() or value == CHAIN):
        raise ReportInputError(f"{name}: not a {name} ({value[:TEXT_MAX]!r})")
    return value


def split_days(start: date, end: date, today: date,
               settle_after_days: int = SETTLE_AFTER_DAYS) -> tuple[tuple[date, date] | None, tuple[date, date] | None]:
    """([start, end] cut into) the settled days - ended at least `settle_after_days` before `today`, refreshed once
    and then read - and the recent ones, refreshed again when read. Either part may be None."""
    last_settled = today - timedelta(days=settle_after_days)
    settled = (start, min(end, last_settled)) if start <= last_settled else None
    recent = (max(start, last_settled + timedelta(days=1)), end) if end > last_settled else None
    return settled, recent


def each_day(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def ratio_bp(part: int, whole: int) -> int:
    """part / whole in basis points, rounded half up; 0 when whole is 0."""
    return (part * 10_000 * 2 + whole) // (2 * whole) if whole > 0 else 0


def per(total: int, count: int) -> int:
    """total / count rounded half up (an average in fen); 0 when count is 0."""
    return (total * 2 + count) // (2 * count) if count > 0 else 0


def per_2dp(total: int, count: int) -> float:
    """total / count with two decimals (items per ticket); 0.0 when count is 0."""
    return round(total / count, 2) if count > 0 else 0.0


def channel_row(key: str, till_tickets: int, till_fen: int, online_tickets: int, online_fen: int) -> dict[str, Any]:
    return {"key": key, "till_tickets": till_tickets, "till_sales_fen": till_fen, "online_tickets": online_tickets,
            "online_sales_fen": online_fen, "sales_fen": till_fen + online_fen,
            "online_share_bp": ratio_bp(online_fen, till_fen + online_fen)}


def kpi_row(key: str, sales_fen: int, tickets: int, items: int, online_fen: int, returned_fen: int,
            shrinkage_at_price_fen: int) -> dict[str, Any]:
    """A store's (or day's) KPIs: sales, tickets, average ticket, items per ticket, online share, returns, and the
    shrinkage rate (what was lost, at list price, per fen sold)."""
    return {"key": key, "sales_fen": sales_fen, "tickets": tickets, "avg_ticket_fen": per(sales_fen, tickets),
            "items": items, "items_per_ticket": per_2dp(items, tickets), "online_share_bp": ratio_bp(online_fen, sales_fen),
            "returned_fen": returned_fen, "shrinkage_at_price_fen": shrinkage_at_price_fen,
            "shrinkage_rate_bp": ratio_bp(shrinkage_at_price_fen, sales_fen)}


def member_rows(groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Member contribution: each group's tickets and sales by channel, its average ticket and its share of the
    sales of every group (non-members included), biggest first."""
    total = sum(g["till_sales_fen"] + g["online_sales_fen"] for g in groups)
    rows = []
    for g in groups:
        sales, tickets = g["till_sales_fen"] + g["online_sales_fen"], g["till_tickets"] + g["online_tickets"]
        rows.append({**g, "sales_fen": sales, "tickets": tickets, "avg_ticket_fen": per(sales, tickets),
                     "sales_share_bp": ratio_bp(sales, total)})
    return sorted(rows, key=lambda r: (-r["sales_fen"], r["level"], r["segment"]))


def promotion_rows(uses: Sequence[dict[str, Any]], baskets: Mapping[str, tuple[int, int]],
                   names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Promotion effect: per rule (and channel, or "all"), its uses and discount, the baskets with it against the
    rest of the same channel's baskets (`baskets`: channel -> (baskets, sales fen); "all" for both channels)."""
    rows = []
    for u in uses:
        total_n, total_fen = baskets.get(u["channel"], (0, 0))
        without_n, without_fen = max(total_n - u["uses"], 0), max(total_fen - u["sales_with_fen"], 0)
        rows.append({"rule_id": u["rule_id"], "name": names.get(u["rule_id"], u["rule_id"]), "channel": u["channel"],
                     "uses": u["uses"], "discount_fen": u["discount_fen"], "sales_with_fen": u["sales_with_fen"],
                     "avg_basket_with_fen": per(u["sales_with_fen"], u["uses"]), "baskets_without": without_n,
                     "sales_without_fen": without_fen, "avg_basket_without_fen": per(without_fen, without_n)})
    return sorted(rows, key=lambda r: (-r["discount_fen"], r["rule_id"], r["channel"]))


def as_csv(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], totals: Mapping[str, Any] | None = None) -> str:
    """The rows as CSV with a heading line (the JSON's field names) and, when given, a last `total` line. A text
    cell that a spreadsheet would take for a formula is quoted with a leading apostrophe."""
    out = _Lines()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in [*rows, *([totals] if totals else [])]:
        writer.writerow([sheet_safe(row.get(c, "")) for c in columns])
    return "".join(out.parts)


class _Lines:
    """What csv.writer writes into: kept as strings (no I/O here)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)


def sheet_safe(value: Any) -> Any:
    """A cell for a CSV or a spreadsheet that a person opens: text that a spreadsheet would run as a formula (it
    starts with = + - @, a tab or a carriage return) is kept as text by a leading apostrophe; numbers stay numbers."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
