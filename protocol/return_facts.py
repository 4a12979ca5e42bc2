"""What the cloud believes of a store's return (`GoodsReturned`): pure, like `protocol.store_facts`.

A store is believed only about returns of its own facts: a till sale it reported itself, or an online order that was
picked up at that store; only for lines and quantities that were sold and not returned already; only for at most
what `protocol.returns` gives back for those lines (the store computes the same; for an order the store's figure is
an estimate, and the cloud refunds its own, from what the order charged); a sale's refund only in the
sale's own methods, by each at most what the sale paid by it less what its returns gave back by it before
(`protocol.tender_refunds.over_paid`: a split sale's refund claimed all by one tender is refused), and to the sale's own
member. A return id is used once. Anything else is refused with a reason
naming the store, the return and what is not believed.

Guarantees of `judge_returns`: returns are judged in the order given (each store's sequence order), and one
believed earlier in the batch counts against the later ones of the same sale or order; the amounts the cloud gives
back for each believed return are answered with the verdicts (`Verdicts.amounts`), so an order's refund is the
cloud's own figure, never more than the store claimed.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from protocol import order_lifecycle as lifecycle
from protocol import returns as rules
from protocol.messages import Message
from protocol.return_messages import GoodsReturned
from protocol.tender_refunds import by_method, over_paid


@dataclass(frozen=True)
class SaleFacts:
    sale_id: str
    store_id: str
    lines: tuple[tuple[str, int, str, int], ...]  # (sku, qty, unit, amount fen)
    total_fen: int
    methods: tuple[str, ...]
    member_id: str | None
    paid: tuple[tuple[str, int], ...] = ()  # (method, fen) the sale's tenders: a refund by a method stays within it


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    status: str
    picked_up_at: frozenset[str]  # the stores that handed the order (a part of it) over: picked up, or delivered
    # store -> what its part handed over (after picking) and what is left paid for it: (sku, qty, unit, fen)
    parts: dict[str, tuple[tuple[str, int, str, int], ...]]


@dataclass
class ReturnsKnown:
    sales: dict[str, SaleFacts] = field(default_factory=dict)
    orders: dict[str, OrderFacts] = field(default_factory=dict)
    earlier: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)  # source key -> (sku, qty, fen)
    used_ids: dict[str, str] = field(default_factory=dict)  # return id -> the event id that used it
    refunded: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # sale id -> (method, fen) given back


@dataclass
class Verdicts:
    refused: dict[str, str] = field(default_factory=dict)  # event id -> why
    amounts: dict[str, int] = field(default_factory=dict)  # event id -> what the cloud gives back (believed ones)
    all_back: dict[str, bool] = field(default_factory=dict)  # event id -> its source is now returned in full
    lines: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)  # event id -> (sku, qty, fen back)


def source_key(e: GoodsReturned) -> str:
    """What earlier returns count against: a sale, or one store's part of an order (each store takes back only
    what it handed over; `ReturnsKnown.earlier` holds an order's returns, after-sales included, per store)."""
    return f"sale:{e.sale_id}" if e.sale_id else f"order:{e.order_id}@{e.store_id}"


def named(events: Iterable[Message]) -> tuple[set[str], set[str], set[str]]:
    """(sale ids, order ids, return ids) the batch's returns name."""
    rs = [e for e in events if isinstance(e, GoodsReturned)]
    return {e.sale_id for e in rs if e.sale_id}, {e.order_id for e in rs if e.order_id}, {e.return_id for e in rs}


def judge_returns(events: Iterable[Message], known: ReturnsKnown) -> Verdicts:
    verdicts = Verdicts()
    earlier = {k: list(v) for k, v in known.earlier.items()}
    used = dict(known.used_ids)
    refunded = {k: list(v) for k, v in known.refunded.items()}
    for e in events:
        if not isinstance(e, GoodsReturned):
            continue
        reason, given, all_back = _judge(e, known, earlier, used)
        sale = known.sales.get(e.sale_id) if e.sale_id and not reason else None
        if sale is not None and sale.paid:  # each method within what the sale paid by it, less its refunds before
            reason = over_paid(sale.paid, by_method(refunded.get(e.sale_id, [])),
                               [(p.method, p.amount_fen) for p in e.refunds])
        if reason:
            verdicts.refused[e.event_id] = f"store {e.store_id} {e.KIND} refused: return {e.return_id}: {reason}"
            continue
        # a till sale's refund is what the till paid out (checked to be at most the cloud's figure); an order's is
        # the cloud's own figure (the till paid nothing)
        back = given if e.order_id else [(line.sku, line.quantity.amount, line.amount_fen) for line in e.lines]
        verdicts.lines[e.event_id], verdicts.all_back[e.event_id] = back, all_back
        # what is given back: an order's lines at the cloud's figure; a sale's what the till paid out (its lines
        # less a kept gift's price, `GoodsReturned.deductions`: the lines' shares still count as returned)
        verdicts.amounts[e.event_id] = sum(fen for *_, fen in back) if e.order_id else e.total_fen
        used[e.return_id] = e.event_id
        earlier.setdefault(source_key(e), []).extend(back)
        if e.sale_id:
            refunded.setdefault(e.sale_id, []).extend((p.method, p.amount_fen) for p in e.refunds)
    return verdicts


def _judge(e: GoodsReturned, known: ReturnsKnown, earlier: dict[str, list[tuple[str, int, int]]], used: dict[str, str]
           ) -> tuple[str, list[tuple[str, int, int]], bool]:
    if used.get(e.return_id, e.event_id) != e.event_id:
        return "this return id was used already", [], False
    if e.sale_id:
        sale = known.sales.get(e.sale_id)
        if sale is None:
            return f"of sale {e.sale_id}, which the cloud has no record of", [], False
        if sale.store_id != e.store_id:
            return f"of sale {e.sale_id}, which is another store's", [], False
        if (e.member_id or None) != (sale.member_id or None):
            return f"to member {e.member_id!r}, but sale {e.sale_id} was {sale.member_id!r}'s", [], False
        if any(p.method not in sale.methods for p in e.refunds):
            return f"refunded by {', '.join(p.method for p in e.refunds)}; sale {e.sale_id} was paid by " \
                   f"{', '.join(sale.methods) or 'nothing'}", [], False
        lines, total = sale.lines, sale.total_fen
    else:
        order = known.orders.get(e.order_id)
        if order is None:
            return f"of order {e.order_id}, which does not exist", [], False
        if e.store_id not in order.picked_up_at:
            return f"of order {e.order_id}, which was not picked up at this store", [], False
        if order.status not in lifecycle.HANDED_OVER_STATUSES:
            return f"of order {e.order_id}, which is {order.status}", [], False
        lines = order.parts.get(e.store_id, ())
        total = sum(line[3] for line in lines)
    sold = rules.shares(lines, total)
    before = rules.returned_so_far(earlier.get(source_key(e), []))
    try:
        given = rules.refund_lines(sold, before, [(line.sku, line.quantity.amount) for line in e.lines])
    except rules.ReturnRefused as exc:
        return str(exc), [], False
    for line, (sku, _, fen) in zip(e.lines, given, strict=True):
        if e.sale_id and line.amount_fen > fen:  # an order's amounts are the store's estimate: the cloud pays its own
            return f"{sku}: {line.amount_fen} fen claimed back, at most {fen} fen was paid for it", [], False
    return "", given, rules.all_returned(sold, before, given)
