"""Receiving delivery notes by lot, shrinkage by lot, what the cloud believes of them, and the loss report's values
(issue 16 items 1 and 3): the pure parts, data in and out. Figures are worked out by hand in the comments."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from cloud.console.snapshot import shrinkage_by_reason
from cloud.services.losses import Priced, as_csv, check_range, report
from edge.core import receiving
from edge.core.outcome import ChangeEscrow, InsertReceiving, MoveStock, Publish, Refused, SetLotCost
from edge.core.receiving import Note, NoteLine, receive_note, shrink_lots, write_off
from edge.core.state import Books, EventStamp, Moment, StockLevel
from protocol import codec
from protocol.ids import make_id
from protocol.lots import LotDelta, LotLevel, check_lot
from protocol.messages import EscrowReclaimRequested, StockMoved
from protocol.pricing import Catalogue, Product, load_rule_book
from protocol.receiving_facts import ReceivingKnown, judge_receiving
from protocol.receiving_messages import GoodsReceived, ReceivedLine, ShrinkageRecorded
from simulators.ops_receiving import WORLD, OpsReceiving

STORE = "S001"
NOW = Moment(wall_ms=1_767_229_200_000, mono_ms=42)  # 2026-01-01 09:00 in UTC+8
DAY = "2026-01-01"
CATALOGUE = Catalogue([
    Product(sku="PORK", name="Pork belly", category="meat", unit="kg", price_fen=4000, cost_fen=2500,
            shelf_life_days=3),
    Product(sku="MILK", name="Milk 1L", category="dairy", unit="piece", price_fen=350, cost_fen=200,
            shelf_life_days=7),
    Product(sku="RICE", name="Rice 5kg", category="grain", unit="piece", price_fen=3000, cost_fen=2000),
])
BOOKS = Books(CATALOGUE, load_rule_book({"version": 1, "rules": []}, CATALOGUE))


OWN = receiving.store_lot_name("Green Farm", "DN-1", 3)  # the lot the store names for line 3 of Green Farm's DN-1


def stamp(last_seq: int = 0) -> EventStamp:
    n = iter(range(1, 10**6))
    return EventStamp(STORE, last_seq, NOW, lambda: make_id(NOW.wall_ms, next(n)))


RID = make_id(NOW.wall_ms, 999_999)


def note(*lines: NoteLine, no: str = "DN-1") -> Note:
    return Note("Green Farm", no, "c1", lines)


def book(n: Note, levels=None, done=None, ratios=None):
    return receive_note(n, done, BOOKS, levels or {}, ratios or {"MILK": 4_000, "PORK": 4_000}, DAY, RID, stamp())


def test_a_note_with_two_lots_of_one_sku_and_an_under_delivery_books_each_lot_its_cost_and_the_grant():
    out = book(note(NoteLine("MILK", 20, 24, 180, "L1", "2026-01-05"),
                    NoteLine("MILK", 10, 10, 190, "L2", "2026-01-09"),
                    NoteLine("PORK", 5_000, 5_000)),  # grams; no lot, cost or use-by: the store names them
               levels={"MILK": StockLevel("MILK", 2, 0)})
    moves = [e.event for e in out.effects if isinstance(e, MoveStock)]
    assert [(m.sku, m.delta, m.on_hand_after, m.reason, m.reference) for m in moves] == [
        ("MILK", 20, 22, "receiving", RID), ("MILK", 10, 32, "receiving", RID), ("PORK", 5_000, 5_000, "receiving", RID)]
    assert [m.lots for m in moves] == [(LotDelta(lot="L1", delta=20, use_by="2026-01-05"),),
                                       (LotDelta(lot="L2", delta=10, use_by="2026-01-09"),),
                                       (LotDelta(lot=OWN, delta=5_000, use_by="2026-01-04"),)]  # 3 days' life
    assert [e for e in out.effects if isinstance(e, SetLotCost)] == [
        SetLotCost("MILK", "L1", 180), SetLotCost("MILK", "L2", 190), SetLotCost("PORK", OWN, 2500)]
    # 40% online: 22 on hand -> 8 granted; 32 -> 12, 4 more; 5000 g -> 2000 g
    assert [e for e in out.effects if isinstance(e, ChangeEscrow)] == [
        ChangeEscrow("MILK", 8), ChangeEscrow("MILK", 4), ChangeEscrow("PORK", 2000)]
    received = [e.event for e in out.effects if isinstance(e, Publish) and isinstance(e.event, GoodsReceived)]
    assert len(received) == 1 and received[0].receiving_id == RID
    assert [(x.sku, x.lot, x.qty, x.expected_qty, x.variance) for x in received[0].lines] == [
        ("MILK", "L1", 20, 24, -4), ("MILK", "L2", 10, 10, 0), ("PORK", OWN, 5000, 5000, 0)]
    assert codec.decode(codec.encode(received[0])) == received[0]
    assert out.reply["under"] == 4 and out.reply["over"] == 0
    assert [x["variance"] for x in out.reply["lines"]] == [-4, 0, 0]
    # the seqs run on without a gap: 3 movements, 3 grants, 1 note
    assert out.last_seq == 7 and sorted(e.seq for e in (*moves, *received)) == [1, 3, 5, 7]


def test_the_same_note_again_answers_the_first_result_and_other_lines_are_a_conflict():
    n = note(NoteLine("MILK", 5, 5, 180, "L1", "2026-01-05"))
    first = book(n)
    done = next(e for e in first.effects if isinstance(e, InsertReceiving))
    again = book(n, done=done)
    assert again.effects == () and again.reply == json.loads(json.dumps(first.reply))
    with pytest.raises(Refused, match="received already") as refused:
        book(note(NoteLine("MILK", 6, 5, 180, "L1", "2026-01-05")), done=done)
    assert refused.value.status == 409


@pytest.mark.parametrize(("line", "status", "says"), [
    (NoteLine("NOPE", 1, 1), 404, r"line 2 \(NOPE\): unknown product"),
    (NoteLine("MILK", 10_000_001, 1), 422, "qty and expected_qty"),
    (NoteLine("MILK", 0, 0), 422, "nothing expected and nothing received"),
    (NoteLine("MILK", 1, 1, use_by="2026-13-01"), 422, "not a calendar day"),
    (NoteLine("MILK", 1, 1, use_by="1/2/2026"), 422, "YYYY-MM-DD"),
    (NoteLine("MILK", 1, 1, use_by="2025-12-31"), 422, "already past"),
    (NoteLine("MILK", 1, 1, unit_cost_fen=-1), 422, "unit_cost_fen"),
    (NoteLine("MILK", 1, 1, unit_cost_fen=10_000_001), 422, "unit_cost_fen"),
    (NoteLine("MILK", 1, 1, unit_cost_fen=3_501), 422, "at most 10 times the list price"),  # milk: 3.50
    (NoteLine("MILK", 1, 1, lot="bad lot!"), 422, "a lot is"),
])
def test_a_bad_line_refuses_the_note_naming_it_and_books_nothing(line, status, says):
    with pytest.raises(Refused, match=says) as refused:
        book(note(NoteLine("PORK", 100, 100), line))
    assert refused.value.status == status and "line 2" in str(refused.value)


def test_goods_on_their_use_by_day_are_received_and_a_line_with_nothing_delivered_is_recorded_only():
    out = book(note(NoteLine("MILK", 3, 3, use_by=DAY), NoteLine("PORK", 0, 2_000)))
    moves = [e for e in out.effects if isinstance(e, MoveStock)]
    assert len(moves) == 1 and moves[0].event.lots[0].use_by == DAY
    assert out.reply["under"] == 2_000 and out.reply["lines"][1]["qty"] == 0


LEVELS = [LotLevel("L1", "2025-12-30", 4),  # expired
          LotLevel("L2", "2026-01-03", 10), LotLevel("L3", "2026-01-08", 10), LotLevel("", "", 2)]


def test_a_lot_still_holding_goods_of_another_use_by_is_not_merged_into_and_an_empty_one_is_refilled():
    milk = [LotLevel("L1", "2026-01-05", 6), LotLevel("E", "2025-12-20", 0), LotLevel("L2", "2026-01-05", 1)]
    out = receive_note(note(NoteLine("MILK", 10, 10, 180, "L1", "2026-01-03"),
                            NoteLine("MILK", 4, 4, 170, "E", "2026-01-06"),
                            NoteLine("MILK", 2, 2, 175, "L2", "2026-01-05"), no="DN-9"),
                       None, BOOKS, {}, {}, DAY, RID, stamp(), {"MILK": milk})
    moves = [e.event for e in out.effects if isinstance(e, MoveStock)]
    assert [m.lots for m in moves] == [(LotDelta(lot="L1_20260103", delta=10, use_by="2026-01-03"),),
                                       (LotDelta(lot="E", delta=4, use_by="2026-01-06"),),  # emptied: refilled
                                       (LotDelta(lot="L2", delta=2, use_by="2026-01-05"),)]  # same use-by: merged
    assert [e for e in out.effects if isinstance(e, SetLotCost)][0] == SetLotCost("MILK", "L1_20260103", 180)
    assert [x.lot for x in [e.event for e in out.effects if isinstance(e, Publish)
                            and isinstance(e.event, GoodsReceived)][0].lines] == ["L1_20260103", "E", "L2"]


def test_shrinkage_takes_a_named_lot_its_whole_lot_expired_lots_first_or_first_expiry_first_out():
    assert shrink_lots(LEVELS, 3, "L3", "damaged", DAY) == (LotDelta(lot="L3", delta=-3, use_by="2026-01-08"),)
    assert shrink_lots(LEVELS, None, "L1", "expired", DAY) == (LotDelta(lot="L1", delta=-4, use_by="2025-12-30"),)
    # expired without a lot: what expired goes first, then first-expiry-first-out
    assert shrink_lots(LEVELS, 6, None, "expired", DAY) == (LotDelta(lot="L1", delta=-4, use_by="2025-12-30"),
                                                            LotDelta(lot="L2", delta=-2, use_by="2026-01-03"))
    # any other reason too: the expired lot is written off first, it never keeps its stock
    assert shrink_lots(LEVELS, 12, None, "spoiled", DAY) == (LotDelta(lot="L1", delta=-4, use_by="2025-12-30"),
                                                             LotDelta(lot="L2", delta=-8, use_by="2026-01-03"))
    with pytest.raises(Refused, match="only 10 on hand"):
        shrink_lots(LEVELS, 11, "L2", "damaged", DAY)
    with pytest.raises(Refused, match="no lot L9"):
        shrink_lots(LEVELS, 1, "L9", "damaged", DAY)


def test_damaged_stock_is_written_off_an_expired_lot_before_unlotted_stock_goes_negative():
    # the only stock is an expired lot: a "damaged" write-off takes it, not the unlotted lot (which has none)
    levels = [LotLevel("OLD", "2025-12-20", 5), LotLevel("", "", 0)]
    for reason in ("damaged", "spoiled", "theft"):
        assert shrink_lots(levels, 3, None, reason, DAY) == (LotDelta(lot="OLD", delta=-3, use_by="2025-12-20"),)
    assert shrink_lots(levels, 7, None, "theft", DAY) == (LotDelta(lot="OLD", delta=-5, use_by="2025-12-20"),
                                                          LotDelta(lot="", delta=-2))


def test_a_write_off_carries_who_and_why_and_asks_escrow_back_when_it_eats_the_clouds_share():
    out = write_off("MILK", None, "expired", "L1", "c1", "smelled", RID, BOOKS, StockLevel("MILK", 26, 24), LEVELS,
                    DAY, stamp())
    moved, recorded, asked = [e.event for e in out.effects if isinstance(e, (MoveStock, Publish))]
    assert isinstance(moved, StockMoved) and (moved.delta, moved.shrinkage_reason, moved.reference) == (-4, "expired", RID)
    assert moved.lots == (LotDelta(lot="L1", delta=-4, use_by="2025-12-30"),)
    assert isinstance(recorded, ShrinkageRecorded)
    assert (recorded.movement_event_id, recorded.recorded_by, recorded.note, recorded.qty) == (moved.event_id, "c1",
                                                                                               "smelled", 4)
    assert isinstance(asked, EscrowReclaimRequested) and asked.qty == 2  # 22 left, 24 the cloud's
    assert out.reply["lots"] == [{"lot": "L1", "qty": 4, "use_by": "2025-12-30"}]
    with pytest.raises(Refused, match="cannot write off"):
        write_off("MILK", 30, "theft", None, "c1", "", RID, BOOKS, StockLevel("MILK", 26, 0), LEVELS, DAY, stamp())
    with pytest.raises(Refused, match="unknown product"):
        write_off("NOPE", 1, "theft", None, "c1", "", RID, BOOKS, StockLevel("NOPE", 0, 0), [], DAY, stamp())


def _received(store: str, receiving_id: str, note_no: str = "DN-1", sku: str = "MILK", n: int = 1) -> GoodsReceived:
    return GoodsReceived(event_id=make_id(NOW.wall_ms, 500 + n), store_id=store, seq=n, wall_ms=NOW.wall_ms, mono_ms=0,
                         receiving_id=receiving_id, supplier="Green Farm", note_no=note_no, received_by="c1",
                         lines=(ReceivedLine(sku=sku, lot="L1", use_by="", qty=1, expected_qty=1, unit_cost_fen=1),))


def _moved_for(e: GoodsReceived, n: int = 0, qty: int | None = None, lot: str | None = None) -> StockMoved:
    """The store's receiving movement of the note's first line (as the box stamps it before the note)."""
    line = e.lines[0]
    q = line.qty if qty is None else qty
    return StockMoved(event_id=make_id(NOW.wall_ms, 700 + e.seq * 10 + n), store_id=e.store_id, seq=e.seq, wall_ms=0,
                      mono_ms=0, sku=line.sku, delta=q, reason="receiving", shrinkage_reason="", on_hand_after=q,
                      reference=e.receiving_id, lots=(LotDelta(lot=line.lot if lot is None else lot, delta=q),))


def test_the_cloud_believes_a_store_only_about_its_own_receivings_and_shrinkage_movements():
    known = ReceivingKnown(products=frozenset({"MILK"}), receivings={RID: ("S002", "x")},
                           notes={("S001", "Green Farm", "DN-7"): make_id(NOW.wall_ms, 7)})
    other = make_id(NOW.wall_ms, 8)
    events = [_received("S001", RID, n=1), _received("S001", other, "DN-7", n=2),
              _received("S001", make_id(NOW.wall_ms, 9), "DN-9", sku="GHOST", n=3),
              _received("S001", make_id(NOW.wall_ms, 10), "DN-10", n=4),
              _received("S001", make_id(NOW.wall_ms, 11), "DN-10", n=5)]  # the same note again in the batch
    refused = judge_receiving([_moved_for(events[3]), *events], known)
    assert "is store S002's" in refused[events[0].event_id]
    assert "received already" in refused[events[1].event_id]
    assert "unknown products GHOST" in refused[events[2].event_id]
    assert events[3].event_id not in refused and "received already" in refused[events[4].event_id]
    dear = _received("S001", make_id(NOW.wall_ms, 12), "DN-12", n=6)
    assert judge_receiving([_moved_for(dear), dear], ReceivingKnown(products=frozenset({"MILK"}),
                                                                    prices={"MILK": 1})) == {}
    assert "over 10 times its list price" in judge_receiving([dear], ReceivingKnown(
        products=frozenset({"MILK"}), prices={"MILK": 0}))[dear.event_id]
    move = StockMoved(event_id=make_id(NOW.wall_ms, 20), store_id="S001", seq=9, wall_ms=0, mono_ms=0, sku="MILK",
                      delta=-2, reason="shrinkage", shrinkage_reason="spoiled", on_hand_after=1, reference=RID)

    def note_of(store: str, qty: int) -> ShrinkageRecorded:
        return ShrinkageRecorded(event_id=make_id(NOW.wall_ms, 30 + qty), store_id=store, seq=10, wall_ms=0,
                                 mono_ms=0, shrinkage_id=RID, movement_event_id=move.event_id, sku="MILK", qty=qty,
                                 reason="spoiled", lot="", recorded_by="c1", note="")
    good, wrong = note_of("S001", 2), note_of("S001", 3)
    refused = judge_receiving([move, good, wrong], ReceivingKnown(products=frozenset({"MILK"})))
    assert set(refused) == {wrong.event_id}
    theirs = note_of("S003", 2)
    assert "is store S001's" in judge_receiving([theirs], ReceivingKnown(moves={move.event_id: ("S001", "MILK", 2, RID)}
                                                                        ))[theirs.event_id]


PRICED = {"PORK": Priced("meat", True, 2500, 4000), "MILK": Priced("dairy", False, 200, 350)}


def test_a_hostile_stores_note_without_the_receiving_movements_it_claims_is_refused():
    known = ReceivingKnown(products=frozenset({"MILK"}), prices={"MILK": 350})
    note = _received("S001", make_id(NOW.wall_ms, 40), "DN-40", n=7)
    assert "moved 0" in judge_receiving([note], known)[note.event_id]  # no movements at all: a made-up note
    assert "moved 5" in judge_receiving([_moved_for(note, qty=5), note], known)[note.event_id]  # not its quantity
    assert "lot L1" in judge_receiving([_moved_for(note, lot="L9"), note], known)[note.event_id]  # not its lot
    assert judge_receiving([_moved_for(note), note], known) == {}
    # the movements recorded in an earlier batch count
    recorded = ReceivingKnown(products=frozenset({"MILK"}), prices={"MILK": 350},
                              received={("S001", note.receiving_id, "MILK", "L1"): 1})
    assert judge_receiving([note], recorded) == {}
    # another store's movements under the same receiving id do not count
    theirs = dataclasses.replace(_moved_for(note), store_id="S002")
    assert "moved 0" in judge_receiving([theirs, note], known)[note.event_id]


def test_the_loss_report_values_each_lot_at_its_own_cost_else_the_products_and_at_price():
    rows = [  # 1250 g of a lot bought at 22.00/kg; 500 g unlotted at the standard 25.00/kg; 3 + 1 bottles of milk
        {"store_id": "S001", "sku": "PORK", "lot": "L1", "reason": "spoiled", "day": DAY, "lines": 1, "qty": 1250,
         "lot_cost_fen": 2200},
        {"store_id": "S002", "sku": "PORK", "lot": "", "reason": "tasting", "day": DAY, "lines": 1, "qty": 500,
         "lot_cost_fen": None},
        {"store_id": "S001", "sku": "MILK", "lot": "L2", "reason": "spoiled", "day": "2026-01-02", "lines": 2,
         "qty": 3, "lot_cost_fen": 180},
        {"store_id": "S001", "sku": "MILK", "lot": "", "reason": "theft", "day": "2026-01-02", "lines": 1, "qty": 1,
         "lot_cost_fen": None},
        {"store_id": "S001", "sku": "GONE", "lot": "", "reason": "theft", "day": DAY, "lines": 1, "qty": 9,
         "lot_cost_fen": None},
    ]
    by_reason = {r["key"]: r for r in report(rows, PRICED, "reason")["rows"]}
    # spoiled: 1.25 kg x 22.00 = 27.50 and 3 x 1.80 = 5.40 at cost; 1.25 x 40.00 = 50.00 and 3 x 3.50 at price
    assert by_reason["spoiled"] == {"key": "spoiled", "lines": 3, "pieces": 3, "grams": 1250,
                                    "value_at_cost_fen": 2750 + 540, "value_at_price_fen": 5000 + 1050,
                                    "unpriced_lines": 0}
    assert by_reason["tasting"]["value_at_cost_fen"] == 1250 and by_reason["tasting"]["value_at_price_fen"] == 2000
    assert by_reason["theft"]["unpriced_lines"] == 1 and by_reason["theft"]["value_at_cost_fen"] == 200
    totals = report(rows, PRICED, "store")["totals"]
    assert (totals["value_at_cost_fen"], totals["value_at_price_fen"]) == (2750 + 540 + 1250 + 200,
                                                                          5000 + 1050 + 2000 + 350)
    assert {r["key"]: r["value_at_cost_fen"] for r in report(rows, PRICED, "category")["rows"]} == {
        "meat": 4000, "dairy": 740, "(not in the catalogue)": 0}
    assert {r["key"]: r["lines"] for r in report(rows, PRICED, "day")["rows"]} == {DAY: 3, "2026-01-02": 3}
    assert {r["key"] for r in report(rows, PRICED, "store")["rows"]} == {"S001", "S002"}
    lines = as_csv(report(rows, PRICED, "reason")).splitlines()
    assert lines[0] == "reason,lines,pieces,grams,value_at_cost_fen,value_at_price_fen,unpriced_lines"
    assert lines[-1] == "total,6,4,1750,4740,8400,1"
    assert check_range("2026-01-02", "2026-01-01") == "to is before from" and check_range("x", DAY)
    assert check_range(DAY, DAY) is None


def test_receiving_module_names_a_lot_per_supplier_note_and_line():
    x, y = receiving.store_lot_name("Supplier X", "100", 1), receiving.store_lot_name("Supplier Y", "100", 1)
    assert x != y and x.startswith("RSupp") and x.endswith("-100-1")  # two suppliers' note 100 are two lots
    assert receiving.store_lot_name("绿色农场", "100", 1) != receiving.store_lot_name("新鲜农场", "100", 1)
    long = receiving.store_lot_name("Green Farm", "N" * 32, 100)
    check_lot(long)
    assert len(long) <= 40 and long != receiving.store_lot_name("Green Farm", "N" * 31 + "M", 100)
    assert receiving.use_by_after(DAY, 3) == "2026-01-04" and receiving.use_by_after(DAY, 0) == ""


def test_the_consoles_loss_chart_adds_the_value_at_cost_when_the_rows_carry_it():
    rows = [{"reason": "spoiled", "sku": "MILK", "events": 2, "qty": 3, "cost_fen": 540},
            {"reason": "spoiled", "sku": "PORK", "events": 1, "qty": 1250, "cost_fen": 2750}]
    prices = {"MILK": {"unit": "piece", "price_fen": 350}, "PORK": {"unit": "kg", "price_fen": 4000}}
    assert shrinkage_by_reason(rows, prices) == [{"reason": "spoiled", "events": 3, "value_fen": 1050 + 5000,
                                                  "unpriced_events": 0, "cost_fen": 540 + 2750}]


def test_the_simulated_clerks_notes_are_ones_the_box_books_two_lots_of_one_product_and_a_short_line():
    world = json.loads(Path(WORLD).read_text())
    catalogue = Catalogue.from_data(world["catalogue"])
    books = Books(catalogue, load_rule_book({"version": 1, "rules": []}, catalogue))
    staff = OpsReceiving(SimpleNamespace(lanes={}, world_path=WORLD), random.Random(5), Counter(), asyncio.Event())
    for _ in range(20):
        body = staff.note("S001", DAY)
        n = Note(body["supplier"], body["note_no"], body["received_by"], tuple(
            NoteLine(x["sku"], x["qty"], x["expected_qty"], x["unit_cost_fen"], x.get("lot", ""), x.get("use_by", ""))
            for x in body["lines"]))
        out = receive_note(n, None, books, {}, {}, DAY, RID, stamp())  # refuses nothing
        lines = out.reply["lines"]
        assert lines[0]["sku"] == lines[1]["sku"] and lines[0]["use_by"] < lines[1]["use_by"]
        assert all(x["use_by"] >= DAY for x in lines[:2])  # one note in 3 brings a lot on its use-by day
        assert len(lines) == 2 or lines[2]["variance"] < 0


def test_an_earlier_write_off_is_found_by_its_reference_through_an_index_not_a_scan_of_all_movements():
    import sqlite3

    from edge import receiving_db, store_db
    db = sqlite3.connect(":memory:")
    db.executescript(store_db.SCHEMA + receiving_db.SCHEMA)
    plan = " ".join(str(r[-1]) for r in db.execute(
        "explain query plan select event_id, sku, delta, shrinkage_reason, on_hand_after from movements "
        "where reason = 'shrinkage' and reference = ?", ("X",)))
    assert "movements_shrinkage_ref" in plan, plan


async def test_at_the_box_a_lot_refilled_from_nothing_takes_the_new_use_by_and_one_with_stock_keeps_its_own():
    import aiosqlite

    from edge import lots_db, store_db

    def moved(n: int, lot: str, delta: int, use_by: str) -> StockMoved:
        return StockMoved(store_id=STORE, seq=n, event_id=make_id(NOW.wall_ms, n), wall_ms=NOW.wall_ms, mono_ms=n,
                          sku="MILK",
                          delta=delta, reason="receiving" if delta > 0 else "sale", shrinkage_reason="",
                          on_hand_after=0, reference="x", lots=(LotDelta(lot=lot, delta=delta, use_by=use_by),))
    async with aiosqlite.connect(":memory:") as db:
        await db.executescript(store_db.SCHEMA + lots_db.SCHEMA)
        await lots_db.move(db, moved(1, "L1", 5, "2025-12-05"))
        await lots_db.move(db, moved(2, "L1", -5, "2025-12-05"))  # sold out
        await lots_db.move(db, moved(3, "L1", 4, "2026-01-06"))  # refilled: not "expired" under its old date
        await lots_db.move(db, moved(4, "L1", 1, "2026-01-02"))  # with stock: keeps its date (the core renames)
        assert await lots_db.lot_levels(db, "MILK") == [LotLevel("L1", "2026-01-06", 5)]
