"""What each store handed over of an online order, and what is left of its payment after picking: the one view a
return at a till and an after-sales request are both judged against (`protocol.returns` does the rest).

Pure. Why not the order as ordered: picking changes what left the store and what was paid for it - a short line
is refunded (or moved to another store's part), a lighter weight is refunded, a cheaper substitute is refunded the
difference and is itself the goods handed over. Judging returns against the order as ordered gave back money twice
(3 of 5 picked, 2 refunded short, then 5 "returned") or refused a whole return once a weight was refunded (the parts
would exceed the charge).

Per store part and SKU (`Sold`): qty = what was handed over (picked pieces, the picked weight in grams, or the
substitute's own quantity under the substitute's SKU); paid = the part's share of the order's total for that line
(`protocol.returns.shares`, a SKU split over stores in proportion), for the units handed over, less the picking
refunds of that line (short, substitute, the store's weight refund shared over its re-weighed lines) plus a weight
extra charged. So the parts' `paid` never sum past the charge less what picking gave back. A part never picked
(picked up without a pick record) counts as ordered, as before.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from protocol import returns as rules
from protocol.picking import share_fen
from protocol.returns import Back, ReturnRefused, Sold


@dataclass(frozen=True, slots=True)
class Picked:
    """One picked line of a store's part (as the store's `OrderPicked` said, kept on the order's timeline)."""
    sku: str
    ordered: int
    picked: int
    short: int = 0
    substitute_sku: str = ""
    substitute_qty: int = 0


def part_lines(order_lines: Iterable[tuple[str, int, str, int]], total_fen: int,
               allocation: Mapping[str, Iterable[tuple[str, int]]]) -> dict[str, dict[str, Sold]]:
    """store -> sku -> what the part ordered and its share of the order's total (a SKU split across stores in
    proportion; all of it when the part has all the line)."""
    sold = rules.shares(order_lines, total_fen)
    parts: dict[str, dict[str, Sold]] = {}
    for store, lines in allocation.items():
        rows: dict[str, Sold] = {}
        for sku, qty in lines:
            item = sold.get(sku)
            if item is not None:
                fen = item.paid_fen if qty >= item.qty else item.paid_fen * qty // item.qty
                rows[sku] = Sold(sku, qty, item.unit, fen)
        parts[store] = rows
    return parts


def handed_over(ordered: Mapping[str, dict[str, Sold]], picked: Mapping[str, Iterable[Picked]],
                refunds: Mapping[tuple[str, str, str], int], charges: Mapping[str, int],
                units: Mapping[str, str]) -> dict[str, dict[str, Sold]]:
    """store -> sku -> what was handed over and what is left paid for it. `refunds`: (kind, store, sku) -> fen given
    back at picking, kind `short` or `sub` per line and `weight` per store (sku ""); `charges`: store -> fen charged
    extra for weight; `units`: sku -> stock unit (for substitutes)."""
    out: dict[str, dict[str, Sold]] = {}
    for store, lines in ordered.items():
        picks = {p.sku: p for p in picked.get(store, ())}
        if not picks:  # never picked: handed over as ordered
            out[store] = dict(lines)
            continue
        weight = _weight_shares(lines, picks, refunds.get(("weight", store, ""), 0) - charges.get(store, 0))
        rows: dict[str, Sold] = {}
        for sku, item in lines.items():
            p = picks.get(sku)
            if p is None:
                rows[sku] = item
                continue
            left = max(item.paid_fen - refunds.get(("short", store, sku), 0) - refunds.get(("sub", store, sku), 0)
                       - weight.get(sku, 0), 0)
            if p.picked and item.unit == "g":  # a weight within the tolerance: all of the line's money, re-priced
                _add(rows, Sold(sku, p.picked, item.unit, left))
                continue
            mine = min(share_fen(item.paid_fen, min(p.picked, p.ordered), p.ordered), left)
            if p.picked:
                _add(rows, Sold(sku, min(p.picked, p.ordered), item.unit, mine))
            if p.substitute_sku:
                replaced = p.ordered - min(p.picked, p.ordered) - p.short
                sub = share_fen(item.paid_fen, replaced, p.ordered) - refunds.get(("sub", store, sku), 0)
                _add(rows, Sold(p.substitute_sku, p.substitute_qty, units.get(p.substitute_sku, "piece"),
                                max(min(sub, left - mine), 0)))
        out[store] = rows
    return out


def _add(rows: dict[str, Sold], s: Sold) -> None:
    was = rows.get(s.sku)
    rows[s.sku] = s if was is None else Sold(s.sku, was.qty + s.qty, s.unit, was.paid_fen + s.paid_fen)


def _weight_shares(lines: Mapping[str, Sold], picks: Mapping[str, Picked], net_fen: int) -> dict[str, int]:
    """The store's weight refund (less any extra charged; negative: charged more) shared over its re-weighed lines
    in proportion to each line's share of the weight difference (the last takes the rounding)."""
    changed = [(sku, share_fen(item.paid_fen, abs(picks[sku].picked - picks[sku].ordered), picks[sku].ordered))
               for sku, item in lines.items() if item.unit == "g" and sku in picks and picks[sku].picked
               and picks[sku].picked != picks[sku].ordered]
    if not changed or not net_fen:
        return {}
    total = sum(w for _, w in changed) or len(changed)
    out, given = {}, 0
    for i, (sku, w) in enumerate(changed):
        fen = net_fen - given if i == len(changed) - 1 else net_fen * (w or 1) // total
        out[sku], given = fen, given + fen
    return out


def given_back(rows: Iterable[tuple[str, str, int, int]]) -> dict[str, dict[str, Back]]:
    """(store, sku, qty, fen) of earlier returns and approved after-sales -> store -> sku -> returned so far."""
    by_store: dict[str, list[tuple[str, int, int]]] = {}
    for store, sku, qty, fen in rows:
        by_store.setdefault(store, []).append((sku, qty, fen))
    return {store: rules.returned_so_far(r) for store, r in by_store.items()}


def allocate(parts: Mapping[str, Mapping[str, Sold]], before: Mapping[str, Mapping[str, Back]],
             asked: Iterable[tuple[str, int]]) -> list[tuple[str, str, int, int]]:
    """(store, sku, qty, fen) for an order-wide request of (sku, qty): taken from the parts that handed the SKU over,
    in store order, each part priced by `protocol.returns.refund_lines`. ReturnRefused names the SKU, what was
    handed over and what was returned already."""
    now = {store: dict(before.get(store, {})) for store in parts}
    out = []
    for sku, qty in asked:
        if qty <= 0:
            raise ReturnRefused(f"{sku}: the quantity returned must be positive, not {qty}")
        holders = [s for s in sorted(parts) if sku in parts[s]]
        if not holders:
            raise ReturnRefused(f"{sku} was not handed over on it")
        sold = sum(parts[s][sku].qty for s in holders)
        back = sum(now[s].get(sku, Back()).qty for s in holders)
        unit = parts[holders[0]][sku].unit
        if back + qty > sold:
            raise ReturnRefused(f"{sku}: {qty} {unit} asked, but {sold} {unit} were sold and {back} {unit} returned "
                                f"already ({sold - back} {unit} left)")
        rest = qty
        for s in holders:
            take = min(rest, parts[s][sku].qty - now[s].get(sku, Back()).qty)
            if take <= 0:
                continue
            ((_, _, fen),) = rules.refund_lines(parts[s], now[s], [(sku, take)])
            b = now[s].get(sku, Back())
            now[s][sku] = Back(b.qty + take, b.fen + fen)
            out.append((s, sku, take, fen))
            rest -= take
    return out


def all_back(parts: Mapping[str, Mapping[str, Sold]], before: Mapping[str, Mapping[str, Back]],
             lines: Iterable[tuple[str, str, int, int]]) -> bool:
    """Whether, with these (store, sku, qty, fen) lines, everything handed over is returned."""
    back = {(s, sku): b.qty for s, skus in before.items() for sku, b in skus.items()}
    for s, sku, qty, _ in lines:
        back[(s, sku)] = back.get((s, sku), 0) + qty
    return all(back.get((s, sku), 0) >= item.qty for s, skus in parts.items() for sku, item in skus.items())
