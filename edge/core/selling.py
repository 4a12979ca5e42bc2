"""A till sale as a pure decision: check the payment, then say what the sale changes.

`pay()` returns an Outcome whose effects - the sale row, one journaled stock movement per line, the sale event,
any escrow reclaim request, the member's unsettled stored value - the shell commits in ONE transaction; the
receipt is an after-effect, so it prints only once the sale is durable. The till never waits on the network:
selling past the offline share goes through and asks the cloud for the difference back (DESIGN.md section 3).

Stored value: before asking to pay, the shell asks the cloud's ledger for a hold of the sale's total (`quote`
says which member and how much) and passes the answer in (`Authorisation`). A granted hold pays the sale online:
its payment's reference is the hold id and the sale says it was online, so the cloud captures that hold. A refused
hold refuses the sale (409, the ledger's reason). No answer (offline, or the hold request timed out) pays the sale
without the cloud, only within the per-member offline allowance (`protocol.payments.offline_shortfall`), and the
sale says it was offline. Either way the spend counts as unsettled at this store until the cloud takes it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from edge.core import coupons, escrow, member_limits
from edge.core.budget_allowance import sale_uses
from edge.core.cart import Cart, price
from edge.core.gifts import gift_lines
from edge.core.outcome import AddUnsettled, Effect, ForgetCart, InsertSale, MoveStock, Outcome, PrintTicket, Publish, Refused
from edge.core.receipt_ticket import receipt_bytes, receipt_facts
from edge.core.shift_effects import RecordSaleCash
from edge.core.split_tender import Tender, check_split
from edge.core.stall_lanes import check_basket
from edge.core.state import Books, EventStamp, Member, StockLevel
from protocol import payments, points
from protocol.lots import LotLevel, after, chain_day, take
from protocol.markdowns import MarkdownGiven
from protocol.messages import EscrowReclaimRequested, Payment, SaleCommitted, SaleLine, StockMoved
from protocol.money import format_fen
from protocol.policy import OFFLINE_ALLOWANCE_FEN, OFFLINE_POINTS_ALLOWANCE
from protocol.pricing import PricedBasket
from protocol.promotion_uses import uses_of


@dataclass(frozen=True, slots=True)
class Authorisation:
    """The cloud's answer to the till's hold request for this sale (asked by the shell before paying)."""
    hold_id: str
    member_id: str
    amount_fen: int
    granted: bool
    reason: str = ""  # why it was refused


@dataclass(frozen=True, slots=True)
class PointsAuth:
    """Points paying part of the sale (`edge/points_till.py`): how many, and the cloud's answer to the hold asked
    for them (`answered` False: offline, or no answer in time: the sale pays them within the offline allowance)."""
    points: int
    hold_id: str = ""
    member_id: str = ""
    granted: bool = False
    answered: bool = False
    reason: str = ""
    offline_used: int = 0  # points this store already took from the member without the cloud (its allowance's day)


@dataclass(frozen=True, slots=True)
class PayRequest:
    lane: str
    method: str  # checked against protocol.payments.TILL_METHODS
    tendered_fen: int = 0
    authorisation: Authorisation | None = None  # stored value: the hold, or None (offline, no answer in time)
    points: PointsAuth | None = None  # points paying part of the sale (the rest by `method`)
    first: Tender | None = None  # a split: this part first (stored value: `authorisation` holds it), `method` the rest
    cashier_id: str = ""  # who is signed in at the lane (printed on the receipt)
    stall: str = ""  # the market stall whose lane this is ("" = the store's own: edge/core/stall_lanes.py)


@dataclass(frozen=True, slots=True)
class Till:
    """Who sells, and under which limits (the box's configuration and its connection state)."""
    store_id: str
    online: bool
    floor_limit_fen: int = OFFLINE_ALLOWANCE_FEN  # the per-member offline allowance
    survey_key: bytes | None = None  # signs the receipts' survey tokens (protocol.points; None: no survey)
    survey_base_url: str = ""  # where the cloud serves /surveys/{token} (the receipt's link)
    show_jin: bool = False  # the store's receipts show weights in jin and prices per jin too


def till_method(name: str) -> payments.Method:
    for method in payments.TILL_METHODS:
        if method == name:
            return method
    raise Refused(422, f"unknown payment method {name!r}: one of {', '.join(payments.TILL_METHODS)}")


def quote(cart: Cart, books: Books, till: Till, now_ms: int) -> dict:
    """Who pays how much by stored value, for the shell's hold request: {"member_id", "total_fen"}."""
    if not cart.lines:
        raise Refused(409, "the cart is empty")
    if cart.member is None:
        raise Refused(409, "stored value needs a member: identify the member first")
    return {"member_id": cart.member.member_id, "total_fen": price(cart, books, till.store_id, now_ms).total_fen}


def settle(request: PayRequest, total_fen: int, cart: Cart, till: Till, sale_id: str
           ) -> tuple[tuple[Payment, ...], int, bool]:
    """(payments, change, paid without the cloud) for the sale, or Refused saying why this payment cannot go
    through."""
    method, change, reference = till_method(request.method), 0, None
    offline = not till.online
    by_points: tuple[Payment, ...] = ()
    if request.points is not None:  # points pay part; the method pays the rest
        by_points = (points_payment(request.points, method, cart, total_fen, till, sale_id),)
        total_fen -= by_points[0].amount_fen
    if request.first is not None:  # a split: the first tender pays its part, `method` the rest (split_tender.py)
        check_split(request.first, method, total_fen, request.points is not None)
        first, first_offline = first_payment(request, cart, till, sale_id)
        by_points, total_fen = (first,), total_fen - request.first.amount_fen
        # stored value's own answer: a granted hold is captured even if the box went offline since (never a Spend)
        offline = offline if first_offline is None else first_offline
    if method == "cash":
        verdict = payments.cash_change(request.tendered_fen, total_fen)
        if isinstance(verdict, str):
            raise Refused(409, verdict)
        change = verdict
    elif method == "stored_value":
        if cart.member is None:
            raise Refused(409, "stored value needs a member: identify the member first")
        reference, offline = stored_value_reference(request.authorisation, cart.member, total_fen, till, sale_id)
    if not total_fen:  # a basket the promotions made free: nothing is paid, by any method
        return by_points, change, offline
    reference = reference or payments.reference(method, sale_id)
    return (*by_points, Payment(method=method, amount_fen=total_fen, reference=reference)), change, offline


def first_payment(request: PayRequest, cart: Cart, till: Till, sale_id: str) -> tuple[Payment, bool | None]:
    """(the first tender of a split sale, paid without the cloud: None when that is not the tender's to say):
    stored value against its hold (or offline within the allowance), or the simulated wallet approved on the spot
    as for a whole sale."""
    assert request.first is not None
    if request.first.method == "stored_value":
        if cart.member is None:
            raise Refused(409, "stored value needs a member: identify the member first")
        reference, offline = stored_value_reference(request.authorisation, cart.member, request.first.amount_fen,
                                                    till, sale_id)
        return Payment(method="stored_value", amount_fen=request.first.amount_fen, reference=reference), offline
    return Payment(method="wallet_sim", amount_fen=request.first.amount_fen,
                   reference=payments.reference("wallet_sim", sale_id)), None


def points_payment(auth: PointsAuth, method: str, cart: Cart, total_fen: int, till: Till, sale_id: str) -> Payment:
    """The points part of a sale: against the hold the cloud granted, or without the cloud within the offline
    allowance (and the points the store knows the member has); Refused saying why otherwise."""
    if cart.member is None:
        raise Refused(409, "points need a member: identify the member first")
    if method == "stored_value":
        raise Refused(422, "points at the till pay part of a sale paid by cash or wallet_sim, not stored value")
    why = points.points_refusal(total_fen, auth.points)
    if why:
        raise Refused(422, why)
    value = points.points_value_fen(auth.points)
    if auth.answered:
        if not auth.granted:
            raise Refused(409, auth.reason or "insufficient points")
        if auth.member_id != cart.member.member_id:
            raise Refused(409, "the member changed while the cloud held the points: pay again")
        return Payment(method="points", amount_fen=value, reference=auth.hold_id)
    limit = max(min(OFFLINE_POINTS_ALLOWANCE - auth.offline_used, cart.member.points), 0)
    if auth.points > limit:
        raise Refused(409, f"points offline limit: {auth.points} points asked, at most {limit} without the cloud "
                           f"(the member has {cart.member.points} here; {auth.offline_used} of the offline "
                           f"allowance of {OFFLINE_POINTS_ALLOWANCE} used here already)")
    return Payment(method="points", amount_fen=value, reference=points.redeem_id(sale_id))


def stored_value_reference(auth: Authorisation | None, member: Member, total_fen: int, till: Till, sale_id: str
                           ) -> tuple[str, bool]:
    """(the payment's reference, paid without the cloud): the hold the cloud granted, or the sale's own id within
    the offline allowance; Refused otherwise."""
    if not total_fen:
        return "", not till.online
    if auth is not None and auth.granted:  # the hold must be for this very payment, or the cloud would not trust it
        if auth.member_id != member.member_id:
            raise Refused(409, "the member changed while the cloud held the stored value: pay again")
        if auth.amount_fen != total_fen:
            raise Refused(409, f"the total changed to {format_fen(total_fen)} while the cloud held "
                               f"{format_fen(auth.amount_fen)}: pay again")
        return auth.hold_id, False
    if auth is not None:
        raise Refused(409, auth.reason or "insufficient stored value")
    short = payments.offline_shortfall(member.stored_value_fen, member.unsettled_fen, member.offline_unsettled_fen,
                                       total_fen, till.floor_limit_fen)
    if short:
        raise Refused(409, short)
    return payments.reference("stored_value", sale_id), True


def sold_stock(lines: tuple[SaleLine, ...], levels: Mapping[str, StockLevel], sale_id: str, stamp: EventStamp,
               lots: tuple[str, ...] = (), lot_levels: Mapping[str, Sequence[LotLevel]] | None = None) -> list[Effect]:
    """One journaled movement per line, and an escrow reclaim request where the till sold into the cloud's share.
    Two lines of one SKU (two weighings) move it twice; each sees the level the one before left. `lots`: per line,
    the lot its code named (""/missing: none). `lot_levels`: the SKUs' lots now (missing: none on record); each line
    takes up to what is on hand of its named lot, the rest first-expiry-first-out (protocol.lots.take): a lot never
    goes below zero, only the unlotted stock may."""
    effects: list[Effect] = []
    now = dict(levels)
    lots_now = {sku: list(lvs) for sku, lvs in (lot_levels or {}).items()}
    day = chain_day(stamp.moment.wall_ms)
    for i, line in enumerate(lines):
        lot = lots[i] if i < len(lots) else ""
        named = take(lots_now.get(line.sku, ()), line.quantity.amount, day, lot)
        lots_now[line.sku] = after(lots_now.get(line.sku, ()), named)
        level = now.get(line.sku) or StockLevel(line.sku, 0, 0)
        on_hand = level.on_hand - line.quantity.amount
        now[line.sku] = StockLevel(line.sku, on_hand, level.escrow)
        effects.append(MoveStock(stamp.make(StockMoved, sku=line.sku, delta=-line.quantity.amount, reason="sale",
                                            shrinkage_reason="", on_hand_after=on_hand, reference=sale_id, lots=named)))
        ask = escrow.reclaim_needed(on_hand, level.escrow)
        if ask:
            effects.append(Publish(stamp.make(EscrowReclaimRequested, sku=line.sku, qty=ask)))
    return effects


def markdowns_given(cart: Cart, priced: PricedBasket) -> tuple[MarkdownGiven, ...]:
    """What markdown rules gave away on the sale's lines (reported with the sale: edge.core.markdowns)."""
    return tuple(MarkdownGiven(rule_id=pl.markdown_rule, line=i, sku=pl.sku, saving_fen=pl.markdown_fen,
                               lot=line.lot)
                 for i, (line, pl) in enumerate(zip(cart.lines, priced.lines, strict=True))
                 if pl.markdown_rule and pl.markdown_fen > 0)


def survey_link(till: Till, sale_id: str, member_id: str | None) -> dict:
    """The sale's survey (`survey_token`, `survey_url`) when a member bought and the box can sign; else nothing."""
    if not member_id or till.survey_key is None:
        return {}
    token = points.survey_token(till.survey_key, till.store_id, sale_id)
    return {"survey_token": token, "survey_url": f"{till.survey_base_url.rstrip('/')}/surveys/{token}"}


def pay(cart: Cart, books: Books, request: PayRequest, till: Till, sale_id: str,
        levels: Mapping[str, StockLevel], stamp: EventStamp,
        lot_levels: Mapping[str, Sequence[LotLevel]] | None = None) -> Outcome:
    """`levels`: the current stock of the cart's SKUs (missing = none yet); `lot_levels`: their lots (missing =
    none on record). `sale_id` and `stamp` are made by the shell (ids and the moment are passed in)."""
    if not cart.lines:
        raise Refused(409, "the cart is empty")
    # the catalogue may have moved a product to (or off) a stall since it was scanned: the basket is checked again
    check_basket({request.lane: request.stall}, books.catalogue, request.lane, (line.sku for line in cart.lines))
    now_ms = stamp.moment.wall_ms
    # the gifts as stocked now (the levels read for this sale), not as the cart view last saw them
    books = replace(books, gift_stock={sku: level.on_hand for sku, level in levels.items()})
    priced = price(cart, books, till.store_id, now_ms)
    total = priced.total_fen
    paid, change, offline = settle(request, total, cart, till, sale_id)
    lines = tuple(SaleLine(sku=line.sku, quantity=line.quantity, amount_fen=pl.amount_fen)
                  for line, pl in zip(cart.lines, priced.lines, strict=True))
    if not request.stall:  # a stall's sale carries its own goods only: the store's gifts are not given on its lane
        lines += gift_lines(priced, books)  # a reached gift leaves stock with the sale, at 0 fen (edge/core/gifts.py)
    member_id = cart.member.member_id if cart.member else None
    sale = stamp.make(SaleCommitted, sale_id=sale_id, lane=request.lane, lines=lines, total_fen=total,
                      payments=paid, member_id=member_id, offline=offline, markdowns=markdowns_given(cart, priced),
                      promotions=uses_of(priced.applied), stall=request.stall)
    effects: list[Effect] = [InsertSale(sale_id=sale_id, lane=request.lane, total_fen=total, lines=lines, payments=paid,
                          member_id=member_id, offline=offline, at_ms=now_ms),
               Publish(sale)]
    if any(p.method == "cash" for p in paid):  # what was handed over and the change: the cash-up's own lines
        effects.append(RecordSaleCash(sale_id, request.tendered_fen, change))
    effects += sold_stock(lines, levels, sale_id, stamp, tuple(line.lot for line in cart.lines), lot_levels)
    effects += coupons.redemptions(cart.coupons, priced, stamp, sale_id, request.lane, member_id,
                                   str(chain_day(now_ms)))  # the cart's coupons its rules applied: redeemed
    # capped rules from this store's share; limited rules counted for the member chain-wide (edge/core/member_limits)
    limits, used = cart.member_limits(), member_limits.member_uses(priced, books.rule_book) if member_id else ()
    no_answer = limits is None or limits.offline  # the till sold without the cloud's count of the member's uses
    effects += sale_uses(priced, books.rule_book, sale_id, stamp, member_id or "", no_answer, used)
    effects += member_limits.recorded(used, member_id or "", no_answer, sale_id, str(chain_day(now_ms)), now_ms)
    if member_id:
        effects += [AddUnsettled(member_id, p.amount_fen, p.reference, offline) for p in paid
                    if p.method == "stored_value"]
    reply = {"sale_id": sale_id, "total_fen": total, "change_fen": change, "offline": offline,
             **survey_link(till, sale_id, member_id)}
    facts = receipt_facts(till.store_id, request.lane, request.cashier_id, sale_id, priced, paid,
                          request.tendered_fen, change, cart.member.phone_masked if cart.member else None,
                          reply.get("survey_url", ""), offline, till.show_jin)
    reply["tenders"], reply["receipt"] = facts["tenders"], facts  # the page shows and reprints the same receipt
    printed = receipt_bytes(facts)
    # The cart goes before the receipt prints: a failed print must not leave a paid cart to be paid again.
    return Outcome(reply=reply,
                   effects=tuple(effects), after=(ForgetCart(request.lane), PrintTicket(printed)),
                   last_seq=stamp.outcome_seq)
