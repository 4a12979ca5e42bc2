"""A shift's cash-up, as a pure calculation: what the drawer and each other payment method should hold at the close
of a cashier's shift, against what was counted, and the difference. No I/O: the shell (`edge.shift_ops`) reads the
shift's sales, returns, cash top-ups and voids from the box's own tables and passes them in.

- Cash expected = the opening float + cash taken by sales - change given + cash top-ups - cash refunds. A sale's
  tenders are read from the sale as it was stored: its `tenders` if it has them (split payments: several tenders
  per sale, a cash tender possibly the amount handed over with `change_fen` given back), else its `payments`
  (the box's sales today: a cash payment is the sale's amount, the change already taken off), else its single
  `method` for the whole total. So the same function serves single-tender and split-tender sales.
- Every other method (stored value, wallet, points, ...): expected is what the shift took by it less what it
  refunded by it; counted is the total the cashier confirms (by default the expected: these are not in the drawer).
- Counted cash is the count by denomination (`DENOMINATIONS_FEN`); the difference is counted - expected (negative:
  the drawer is short). A count naming another denomination or a negative number of pieces is refused, naming it.
- A refund by "original_payment" (an online order's return: the cloud refunds it) moves no money at the till; a
  return of a sale paid partly with points gives points back in proportion (`refund_split`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edge.core.outcome import Refused
from protocol.money import format_fen
from protocol.shift_messages import DENOMINATIONS_FEN, PIECES_MAX

CASH = "cash"
NOT_AT_THE_TILL = frozenset({"original_payment", ""})  # refunds the cloud pays (online orders), free baskets


@dataclass(frozen=True, slots=True)
class MethodLine:
    method: str
    expected_fen: int
    counted_fen: int

    @property
    def difference_fen(self) -> int:
        return self.counted_fen - self.expected_fen


@dataclass(frozen=True, slots=True)
class CashUp:
    float_fen: int
    cash_sales_fen: int  # cash taken by sales (as handed over, before change)
    change_fen: int  # change given back
    topups_fen: int  # cash taken for members' stored value
    cash_refunds_fen: int  # cash paid back by returns
    counted: tuple[tuple[int, int], ...]  # (denomination fen, pieces), every denomination, largest first
    methods: tuple[MethodLine, ...]  # cash first
    sales: int
    returns: int
    voids: int
    change_known: bool = False  # some sale kept what was handed over and its change (else cash sales are net)

    @property
    def cash(self) -> MethodLine:
        return self.methods[0]

    @property
    def difference_fen(self) -> int:
        return self.cash.difference_fen


def tenders_of(sale: Mapping) -> list[tuple[str, int]]:
    """(method, fen) of one stored sale: its `tenders` ([{"method", "amount_fen"}] or [[method, fen, ...]]), else
    its `payments` ([[method, fen, reference]]), else its `method` for its `total_fen`."""
    for key in ("tenders", "payments"):
        rows = sale.get(key)
        if rows:
            return [(r["method"], int(r["amount_fen"])) if isinstance(r, Mapping) else (r[0], int(r[1])) for r in rows]
    if sale.get("method"):
        return [(sale["method"], int(sale.get("total_fen", 0)))]
    return []


def refund_split(method: str, total_fen: int, sale_payments: Iterable | None) -> list[tuple[str, int]]:
    """(method, fen) of one return as the till paid it back: a sale paid partly with points gives points back in the
    proportion they paid (`edge.core.returns.sale_refunds` splits over the sale's returns so far; this share is
    within a fen of it), the rest by the return's own method; any other sale: all by the return's method."""
    payments = [(p[0], int(p[1])) for p in sale_payments or ()]
    paid = sum(fen for _, fen in payments)
    points = sum(fen for m, fen in payments if m == "points")
    if not points or not paid or method == "points":
        return [(method, total_fen)]
    share = min(total_fen, (total_fen * points + paid // 2) // paid)
    return [(m, fen) for m, fen in (("points", share), (method, total_fen - share)) if fen]


def counted_fen(counted: Mapping[int, int]) -> int:
    return sum(d * n for d, n in counted.items())


def check_count(counted: Mapping[int, int]) -> tuple[tuple[int, int], ...]:
    """The count as (denomination, pieces) for every denomination, largest first; refused naming what is wrong."""
    unknown = sorted(set(counted) - set(DENOMINATIONS_FEN))
    if unknown:
        raise Refused(422, f"count: {format_fen(unknown[0])} yuan is not a denomination the till counts")
    for d, n in counted.items():
        if not 0 <= n <= PIECES_MAX:
            raise Refused(422, f"count of {format_fen(d)} yuan: 0..{PIECES_MAX} pieces, not {n}")
    return tuple((d, int(counted.get(d, 0))) for d in DENOMINATIONS_FEN)


def cash_up(float_fen: int, sales: Iterable[Mapping], refunds: Iterable, topups_fen: int,
            counted: Mapping[int, int], confirmed: Mapping[str, int] | None = None, voids: int = 0) -> CashUp:
    """`sales`: the shift's stored sales (see `tenders_of`; `change_fen` if the sale kept it); `refunds`: per return
    of the shift, (method, fen) or a list of them (`refund_split`); `topups_fen`: cash top-ups taken in the shift;
    `counted`: denomination fen -> pieces in the drawer; `confirmed`: method -> the total the cashier confirms for a
    non-cash method."""
    if float_fen < 0 or topups_fen < 0:
        raise Refused(422, "float and top-ups: not negative")
    count = check_count(counted)
    taken: dict[str, int] = {}
    change = n_sales = 0
    change_known = False
    for sale in sales:
        n_sales += 1
        for method, fen in tenders_of(sale):
            taken[method] = taken.get(method, 0) + fen
        change += int(sale.get("change_fen", 0) or 0)
        change_known = change_known or "change_fen" in sale
    back: dict[str, int] = {}
    n_returns = 0
    for refund in refunds:
        n_returns += 1
        for method, fen in [refund] if isinstance(refund[0], str) else refund:
            if method not in NOT_AT_THE_TILL:
                back[method] = back.get(method, 0) + fen
    cash_sales, cash_refunds = taken.pop(CASH, 0), back.pop(CASH, 0)
    expected_cash = float_fen + cash_sales - change + topups_fen - cash_refunds
    lines = [MethodLine(CASH, expected_cash, counted_fen(dict(count)))]
    confirmed = dict(confirmed or {})
    for method in sorted(set(taken) | set(back) | (set(confirmed) - {CASH})):
        expected = taken.get(method, 0) - back.get(method, 0)
        lines.append(MethodLine(method, expected, confirmed.get(method, expected)))
    return CashUp(float_fen, cash_sales, change, topups_fen, cash_refunds, count, tuple(lines), n_sales, n_returns,
                  voids, change_known)
