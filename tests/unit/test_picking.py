"""Picking, pure: what a picked line may say (protocol/picking.py), what it does to the money, the store's decisions
(edge/core/picking.py), a partly fulfilled reservation (actors/stock_pool.py) and the cloud's judgement of a store's
picking (protocol/store_facts.py). Amounts worked out by hand in the comments."""
from __future__ import annotations

import itertools

import pytest

from actors.stock_pool import Cancel, Confirm, Fulfil, Grant, Reserve, StockPool
from edge.core import picking, stock
from edge.core.outcome import MoveStock, Outcome, Publish, RecordPick, Refused, SetOrderStatus
from edge.core.picking import LineToPick, PickOrder, PickRequest
from edge.core.state import Books, EventStamp, Moment, PendingOrder, StockLevel
from protocol import codec
from protocol.ids import make_id
from protocol.messages import (
    EscrowReclaimRequested,
    OrderLine,
    OrderPicked,
    OrderToFulfil,
    PickedLine,
    PickingStarted,
    PickupCompleted,
)
from protocol.money_saga import charge_id, part_refund_id
from protocol.picking import check_line, extra_to_charge, judge_picked, money_part, part_money, weight_bounds
from protocol.pricing import Catalogue, PricingContext, Product, load_rule_book
from protocol.store_facts import Known, OrderFacts, judge

STORE = "S001"
NOW = Moment(wall_ms=1_767_229_200_000, mono_ms=42)
CATALOGUE = Catalogue([
    Product(sku="BOKCHOY", name="Bok choy", category="vegetables", unit="kg", price_fen=1000, plu="00101"),
    Product(sku="PORK", name="Pork belly", category="meat", unit="kg", price_fen=4000, plu="00102",
            catch_weight_tolerance_bp=500),
    Product(sku="MILK", name="Milk 1L", category="dairy", unit="piece", price_fen=350),
    Product(sku="OATMILK", name="Oat milk 1L", category="dairy", unit="piece", price_fen=300),
    Product(sku="CREAM", name="Cream", category="dairy", unit="piece", price_fen=900),
])
BOOK = load_rule_book({"version": 1, "rules": []}, CATALOGUE)
BOOKS = Books(CATALOGUE, BOOK, 1, 1)
CTX = PricingContext(channel="online", store_id=STORE, now_ms=NOW.wall_ms)


def stamp(last_seq: int = 0) -> EventStamp:
    n = itertools.count(1)
    return EventStamp(STORE, last_seq, NOW, lambda: make_id(NOW.wall_ms, next(n)))


def line(sku: str, ordered: int, picked: int, short: int = 0, sub: str = "", sub_qty: int = 0) -> PickedLine:
    return PickedLine(sku=sku, ordered=ordered, picked=picked, short=short, substitute_sku=sub, substitute_qty=sub_qty)


# ---- what a picked line may say -----------------------------------------------------------------------------
def test_a_picked_weight_must_lie_within_the_products_tolerance():
    assert weight_bounds(500, 1000) == (450, 550)
    assert check_line(line("BOKCHOY", 500, 550), True, 1000, False) == ""
    assert check_line(line("BOKCHOY", 500, 450), True, 1000, False) == ""
    why = check_line(line("BOKCHOY", 500, 551), True, 1000, False)
    assert "551 g is outside 450..550 g" in why and "re-weigh" in why
    assert check_line(line("BOKCHOY", 500, 0, short=500), True, 1000, False) == ""  # the whole line short
    assert "short or substituted" in check_line(line("BOKCHOY", 500, 0), True, 1000, False)


def test_pieces_add_up_and_a_substitute_needs_the_customers_consent():
    assert check_line(line("MILK", 3, 3), False, 0, False) == ""
    assert check_line(line("MILK", 3, 2, short=1), False, 0, False) == ""
    assert "more than the 3 ordered" in check_line(line("MILK", 3, 4), False, 0, False)
    assert "neither picked nor short" in check_line(line("MILK", 3, 1, short=1), False, 0, False)
    assert "did not allow substitutions" in check_line(line("MILK", 3, 1, sub="OATMILK", sub_qty=2), False, 0, False)
    assert check_line(line("MILK", 3, 1, sub="OATMILK", sub_qty=2), False, 0, True) == ""
    assert "another product" in check_line(line("MILK", 3, 1, sub="MILK", sub_qty=2), False, 0, True)


def test_the_cloud_believes_only_the_lines_of_the_stores_part():
    e = OrderPicked(**env(1), order_id="O1", lines=(line("MILK", 3, 3),))
    assert judge_picked(e, {"MILK": 3}, {}, False) == ""
    assert "missing" in judge_picked(e, {"MILK": 3, "BOKCHOY": 500}, {}, False)
    assert "says 3 ordered, the order says 2" in judge_picked(e, {"MILK": 2}, {}, False)
    other = OrderPicked(**env(2), order_id="O1", lines=(line("CREAM", 1, 1),))
    assert "not in this store's part" in judge_picked(other, {"MILK": 3}, {}, False)
    heavy = OrderPicked(**env(3), order_id="O1", lines=(line("BOKCHOY", 500, 600),))
    assert "outside" in judge_picked(heavy, {"BOKCHOY": 500}, {"BOKCHOY": 1000}, False)


def env(n: int, store: str = STORE) -> dict:
    return {"event_id": make_id(NOW.wall_ms, 100 + n), "store_id": store, "seq": n, "wall_ms": NOW.wall_ms,
            "mono_ms": 0}


def test_store_facts_refuse_picking_of_another_stores_or_an_unpaid_order():
    order = OrderFacts("O1", "pickup", "paid", frozenset({"S002"}), {"S002": {"MILK": 3}})
    started = PickingStarted(**env(1), order_id="O1")
    picked = OrderPicked(**env(2), order_id="O1", lines=(line("MILK", 3, 3),))
    refused = judge([started, picked], Known(orders={"O1": order}))
    assert set(refused) == {started.event_id, picked.event_id}
    assert "not allocated to this store" in refused[picked.event_id]
    mine = OrderFacts("O1", "pickup", "paid", frozenset({STORE}), {STORE: {"MILK": 3}})
    assert judge([started, picked], Known(orders={"O1": mine})) == {}
    cancelled = OrderFacts("O1", "pickup", "cancelled", frozenset({STORE}), {STORE: {"MILK": 3}})
    assert "cancelled, not paid" in judge([started], Known(orders={"O1": cancelled}))[started.event_id]
    delivered = OrderFacts("O1", "delivery", "delivered", frozenset({STORE}), {STORE: {"MILK": 3}})
    assert "delivered, not paid" in judge([picked], Known(orders={"O1": delivered}))[picked.event_id]


def test_a_part_is_picked_once_judged_on_its_own_status_and_an_assigned_flash_order_is_picked_too():
    picked = OrderPicked(**env(1), order_id="O1", lines=(line("MILK", 3, 0, short=3),))
    replay = OrderPicked(**env(2), order_id="O1", lines=(line("MILK", 3, 0, short=3),))

    def facts(status: str, part: str | None = None, claim: str | None = None, kind: str = "delivery") -> Known:
        return Known(orders={"O1": OrderFacts("O1", kind, status, frozenset({STORE, "S002"}),
                                              {STORE: {"MILK": 3}, "S002": {"MILK": 1}},
                                              part_status={STORE: part} if part else {},
                                              pick_claims={STORE: claim} if claim else {})})
    # the order is still picking (another store's part), but this store's part is ready: "all short" again refused
    assert "part is ready" in judge([picked], facts("picking", "ready"))[picked.event_id]
    assert "part is picked_up" in judge([picked], facts("picking", "picked_up"))[picked.event_id]
    # a second OrderPicked of the same part, with another id: refused, in a later batch or the same one
    assert "picked already" in judge([replay], facts("picking", "picking", claim=picked.event_id))[replay.event_id]
    assert set(judge([picked, replay], facts("picking", "picking"))) == {replay.event_id}
    # the claiming event's own redelivery finishes what it began
    assert judge([picked], facts("ready", "ready", claim=picked.event_id)) == {}
    # a flash order assigned to the store is picked like any order (one not assigned names only its sale)
    assert judge([picked], facts("paid", kind="flash")) == {}
    # a store picked an order cancelled meanwhile: believed for its stock once, if its part was never picked
    assert judge([picked], facts("cancelled")) == {}
    assert judge([picked], facts("cancelled", "picking")) == {}
    assert "part is ready" in judge([picked], facts("cancelled", "ready"))[picked.event_id]


def test_a_substitute_must_be_a_product_of_the_catalogue_before_anything_is_applied():
    order = OrderFacts("O1", "pickup", "paid", frozenset({STORE}), {STORE: {"MILK": 3}}, allow_substitutions=True)
    odd = OrderPicked(**env(1), order_id="O1", lines=(line("MILK", 3, 1, sub="NOSUCH", sub_qty=2),))
    known = Known(orders={"O1": order}, products=frozenset(CATALOGUE.by_sku))
    assert "NOSUCH" in judge([odd], known)[odd.event_id]
    fine = OrderPicked(**env(2), order_id="O1", lines=(line("MILK", 3, 1, sub="OATMILK", sub_qty=2),))
    assert judge([fine], known) == {}


def test_picked_events_travel_the_codec_and_the_order_carries_the_consent():
    picked = OrderPicked(**env(1), order_id="O1", lines=(line("MILK", 3, 1, sub="OATMILK", sub_qty=2),))
    assert codec.decode(codec.encode(picked)) == picked
    fulfil = OrderToFulfil(**env(2), order_id="O1", fulfilment="pickup", lines=(OrderLine(sku="MILK", qty=3,
                                                                                           amount_fen=1050),),
                           total_fen=1050, pickup_code="12345678", slot_start_ms=0, slot_end_ms=0, member_id=None,
                           allow_substitutions=True)
    assert codec.decode(codec.encode(fulfil)).allow_substitutions is True


# ---- money --------------------------------------------------------------------------------------------------
ORDER_LINES = [{"sku": "BOKCHOY", "qty": 500, "amount_fen": 500}, {"sku": "MILK", "qty": 3, "amount_fen": 1050},
               {"sku": "PORK", "qty": 1000, "amount_fen": 4000}]


def test_a_lighter_weight_is_refunded_and_a_heavier_one_charged_within_the_margin():
    lighter = part_money(ORDER_LINES, (line("BOKCHOY", 500, 460),), CATALOGUE, BOOK, CTX)
    assert lighter.weight_diff_fen == -40 and lighter.weighed == {"BOKCHOY": (500, 460)}  # 40 g of 10 yuan/kg
    heavier = part_money(ORDER_LINES, (line("PORK", 1000, 1040),), CATALOGUE, BOOK, CTX)
    assert (heavier.weight_diff_fen, heavier.margin_fen) == (160, 200)  # 40 g of 40 yuan/kg; 5% of 40 yuan
    assert extra_to_charge(160, 200, can_charge=True) == (160, 0)
    assert extra_to_charge(260, 200, can_charge=True) == (200, 60)  # never past the margin
    assert extra_to_charge(160, 200, can_charge=False) == (0, 160)  # a wallet payment: the store absorbs it
    same = part_money(ORDER_LINES, (line("BOKCHOY", 500, 500), line("MILK", 3, 3)), CATALOGUE, BOOK, CTX)
    assert same.weight_diff_fen == 0 and not same.substitute_refunds and not same.short_refunds


def test_a_substitute_costs_no_more_than_the_original_and_short_units_are_refunded_by_their_share():
    cheaper = part_money(ORDER_LINES, (line("MILK", 3, 1, sub="OATMILK", sub_qty=2),), CATALOGUE, BOOK, CTX)
    assert cheaper.substitute_refunds == {"MILK": 100}  # 2 of 3 at 1050 = 700; oat milk 2 x 300 = 600
    dearer = part_money(ORDER_LINES, (line("MILK", 3, 2, sub="CREAM", sub_qty=1),), CATALOGUE, BOOK, CTX)
    assert dearer.substitute_refunds == {}  # cream costs more: charged the milk's 350, not more
    short = part_money(ORDER_LINES, (line("MILK", 3, 1, short=2), line("BOKCHOY", 500, 0, short=500)),
                       CATALOGUE, BOOK, CTX)
    assert short.short_refunds == {"MILK": 700, "BOKCHOY": 500}


# ---- the store's decisions --------------------------------------------------------------------------------------
def order(status: str = "to_pick", allow: bool = False, picks: dict | None = None) -> PickOrder:
    return PickOrder("O1", status, "pickup", allow, 0, (LineToPick("MILK", 3, "piece"), LineToPick("BOKCHOY", 500, "g")),
                     picks or {})


def test_starting_tells_the_cloud_once():
    out = picking.start(order(), "O1", BOOKS, stamp())
    assert out.reply["status"] == "picking"
    assert [type(e) for e in out.effects] == [SetOrderStatus, Publish]
    assert isinstance(out.effects[1].event, PickingStarted) and out.last_seq == 1
    again = picking.start(order("picking"), "O1", BOOKS, stamp())
    assert again.effects == () and again.reply["status"] == "picking"
    with pytest.raises(Refused) as refused:
        picking.start(None, "O9", BOOKS, stamp())
    assert refused.value.status == 404
    with pytest.raises(Refused, match="is picked_up"):
        picking.start(order("picked_up"), "O1", BOOKS, stamp())


def test_recording_a_line_refuses_what_the_cloud_would_not_believe():
    out = picking.record(order("picking"), "O1", "BOKCHOY", PickRequest(weight_g=530), BOOKS)
    assert out.effects == (RecordPick("O1", line("BOKCHOY", 500, 530)),)
    refusals = {
        "outside 450..550 g": (PickRequest(weight_g=600), "BOKCHOY", 422),
        "give weight_g": (PickRequest(qty=1), "BOKCHOY", 422),
        "did not allow substitutions": (PickRequest(qty=1, substitute_sku="OATMILK", substitute_qty=2), "MILK", 403),
        "unknown product": (PickRequest(qty=1, substitute_sku="NOPE", substitute_qty=2), "MILK", 404),
        "has no line 'CREAM'": (PickRequest(qty=1), "CREAM", 404),
        "more than the 3 ordered": (PickRequest(qty=4), "MILK", 422),
    }
    for text, (req, sku, status) in refusals.items():
        with pytest.raises(Refused, match=text) as refused:
            picking.record(order("picking"), "O1", sku, req, BOOKS)
        assert refused.value.status == status, text
    with pytest.raises(Refused, match="start picking it first") as refused:
        picking.record(order("to_pick"), "O1", "MILK", PickRequest(qty=3), BOOKS)
    assert refused.value.status == 409
    whole = picking.record(order("picking", allow=True), "O1", "BOKCHOY",
                           PickRequest(substitute_sku="PORK", substitute_qty=480), BOOKS)
    assert whole.effects == (RecordPick("O1", line("BOKCHOY", 500, 0, sub="PORK", sub_qty=480)),)
    allowed = picking.record(order("picking", allow=True), "O1", "MILK",
                             PickRequest(qty=1, substitute_sku="OATMILK", substitute_qty=2), BOOKS)
    assert allowed.effects == (RecordPick("O1", line("MILK", 3, 1, sub="OATMILK", sub_qty=2)),)


def test_finishing_moves_the_picked_stock_off_the_shelf_and_escrow_and_tells_the_cloud_in_one_outcome():
    picks = {"MILK": line("MILK", 3, 1, sub="OATMILK", sub_qty=2), "BOKCHOY": line("BOKCHOY", 500, 530)}
    levels = {"MILK": StockLevel("MILK", 10, 4), "BOKCHOY": StockLevel("BOKCHOY", 2_000, 800),
              "OATMILK": StockLevel("OATMILK", 5, 4)}
    out = picking.finish(order("picking", True, picks), "O1", levels, BOOKS, stamp(7))
    moves = [(e.event.sku, e.event.delta, e.escrow_delta, e.event.reason, e.event.on_hand_after)
             for e in out.effects if isinstance(e, MoveStock)]
    # milk: 1 picked of its 3 reserved; bok choy: 530 g, of which the 500 reserved leave the escrow; oat milk (the
    # substitute) from the store's own share - on hand 3 under its escrow 4, so 1 is asked back
    assert moves == [("MILK", -1, -1, "pick", 9), ("BOKCHOY", -530, -500, "pick", 1_470), ("OATMILK", -2, 0, "pick", 3)]
    published = [e.event for e in out.effects if isinstance(e, Publish)]
    assert isinstance(published[0], EscrowReclaimRequested) and (published[0].sku, published[0].qty) == ("OATMILK", 1)
    assert isinstance(published[1], OrderPicked) and published[1].lines == (picks["MILK"], picks["BOKCHOY"])
    assert out.effects[-1] == SetOrderStatus("O1", "picked", only_from="picking") and out.last_seq == 12
    assert picking.finish(order("picked", True, picks), "O1", levels, BOOKS, stamp()).effects == ()
    with pytest.raises(Refused, match=r"lines \['BOKCHOY'\] are not picked yet"):
        picking.finish(order("picking", True, {"MILK": picks["MILK"]}), "O1", levels, BOOKS, stamp())
    with pytest.raises(Refused, match="less than the 530 picked"):
        picking.finish(order("picking", True, picks), "O1", {**levels, "BOKCHOY": StockLevel("BOKCHOY", 100, 0)},
                       BOOKS, stamp())


def test_the_till_hands_a_picked_order_over_without_moving_stock_again():
    levels = {"MILK": StockLevel("MILK", 10, 4)}
    picked = stock.pickup(PendingOrder("O1", "picked", (("MILK", 3),)), "12345678", "1", levels, stamp())
    assert not [e for e in picked.effects if isinstance(e, MoveStock)]
    assert isinstance(picked.effects[0].event, PickupCompleted)
    assert picked.effects[-1] == SetOrderStatus("O1", "picked_up")
    with pytest.raises(Refused, match="being picked") as refused:
        stock.pickup(PendingOrder("O1", "picking", (("MILK", 3),)), "12345678", "1", levels, stamp())
    assert refused.value.status == 409
    unpicked = stock.pickup(PendingOrder("O1", "to_pick", (("MILK", 3),)), "12345678", "1", levels, stamp())
    assert [e.event.delta for e in unpicked.effects if isinstance(e, MoveStock)] == [-3]  # the old path


# ---- a reservation fulfilled in part ------------------------------------------------------------------------------
def test_a_reservation_is_fulfilled_in_part_and_its_rest_cancelled_back_to_escrow():
    pool = StockPool()
    pool.apply(Grant(id="g", store=STORE, sku="MILK", qty=10), 0)
    pool.apply(Reserve(id="r", reservation_id="R1", order_id="O1", store=STORE, sku="MILK", qty=3), 0)
    pool.apply(Confirm(id="c", reservation_id="R1", sku="MILK"), 0)
    part = pool.apply(Fulfil(id="f", reservation_id="R1", sku="MILK", qty=1), 0)
    assert part.status == "ok" and part.get("state") == "confirmed"
    assert pool.view(STORE, "MILK")[0] | {} == {**pool.view(STORE, "MILK")[0], "escrow": 9, "confirmed": 2}
    assert pool.apply(Fulfil(id="f2", reservation_id="R1", sku="MILK", qty=5), 0).status == "rejected"
    pool.apply(Cancel(id="x", reservation_id="R1", sku="MILK"), 0)
    assert (pool.view(STORE, "MILK")[0]["escrow"], pool.view(STORE, "MILK")[0]["available"]) == (9, 9)
    assert pool.audit() == []


def test_a_picked_order_cancelled_by_the_cloud_is_restocked_in_the_cancellations_transaction():
    picks = {"MILK": line("MILK", 3, 1, sub="OATMILK", sub_qty=2), "BOKCHOY": line("BOKCHOY", 500, 0, short=500)}
    cancelled = Outcome(reply="applied", effects=(SetOrderStatus("O1", "cancelled", only_from=("to_pick", "picking")),))
    levels = {"MILK": StockLevel("MILK", 9, 3), "OATMILK": StockLevel("OATMILK", 3, 4)}
    out = picking.restock(order("picked", True, picks), cancelled, levels, stamp(3))
    moves = [(e.event.sku, e.event.delta, e.escrow_delta, e.event.reason, e.event.on_hand_after)
             for e in out.effects if isinstance(e, MoveStock)]
    assert moves == [("MILK", 1, 0, "return", 10), ("OATMILK", 2, 0, "return", 5)]
    assert out.effects[0] == cancelled.effects[0] and out.effects[-1] == SetOrderStatus("O1", "cancelled", "picked")
    assert out.last_seq == 5 and out.reply == "applied"
    assert picking.restock(order("picking", True, picks), cancelled, levels, stamp()) is cancelled


def test_a_line_split_across_stores_is_priced_and_refunded_by_each_stores_part_only():
    # 5 milk for 500 fen: S1 picked 3 and 2 short were re-routed to S2, which is short of both: 200 back, not 500
    lines = [{"sku": "MILK", "qty": 5, "amount_fen": 500}, {"sku": "PORK", "qty": 1000, "amount_fen": 4000}]
    assert part_money(lines, (line("MILK", 2, 0, short=2),), CATALOGUE, BOOK, CTX).short_refunds == {"MILK": 200}
    assert part_money(lines, (line("MILK", 5, 3, short=2),), CATALOGUE, BOOK, CTX).short_refunds == {"MILK": 200}
    # 1000 g of pork split 600/400: 610 g picked at S1 is 10 g heavier (40 fen), not 390 g lighter; the margin is
    # 5% of S1's 2400 fen share, not of the whole line
    heavy = part_money(lines, (line("PORK", 600, 610),), CATALOGUE, BOOK, CTX)
    assert (heavy.weight_diff_fen, heavy.margin_fen) == (40, 120)
    light = part_money(lines, (line("PORK", 400, 390),), CATALOGUE, BOOK, CTX)
    assert light.weight_diff_fen == -40


def test_money_parts_fit_the_movement_ids_whatever_the_store_and_sku_ids():
    order_id = make_id(NOW.wall_ms, 7)
    assert money_part("weight", order_id, "S001") == "weight:S001"  # short ones stay readable
    assert money_part("short", order_id, "S001", "MILK") == "short:S001:MILK"
    store, sku = "STORE-" + "X" * 30, "SKU-" + "Y" * 40
    for part in (money_part("weight", order_id, store), money_part("short", order_id, store, sku),
                 money_part("sub", order_id, store, sku), money_part("short", order_id, "S001", sku)):
        assert len(part_refund_id(order_id, part)) <= 64 and len(f"{charge_id(order_id)}:{part}") <= 64, part
    assert money_part("short", order_id, store, sku) != money_part("sub", order_id, store, sku)
    assert money_part("short", order_id, store, sku) != money_part("short", order_id, store, "SKU-2")
    assert money_part("weight", order_id, store) == money_part("weight", order_id, store)  # the same id on a retry
