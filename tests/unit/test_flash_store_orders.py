"""Flash sales held in stores' escrow, without Ray: a sale's blocks and its orders carved out of them (StockPool),
units of an order that ended unserved back on sale (FlashSaleGate) and the member free to buy again (LeaseHolder);
how a sale's quantity is split over the stores."""
from __future__ import annotations

import pytest

from actors.base import Expire
from actors.flash_sale import ReturnUnits
from actors.stock_blocks import Carve, Uncarve
from actors.stock_pool import Confirm, Fulfil, Grant, Reserve, StockPool
from cloud.services.flash_stores import split
from protocol.errors import ProtocolError
from tests.unit.test_flash_sale import T0, holder, open_gate, sync

BLOCK_TTL = 60_000


def pool_with_blocks(**blocks: int) -> StockPool:
    """A pool where store S<n> granted 10 EGGS and the sale took `blocks[S<n>]` of them as its block."""
    pool = StockPool()
    for store, qty in blocks.items():
        assert pool.apply(Grant(id=f"g-{store}", store=store, sku="EGGS", qty=10), T0).status == "ok"
        r = pool.apply(Reserve(id=f"b-{store}", reservation_id=f"flash:F1:{store}", order_id="sale:F1", store=store,
                               sku="EGGS", qty=qty, ttl_ms=BLOCK_TTL), T0)
        assert r.status == "ok"
    return pool


def carve(order: str, qty: int = 1, blocks=("flash:F1:S1", "flash:F1:S2"), fullest=False, cid=None) -> Carve:
    return Carve(id=cid or f"c-{order}", reservation_id=f"flash-order:{order}", order_id=order, sku="EGGS", qty=qty,
                 blocks=blocks, fullest=fullest)


def position(pool: StockPool, store: str) -> tuple[int, int, int]:
    p = pool.positions[(store, "EGGS")]
    return p.escrow, p.pending, p.confirmed


def test_a_carve_takes_the_order_from_the_preferred_block_and_keeps_the_escrow_counts():
    pool = pool_with_blocks(S1=2, S2=5)
    r = pool.apply(carve("O1", 2), T0 + 1)
    assert r.status == "ok" and r.values["store"] == "S1" and r.values["expires_ms"] == T0 + BLOCK_TTL
    assert pool.reservations["flash:F1:S1"].qty == 0 and pool.reservations["flash-order:O1"].qty == 2
    assert position(pool, "S1") == (10, 2, 0) and pool.audit() == []
    # S1's block is empty now: the next order goes to S2, the only one with units
    assert pool.apply(carve("O2", 1), T0 + 2).values["store"] == "S2"
    assert pool.reservations["flash:F1:S2"].qty == 4 and pool.audit() == []


def test_fullest_takes_the_block_with_most_units_left():
    pool = pool_with_blocks(S1=2, S2=5)
    assert pool.apply(carve("O1", fullest=True), T0).values["store"] == "S2"


def test_a_carve_is_idempotent_by_command_and_by_reservation():
    pool = pool_with_blocks(S1=3)
    first = pool.apply(carve("O1", blocks=("flash:F1:S1",)), T0)
    again = pool.apply(carve("O1", blocks=("flash:F1:S1",)), T0 + 1)
    other_id = pool.apply(carve("O1", blocks=("flash:F1:S1",), cid="c-O1-again"), T0 + 2)
    assert first.status == "ok" and again.status == "exists" and other_id.status == "ok"
    assert other_id.values["store"] == "S1" and pool.reservations["flash:F1:S1"].qty == 2
    clash = pool.apply(carve("O1", qty=2, blocks=("flash:F1:S1",), cid="c-O1-other"), T0 + 3)
    assert clash.status == "error" and pool.reservations["flash:F1:S1"].qty == 2


def test_no_block_with_enough_units_is_refused_naming_what_is_left():
    pool = pool_with_blocks(S1=1, S2=1)
    r = pool.apply(carve("O1", qty=2), T0)
    assert r.status == "rejected" and r.reason == "insufficient"
    assert r.values["left"] == {"flash:F1:S1": 1, "flash:F1:S2": 1} and "flash-order:O1" not in pool.reservations


def test_an_expired_block_is_not_carved_and_its_units_went_back_to_escrow():
    pool = pool_with_blocks(S1=3)
    assert pool.apply(Expire(id="x"), T0 + BLOCK_TTL).values["expired"] == ["flash:F1:S1"]
    assert position(pool, "S1") == (10, 0, 0)
    assert pool.apply(carve("O1", blocks=("flash:F1:S1",)), T0 + BLOCK_TTL + 1).status == "rejected"


def test_uncarve_gives_an_unpaid_order_back_to_its_block_once():
    pool = pool_with_blocks(S1=3)
    pool.apply(carve("O1", qty=2, blocks=("flash:F1:S1",)), T0)
    back = Uncarve(id="u-O1", reservation_id="flash-order:O1", block_id="flash:F1:S1", sku="EGGS")
    assert pool.apply(back, T0 + 1).values["to"] == "block"
    assert pool.reservations["flash:F1:S1"].qty == 3 and position(pool, "S1") == (10, 3, 0) and pool.audit() == []
    again = Uncarve(id="u-O1-2", reservation_id="flash-order:O1", block_id="flash:F1:S1", sku="EGGS")
    assert pool.apply(again, T0 + 2).values["to"] == "nothing" and pool.reservations["flash:F1:S1"].qty == 3


def test_uncarve_of_a_paid_order_makes_its_units_unpaid_in_the_block():
    pool = pool_with_blocks(S1=3)
    pool.apply(carve("O1", blocks=("flash:F1:S1",)), T0)
    assert pool.apply(Confirm(id="k", reservation_id="flash-order:O1", sku="EGGS"), T0).status == "ok"
    assert position(pool, "S1") == (10, 2, 1)
    back = Uncarve(id="u", reservation_id="flash-order:O1", block_id="flash:F1:S1", sku="EGGS")
    assert pool.apply(back, T0 + 1).values["to"] == "block"
    assert position(pool, "S1") == (10, 3, 0) and pool.reservations["flash:F1:S1"].qty == 3 and pool.audit() == []


def test_uncarve_after_the_block_ended_returns_the_units_to_escrow():
    pool = pool_with_blocks(S1=3)
    pool.apply(carve("O1", blocks=("flash:F1:S1",)), T0)
    pool.apply(Confirm(id="k", reservation_id="flash-order:O1", sku="EGGS"), T0)
    pool.apply(Expire(id="x"), T0 + BLOCK_TTL)  # the sale is over: the block's 2 unsold units are back in escrow
    assert position(pool, "S1") == (10, 0, 1)
    back = Uncarve(id="u", reservation_id="flash-order:O1", block_id="flash:F1:S1", sku="EGGS")
    assert pool.apply(back, T0 + BLOCK_TTL + 1).values["to"] == "escrow"
    assert position(pool, "S1") == (10, 0, 0) and pool.audit() == []


def test_a_carved_order_paid_and_picked_up_leaves_the_escrow_like_any_order():
    pool = pool_with_blocks(S1=3)
    pool.apply(carve("O1", blocks=("flash:F1:S1",)), T0)
    pool.apply(Confirm(id="k", reservation_id="flash-order:O1", sku="EGGS"), T0)
    assert pool.apply(Fulfil(id="f", reservation_id="flash-order:O1", sku="EGGS"), T0).status == "ok"
    assert position(pool, "S1") == (9, 2, 0) and pool.audit() == []


def test_block_commands_survive_the_journal_and_check_their_fields():
    command = carve("O1", qty=2)
    assert StockPool.decode({"op": "carve", **_wire(command)}) == command
    with pytest.raises(ProtocolError):
        Carve(id="c", reservation_id="r", order_id="o", sku="EGGS", qty=0, blocks=("b",))
    with pytest.raises(ProtocolError):
        Carve(id="c", reservation_id="r", order_id="o", sku="EGGS", qty=1, blocks=())


def _wire(command):
    from protocol.schema import to_wire
    wire = to_wire(command)
    wire.pop("op", None)
    return wire


def test_returned_units_go_back_on_sale_and_the_member_may_buy_again():
    gate = open_gate(quantity=1, limit=1)
    w = holder(gate, "w", block=1)
    assert w.admit("o1", "m1", 1, T0) == "admitted"
    assert sync(gate, w, T0)[0] == {"o1": "accepted"}
    sync(gate, w, T0 + 1)  # the row was written: o1 is recorded
    assert gate.status()["remaining"] == 0 and w.admit("o2", "m2", 1, T0 + 2) == "sold_out"
    assert w.admit("o3", "m1", 1, T0 + 2) == "over_limit"
    r = gate.apply(ReturnUnits(id="ret-o1", order_id="o1"), T0 + 3)
    assert r.status == "ok" and r.values["returned"] == 1
    assert (gate.sold, gate.status()["remaining"], gate.status()["returned"], gate.audit()) == (0, 1, 1, [])
    sync(gate, w, T0 + 4)  # the worker hears of it: not sold out, and m1 is free again
    assert w.admit("o4", "m1", 1, T0 + 5) in ("admitted", "queued")
    sync(gate, w, T0 + 5)  # queued: the lease takes the unit back first, then the sale is committed
    sync(gate, w, T0 + 6)
    assert gate.orders == {"o4": ("m1", 1)} and gate.sold == 1 and gate.audit() == []


def test_returning_is_once_and_an_unrecorded_order_is_asked_again():
    gate = open_gate(quantity=3)
    w = holder(gate, "w", block=3)
    w.admit("o1", "m1", 1, T0)
    sync(gate, w, T0)  # accepted, its row not confirmed by a later sync yet
    early = gate.apply(ReturnUnits(id="ret-1", order_id="o1"), T0 + 1)
    assert early.status == "rejected" and early.reason == "unrecorded" and gate.sold == 1
    sync(gate, w, T0 + 2)
    assert gate.apply(ReturnUnits(id="ret-2", order_id="o1"), T0 + 3).values["returned"] == 1
    assert gate.apply(ReturnUnits(id="ret-3", order_id="o1"), T0 + 4).values["returned"] == 0
    assert gate.sold == 0 and gate.status()["returned"] == 1 and gate.audit() == []


def test_a_same_key_retry_of_a_returned_order_does_not_sell_it_again():
    gate = open_gate(quantity=3, limit=2)
    w = holder(gate, "w", block=3)
    w.admit("o1", "m1", 1, T0)
    sync(gate, w, T0)
    sync(gate, w, T0 + 1)
    gate.apply(ReturnUnits(id="ret", order_id="o1"), T0 + 2)
    sync(gate, w, T0 + 3)
    w.admit("o1", "m1", 1, T0 + 4)
    assert sync(gate, w, T0 + 4)[0] == {"o1": "conflict"} and gate.sold == 0


def test_the_gate_snapshot_keeps_returns():
    gate = open_gate(quantity=2)
    w = holder(gate, "w", block=2)
    w.admit("o1", "m1", 1, T0)
    sync(gate, w, T0)
    sync(gate, w, T0 + 1)
    gate.apply(ReturnUnits(id="ret", order_id="o1"), T0 + 2)
    from actors.flash_sale import FlashSaleGate
    copy = FlashSaleGate()
    copy.restore_state(gate.state_snapshot())
    assert copy.status()["returned"] == 1 and copy.returned == {"o1"}


@pytest.mark.parametrize(("quantity", "available", "plan"), [
    (5, {"S1": 3, "S2": 4}, {"S2": 4, "S1": 1}),
    (7, {"S1": 3, "S2": 4}, {"S2": 4, "S1": 3}),
    (8, {"S1": 3, "S2": 4}, {"S2": 4, "S1": 3}),  # short: the caller refuses the sale
    (2, {"S1": 0, "S2": 2}, {"S2": 2}),
])
def test_a_sale_takes_its_quantity_from_the_fullest_stores_first(quantity, available, plan):
    assert split(quantity, available) == plan


def test_a_sales_order_ids_are_the_ids_derived_from_the_sale_and_key_made_fast():
    import random

    from protocol.ids import derived_id, deriver, is_id
    sale = "01M8NZBKDA1MWQQK7A4HZXTCRV"
    derive = deriver(sale)
    rng = random.Random(5)
    for i in range(2_000):
        key = f"m{i}/{rng.getrandbits(128):x}"
        assert derive(key) == derived_id(sale, key) and is_id(derive(key))
    with pytest.raises(ProtocolError):
        deriver("F1")  # not an id: no time to derive from
