"""Stocktakes as pure decisions (edge.core.stocktake), the message they post and how the cloud judges it: no event
loop, no SQLite. Quantities are worked out by hand in the comments."""
from __future__ import annotations

import dataclasses
import json

import pytest

from cloud.messaging.stocktakes import valued
from edge.core import stocktake
from edge.core.outcome import ChangeEscrow, CloseStocktake, MoveStock, OpenStocktake, Publish, RecordCount, Refused
from edge.core.state import Books, EventStamp, Moment, StockLevel
from edge.core.stocktake import Approver, Line, Stocktake
from edge.stocktake_api import OpenBody
from protocol import codec
from protocol.errors import ProtocolError
from protocol.ids import make_id
from protocol.lots import LotLevel
from protocol.messages import EscrowGranted, EscrowReclaimRequested, StockMoved
from protocol.pricing import Catalogue, Product, load_rule_book
from protocol.schema import record_from_wire
from protocol.stocktake_facts import judge_stocktakes, stocktake_moves
from protocol.stocktake_messages import (
    COUNT_MAX,
    STOCKTAKE_LINES_MAX,
    UNIT_COST_MAX_FEN,
    StocktakeLine,
    StocktakePosted,
)

STORE = "S001"
NOW = Moment(wall_ms=1_767_229_200_000, mono_ms=42)
CATALOGUE = Catalogue([
    Product(sku="BOKCHOY", name="Bok choy", category="vegetables", unit="kg", price_fen=960, cost_fen=600),
    Product(sku="CARROT", name="Carrot", category="vegetables", unit="kg", price_fen=500, cost_fen=300),
    Product(sku="MILK", name="Milk 1L", category="dairy", unit="piece", price_fen=350, cost_fen=200),
])
BOOKS = Books(CATALOGUE, load_rule_book({"version": 1, "rules": []}, CATALOGUE))
MANAGER = Approver("MGR1", True, "manager")


def ids():
    n = iter(range(1, 10**6))
    return lambda: make_id(NOW.wall_ms, next(n))


SID = make_id(NOW.wall_ms, 999_999)


def stamp() -> EventStamp:
    return EventStamp(STORE, 10, NOW, ids())


def opened(scope, lots=None, busy=None) -> Stocktake:
    outcome = stocktake.open_count(SID, scope, "clerk1", BOOKS, lots or {}, busy or {}, None, NOW.wall_ms)
    (effect,) = outcome.effects
    assert isinstance(effect, OpenStocktake)
    return Stocktake(SID, scope, "clerk1", NOW.wall_ms, "open",
                     {(s, lot): Line(s, lot, use_by) for s, lot, use_by in effect.lines})


def counted(st: Stocktake, sku: str, lot: str, qty: int, book_lots: list[LotLevel]) -> Stocktake:
    """Apply a count as the store db would: the line gets the count and the book of that moment."""
    (effect,) = stocktake.count(st, SID, sku, lot, qty, "clerk1", book_lots, NOW.wall_ms).effects
    assert isinstance(effect, RecordCount)
    st.lines[(sku, lot)] = Line(sku, lot, effect.use_by, effect.counted, effect.book, effect.counted_by, effect.at_ms)
    return st


def test_the_sheet_of_a_category_is_blind_and_lists_lots_with_stock_and_the_unlotted_line():
    lots = {"BOKCHOY": [LotLevel("L2", "2026-01-05", 800), LotLevel("L1", "2026-01-03", 500), LotLevel("", "", 0),
                        LotLevel("EMPTY", "2026-01-02", 0)]}
    outcome = stocktake.open_count(SID, {"categories": ["vegetables"]}, "clerk1", BOOKS, lots, {}, None, NOW.wall_ms)
    sheet = outcome.reply["sheet"]
    assert [item["sku"] for item in sheet] == ["BOKCHOY", "CARROT"]
    # first expiry first, the unlotted line last; an empty lot is not on the sheet
    assert [x["lot"] for x in sheet[0]["lots"]] == ["L1", "L2", ""]
    assert sheet[0]["unit"] == "g"
    assert "on_hand" not in json.dumps(outcome.reply) and "book" not in json.dumps(outcome.reply)


def test_one_open_stocktake_per_sku_and_unknown_scope_refused():
    with pytest.raises(Refused) as busy:
        stocktake.open_count(SID, {"skus": ["MILK", "CARROT"]}, "clerk1", BOOKS, {}, {"MILK": "OTHER1"}, None, 0)
    assert busy.value.status == 409 and "MILK (stocktake OTHER1)" in str(busy.value)
    with pytest.raises(Refused) as unknown:
        stocktake.open_count(SID, {"categories": ["toys"]}, "clerk1", BOOKS, {}, {}, None, 0)
    assert unknown.value.status == 404 and "toys" in str(unknown.value)
    with pytest.raises(Refused) as sku:
        stocktake.open_count(SID, {"skus": ["NOPE"]}, "clerk1", BOOKS, {}, {}, None, 0)
    assert sku.value.status == 404 and "NOPE" in str(sku.value)


def test_a_count_keeps_the_book_of_its_moment_and_a_recount_replaces_it():
    st = opened({"skus": ["MILK"]})
    st = counted(st, "MILK", "", 7, [LotLevel("", "", 10)])
    assert (st.lines[("MILK", "")].counted, st.lines[("MILK", "")].book) == (7, 10)
    again = stocktake.count(st, SID, "MILK", "", 8, "clerk2", [LotLevel("", "", 9)], NOW.wall_ms)
    assert again.reply["recount"] is True and "book" not in again.reply
    (effect,) = again.effects
    assert isinstance(effect, RecordCount) and (effect.counted, effect.book, effect.counted_by) == (8, 9, "clerk2")
    with pytest.raises(Refused) as other:
        stocktake.count(st, SID, "CARROT", "", 1, "clerk1", [], 0)
    assert other.value.status == 404 and "scope" in str(other.value)
    with pytest.raises(Refused) as lot:
        stocktake.count(st, SID, "MILK", "L9", 1, "clerk1", [LotLevel("", "", 9)], 0)
    assert lot.value.status == 404 and "L9" in str(lot.value)


def test_a_sale_after_the_count_is_no_variance_and_posting_leaves_counted_minus_sold():
    # counted 7 of 10 on the books: variance -3. Then 2 sold: the books say 8. Posting -3 leaves 5 = 7 - 2.
    st = counted(opened({"skus": ["MILK"]}), "MILK", "", 7, [LotLevel("", "", 10)])
    outcome = stocktake.approve(st, SID, MANAGER, False, BOOKS, {"MILK": [LotLevel("", "", 8)]},
                                {"MILK": StockLevel("MILK", 8, 6)}, {"MILK": 5000}, {}, stamp())
    moves = [e.event for e in outcome.effects if isinstance(e, MoveStock)]
    assert [(m.sku, m.delta, m.reason, m.on_hand_after, m.reference) for m in moves] == [("MILK", -3, "stocktake", 5,
                                                                                          SID)]
    assert [(x.lot, x.delta) for x in moves[0].lots] == [("", -3)]
    # 5 on hand, the cloud holds 6: one asked back, as shrinkage would
    reclaims = [e.event for e in outcome.effects if isinstance(e, Publish) and isinstance(e.event, EscrowReclaimRequested)]
    assert [(r.sku, r.qty) for r in reclaims] == [("MILK", 1)]
    note = next(e.event for e in outcome.effects if isinstance(e, Publish) and isinstance(e.event, StocktakePosted))
    assert [(x.counted, x.book, x.variance, x.unit_cost_fen) for x in note.lines] == [(7, 10, -3, 200)]
    assert codec.decode(codec.encode(note)) == note
    close = outcome.effects[-1]
    assert isinstance(close, CloseStocktake) and json.loads(close.reply) == outcome.reply
    # every event is numbered after the last one, without gaps
    events = [e.event for e in outcome.effects if isinstance(e, (MoveStock, Publish))]
    assert [e.seq for e in events] == list(range(11, 11 + len(events))) and outcome.last_seq == 10 + len(events)


def test_a_loss_on_a_lot_sold_down_since_the_count_empties_the_lot_and_the_rest_falls_on_unlotted_stock():
    # L: book 10 at count, counted 2 (variance -8); then 5 sold first-expiry-first-out from L: L has 5 now
    at_count = [LotLevel("L", "2026-01-03", 10), LotLevel("", "", 10)]
    st = counted(opened({"skus": ["MILK"]}, {"MILK": at_count}), "MILK", "L", 2, at_count)
    now = [LotLevel("L", "2026-01-03", 5), LotLevel("", "", 10)]
    outcome = stocktake.approve(st, SID, MANAGER, False, BOOKS, {"MILK": now},
                                {"MILK": StockLevel("MILK", 15, 0)}, {"MILK": 0}, {}, stamp())
    (move,) = [e.event for e in outcome.effects if isinstance(e, MoveStock)]
    assert (move.delta, move.on_hand_after) == (-8, 7)  # the SKU: counted 2 + 10 unlotted - 5 sold
    assert [(x.lot, x.delta) for x in move.lots] == [("L", -5), ("", -3)]  # L to zero, never -3
    note = next(e.event for e in outcome.effects if isinstance(e, Publish) and isinstance(e.event, StocktakePosted))
    assert [(x.lot, x.variance) for x in note.lines] == [("L", -8)]
    assert stocktake_moves([move]) == {(STORE, SID, "MILK"): -8}  # the cloud's check per SKU still holds
    assert stocktake.variance_lots("L", "", -4, 0) == (stocktake.LotDelta(lot="", delta=-4),)
    assert stocktake.variance_lots("L", "", -4, 9) == (stocktake.LotDelta(lot="L", delta=-4),)


def test_per_lot_counts_post_on_their_lots_gains_first_and_grant_the_clouds_share():
    lots = [LotLevel("L1", "2026-01-03", 500), LotLevel("", "", 0)]
    st = opened({"skus": ["BOKCHOY"]}, {"BOKCHOY": lots})
    st = counted(st, "BOKCHOY", "L1", 300, lots)  # 200 g missing from L1
    st = counted(st, "BOKCHOY", "", 450, lots)  # 450 g found without a lot
    outcome = stocktake.approve(st, SID, MANAGER, False, BOOKS, {"BOKCHOY": lots},
                                {"BOKCHOY": StockLevel("BOKCHOY", 500, 100)}, {"BOKCHOY": 5000}, {}, stamp())
    moves = [e.event for e in outcome.effects if isinstance(e, MoveStock)]
    assert [(m.lots[0].lot, m.delta, m.on_hand_after) for m in moves] == [("", 450, 950), ("L1", -200, 750)]
    assert moves[1].lots[0].use_by == "2026-01-03"
    # net +250 g: the cloud's half of 750 g is 375, it holds 100: 275 granted
    grants = [e for e in outcome.effects if isinstance(e, ChangeEscrow)]
    assert [(g.sku, g.delta) for g in grants] == [("BOKCHOY", 275)]
    assert any(isinstance(e, Publish) and isinstance(e.event, EscrowGranted) and e.event.qty == 275
               for e in outcome.effects)


def test_only_a_manager_approves_and_approving_again_answers_the_same():
    st = counted(opened({"skus": ["MILK"]}), "MILK", "", 9, [LotLevel("", "", 10)])
    args = (False, BOOKS, {}, {"MILK": StockLevel("MILK", 10, 0)}, {}, {}, stamp())
    with pytest.raises(Refused) as cashier:
        stocktake.approve(st, SID, Approver("C01", True, "cashier"), *args)
    assert cashier.value.status == 403 and "not a manager" in str(cashier.value)
    with pytest.raises(Refused) as wrong:
        stocktake.approve(st, SID, Approver("MGR1", False, "manager"), *args)
    assert wrong.value.status == 401
    first = stocktake.approve(st, SID, MANAGER, *args)
    st.status, st.reply = "posted", first.reply
    again = stocktake.approve(st, SID, MANAGER, *args)
    assert again.reply == first.reply and again.effects == ()
    with pytest.raises(Refused) as late:
        stocktake.count(st, SID, "MILK", "", 1, "clerk1", [], 0)
    assert late.value.status == 409


def test_uncounted_lines_are_left_unless_the_manager_zeroes_them():
    lots = {"MILK": [LotLevel("", "", 4)], "BOKCHOY": [LotLevel("", "", 300)]}
    st = counted(opened({"skus": ["MILK", "BOKCHOY"]}, lots), "MILK", "", 4, lots["MILK"])
    levels = {"MILK": StockLevel("MILK", 4, 0), "BOKCHOY": StockLevel("BOKCHOY", 300, 0)}
    left = stocktake.approve(st, SID, MANAGER, False, BOOKS, lots, levels, {}, {}, stamp())
    assert left.reply["uncounted"] == [{"sku": "BOKCHOY", "lot": ""}] and "not adjusted" in left.reply["uncounted_note"]
    assert not any(isinstance(e, MoveStock) for e in left.effects)
    zeroed = stocktake.approve(st, SID, MANAGER, True, BOOKS, lots, levels, {}, {}, stamp())
    moves = [e.event for e in zeroed.effects if isinstance(e, MoveStock)]
    assert [(m.sku, m.delta, m.on_hand_after) for m in moves] == [("BOKCHOY", -300, 0)]
    assert zeroed.reply["uncounted"] == []


def test_a_variance_past_what_is_left_is_not_posted_and_the_rest_is():
    # counted 2 of 10, then 5 sold: 5 left on the books; posting -8 would leave -3: named, not posted
    lots = {"MILK": [LotLevel("", "", 5)], "CARROT": [LotLevel("", "", 1000)]}
    st = counted(opened({"skus": ["MILK", "CARROT"]}, lots), "MILK", "", 2, [LotLevel("", "", 10)])
    st = counted(st, "CARROT", "", 900, lots["CARROT"])
    outcome = stocktake.approve(st, SID, MANAGER, False, BOOKS, lots,
                                {"MILK": StockLevel("MILK", 5, 0), "CARROT": StockLevel("CARROT", 1000, 0)}, {}, {},
                                stamp())
    assert [(x["sku"], x["variance"]) for x in outcome.reply["not_posted"]] == [("MILK", -8)]
    assert [(e.event.sku, e.event.delta) for e in outcome.effects if isinstance(e, MoveStock)] == [("CARROT", -100)]


def test_review_values_the_variance_at_lot_cost_else_standard_cost_and_at_price():
    lots = [LotLevel("L1", "2026-01-03", 1000), LotLevel("", "", 0)]
    st = counted(opened({"skus": ["BOKCHOY"]}, {"BOKCHOY": lots}), "BOKCHOY", "L1", 750, lots)
    view = stocktake.review(st, SID, BOOKS, {("BOKCHOY", "L1"): 800})
    (line,) = view["counted"]
    # -250 g at 800 fen/kg = -200 fen; at 960 fen/kg = -240 fen
    assert (line["variance"], line["variance_cost_fen"], line["variance_price_fen"]) == (-250, -200, -240)
    assert view["uncounted"] == [{"sku": "BOKCHOY", "lot": "", "use_by": ""}]
    # no lot cost: the standard cost, 600 fen/kg = -150 fen
    assert stocktake.review(st, SID, BOOKS, {})["counted"][0]["variance_cost_fen"] == -150


def test_a_cancelled_stocktake_posts_nothing():
    st = opened({"skus": ["MILK"]})
    outcome = stocktake.cancel(st, SID, "clerk1", 5)
    assert [type(e) for e in outcome.effects] == [CloseStocktake]
    st.status = "cancelled"
    assert stocktake.cancel(st, SID, "clerk1", 6).effects == ()


def _note(sid: str, event_n: int, lines=None) -> StocktakePosted:
    return StocktakePosted(event_id=make_id(NOW.wall_ms, event_n), store_id=STORE, seq=event_n, wall_ms=NOW.wall_ms,
                           mono_ms=1, stocktake_id=sid, scope="skus:MILK", opened_by="clerk1", opened_ms=1,
                           approved_by="MGR1", zero_uncounted=False, uncounted=0,
                           lines=lines or (StocktakeLine(sku="MILK", lot="", unit="piece", counted=7, book=10,
                                                         variance=-3, unit_cost_fen=0, price_fen=350,
                                                         counted_by="clerk1"),))


def test_the_message_checks_its_variances_and_the_cloud_believes_one_note_per_stocktake():
    with pytest.raises(ProtocolError):
        StocktakeLine(sku="MILK", lot="", unit="piece", counted=7, book=10, variance=-2, unit_cost_fen=0,
                      price_fen=350, counted_by="clerk1")
    first, second = _note(SID, 1), _note(SID, 2)
    moved = {(STORE, SID, "MILK"): -3}  # its stocktake movements
    refused = judge_stocktakes([first, second], {}, frozenset({"MILK"}), moved)
    assert list(refused) == [second.event_id] and "posted already" in refused[second.event_id]
    assert judge_stocktakes([first], {SID: (STORE, first.event_id)}, frozenset({"MILK"}), moved) == {}  # redelivered
    unknown = judge_stocktakes([first], {}, frozenset({"BOKCHOY"}), moved)
    assert "unknown products MILK" in unknown[first.event_id]
    # variances that are not what the store moved for the stocktake are not believed (nor moves it does not note)
    for wrong in ({}, {(STORE, SID, "MILK"): -2}, {**moved, (STORE, SID, "BOKCHOY"): 5}, {("S002", SID, "MILK"): -3}):
        assert "is not what its stocktake movements moved" in judge_stocktakes([first], {}, frozenset({"MILK"}),
                                                                                wrong)[first.event_id]
    # no lot cost from the store: the catalogue's standard cost values it (-3 x 200 fen)
    assert valued(first.lines[0], CATALOGUE.get("MILK")) == (200, -600, -1050)


def test_the_cloud_values_a_stocktake_at_its_own_price_and_a_lot_cost_only_within_reason():
    line = StocktakeLine(sku="MILK", lot="L1", unit="piece", counted=7, book=10, variance=-3, unit_cost_fen=180,
                         price_fen=350, counted_by="c1")
    milk = CATALOGUE.get("MILK")
    assert valued(line, milk) == (180, -540, -1050)  # the lot's cost, believable: used
    # a hostile store inflates its losses: a price of its own and a lot cost 1000 times the list price
    hostile = dataclasses.replace(line, price_fen=9_999_999, unit_cost_fen=350_000)
    assert valued(hostile, milk) == (200, -600, -1050)  # the catalogue's price; the standard cost
    assert valued(dataclasses.replace(line, unit_cost_fen=3_500), milk)[0] == 3_500  # 10 x the list price: believed
    assert valued(dataclasses.replace(line, unit_cost_fen=3_501), milk)[0] == 200
    weighed = dataclasses.replace(line, sku="CARROT", unit="piece", counted=500, book=1000, variance=-500,
                                  unit_cost_fen=0)
    assert valued(weighed, CATALOGUE.get("CARROT")) == (300, -150, -250)  # grams by the catalogue, not the store


def test_the_open_body_reads_all_categories_or_skus():
    assert record_from_wire(OpenBody, {"scope": {"all": True}, "opened_by": "c1"}, "b").as_scope() == "all"
    body = record_from_wire(OpenBody, {"scope": {"skus": ["MILK", "MILK"]}, "opened_by": "c1"}, "b")
    assert body.as_scope() == {"skus": ["MILK"]}
    for bad in ({"both": 1}, {"skus": []}, {"categories": [3]}, {"skus": ["bad sku!"]}):
        with pytest.raises(ProtocolError):
            record_from_wire(OpenBody, {"scope": bad, "opened_by": "c1"}, "b")


def test_stock_moved_of_a_stocktake_round_trips_with_its_lot_and_the_cloud_believes_the_approval():
    st = counted(opened({"skus": ["MILK"]}), "MILK", "", 7, [LotLevel("", "", 10)])
    outcome = stocktake.approve(st, SID, MANAGER, False, BOOKS, {}, {"MILK": StockLevel("MILK", 10, 0)}, {}, {},
                                stamp())
    moved = next(e.event for e in outcome.effects if isinstance(e, MoveStock))
    assert isinstance(moved, StockMoved) and codec.decode(codec.encode(moved)) == moved
    events = [e.event for e in outcome.effects if isinstance(e, (MoveStock, Publish))]
    assert judge_stocktakes(events, {}, frozenset(CATALOGUE.by_sku), stocktake_moves(events)) == {}


def test_a_note_of_the_most_lines_with_the_longest_names_fits_in_a_frame():
    longest = StocktakeLine(sku="S" * 40, lot="L" * 40, unit="piece", counted=COUNT_MAX, book=-COUNT_MAX,
                            variance=2 * COUNT_MAX, unit_cost_fen=UNIT_COST_MAX_FEN, price_fen=UNIT_COST_MAX_FEN,
                            counted_by="C" * 32)
    lines = tuple(dataclasses.replace(longest, sku=f"{i:05d}" + "S" * 35) for i in range(STOCKTAKE_LINES_MAX))
    note = dataclasses.replace(_note(SID, 1), lines=lines)
    assert len(codec.encode(note)) <= codec.MAX_FRAME_BYTES
