"""The store's pure core (edge.core): every decision as data in, Outcome out - no event loop, no SQLite, no clock.

Amounts and grams are worked out by hand in the comments.
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from edge.core import cashiers, cloud_messages, selling, stock, tickets
from edge.core.cart import Cart, label_quantity, line_for_code, weighed_line
from edge.core.cloud_messages import AckedRow
from edge.core.outcome import (
    AddUnsettled,
    ChangeEscrow,
    CloseShift,
    DropAcked,
    DropMember,
    ForgetCart,
    InsertOrder,
    InsertSale,
    MarkApplied,
    MoveStock,
    OpenShift,
    Outcome,
    PrintTicket,
    Publish,
    RecordTopUp,
    Refused,
    SetAsideRefused,
    SetOrderStatus,
    SettleStoredValue,
    StoreBook,
    UpsertMember,
    UseBooks,
)
from edge.core.state import Books, EventStamp, Member, Moment, PendingOrder, StockLevel
from edge.core.tickets import chain_time_of_day
from protocol import codec
from protocol.barcodes import DEFAULT_LAYOUTS, VariableMeasureLayout, gs1_check_digit
from protocol.errors import ProtocolError
from protocol.ids import make_id
from protocol.messages import (
    Ack,
    BusinessAck,
    CatalogueUpdated,
    EscrowGranted,
    EscrowReclaimed,
    EscrowReclaimRequested,
    MemberUpdated,
    OrderCancelled,
    OrderLine,
    OrderToFulfil,
    PickupCompleted,
    Quantity,
    RuleBookUpdated,
    SaleCommitted,
    StockMoved,
)
from protocol.pricing import Catalogue, Product, load_rule_book

STORE = "S001"
NOW = Moment(wall_ms=1_767_229_200_000, mono_ms=42)  # 2026-01-01 09:00 in UTC+8
CATALOGUE = Catalogue([
    Product(sku="BOKCHOY", name="Bok choy", category="vegetables", unit="kg", price_fen=963, plu="00101"),
    Product(sku="PORK", name="Pork belly", category="meat", unit="kg", price_fen=400, plu="00102"),
    Product(sku="MILK", name="Milk 1L", category="dairy", unit="piece", price_fen=350, gtin="6901234567892",
            plu="00201"),
])
BOOKS = Books(CATALOGUE, load_rule_book({"version": 3, "rules": []}, CATALOGUE), catalogue_version=5,
              rule_book_version=3)


def ids():
    n = iter(range(1, 10**6))
    return lambda: make_id(NOW.wall_ms, next(n))


def stamp(last_seq: int = 0) -> EventStamp:
    return EventStamp(STORE, last_seq, NOW, ids())


def label(prefix: str, plu: str, value: str) -> str:
    body = prefix + plu + value
    return body + str(gs1_check_digit(body))


def cart_of(*codes: str, member: Member | None = None) -> Cart:
    cart = Cart(member=member)
    for code in codes:
        cart.add(line_for_code(code, CATALOGUE, DEFAULT_LAYOUTS))
    return cart


def till(online: bool = True) -> selling.Till:
    return selling.Till(STORE, online=online, floor_limit_fen=5_000)


def pay(cart, method="cash", tendered=10**6, levels=None, last_seq=0, online=True, auth=None) -> Outcome:
    return selling.pay(cart, BOOKS, selling.PayRequest("1", method, tendered, auth), till(online),
                       make_id(NOW.wall_ms, 999), levels or {}, stamp(last_seq))


def of(outcome: Outcome, kind: type) -> list:
    return [e for e in outcome.effects if isinstance(e, kind)]


def events(outcome: Outcome) -> list:
    return [e.event for e in outcome.effects if isinstance(e, (Publish, MoveStock))]


# ---- quantities carry their unit: the grams bug -------------------------------------------------------------

def test_price_embedded_label_on_a_per_kg_product_takes_its_grams_off_stock():
    # the label scale priced bok choy at 9.63/kg and printed 4.82: 482 x 1000 / 963 = 500.52 g -> 501 g
    cart = cart_of(label("20", "00101", "00482"))
    assert cart.lines[0].quantity == Quantity.grams(501)
    out = pay(cart, levels={"BOKCHOY": StockLevel("BOKCHOY", 10_000, 0)}, last_seq=7)
    (move,) = of(out, MoveStock)
    assert (move.event.sku, move.event.delta, move.event.on_hand_after) == ("BOKCHOY", -501, 9_499)  # not -1
    (sale,) = [e for e in events(out) if isinstance(e, SaleCommitted)]
    assert [(line.sku, line.quantity, line.amount_fen) for line in sale.lines] == [("BOKCHOY", Quantity.grams(501), 482)]
    assert of(out, InsertSale)[0].lines == sale.lines


def test_label_quantity_uses_the_one_rounding_rule_and_never_sells_nothing():
    pork = CATALOGUE.get("PORK")  # 4.00/kg
    assert label_quantity(pork, 3) == Quantity.grams(8)  # 3 x 1000 / 400 = 7.5 g: half away from zero -> 8
    assert label_quantity(pork, 5) == Quantity.grams(13)  # 12.5 -> 13
    assert label_quantity(pork, 1_000) == Quantity.grams(2_500)
    assert label_quantity(CATALOGUE.get("BOKCHOY"), 1) == Quantity.grams(1)  # 1.04 g -> 1
    milk = CATALOGUE.get("MILK")  # 3.50 a piece
    assert label_quantity(milk, 700) == Quantity.pieces(2)
    assert label_quantity(milk, 100) == Quantity.pieces(1)  # a markdown label still hands over one


def test_every_kind_of_line_says_its_unit():
    weight_label = cart_of(label("21", "00101", "00750")).lines[0]  # the label carries 750 g
    assert (weight_label.basket.weight_g, weight_label.quantity) == (750, Quantity.grams(750))
    assert cart_of("6901234567892", "6901234567892").lines[0].quantity == Quantity.pieces(2)  # repeated scans add up
    assert weighed_line(CATALOGUE, "BOKCHOY", 1_250).quantity == Quantity.grams(1_250)
    # an 18-digit label with weight and amount: the weight says what left the shelf, the amount what it cost
    both = (VariableMeasureLayout(name="cn18", prefixes=("28",), pattern="PPIIIIIAAAAAWWWWWC"),)
    body = "28" + "00101" + "00482" + "00498"
    line = line_for_code(body + str(gs1_check_digit(body)), CATALOGUE, both)
    assert (line.basket.amount_fen, line.quantity) == (482, Quantity.grams(498))


def test_labels_that_do_not_fit_the_product_are_refused():
    with pytest.raises(ProtocolError, match="sold by the piece, but the label carries a weight"):
        line_for_code(label("21", "00201", "00500"), CATALOGUE, DEFAULT_LAYOUTS)
    counted = (VariableMeasureLayout(name="count", prefixes=("24",), pattern="PPIIIIINNNNNC"),)
    with pytest.raises(ProtocolError, match="sold by the kg, but the label carries a count"):
        line_for_code(label("24", "00101", "00002"), CATALOGUE, counted)
    with pytest.raises(Refused, match="sold by the piece; scan it"):
        weighed_line(CATALOGUE, "MILK", 500)


# ---- a sale ----------------------------------------------------------------------------------------------

def test_a_cash_sale_is_one_set_of_effects_numbered_after_the_last_seq_and_prints_after_the_commit():
    out = pay(cart_of("6901234567892", label("21", "00101", "01000")), tendered=2_000, last_seq=41,
              levels={"MILK": StockLevel("MILK", 10, 4)})
    # milk 3.50 + 1 kg bok choy 9.63 = 13.13; change 6.87
    receipt = out.reply.pop("receipt")  # what the page reprints (edge/core/receipt_ticket.py)
    assert out.reply == {"sale_id": make_id(NOW.wall_ms, 999), "total_fen": 1_313, "change_fen": 687, "offline": False,
                         "tenders": [{"method": "cash", "amount_fen": 1_313}]}
    assert receipt["tendered_fen"] == 2_000 and receipt["change_fen"] == 687 and receipt["total_fen"] == 1_313
    assert [type(e).__name__ for e in out.effects] == ["InsertSale", "Publish", "RecordSaleCash", "MoveStock",
                                                        "MoveStock"]  # tendered and change, for the cash-up
    assert [e.seq for e in events(out)] == [42, 43, 44] and out.last_seq == 44
    moves = [(e.event.sku, e.event.delta, e.event.on_hand_after, e.event.reason) for e in of(out, MoveStock)]
    assert moves == [("MILK", -1, 9, "sale"), ("BOKCHOY", -1_000, -1_000, "sale")]  # no stock yet: it goes negative
    assert all(e.wall_ms == NOW.wall_ms and e.mono_ms == NOW.mono_ms and e.store_id == STORE for e in events(out))
    # the cart is forgotten before the receipt prints: a print that fails leaves no paid cart to pay again
    assert out.after[0] == ForgetCart("1") and isinstance(out.after[1], PrintTicket)
    assert f"SALE:{out.reply['sale_id']}".encode() in out.after[1].ticket


def test_the_same_inputs_give_the_same_outcome():
    def once():
        return pay(cart_of("6901234567892"), levels={"MILK": StockLevel("MILK", 3, 1)}, last_seq=3)
    assert once() == once()


def test_selling_into_the_clouds_share_asks_for_it_back_and_two_weighings_see_each_other():
    cart = cart_of()
    cart.add(weighed_line(CATALOGUE, "BOKCHOY", 600))
    cart.add(weighed_line(CATALOGUE, "BOKCHOY", 500))
    out = pay(cart, levels={"BOKCHOY": StockLevel("BOKCHOY", 1_500, 600)})  # 900 g the till's, 600 g online
    moves = [(e.event.delta, e.event.on_hand_after) for e in of(out, MoveStock)]
    assert moves == [(-600, 900), (-500, 400)]
    asks = [e for e in events(out) if isinstance(e, EscrowReclaimRequested)]
    assert [(a.sku, a.qty) for a in asks] == [("BOKCHOY", 200)]  # on hand 400 < escrow 600


def test_payment_refusals_change_nothing():
    cart = cart_of("6901234567892")
    with pytest.raises(Refused, match="less than the total"):
        pay(cart, tendered=349)
    with pytest.raises(Refused, match="needs a member"):
        pay(cart, method="stored_value")
    with pytest.raises(Refused, match="the cart is empty"):
        pay(cart_of())
    with pytest.raises(Refused, match="unknown payment method"):
        pay(cart, method="bitcoin")


HOLD = "hold:" + make_id(NOW.wall_ms, 5)


def test_stored_value_offline_goes_down_to_the_floor_and_counts_as_unsettled():
    member = Member("M1", "13800000001", "0000000001", "regular", stored_value_fen=100, points=0, unsettled_fen=0)
    cart = cart_of("6901234567892", member=member)  # 3.50 against a balance of 1.00
    refused = selling.Authorisation(HOLD, "M1", 350, granted=False, reason="insufficient stored value: 1.00 available")
    with pytest.raises(Refused, match="insufficient stored value: 1.00 available"):  # online: the cloud said no
        pay(cart, method="stored_value", online=True, auth=refused)
    out = pay(cart, method="stored_value", online=False)  # -2.50 is within the 50.00 offline allowance
    (sale,) = [e for e in events(out) if isinstance(e, SaleCommitted)]
    assert sale.offline and sale.payments[0].reference == f"sv:{sale.sale_id}"
    assert of(out, AddUnsettled) == [AddUnsettled("M1", 350, f"sv:{sale.sale_id}", True)]
    spent = Member("M1", "13800000001", "0000000001", "regular", stored_value_fen=100, points=0, unsettled_fen=4_800)
    with pytest.raises(Refused, match="while offline"):
        pay(cart_of("6901234567892", member=spent), method="stored_value", online=False)


def test_stored_value_online_pays_against_the_hold_the_cloud_granted():
    member = Member("M1", "1", "2", "regular", stored_value_fen=5_000, points=0, unsettled_fen=0)
    cart = cart_of("6901234567892", member=member)
    assert selling.quote(cart, BOOKS, till(), NOW.wall_ms) == {"member_id": "M1", "total_fen": 350}
    out = pay(cart, method="stored_value", auth=selling.Authorisation(HOLD, "M1", 350, granted=True))
    (sale,) = [e for e in events(out) if isinstance(e, SaleCommitted)]
    assert not sale.offline and sale.payments[0].reference == HOLD  # the cloud captures this hold
    assert of(out, AddUnsettled) == [AddUnsettled("M1", 350, HOLD, False)] and out.reply["offline"] is False
    with pytest.raises(Refused, match="the total changed to 3.50 while the cloud held 3.00: pay again"):
        pay(cart, method="stored_value", auth=selling.Authorisation(HOLD, "M1", 300, granted=True))
    with pytest.raises(Refused, match="the member changed while the cloud held the stored value: pay again"):
        pay(cart, method="stored_value", auth=selling.Authorisation(HOLD, "M2", 350, granted=True))


def test_stored_value_without_the_cloud_is_bounded_by_the_offline_allowance():
    """Offline, or the hold timed out while the store looked online: the spend goes through only within the
    per-member allowance of spends not settled yet, and the sale says it was made without the cloud."""
    rich = Member("M1", "1", "2", "regular", stored_value_fen=100_000, points=0, unsettled_fen=4_800,
                  offline_unsettled_fen=4_800)
    with pytest.raises(Refused, match="already spent here without the cloud, 3.50 more would pass the offline "
                                      "allowance of 50.00"):
        pay(cart_of("6901234567892", member=rich), method="stored_value", online=False)
    settled = Member("M1", "1", "2", "regular", stored_value_fen=100_000, points=0, unsettled_fen=4_800,
                     offline_unsettled_fen=0)  # online spends unsettled: they do not use the allowance
    out = pay(cart_of("6901234567892", member=settled), method="stored_value", online=True)  # the hold timed out
    (sale,) = [e for e in events(out) if isinstance(e, SaleCommitted)]
    assert sale.offline and out.reply["offline"] is True


def test_a_cash_top_up_needs_a_signed_in_cashier_and_stays_within_the_day_cap():
    member = Member("M1", "1", "2", "regular", stored_value_fen=0, points=0, unsettled_fen=0)
    args = dict(taken_today_fen=0, day_cap_fen=10_000, one_max_fen=5_000, topup_id=make_id(NOW.wall_ms, 7))
    with pytest.raises(Refused, match="no cashier is signed in at lane 3") as no_cashier:
        cashiers.top_up("3", None, member, 1_000, stamp=stamp(), **args)
    assert no_cashier.value.status == 403
    with pytest.raises(Refused, match="unknown cashier or wrong PIN"):
        cashiers.sign_in("3", "C1", False, make_id(NOW.wall_ms, 8), NOW.wall_ms, None)
    opened, duty = cashiers.sign_in("3", "C1", True, make_id(NOW.wall_ms, 8), NOW.wall_ms, None)
    assert opened.effects == (OpenShift(duty.shift_id, "C1", "3", NOW.wall_ms),)
    out = cashiers.top_up("3", duty, member, 1_000, stamp=stamp(4), **args)
    (event,) = events(out)
    assert (event.KIND, event.member_id, event.amount_fen, event.cashier_id, event.shift_id, event.seq) == (
        "stored_value.cash_topped_up", "M1", 1_000, "C1", duty.shift_id, 5)
    assert of(out, RecordTopUp)[0].shift_id == duty.shift_id and out.last_seq == 5
    with pytest.raises(Refused, match="past the daily cap of 100.00"):
        cashiers.top_up("3", duty, member, 2_000, stamp=stamp(), **{**args, "taken_today_fen": 9_000})
    with pytest.raises(Refused, match="needs a member"):
        cashiers.top_up("3", duty, None, 1_000, stamp=stamp(), **args)
    assert cashiers.sign_out("3", duty, NOW.wall_ms + 1).effects == (CloseShift(duty.shift_id, NOW.wall_ms + 1),)


# ---- stock -----------------------------------------------------------------------------------------------

def test_receiving_grants_the_cloud_its_share():
    out = stock.receive("MILK", 20, BOOKS, StockLevel("MILK", 5, 2), 4_000, stamp(10))
    # on hand 25, 40% = 10, the cloud holds 2: grant 8
    assert out.reply == {"sku": "MILK", "on_hand": 25, "escrow": 10}
    assert [type(e).__name__ for e in out.effects] == ["MoveStock", "ChangeEscrow", "Publish"]
    assert of(out, ChangeEscrow) == [ChangeEscrow("MILK", 8)]
    granted = events(out)[1]
    assert isinstance(granted, EscrowGranted) and (granted.qty, granted.escrow_after, granted.seq) == (8, 10, 12)
    with pytest.raises(Refused, match="unknown product"):
        stock.receive("NOPE", 1, BOOKS, StockLevel("NOPE", 0, 0), 4_000, stamp())


def test_shrinkage_needs_a_reason_and_may_ask_for_escrow_back():
    out = stock.shrink("MILK", 3, "spoiled", StockLevel("MILK", 4, 2), stamp())
    moved, asked = events(out)
    assert (moved.delta, moved.shrinkage_reason, moved.on_hand_after) == (-3, "spoiled", 1)
    assert isinstance(asked, EscrowReclaimRequested) and asked.qty == 1
    with pytest.raises(Refused, match="shrinkage reason"):
        stock.shrink("MILK", 1, "lost it", StockLevel("MILK", 4, 0), stamp())


def test_pickup_hands_the_order_over_once():
    order = PendingOrder("O1", "to_pick", (("MILK", 2), ("BOKCHOY", 500)))
    levels = {"MILK": StockLevel("MILK", 10, 4), "BOKCHOY": StockLevel("BOKCHOY", 2_000, 800)}
    out = stock.pickup(order, "12345678", "2", levels, stamp())
    assert [(e.event.sku, e.event.delta, e.escrow_delta, e.event.reason) for e in of(out, MoveStock)] == [
        ("MILK", -2, -2, "pickup"), ("BOKCHOY", -500, -500, "pickup")]
    assert isinstance(events(out)[-1], PickupCompleted) and of(out, SetOrderStatus) == [SetOrderStatus("O1", "picked_up")]
    again = stock.pickup(PendingOrder("O1", "picked_up", order.lines), "12345678", "2", levels, stamp())
    assert again.reply == {"order_id": "O1", "status": "picked_up"} and again.effects == ()
    with pytest.raises(Refused) as refused:
        stock.pickup(None, "00000000", "1", {}, stamp())
    assert refused.value.status == 404
    with pytest.raises(Refused, match="is cancelled"):
        stock.pickup(PendingOrder("O1", "cancelled", order.lines), "12345678", "2", levels, stamp())


# ---- what the cloud sends ----------------------------------------------------------------------------------

def envelope(n: int) -> dict:
    return {"event_id": make_id(NOW.wall_ms - 1_000, n), "store_id": STORE, "seq": n, "wall_ms": NOW.wall_ms - 1_000,
            "mono_ms": 0}


def test_a_command_applies_once_with_its_inbox_mark():
    member = MemberUpdated(**envelope(1), member_id="M1", phone_hash=b"h" * 32, phone_masked="138****0001",
                           member_code="2", level="gold", stored_value_fen=500, points=3)
    out = cloud_messages.apply_cloud_message(member, False, BOOKS, NOW)
    assert out.effects == (MarkApplied(member.event_id, "member.updated", NOW.wall_ms), UpsertMember(member))
    assert cloud_messages.apply_cloud_message(member, True, BOOKS, NOW) == Outcome(reply="duplicate")


def test_an_erased_member_is_dropped_from_the_cache_and_carries_nothing_that_identifies():
    erased = MemberUpdated(**envelope(1), member_id="M1", phone_hash=b"", phone_masked="", member_code="", level="",
                           stored_value_fen=0, points=0, erased=True)
    out = cloud_messages.apply_cloud_message(erased, False, BOOKS, NOW)
    assert out.effects == (MarkApplied(erased.event_id, "member.updated", NOW.wall_ms), DropMember("M1"))
    with pytest.raises(ProtocolError, match="erased member carries no"):
        MemberUpdated(**envelope(2), member_id="M1", phone_hash=b"h" * 32, phone_masked="", member_code="", level="",
                      stored_value_fen=0, points=0, erased=True)
    with pytest.raises(ProtocolError, match="phone_hash has 5 bytes"):
        MemberUpdated(**envelope(3), member_id="M1", phone_hash=b"short", phone_masked="", member_code="c", level="",
                      stored_value_fen=0, points=0)


def test_a_receipt_shows_the_members_phone_masked_only():
    from protocol.pricing import PricedBasket
    basket = PricedBasket(lines=[], applied=[], near_misses=[], gifts=[], subtotal_fen=0, total_fen=0, coupons_used=[],
                          rule_book_version=0)
    printed = tickets.receipt("S001", "SALE1", basket, "cash", 0, 0, member_phone_masked="138****8000")
    assert b"Member 138****8000" in printed


def test_an_order_to_fulfil_is_stored_and_its_pick_ticket_prints_after_with_the_chains_time():
    order = OrderToFulfil(**envelope(2), order_id="O9", fulfilment="pickup", total_fen=1_000, pickup_code="12345678",
                          lines=(OrderLine(sku="MILK", qty=2, amount_fen=700), OrderLine(sku="BOKCHOY", qty=300,
                                                                                          amount_fen=300)),
                          slot_start_ms=1_767_234_600_000, slot_end_ms=1_767_238_200_000, member_id=None)
    out = cloud_messages.apply_cloud_message(order, False, BOOKS, NOW)
    (stored,) = of(out, InsertOrder)
    assert stored.payload["lines"] == [{"sku": "MILK", "qty": 2, "amount_fen": 700, "unit": "piece"},
                                       {"sku": "BOKCHOY", "qty": 300, "amount_fen": 300, "unit": "g"}]
    (ticket,) = out.after
    assert b"slot 10:30" in ticket.ticket and b"300 g" in ticket.ticket and b"PICKUP:12345678" in ticket.ticket


def test_cancellations_and_escrow_replies():
    cancel = cloud_messages.apply_cloud_message(OrderCancelled(**envelope(3), order_id="O9", reason="x"), False, BOOKS, NOW)
    assert cancel.effects[1] == SetOrderStatus("O9", "cancelled", only_from=("to_pick", "picking"))
    back = EscrowReclaimed(**envelope(4), request_event_id=make_id(1, 1), sku="MILK", qty_returned=3, escrow_after=1)
    assert cloud_messages.apply_cloud_message(back, False, BOOKS, NOW).effects[1] == ChangeEscrow("MILK", -3)


def test_books_newer_replace_older_are_kept_and_bad_ones_are_refused():
    book = {"version": 4, "rules": [{"type": "item_discount", "id": "half", "name": "Half", "skus": ["MILK"],
                                     "percent_off_bp": 5000}]}
    newer = RuleBookUpdated(**envelope(5), version=4, payload=json.dumps(book).encode())
    out = cloud_messages.apply_cloud_message(newer, False, BOOKS, NOW)
    assert of(out, StoreBook) == [StoreBook("rule_book", json.dumps(book), 4)]
    (use,) = out.after
    assert isinstance(use, UseBooks) and use.books.rule_book.version == 4 and use.books.rule_book_version == 4
    older = CatalogueUpdated(**envelope(6), version=4, payload=b"[]")
    kept = cloud_messages.apply_cloud_message(older, False, BOOKS, NOW)
    assert [type(e) for e in kept.effects] == [MarkApplied] and kept.after == () and "older" in kept.notes[0]
    bad = CatalogueUpdated(**envelope(7), version=9, payload=b"{not json")
    refused = cloud_messages.apply_cloud_message(bad, False, BOOKS, NOW)
    assert [type(e) for e in refused.effects] == [MarkApplied] and "refused catalogue version 9" in refused.notes[0]


def test_an_ack_drops_the_rows_raises_the_seq_floor_and_settles_stored_value():
    member = Member("M1", "1", "2", "regular", stored_value_fen=1_000, points=0, unsettled_fen=0)
    sold = pay(cart_of("6901234567892", member=member), method="stored_value", last_seq=20)
    rows = [AckedRow(e.seq, e.event_id, e.KIND, codec.encode(e) if isinstance(e, SaleCommitted) else None)
            for e in events(sold)]
    ack = BusinessAck(**envelope(8), acks=tuple(Ack(event_id=r.event_id, seq=r.seq, result="ok", detail="") for r in rows))
    out = cloud_messages.apply_ack(ack, rows)
    reference = next(e for e in events(sold) if isinstance(e, SaleCommitted)).payments[0].reference
    assert out.effects == (SettleStoredValue("M1", (reference,), 350), DropAcked(tuple(r.event_id for r in rows), 22))
    assert cloud_messages.apply_ack(ack, []).effects == ()  # already dropped: nothing to do


def test_an_event_the_cloud_refused_is_set_aside_not_settled_and_leaves_the_outbox():
    member = Member("M1", "1", "2", "regular", stored_value_fen=1_000, points=0, unsettled_fen=0)
    sold = pay(cart_of("6901234567892", member=member), method="stored_value", last_seq=20)
    rows = [AckedRow(e.seq, e.event_id, e.KIND, codec.encode(e) if isinstance(e, SaleCommitted) else None)
            for e in events(sold)]
    sale_row = next(r for r in rows if r.kind == "sale.committed")
    acks = tuple(Ack(event_id=r.event_id, seq=r.seq, result="refused" if r is sale_row else "ok",
                     detail="sale.committed.lane: a lane is 1-16 letters" if r is sale_row else "") for r in rows)
    out = cloud_messages.apply_ack(BusinessAck(**envelope(8), acks=acks), rows, now_ms=1_767_229_200_000)
    # the refused sale's stored value is not settled (the cloud never took it); it is kept aside, with the reason
    assert out.effects == (SetAsideRefused(((sale_row.event_id, "sale.committed.lane: a lane is 1-16 letters"),),
                                           1_767_229_200_000),
                           DropAcked(tuple(r.event_id for r in rows), 22))
    assert "refused" in out.notes[0] and sale_row.event_id in out.notes[0]


def test_chain_time_of_day():
    assert chain_time_of_day(1_767_229_200_000) == "09:00"  # 01:00 UTC
    assert chain_time_of_day(1_767_196_800_000) == "00:00"  # 16:00 UTC the day before
    assert chain_time_of_day(0, offset_min=-300) == "19:00"


def test_moved_event_is_a_valid_message():
    out = stock.receive("BOKCHOY", 2_000, BOOKS, StockLevel("BOKCHOY", 0, 0), 4_000, stamp())
    for e in events(out):
        assert codec.decode(codec.encode(e)) == e
    assert isinstance(events(out)[0], StockMoved)


# ---- the core stays pure ---------------------------------------------------------------------------------

CORE = Path(__file__).resolve().parents[2] / "edge" / "core"
IMPURE = {"asyncio", "socket", "subprocess", "threading", "os", "sys", "io", "pathlib", "time", "random", "secrets",
          "uuid", "sqlite3", "logging", "aiosqlite", "serial", "nats", "httpx", "starlette", "uvicorn"}
MAY_USE = ("edge.core", "edge.devices.escpos", "edge.devices.traits", "protocol")


def test_the_core_imports_nothing_that_does_io_or_reads_a_clock():
    found = []
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                top = name.split(".")[0]
                ours = top in ("edge", "protocol", "actors", "cloud", "simulators", "loadtest")
                if top in IMPURE or (ours and not name.startswith(MAY_USE)) or \
                        (not ours and top not in sys.stdlib_module_names and top != "__future__"):
                    found.append(f"{path.name}: {name}")
    assert found == []


def test_a_basket_the_promotions_made_free_sells_with_no_payment():
    free = load_rule_book({"version": 4, "rules": [{"type": "item_discount", "id": "free", "name": "Free milk",
                                                    "skus": ["MILK"], "percent_off_bp": 10_000}]}, CATALOGUE)
    out = selling.pay(cart_of("6901234567892"), Books(CATALOGUE, free), selling.PayRequest("1", "cash", 0), till(),
                      make_id(NOW.wall_ms, 1), {}, stamp())
    (sale,) = [e for e in events(out) if isinstance(e, SaleCommitted)]
    assert (sale.total_fen, sale.payments, out.reply["change_fen"]) == (0, (), 0)
    assert [e.event.delta for e in of(out, MoveStock)] == [-1]  # the milk still left the shelf
