"""Transfers between stores as pure decisions: the store's steps (edge.core.transfers) and what the cloud believes
of them (protocol.transfer_facts). Worked by hand in the comments."""
from __future__ import annotations

import pytest

from edge.core import transfers
from edge.core.outcome import ChangeEscrow, MarkApplied, MoveStock, Publish, Refused, SaveTransfer
from edge.core.state import Books, EventStamp, Moment, StockLevel
from protocol import codec
from protocol.ids import make_id
from protocol.lots import LotDelta, LotLevel
from protocol.messages import EscrowGranted, EscrowReclaimRequested, StockMoved
from protocol.transfer_facts import TransferFacts, TransfersKnown, judge_transfers, over_receipt_max
from protocol.transfer_messages import (
    TransferArriving,
    TransferDispatched,
    TransferLine,
    TransferLotLine,
    TransferReceived,
    TransferRequested,
    TransferToDispatch,
)

NOW = Moment(1_760_000_000_000, 5_000)
DAY = "2025-10-09"
TID = make_id(NOW.wall_ms, 42)


def stamp(store: str = "S002") -> EventStamp:
    n = iter(range(1, 10**6))
    return EventStamp(store, 7, NOW, lambda: make_id(NOW.wall_ms, next(n)))


def env(store: str, seq: int = 1) -> dict:
    return {"event_id": make_id(NOW.wall_ms, 1000 + seq), "store_id": store, "seq": seq, "wall_ms": NOW.wall_ms,
            "mono_ms": 1}


def of(outcome, cls):
    return [e for e in outcome.effects if isinstance(e, cls)]


def test_b_asks_a_and_a_retry_answers_the_first_result():
    out = transfers.request(TID, "S002", "S001", [("MILK", 4), ("PORK", 500), ("MILK", 2)], "ann", "short of milk",
                            None, Books(), stamp())
    [event] = [e.event for e in of(out, Publish)]
    assert isinstance(event, TransferRequested) and event.from_store == "S001"
    assert [(x.sku, x.qty) for x in event.lines] == [("MILK", 6), ("PORK", 500)]  # one line per sku
    [saved] = of(out, SaveTransfer)
    assert (saved.transfer.direction, saved.transfer.status) == ("in", "requested")
    again = transfers.request(TID, "S002", "S001", [("MILK", 1)], "ann", "", saved.transfer, Books(), stamp())
    assert again.effects == () and again.reply == out.reply
    with pytest.raises(Refused, match="cannot ask itself"):
        transfers.request(TID, "S002", "S002", [("MILK", 1)], "ann", "", None, Books(), stamp())


def to_dispatch() -> transfers.Transfer:
    msg = TransferToDispatch(**env("S001"), transfer_id=TID, to_store="S002",
                             lines=(TransferLine(sku="MILK", qty=10), TransferLine(sku="PORK", qty=800)),
                             requested_by="S002:ann", reason="")
    out = transfers.told(msg, False, None, NOW.wall_ms)
    assert isinstance(out.effects[0], MarkApplied)
    assert transfers.told(msg, True, None, NOW.wall_ms).reply == "duplicate"
    return out.effects[1].transfer


MILK_LOTS = [LotLevel("L-OLD", "2025-10-08", 5),  # expired on DAY: never sent
             LotLevel("L1", "2025-10-10", 3), LotLevel("L2", "2025-10-12", 20), LotLevel("", "", 2)]


def test_a_dispatches_fefo_over_lots_not_expired_and_asks_escrow_back_when_it_eats_the_clouds_share():
    t = to_dispatch()
    levels = {"MILK": StockLevel("MILK", 30, 26)}
    out = transfers.dispatch(t, TID, "S001", [transfers.Send("MILK", 7)], "bob", levels, {"MILK": MILK_LOTS}, DAY,
                             stamp("S001"))
    [move] = of(out, MoveStock)
    # 3 from L1 (earliest use-by not expired), then 4 from L2; the expired L-OLD and the unlotted stay
    assert move.event.lots == (LotDelta(lot="L1", delta=-3, use_by="2025-10-10"),
                               LotDelta(lot="L2", delta=-4, use_by="2025-10-12"))
    assert (move.event.delta, move.event.reason, move.event.on_hand_after, move.event.reference) == \
        (-7, "transfer_out", 23, TID)
    events = [e.event for e in of(out, Publish)]
    assert isinstance(events[0], EscrowReclaimRequested) and events[0].qty == 3  # escrow 26 > on hand 23
    sent = events[-1]
    assert isinstance(sent, TransferDispatched)
    assert [(x.sku, x.lot, x.use_by, x.qty) for x in sent.lines] == [("MILK", "L1", "2025-10-10", 3),
                                                                    ("MILK", "L2", "2025-10-12", 4)]
    codec.decode(codec.encode(sent))  # it travels
    done = of(out, SaveTransfer)[0].transfer
    assert done.status == "dispatched"
    again = transfers.dispatch(done, TID, "S001", [transfers.Send("MILK", 1)], "bob", levels, {}, DAY, stamp("S001"))
    assert again.effects == () and again.reply == out.reply  # dispatch twice: the first result


def test_a_dispatch_is_bounded_by_what_was_asked_and_what_each_lot_holds():
    t = to_dispatch()
    levels = {"MILK": StockLevel("MILK", 30, 0), "PORK": StockLevel("PORK", 2_000, 0)}
    lots = {"MILK": MILK_LOTS, "PORK": [LotLevel("P1", "2025-10-11", 2_000)]}
    with pytest.raises(Refused, match="MILK: 11 to send, 10 asked"):
        transfers.dispatch(t, TID, "S001", [transfers.Send("MILK", 6), transfers.Send("MILK", 5)], "bob", levels,
                           lots, DAY, stamp("S001"))
    with pytest.raises(Refused, match="EGGS: not asked"):
        transfers.dispatch(t, TID, "S001", [transfers.Send("EGGS", 1)], "bob", levels, lots, DAY, stamp("S001"))
    with pytest.raises(Refused, match="lot L-OLD is past its use-by"):
        transfers.dispatch(t, TID, "S001", [transfers.Send("MILK", 1, "L-OLD")], "bob", levels, lots, DAY,
                           stamp("S001"))
    with pytest.raises(Refused, match="4 to take from lot L1, 3 there"):
        transfers.dispatch(t, TID, "S001", [transfers.Send("MILK", 4, "L1")], "bob", levels, lots, DAY, stamp("S001"))
    # named lot + fefo for the rest: 2 of L2 named, then fefo 3 from L1; a weighed line from its lot
    out = transfers.dispatch(t, TID, "S001", [transfers.Send("MILK", 2, "L2"), transfers.Send("MILK", 3),
                                              transfers.Send("PORK", 800)], "bob", levels, lots, DAY, stamp("S001"))
    milk, pork = of(out, MoveStock)
    assert milk.event.lots == (LotDelta(lot="L2", delta=-2, use_by="2025-10-12"),
                               LotDelta(lot="L1", delta=-3, use_by="2025-10-10"))
    assert pork.event.lots == (LotDelta(lot="P1", delta=-800, use_by="2025-10-11"),)
    # past the lots not expired (3 + 20) and the unlotted 2, a fefo line is refused, not sent from nowhere
    tight = {"MILK": [LotLevel("L1", "2025-10-10", 3), LotLevel("", "", 2)]}
    with pytest.raises(Refused, match="unlotted stock"):
        transfers.dispatch(t, TID, "S001", [transfers.Send("MILK", 6)], "bob", levels, tight, DAY, stamp("S001"))
    with pytest.raises(Refused, match="comes to this store"):
        transfers.dispatch(transfers.Transfer(TID, "in", "S001", "arriving", ()), TID, "S002", [], "bob", {}, {}, DAY,
                           stamp())


def arriving(known: transfers.Transfer | None = None) -> transfers.Transfer:
    msg = TransferArriving(**env("S002"), transfer_id=TID, from_store="S001",
                           asked_lines=(TransferLine(sku="MILK", qty=10),),
                           lines=(TransferLotLine(sku="MILK", lot="L1", use_by="2025-10-10", qty=3),
                                  TransferLotLine(sku="MILK", lot="L2", use_by="2025-10-12", qty=4)),
                           dispatched_by="bob", reason="")
    return transfers.told(msg, False, known, NOW.wall_ms).effects[1].transfer


def test_b_receives_into_the_same_lots_with_a_grant_and_the_short_line_recorded():
    requested = transfers.Transfer(TID, "in", "S001", "requested", (("MILK", 10),), requested_by="ann")
    t = arriving(requested)
    assert (t.status, t.requested_by) == ("arriving", "ann")
    levels = {"MILK": StockLevel("MILK", 4, 0)}
    out = transfers.receive(t, TID, "S002", [("MILK", "L1", 3), ("MILK", "L2", 3)], "cat", levels,
                            {"MILK": 4_000}, stamp())
    [move] = of(out, MoveStock)
    assert move.event.lots == (LotDelta(lot="L1", delta=3, use_by="2025-10-10"),
                               LotDelta(lot="L2", delta=3, use_by="2025-10-12"))
    assert (move.event.delta, move.event.reason, move.event.on_hand_after) == (6, "transfer_in", 10)
    assert of(out, ChangeEscrow) == [ChangeEscrow("MILK", 4)]  # 40% of 10 on hand
    events = [e.event for e in of(out, Publish)]
    assert isinstance(events[0], EscrowGranted) and events[0].qty == 4
    got = events[-1]
    assert isinstance(got, TransferReceived)
    assert [(x.lot, x.qty) for x in got.lines] == [("L1", 3), ("L2", 3)]
    assert out.reply["discrepancies"] == [{"sku": "MILK", "lot": "L2",
                                              "use_by": "2025-10-12", "dispatched": 4, "received": 3, "short": 1}]
    done = of(out, SaveTransfer)[0].transfer
    assert transfers.receive(done, TID, "S002", [], "cat", levels, {}, stamp()).reply == out.reply


def test_b_receives_a_lot_still_holding_goods_of_another_use_by_as_a_lot_of_its_own():
    from protocol.lots import arrival_names
    t = arriving(transfers.Transfer(TID, "in", "S001", "requested", (("MILK", 10),), requested_by="ann"))
    here = {"MILK": [LotLevel("L1", "2025-10-20", 2), LotLevel("L2", "2025-09-01", 0)]}  # L2 sold out long ago
    out = transfers.receive(t, TID, "S002", [("MILK", "L1", 3), ("MILK", "L2", 4)], "cat",
                            {"MILK": StockLevel("MILK", 2, 0)}, {}, stamp(), here)
    [move] = of(out, MoveStock)
    assert move.event.lots == (LotDelta(lot="L1_20251010", delta=3, use_by="2025-10-10"),  # not merged into L1
                               LotDelta(lot="L2", delta=4, use_by="2025-10-12"))  # refilled: takes the new use-by
    assert "L1_20251010" in arrival_names("L1", "2025-10-10")
    got = [e.event for e in of(out, Publish)][-1]
    assert [(x.lot, x.qty) for x in got.lines] == [("L1", 3), ("L2", 4)]  # the receipt names what was dispatched


def test_b_receives_only_dispatched_lots_and_never_far_past_them():
    t = arriving()
    with pytest.raises(Refused, match="lot L9 was not dispatched"):
        transfers.receive(t, TID, "S002", [("MILK", "L9", 1)], "cat", {}, {}, stamp())
    assert over_receipt_max(4) == 5 and over_receipt_max(1000) == 1100
    with pytest.raises(Refused, match="6 received of lot L2, 4 dispatched"):
        transfers.receive(t, TID, "S002", [("MILK", "L2", 6)], "cat", {}, {}, stamp())
    with pytest.raises(Refused, match="not dispatched yet"):
        transfers.receive(transfers.Transfer(TID, "in", "S001", "requested", ()), TID, "S002", [], "cat", {}, {},
                          stamp())


# ---- what the cloud believes ------------------------------------------------------------------------------

def moved(store: str, sku: str, delta: int, reason: str, seq: int, ref: str = TID) -> StockMoved:
    """A transfer movement as a box sends it (a transfer_in into lot L1, as the tests' dispatches send it)."""
    lots = (LotDelta(lot="L1", delta=delta, use_by="2025-10-10"),) if reason == "transfer_in" and delta > 0 else ()
    return StockMoved(**env(store, seq), sku=sku, delta=delta, reason=reason, shrinkage_reason="",
                      on_hand_after=max(delta, 0) + 10, reference=ref, lots=lots)


KNOWN = TransfersKnown(stores=frozenset({"S001", "S002", "S003"}), products=frozenset({"MILK", "PORK"}))


def test_the_cloud_believes_each_store_only_about_its_own_side():
    ask = TransferRequested(**env("S002", 1), transfer_id=TID, from_store="S001",
                            lines=(TransferLine(sku="MILK", qty=10),), requested_by="ann", reason="")
    out = moved("S001", "MILK", -7, "transfer_out", 2)
    sent = TransferDispatched(**env("S001", 3), transfer_id=TID, to_store="S002", dispatched_by="bob",
                              lines=(TransferLotLine(sku="MILK", lot="L1", use_by="2025-10-10", qty=7),))
    came = moved("S002", "MILK", 6, "transfer_in", 4)
    got = TransferReceived(**env("S002", 5), transfer_id=TID, from_store="S001", received_by="cat",
                           lines=(TransferLotLine(sku="MILK", lot="L1", use_by="2025-10-10", qty=6),))
    assert judge_transfers([ask, out, sent, came, got], KNOWN) == {}

    requested = TransfersKnown(transfers={TID: TransferFacts(TID, "S001", "S002", "requested", {"MILK": 10})},
                               stores=KNOWN.stores, products=KNOWN.products)
    # a hostile S003 dispatching a transfer not asked of it, or receiving one not sent to it
    hostile = TransferDispatched(**env("S003", 3), transfer_id=TID, to_store="S002", dispatched_by="eve",
                                 lines=(TransferLotLine(sku="MILK", lot="", use_by="", qty=7),))
    assert "not asked of this store" in judge_transfers([hostile], requested)[hostile.event_id]
    dispatched = TransfersKnown(transfers={TID: TransferFacts(TID, "S001", "S002", "dispatched", {"MILK": 10},
                                                              {("MILK", "L1"): 7})}, stores=KNOWN.stores)
    stolen = TransferReceived(**env("S003", 5), transfer_id=TID, from_store="S001", received_by="eve",
                              lines=(TransferLotLine(sku="MILK", lot="L1", use_by="", qty=7),))
    assert "not sent to this store" in judge_transfers([stolen], dispatched)[stolen.event_id]
    # stock out of nothing: a transfer_in past the dispatch (7 sent: 8 at most), or for no transfer
    too_much = moved("S002", "MILK", 9, "transfer_in", 4)
    assert "past the 8 its dispatch allows" in judge_transfers([too_much], dispatched)[too_much.event_id]
    stray = moved("S002", "MILK", 1, "transfer_in", 4, ref=make_id(NOW.wall_ms, 7))
    assert "no such transfer" in judge_transfers([stray], dispatched)[stray.event_id]
    # A says it sent more than asked, or more than its own movements took off its stock
    over = TransferDispatched(**env("S001", 3), transfer_id=TID, to_store="S002", dispatched_by="bob",
                              lines=(TransferLotLine(sku="MILK", lot="", use_by="", qty=11),))
    assert "11 MILK sent, 10 asked" in judge_transfers([over], requested)[over.event_id]
    assert "movements took 0" in judge_transfers([sent], requested)[sent.event_id]
    # a request for another store's account, or from a store that does not exist
    ghost = TransferRequested(**env("S002", 1), transfer_id=make_id(NOW.wall_ms, 9), from_store="S999",
                              lines=(TransferLine(sku="MILK", qty=1),), requested_by="ann", reason="")
    assert "no store S999" in judge_transfers([ghost], KNOWN)[ghost.event_id]


def test_a_cancellation_stops_a_transfer_not_dispatched_and_leaves_one_dispatched_alone():
    from protocol.transfer_messages import TransferCancelled
    cancel = TransferCancelled(**env("S001", 9), transfer_id=TID, reason="found elsewhere")
    t = to_dispatch()
    out = transfers.told(cancel, False, t, NOW.wall_ms)
    stopped = of(out, SaveTransfer)[0].transfer
    assert (stopped.status, stopped.reason) == ("cancelled", "found elsewhere")
    with pytest.raises(Refused, match="is cancelled, not to dispatch"):
        transfers.dispatch(stopped, TID, "S001", [transfers.Send("MILK", 1)], "bob", {}, {}, DAY, stamp("S001"))
    gone = transfers.Transfer(TID, "out", "S002", "dispatched", (("MILK", 10),), sent=(("MILK", "L1", "", 3),))
    assert of(transfers.told(cancel, False, gone, NOW.wall_ms), SaveTransfer) == []  # the goods left: kept
    assert of(transfers.told(cancel, False, None, NOW.wall_ms), SaveTransfer) == []  # never heard of: nothing
    # the cloud takes a dispatch A made before it heard of the cancellation
    cancelled = TransfersKnown(transfers={TID: TransferFacts(TID, "S001", "S002", "cancelled", {"MILK": 10})},
                               moved={(TID, "S001", "MILK", "transfer_out"): 3}, stores=KNOWN.stores)
    sent = TransferDispatched(**env("S001", 3), transfer_id=TID, to_store="S002", dispatched_by="bob",
                              lines=(TransferLotLine(sku="MILK", lot="L1", use_by="", qty=3),))
    assert judge_transfers([sent], cancelled) == {}


def test_an_arrival_over_a_request_hq_cancelled_here_makes_it_arriving_and_b_receives_it():
    """B asked, HQ cancelled (B's row cancelled), A had dispatched offline and the cloud took it: the arrival wins."""
    from protocol.transfer_messages import TransferCancelled
    asked = transfers.request(TID, "S002", "S001", [("MILK", 4)], "ann", "", None, Books(), stamp())
    mine = of(asked, SaveTransfer)[0].transfer
    cancel = TransferCancelled(**env("S002", 8), transfer_id=TID, reason="found elsewhere")
    cancelled = of(transfers.told(cancel, False, mine, NOW.wall_ms), SaveTransfer)[0].transfer
    assert cancelled.status == "cancelled"
    arriving = TransferArriving(**env("S002", 9), transfer_id=TID, from_store="S001",
                                asked_lines=(TransferLine(sku="MILK", qty=4),), dispatched_by="bob", reason="",
                                lines=(TransferLotLine(sku="MILK", lot="L1", use_by="2025-10-12", qty=4),))
    row = of(transfers.told(arriving, False, cancelled, NOW.wall_ms), SaveTransfer)[0].transfer
    assert (row.status, row.requested_by, row.sent) == ("arriving", "ann", (("MILK", "L1", "2025-10-12", 4),))
    got = transfers.receive(row, TID, "S002", [("MILK", "L1", 4)], "cat", {}, {}, stamp())
    assert [e.event.delta for e in of(got, MoveStock)] == [4]
    # an out-going transfer of this store is never turned into an arrival
    out = transfers.Transfer(TID, "out", "S001", "cancelled", (("MILK", 4),))
    assert of(transfers.told(arriving, False, out, NOW.wall_ms), SaveTransfer) == []


def test_a_transfer_out_movement_is_believed_only_with_its_dispatch():
    requested = TransfersKnown(transfers={TID: TransferFacts(TID, "S001", "S002", "requested", {"MILK": 10})},
                               stores=KNOWN.stores, products=KNOWN.products)
    # A's dispatch is refused (it says 11 sent of 10 asked): its movement takes nothing off A's stock in the cloud
    out = moved("S001", "MILK", -11, "transfer_out", 2)
    over = TransferDispatched(**env("S001", 3), transfer_id=TID, to_store="S002", dispatched_by="bob",
                              lines=(TransferLotLine(sku="MILK", lot="", use_by="", qty=11),))
    refused = judge_transfers([out, over], requested)
    assert set(refused) == {out.event_id, over.event_id}
    fine = moved("S001", "MILK", -7, "transfer_out", 2)
    sent = TransferDispatched(**env("S001", 3), transfer_id=TID, to_store="S002", dispatched_by="bob",
                              lines=(TransferLotLine(sku="MILK", lot="", use_by="", qty=7),))
    lies = TransferDispatched(**env("S001", 3), transfer_id=TID, to_store="S002", dispatched_by="bob",
                              lines=(TransferLotLine(sku="MILK", lot="", use_by="", qty=6),))
    refused = judge_transfers([fine, lies], requested)  # 7 taken off, 6 said sent: both refused
    assert "its dispatch is refused" in refused[fine.event_id] and "movements took 7" in refused[lies.event_id]
    assert judge_transfers([fine], requested) == {}  # its dispatch may come in the next batch
    assert judge_transfers([fine, sent], requested) == {}
    # a transfer_out for no transfer, for another store's, past what was asked, or for one dispatched already
    stray = moved("S001", "MILK", -3, "transfer_out", 2, ref=make_id(NOW.wall_ms, 7))
    assert "no such transfer" in judge_transfers([stray], requested)[stray.event_id]
    theirs = moved("S003", "MILK", -3, "transfer_out", 2)
    assert "asked of S001" in judge_transfers([theirs], requested)[theirs.event_id]
    assert "11 in all, 10 asked" in judge_transfers([out], requested)[out.event_id]
    dispatched = TransfersKnown(transfers={TID: TransferFacts(TID, "S001", "S002", "dispatched", {"MILK": 10},
                                                              {("MILK", ""): 7})}, stores=KNOWN.stores)
    assert "not to dispatch" in judge_transfers([fine], dispatched)[fine.event_id]


def test_one_reckoning_of_discrepancies_for_the_store_and_the_cloud():
    from protocol.transfer_facts import discrepancies
    sent = [("MILK", "L1", "2025-10-10", 10), ("MILK", "L2", "2025-10-12", 4), ("PORK", "", "", 800)]
    got = [("MILK", "L1", "2025-10-10", 8), ("MILK", "L2", "2025-10-12", 5), ("PORK", "", "", 800)]
    assert discrepancies(sent, got) == [
        {"sku": "MILK", "lot": "L1", "use_by": "2025-10-10", "dispatched": 10, "received": 8, "short": 2},
        {"sku": "MILK", "lot": "L2", "use_by": "2025-10-12", "dispatched": 4, "received": 5, "short": -1}]
    assert not hasattr(transfers, "discrepancies") or transfers.discrepancies is discrepancies


def test_one_staff_check_for_receiving_stocktakes_and_transfers():
    from types import SimpleNamespace

    from edge import receiving_api, stocktake_api, transfers_api
    from edge.staff import known_cashier
    box = SimpleNamespace(cashier_pins=SimpleNamespace(hashes={"c1": "argon2..."}))
    known_cashier(box, "c1", "dispatched_by")
    with pytest.raises(Refused, match="dispatched_by: no cashier eve at this store"):
        known_cashier(box, "eve", "dispatched_by")
    known_cashier(SimpleNamespace(cashier_pins=SimpleNamespace(hashes={})), "anyone", "received_by")  # none set up
    for api in (receiving_api, stocktake_api, transfers_api):
        assert api.known_cashier is known_cashier


def test_a_transfer_in_goes_only_into_lots_dispatched_with_their_use_by():
    from dataclasses import replace as with_
    out = moved("S001", "MILK", -7, "transfer_out", 2)
    sent = TransferDispatched(**env("S001", 3), transfer_id=TID, to_store="S002", dispatched_by="bob",
                              lines=(TransferLotLine(sku="MILK", lot="L1", use_by="2025-10-10", qty=7),))
    requested = TransfersKnown(transfers={TID: TransferFacts(TID, "S001", "S002", "requested", {"MILK": 10})},
                               stores=KNOWN.stores, products=KNOWN.products)
    came = moved("S002", "MILK", 7, "transfer_in", 4)
    good = with_(came, lots=(LotDelta(lot="L1", delta=7, use_by="2025-10-10"),))
    assert judge_transfers([out, sent, good], requested) == {}
    # a fresher use-by on the dispatched lot (B would sell it days longer), or a lot A never sent
    fresher = with_(came, lots=(LotDelta(lot="L1", delta=7, use_by="2025-10-20"),))
    assert "use-by 2025-10-20, dispatched with 2025-10-10" in judge_transfers([out, sent, fresher],
                                                                              requested)[fresher.event_id]
    other = with_(came, lots=(LotDelta(lot="L9", delta=7, use_by="2025-10-10"),))
    assert "lot L9 was not dispatched" in judge_transfers([out, sent, other], requested)[other.event_id]
    # B's own L1 still held goods of another use-by: the goods came into a lot of their own, named after their date
    renamed = with_(came, lots=(LotDelta(lot="L1_20251010", delta=7, use_by="2025-10-10"),))
    assert judge_transfers([out, sent, renamed], requested) == {}
    # on record (the dispatch believed in an earlier batch): the same, and the receipt's lines likewise
    dispatched = TransfersKnown(transfers={TID: TransferFacts(TID, "S001", "S002", "dispatched", {"MILK": 10},
                                                              {("MILK", "L1"): 7}, {("MILK", "L1"): "2025-10-10"})},
                                stores=KNOWN.stores)
    assert fresher.event_id in judge_transfers([fresher], dispatched)
    got = TransferReceived(**env("S002", 5), transfer_id=TID, from_store="S001", received_by="cat",
                           lines=(TransferLotLine(sku="MILK", lot="L1", use_by="2025-10-20", qty=7),))
    assert "dispatched with 2025-10-10" in judge_transfers([good, got], dispatched)[got.event_id]
