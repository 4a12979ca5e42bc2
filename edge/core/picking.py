"""Picking online orders in the store's back room, as pure decisions (the shell is `edge/picking_api.py` and the
StoreActor; the rules a picked line follows are shared with the cloud in `protocol/picking.py`).

    to_pick ─start─► picking ─(record each line)─► done ─► picked ─(till: pickup code)─► picked_up
    to_pick | picking ─(the cloud cancels)─► cancelled;  picked ─(the cloud cancels)─► cancelled, goods restocked

Guarantees:
- starting tells the cloud once (`PickingStarted` in the outbox with the status change); starting again answers the
  same and sends nothing;
- a line is recorded only if the cloud would believe it (`protocol.picking.check_line`): a weight outside the
  product's tolerance, a substitute the customer did not allow, more than ordered, an unknown line or product are
  refused with what was wrong, and nothing is recorded;
- `finish` commits in one transaction: the picked stock leaves on-hand (and, for what the cloud reserved, the escrow)
  as journaled `pick` movements, the order becomes `picked`, and one `OrderPicked` goes to the outbox - the cloud
  gets it exactly once through the usual path. Finishing again answers the same and moves nothing;
- stock is never taken below zero on hand: a count that says less than was picked is refused (count it first).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edge.core import escrow
from edge.core.outcome import Effect, MoveStock, Outcome, Publish, RecordPick, Refused, SetOrderStatus
from edge.core.state import Books, EventStamp, StockLevel
from protocol.errors import ProtocolError
from protocol.messages import EscrowReclaimRequested, OrderPicked, PickedLine, PickingStarted, StockMoved
from protocol.picking import check_line, consumed, weight_bounds


@dataclass(frozen=True, slots=True)
class LineToPick:
    sku: str
    qty: int  # in the SKU's stock unit
    unit: str  # piece | g


@dataclass(frozen=True, slots=True)
class PickOrder:
    """An online order as the picker sees it: its lines and what was recorded for them so far."""
    order_id: str
    status: str  # to_pick | picking | picked | picked_up | cancelled
    fulfilment: str
    allow_substitutions: bool
    slot_start_ms: int
    lines: tuple[LineToPick, ...]
    picks: dict[str, PickedLine]

    def line(self, sku: str) -> LineToPick:
        for line in self.lines:
            if line.sku == sku:
                return line
        raise Refused(404, f"order {self.order_id} has no line {sku!r}")


@dataclass(frozen=True, slots=True)
class PickRequest:
    """What the picker says for one line: `qty` pieces or `weight_g` grams picked (0: none), optionally a substitute
    for the units not picked, and how many of those are short (default: all not picked, unless substituted)."""
    qty: int | None = None
    weight_g: int | None = None
    substitute_sku: str | None = None
    substitute_qty: int = 0
    short: int | None = None


def order_json(order: PickOrder, books: Books) -> dict:
    def line_json(line: LineToPick) -> dict:
        product = books.product(line.sku)
        body: dict = {"sku": line.sku, "name": product.name if product else line.sku, "qty": line.qty,
                      "unit": line.unit}
        if product is not None and product.weighed:
            lo, hi = weight_bounds(line.qty, product.catch_weight_tolerance_bp)
            body["weight_range_g"] = [lo, hi]
        pick = order.picks.get(line.sku)
        if pick is not None:
            body["picked"] = {"picked": pick.picked, "short": pick.short, "substitute_sku": pick.substitute_sku,
                              "substitute_qty": pick.substitute_qty}
        return body
    return {"order_id": order.order_id, "status": order.status, "fulfilment": order.fulfilment,
            "allow_substitutions": order.allow_substitutions, "lines": [line_json(line) for line in order.lines]}


def _found(order: PickOrder | None, order_id: str) -> PickOrder:
    if order is None:
        raise Refused(404, f"no order {order_id} at this store")
    return order


def start(order: PickOrder | None, order_id: str, books: Books, stamp: EventStamp) -> Outcome:
    order = _found(order, order_id)
    if order.status == "picking":
        return Outcome(reply=order_json(order, books))
    if order.status != "to_pick":
        raise Refused(409, f"order {order_id} is {order.status}: only an order to pick can be started")
    event = stamp.make(PickingStarted, order_id=order_id)
    started = dataclasses.replace(order, status="picking")
    return Outcome(reply=order_json(started, books), last_seq=stamp.outcome_seq,
                   effects=(SetOrderStatus(order_id, "picking", only_from="to_pick"), Publish(event)))


def record(order: PickOrder | None, order_id: str, sku: str, req: PickRequest, books: Books) -> Outcome:
    """Record one line; a line recorded before is replaced (the picker re-weighed)."""
    order = _found(order, order_id)
    if order.status != "picking":
        raise Refused(409, f"order {order_id} is {order.status}: start picking it first" if order.status == "to_pick"
                      else f"order {order_id} is {order.status}: its lines can no longer change")
    line = order.line(sku)
    product = books.product(sku)
    weighed = product is not None and product.weighed
    picked = _picked_amount(req, weighed, sku)
    if req.substitute_sku:
        if books.product(req.substitute_sku) is None:
            raise Refused(404, f"substitute_sku: unknown product {req.substitute_sku!r}")
        if req.substitute_qty <= 0:
            raise Refused(422, "substitute_qty: must be positive with a substitute_sku")
        short = req.short or 0
    else:
        if req.substitute_qty:
            raise Refused(422, "substitute_qty: given without a substitute_sku")
        short = req.short if req.short is not None else (max(line.qty - picked, 0) if not weighed else
                                                         (line.qty if picked == 0 else 0))
    try:
        pick = PickedLine(sku=sku, ordered=line.qty, picked=picked, short=short,
                          substitute_sku=req.substitute_sku or "", substitute_qty=req.substitute_qty)
    except ProtocolError as exc:
        raise Refused(422, str(exc)) from None
    why = check_line(pick, weighed, product.catch_weight_tolerance_bp if product else 0, order.allow_substitutions)
    if why:
        raise Refused(403 if "did not allow substitutions" in why else 422, why)
    picks = {**order.picks, sku: pick}
    now = dataclasses.replace(order, picks=picks)
    return Outcome(reply=order_json(now, books), effects=(RecordPick(order_id, pick),))


def _picked_amount(req: PickRequest, weighed: bool, sku: str) -> int:
    if weighed:
        if req.qty is not None:
            raise Refused(422, f"line {sku} is sold by the kg: give weight_g (grams), not qty")
        amount = req.weight_g if req.weight_g is not None or not req.substitute_sku else 0  # substituted whole
        if amount is None:
            raise Refused(422, f"line {sku}: weight_g is required (or weigh it on the scale)")
    else:
        if req.weight_g is not None:
            raise Refused(422, f"line {sku} is counted in pieces: give qty, not weight_g")
        amount = req.qty if req.qty is not None else 0
    if amount < 0:
        raise Refused(422, f"line {sku}: the picked amount must not be negative")
    return amount


def finish(order: PickOrder | None, order_id: str, levels: dict[str, StockLevel], books: Books,
           stamp: EventStamp) -> Outcome:
    """Picking done: stock out, the order `picked`, `OrderPicked` to the cloud - in one transaction."""
    order = _found(order, order_id)
    if order.status == "picked":
        return Outcome(reply=order_json(order, books))
    if order.status != "picking":
        raise Refused(409, f"order {order_id} is {order.status}: only an order being picked can be done")
    missing = [line.sku for line in order.lines if line.sku not in order.picks]
    if missing:
        raise Refused(409, f"order {order_id}: lines {missing} are not picked yet (record each line, even as short)")
    now = dict(levels)
    effects: list[Effect] = []

    def take(sku: str, qty: int, escrow_qty: int) -> None:
        level = now.get(sku) or StockLevel(sku, 0, 0)
        if level.on_hand < qty:
            raise Refused(409, f"the store's stock shows {level.on_hand} of {sku} on hand, less than the {qty} picked: "
                               "receive or count it first")
        now[sku] = StockLevel(sku, level.on_hand - qty, level.escrow - escrow_qty)
        effects.append(MoveStock(stamp.make(StockMoved, sku=sku, delta=-qty, reason="pick", shrinkage_reason="",
                                            on_hand_after=level.on_hand - qty, reference=order_id),
                                 escrow_delta=-escrow_qty))

    lines = tuple(order.picks[line.sku] for line in order.lines)
    for pick in lines:
        if pick.picked:  # what the cloud reserved leaves its escrow; a heavier weight's rest is the store's own
            take(pick.sku, pick.picked, consumed(pick))
    for pick in lines:
        if pick.substitute_sku:  # not reserved online: it comes from the store's own share
            take(pick.substitute_sku, pick.substitute_qty, 0)
    for sku in sorted({p.substitute_sku for p in lines if p.substitute_sku}):
        ask = escrow.reclaim_needed(now[sku].on_hand, now[sku].escrow)
        if ask:  # the substitute ate into the cloud's share: ask for it back, as a till sale does
            effects.append(Publish(stamp.make(EscrowReclaimRequested, sku=sku, qty=ask)))
    effects += [Publish(stamp.make(OrderPicked, order_id=order_id, lines=lines)),
                SetOrderStatus(order_id, "picked", only_from="picking")]
    done = dataclasses.replace(order, status="picked")
    return Outcome(reply=order_json(done, books), effects=tuple(effects), last_seq=stamp.outcome_seq)


def restock(order: PickOrder, cancelled: Outcome, levels: dict[str, StockLevel], stamp: EventStamp) -> Outcome:
    """The cloud cancelled an order this store had picked already (`cancelled`: applying the cancellation): its goods
    go back on the shelf, journaled as `return` movements with the order's id, in the same transaction. The escrow
    they took when picked stays taken (the cloud consumed the reservation); receiving grants again."""
    if order.status != "picked":
        return cancelled
    now = dict(levels)
    effects: list[Effect] = []

    def put_back(sku: str, qty: int) -> None:
        level = now.get(sku) or StockLevel(sku, 0, 0)
        now[sku] = StockLevel(sku, level.on_hand + qty, level.escrow)
        effects.append(MoveStock(stamp.make(StockMoved, sku=sku, delta=qty, reason="return", shrinkage_reason="",
                                            on_hand_after=level.on_hand + qty, reference=order.order_id)))

    for line in order.lines:
        pick = order.picks.get(line.sku)
        if pick is not None and pick.picked:
            put_back(pick.sku, pick.picked)
        if pick is not None and pick.substitute_sku:
            put_back(pick.substitute_sku, pick.substitute_qty)
    effects.append(SetOrderStatus(order.order_id, "cancelled", only_from="picked"))
    return Outcome(reply=cancelled.reply, effects=(*cancelled.effects, *effects), after=cancelled.after,
                   last_seq=stamp.outcome_seq, notes=cancelled.notes)
