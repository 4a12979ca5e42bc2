"""Commands and results cross Ray as plain maps: what arrives is exactly what was sent, for every kind."""
from __future__ import annotations

import pickle

import pytest

from actors.base import Expire, Result, command_to_wire, result_from_trusted, result_to_wire
from actors.flash_sale import AdmittedSale, FlashSaleGate, LeaseSync, OpenSale
from actors.member_ledger import MemberLedger, RecordSpend, RedeemPoints, Refund, Spend, TopUp
from actors.order_router import BookSlot, OrderRouter, ReleaseSlot, UpsertStore
from actors.stock_pool import Cancel, Confirm, Fulfil, Grant, Reclaim, ReportOnHand, Reroute, Reserve, SetRatio, StockPool

SAMPLES = [
    (StockPool, Grant(id="g", store="S1", sku="A", qty=5)),
    (StockPool, Reclaim(id="r", store="S1", sku="A", qty=2)),
    (StockPool, SetRatio(id="s", store="S1", sku="A", ratio_bp=2500)),
    (StockPool, ReportOnHand(id="o", store="S1", sku="A", on_hand=-3)),
    (StockPool, Reserve(id="v", reservation_id="R1", order_id="O1", store="S1", sku="A", qty=1, ttl_ms=60_000)),
    (StockPool, Confirm(id="c", reservation_id="R1", sku="A")),
    (StockPool, Cancel(id="x", reservation_id="R1", sku="A")),
    (StockPool, Fulfil(id="f", reservation_id="R1", sku="A")),
    (StockPool, Reroute(id="t", reservation_id="R1", sku="A", to_store="S2")),
    (StockPool, Expire(id="e")),
    (MemberLedger, TopUp(id="tu", member="M1", amount_fen=500)),
    (MemberLedger, Spend(id="sp", member="M1", amount_fen=300, offline=True)),
    (MemberLedger, RecordSpend(id="rs", member="M1", amount_fen=100)),
    (MemberLedger, Refund(id="rf", member="M1", amount_fen=100)),
    (MemberLedger, RedeemPoints(id="rp", member="M1", points=3)),
    (FlashSaleGate, OpenSale(id="open", sale_id="F1", sku="A", quantity=10, price_fen=99, starts_ms=0, ends_ms=1,
                             per_member_limit=1, rate_per_s=100)),
    (FlashSaleGate, LeaseSync(id="w:1", worker="w", sales=(AdmittedSale(order_id="o1", member="m", qty=1),), want=5)),
    (OrderRouter, UpsertStore(id="u", store="S1", lat=31.2, lon=121.4, pickup_radius_m=3000, delivery_radius_m=5000)),
    (OrderRouter, BookSlot(id="b", store="S1", slot_start_ms=3_600_000, order_id="O1")),
    (OrderRouter, ReleaseSlot(id="l", store="S1", slot_start_ms=3_600_000, order_id="O1")),
]


@pytest.mark.parametrize(("actor", "command"), SAMPLES, ids=lambda v: getattr(v, "OP", getattr(v, "__name__", "")))
def test_a_command_arrives_as_it_was_sent(actor, command):
    wire = command_to_wire(command)
    assert actor.rebuild(dict(wire)) == command == actor.decode(dict(wire))
    assert type(actor.rebuild(wire)) is type(command)
    assert pickle.loads(pickle.dumps(command)) == command  # queries and nested records still cross Ray pickled


def test_a_result_arrives_as_it_was_sent_with_its_first_answer():
    first = Result(status="ok", values={"escrow": 5, "movements": [["S1", "A", "grant", 5, 0, 0, "g"]]})
    for result in (first, Result(status="exists", first=first), Result(status="rejected", reason="insufficient",
                                                                       values={"available": 0}),
                   Result(status="ok", noop=True)):
        again = result_from_trusted(pickle.loads(pickle.dumps(result_to_wire(result))))
        assert again == result and again.settled == result.settled and again.succeeded == result.succeeded
