"""What a return gives back, computed identically by the store box (to pay out) and the cloud (to believe it).

Pure. A sale's (or an order part's) money is shared out over its SKUs so that the shares sum to exactly what was
paid (a basket discount is shared in proportion); a return of part of a SKU gives back the same proportion of its
share, rounded down on the cumulative quantity, and the return that brings a SKU to all of it returned gives back
exactly what is left of the share. So returns of a line, however split, never give back more than was paid for it,
and returning everything gives back the whole payment, to the fen.

A line can never be returned more than it was sold, counting the returns before (`ReturnRefused` says which line,
what was sold and what was returned already).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class ReturnRefused(ValueError):
    """A return that cannot be: the message says exactly what is wrong."""


@dataclass(frozen=True, slots=True)
class Sold:
    """One SKU of a sale (or of an order's part at a store): how much left the store and what was paid for it."""
    sku: str
    qty: int  # stock unit: pieces or grams
    unit: str
    paid_fen: int


@dataclass(frozen=True, slots=True)
class Back:
    """What was returned of one SKU so far."""
    qty: int = 0
    fen: int = 0


def shares(lines: Iterable[tuple[str, int, str, int]], total_fen: int) -> dict[str, Sold]:
    """`lines`: (sku, qty, unit, line amount fen) of a sale, two lines of one SKU (two weighings) summed; the
    total is shared out over the SKUs in proportion to their line amounts, the rounding left on the last SKU."""
    by_sku: dict[str, tuple[int, str, int]] = {}
    for sku, qty, unit, amount in lines:
        q, _, a = by_sku.get(sku, (0, unit, 0))
        by_sku[sku] = (q + qty, unit, a + amount)
    gross = sum(entry[2] for entry in by_sku.values())
    result, given = {}, 0
    skus = list(by_sku)
    for i, sku in enumerate(skus):
        qty, unit, amount = by_sku[sku]
        share = total_fen - given if i == len(skus) - 1 else (total_fen * amount // gross if gross else 0)
        given += share
        result[sku] = Sold(sku, qty, unit, share)
    return result


def returned_so_far(rows: Iterable[tuple[str, int, int]]) -> dict[str, Back]:
    """(sku, qty, fen) of earlier returns' lines -> per SKU."""
    back: dict[str, Back] = {}
    for sku, qty, fen in rows:
        b = back.get(sku, Back())
        back[sku] = Back(b.qty + qty, b.fen + fen)
    return back


def refund_lines(sold: Mapping[str, Sold], before: Mapping[str, Back], asked: Iterable[tuple[str, int]]
                 ) -> list[tuple[str, int, int]]:
    """(sku, qty, fen given back) for each asked (sku, qty), in the order asked; the same SKU asked twice counts
    both. ReturnRefused for a SKU not sold, a quantity that is not positive, or more than is left to return."""
    now = dict(before)
    out = []
    for sku, qty in asked:
        item = sold.get(sku)
        if item is None:
            raise ReturnRefused(f"{sku} was not sold on it")
        if qty <= 0:
            raise ReturnRefused(f"{sku}: the quantity returned must be positive, not {qty}")
        b = now.get(sku, Back())
        if b.qty + qty > item.qty:
            raise ReturnRefused(f"{sku}: {qty} {item.unit} asked, but {item.qty} {item.unit} were sold and "
                                f"{b.qty} {item.unit} returned already ({item.qty - b.qty} {item.unit} left)")
        total_back = item.paid_fen if b.qty + qty == item.qty else item.paid_fen * (b.qty + qty) // item.qty
        fen = max(total_back - b.fen, 0)
        now[sku] = Back(b.qty + qty, b.fen + fen)
        out.append((sku, qty, fen))
    return out


def all_returned(sold: Mapping[str, Sold], before: Mapping[str, Back], lines: Iterable[tuple[str, int, int]]) -> bool:
    """Whether, with these lines, every SKU sold is returned in full."""
    back = {sku: b.qty for sku, b in before.items()}
    for sku, qty, _ in lines:
        back[sku] = back.get(sku, 0) + qty
    return all(back.get(sku, 0) >= item.qty for sku, item in sold.items())
