"""A return at the till as a pure decision: which lines come back, what is given back and how, where the goods go.

The cashier names a till sale of this store (its receipt's QR `SALE:<id>`, or the sale id) or an online order
picked up here (its id, or its pickup code / `PICKUP:<code>` QR), and the lines with quantities (weighed goods by
grams). `take()` answers an Outcome whose effects - the return's row, a journaled `return` movement per line (and
a `shrinkage` movement with the reason for goods that cannot be sold again), the `GoodsReturned` event - the shell
commits in ONE SQLite transaction; the return receipt (with the cash drawer's kick for a cash refund) prints only
after it is durable.

Guarantees:
- a line is never returned more than it was sold, counting the returns before (`protocol.returns`: 409 naming the
  line, what was sold and what was returned already); what is given back never exceeds what was paid for it;
- the refund goes to the original method: a cash sale's from the drawer, a stored-value sale's back to the member's
  stored value (credited by the cloud, once), an online order's through its original payment (by the cloud: the
  till pays nothing out); a sale paid partly with points gives back points (through the cloud) and money in the
  proportion it was paid (`sale_refunds`), never more than was paid in either;
- a sale paid by two tenders (a split) gives each its share (`protocol.tender_refunds`: in proportion, counting the
  sale's earlier refunds by each tender, never more back by a tender than it paid less its refunds before): the cash
  part from the drawer (the kick), the stored-value part to the member's stored value, the wallet part as a whole
  wallet sale's is; the return's row keeps what went back by each tender (`InsertReturn.refunds`);
- a return id is made at the origin (the terminal may send its own): the same id again answers the first result
  and changes nothing;
- the promotions the sale carried are undone as `protocol.return_promotions` and `edge.core.return_gifts` say: a
  coupon the sale redeemed here is let go at this store when the sale comes back whole (the cloud, the coupon's
  authority, puts it back in the member's wallet if it is still valid; the reply and the receipt say so), kept used
  by a partial return (whose refund is the lines' share of what was paid, the coupon's saving spread over them); a
  gift the kept basket no longer earns comes back with the return or has its price taken off the refund.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.core import return_gifts
from edge.core.outcome import Effect, InsertReturn, MoveStock, Outcome, PrintTicket, Publish, Refused
from edge.core.state import EventStamp, StockLevel
from edge.devices.escpos import ESC, Ticket
from protocol import returns as rules
from protocol.lots import back_in_unlotted
from protocol.messages import Payment, Quantity, StockMoved
from protocol.money import format_fen
from protocol.points import points_for_fen, points_value_fen
from protocol.return_messages import DISPOSITIONS, GoodsReturned, ReturnDeduction, ReturnLine
from protocol.return_promotions import PointsPaid, points_split
from protocol.tender_refunds import TenderRefused, by_method, split_money

DRAWER_KICK = ESC + b"p\x00\x19\xfa"  # ESC p m t1 t2: pulse pin 2 (the drawer) for 50 ms on, 500 ms off
# an order's statuses at the store once it handed the goods over (picked up at the till, delivered by its own staff:
# `edge.core.deliveries`); a rider's delivery is not known here, so such an order goes through after-sales
HANDED_OVER = ("picked_up", "delivered_by_staff")
ORDER_REFUND = "original_payment"  # how an online order's return is refunded: by the cloud, the way it was paid


@dataclass(frozen=True, slots=True)
class Source:
    """What is returned against, as the store recorded it: a till sale, or an online order picked up here."""
    kind: str  # "sale" | "order"
    id: str
    status: str  # a sale: "sold"; an order: its status at this store (only HANDED_OVER can be returned)
    lines: tuple[tuple[str, int, str, int], ...]  # (sku, qty, unit, amount fen)
    total_fen: int
    method: str  # a sale's payment method ("" for a free basket); an order: ORDER_REFUND
    member_id: str | None = None
    coupons: tuple[str, ...] = ()  # codes the sale redeemed at this store's tills
    payments: tuple[tuple[str, int], ...] = ()  # a sale's payments (method, fen): points may have paid part
    points_back: int = 0  # points the sale's earlier returns gave back
    gifts: tuple[return_gifts.GiftGiven, ...] = ()  # gifts the sale got (`return_gifts.gifts_of_sale`)
    gifts_settled: tuple[str, ...] = ()  # rules whose gift an earlier return of it already paid for
    refunded: tuple[tuple[str, int], ...] = ()  # (method, fen) the sale's earlier returns gave back, points too

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class Asked:
    sku: str
    qty: int  # pieces, or grams
    unit: str  # "piece" | "g": how the cashier gave it (qty or weight_g)
    disposition: str


def parse_code(code: str) -> tuple[str, str]:
    """A scanned or typed code -> ("sale", id) | ("order", id) | ("pickup", code)."""
    code = code.strip()
    for prefix, kind in (("SALE:", "sale"), ("PICKUP:", "pickup"), ("ORDER:", "order")):
        if code.upper().startswith(prefix):
            return kind, code[len(prefix):]
    return "", code


def take(source: Source | None, what: str, before: Mapping[str, rules.Back], asked: list[Asked],
         levels: Mapping[str, StockLevel], return_id: str, lane: str, stamp: EventStamp,
         keep_gifts: bool = False) -> Outcome:
    """`before`: the source's earlier returns per SKU; `levels`: the stock of the asked SKUs; `keep_gifts`: the
    customer keeps a gift the return takes the reason away from, paying its price out of the refund."""
    if source is None:
        raise Refused(404, f"no {what} at this store")
    if source.kind == "order" and source.status not in HANDED_OVER:
        raise Refused(409, f"order {source.id} is {source.status} here: only an order picked up at this store (or "
                           "delivered by its staff) is returned at its till")
    if not asked:
        raise Refused(422, "lines: name at least one line to return")
    sold = rules.shares(source.lines, source.total_fen)
    for a in asked:
        if a.disposition not in DISPOSITIONS:
            raise Refused(422, f"{a.sku}: disposition must be one of {', '.join(DISPOSITIONS)}, not {a.disposition!r}")
        item = sold.get(a.sku)
        if item is not None and item.unit != a.unit:
            how = "weight: give weight_g" if item.unit == "g" else "the piece: give qty"
            raise Refused(422, f"{a.sku} was sold by {how}")
    try:
        lines = rules.refund_lines(sold, before, [(a.sku, a.qty) for a in asked])
    except rules.ReturnRefused as exc:
        raise Refused(409, f"return against {source.kind} {source.id} refused: {exc}") from None
    deducted = return_gifts.deductions(source.gifts, sold, before, lines, source.gifts_settled, keep_gifts) \
        if source.kind == "sale" else []
    total = sum(fen for _, _, fen in lines) - sum(d.amount_fen for d in deducted)
    whole = source.kind == "sale" and rules.all_returned(sold, before, lines)
    effects = returned_stock([(sku, qty, a.disposition) for a, (sku, qty, _) in zip(asked, lines, strict=True)],
                             levels, return_id, stamp)
    method = source.method if source.kind == "sale" else ORDER_REFUND
    refunds, points_back = sale_refunds(source, before, total, return_id) if source.kind == "sale" else ((), 0)
    units: dict[str, Any] = {sku: item.unit for sku, item in sold.items()}
    event_lines = tuple(ReturnLine(sku=sku, quantity=Quantity(amount=qty, unit=units[sku]), amount_fen=fen,
                                   disposition=as_disposition(a.disposition))
                        for a, (sku, qty, fen) in zip(asked, lines, strict=True))
    event = stamp.make(GoodsReturned, return_id=return_id, sale_id=source.id if source.kind == "sale" else "",
                       order_id=source.id if source.kind == "order" else "", lane=lane, lines=event_lines,
                       total_fen=total, refunds=refunds, member_id=source.member_id,
                       deductions=tuple(ReturnDeduction(rule_id=d.rule_id, sku=d.sku, amount_fen=d.amount_fen)
                                        for d in deducted))
    money_back: list[tuple[str, int]] = [(p.method, p.amount_fen) for p in refunds if p.method != "points"]
    method = money_back[0][0] if money_back else method
    row = InsertReturn(return_id, source.key, lane, method, total,
                       tuple((sku, qty, fen, a.disposition) for a, (sku, qty, fen) in zip(asked, lines, strict=True)),
                       stamp.moment.wall_ms, tuple((p.method, p.amount_fen) for p in refunds))
    effects += [row, Publish(event)]
    effects += return_gifts.undo(source.key, return_id, deducted, source.coupons if whole else (), points_back,
                                 whole)
    reply = {**reply_of(row, stamp.store_id), **promotions_reply(source, deducted, whole)}
    if points_back:  # the money part is the drawer's (or the wallet's); the points go back through the cloud
        reply["refund"] = {**reply["refund"], "amount_fen": total - points_value_fen(points_back),
                           "points": points_back}
    if len(money_back) > 1:  # a split sale: each tender its part (cash from the drawer, stored value by the cloud)
        reply["refund"] = {**reply["refund"], "parts": [{"method": m, "amount_fen": fen} for m, fen in money_back]}
    ticket = return_receipt(stamp.store_id, return_id, source, lines, method, total, deducted,
                            source.coupons if whole else (), money_back)
    return Outcome(reply=reply, effects=tuple(effects), after=(PrintTicket(ticket),), last_seq=stamp.outcome_seq)


def returned_stock(lines: list[tuple[str, int, str]], levels: Mapping[str, StockLevel], reference: str,
                   stamp: EventStamp) -> list[Effect]:
    """Goods back in the store: a journaled `return` movement per (sku, qty, disposition), and for goods that
    cannot be sold again a `shrinkage` movement with the disposition as its reason (on hand as before)."""
    effects: list[Effect] = []
    now = dict(levels)
    for sku, qty, disposition in lines:
        level = now.get(sku) or StockLevel(sku, 0, 0)
        back_on_hand = level.on_hand + qty
        effects.append(MoveStock(stamp.make(StockMoved, sku=sku, delta=qty, reason="return", shrinkage_reason="",
                                            on_hand_after=back_on_hand, reference=reference)))
        if disposition != "resaleable":  # it came back, and cannot be sold: out again, as shrinkage with why
            effects.append(MoveStock(stamp.make(StockMoved, sku=sku, delta=-qty, reason="shrinkage",
                                                shrinkage_reason=disposition, on_hand_after=level.on_hand,
                                                reference=reference, lots=back_in_unlotted(qty))))
            back_on_hand = level.on_hand
        now[sku] = StockLevel(sku, back_on_hand, level.escrow)
    return effects


def as_disposition(name: str) -> Any:
    """A disposition checked against DISPOSITIONS (done in `take`), as the message's Literal."""
    return name


def sale_refunds(source: Source, before: Mapping[str, rules.Back], total: int, return_id: str
                 ) -> tuple[tuple[Payment, ...], int]:
    """(the refunds, points given back) of a till sale's return: the way the sale was paid. A sale paid partly with
    points gives back points and money in the proportion it was paid (`protocol.return_promotions.points_split`,
    over this sale's returns so far): the points are the cloud's to give back to the member, the rest is the
    sale's own method."""
    if not total:
        return (), 0
    reference = f"return:{return_id}"
    paid_points = sum(fen for m, fen in source.payments if m == "points")
    money, points = (total, 0) if not paid_points else points_split(
        PointsPaid(source.total_fen, points_for_fen(paid_points)), sum(b.fen for b in before.values()),
        source.points_back, total)
    # the money shared among the tenders that paid it (a split sale: each its part, `protocol.tender_refunds`)
    tenders = [(m, fen) for m, fen in source.payments if m != "points"] or [(source.method, source.total_fen)]
    try:
        parts: list[tuple[Any, int]] = list(split_money(tenders, by_method(source.refunded), money))
    except TenderRefused as exc:
        raise Refused(409, f"return against sale {source.id} refused: {exc}") from None
    out = [Payment(method="points", amount_fen=points_value_fen(points), reference=reference)] if points else []
    out += [Payment(method=m, amount_fen=fen, reference=reference) for m, fen in parts]
    return tuple(out), points


def promotions_reply(source: Source, deducted: list[return_gifts.Deduction], whole: bool) -> dict:
    """What the return did to the sale's promotions, for the cashier: the coupons (back to the member's wallet if
    still valid, the cloud deciding; or kept used) and the gifts' prices taken off the refund."""
    out: dict = {}
    if source.coupons:
        out["coupons"] = [{"code": code, "back": whole,
                           "note": "the sale came back whole: the coupon goes back to the member's wallet if it is "
                                   "still valid (the cloud decides)" if whole else
                                   "a partial return keeps the coupon used; the refund is the lines' share of what "
                                   "was paid"} for code in source.coupons]
    if deducted:
        out["deductions"] = [{"rule_id": d.rule_id, "sku": d.sku, "amount_fen": d.amount_fen,
                              "why": "gift kept: the basket no longer reaches its rule's spend"} for d in deducted]
    return out


def reply_of(row: InsertReturn, store_id: str) -> dict:
    kind, source_id = row.source.split(":", 1)
    return {"return_id": row.return_id, "store_id": store_id, f"{kind}_id": source_id,
            "lines": [{"sku": sku, "qty": qty, "amount_fen": fen, "disposition": d} for sku, qty, fen, d in row.lines],
            "refund": {"method": row.method, "amount_fen": row.total_fen,
                       "by": "cloud" if kind == "order" else "till"},
            "total_fen": row.total_fen}


def return_receipt(store_id: str, return_id: str, source: Source, lines: list[tuple[str, int, int]], method: str,
                   total_fen: int, deducted: list[return_gifts.Deduction] | None = None,
                   coupons_back: tuple[str, ...] = (), parts: list[tuple[str, int]] | None = None) -> bytes:
    """The return receipt; a cash refund (or a split's cash part) opens the drawer first (the kick is part of the
    same job, so the drawer opens only once the return is durable)."""
    t = Ticket()
    if (method == "cash" and total_fen) or any(m == "cash" and fen for m, fen in parts or ()):
        t.out += DRAWER_KICK
    t.text(f"FreshMesh {store_id}", bold=True, size=2, align="center").text("RETURN").text(f"Return {return_id}")
    t.text(f"{source.kind.capitalize()} {source.id}")
    units = {sku: unit for sku, _, unit, _ in source.lines}
    for sku, qty, fen in lines:
        t.columns(f"{sku} {qty}{' g' if units.get(sku) == 'g' else ''}"[:20], "-" + format_fen(fen))
    for d in deducted or ():
        t.columns(f"GIFT KEPT {d.sku}"[:20], format_fen(d.amount_fen))
    t.columns("REFUND", format_fen(total_fen))
    for m, fen in parts if parts and len(parts) > 1 else ():
        t.columns(f"  {m}"[:20], format_fen(fen))
    for code in coupons_back:
        t.text(f"Coupon ...{code[-4:]}: back to your wallet if still valid")
    t.text("Refunded in cash" if method == "cash" else "Back to stored value" if method == "stored_value"
           else "Refunded to the original payment")
    return t.qr(f"RETURN:{return_id}").cut()
