"""Returns as pure decisions: what a return gives back (protocol.returns, computed the same at the store and in the
cloud) and the till's return (edge.core.returns). Amounts are worked out by hand in the comments."""
from __future__ import annotations

import pytest

from edge.core import returns
from edge.core.outcome import InsertReturn, MoveStock, PrintTicket, Publish, Refused
from edge.core.state import EventStamp, Moment, StockLevel
from protocol import codec
from protocol.ids import make_id
from protocol.return_messages import GoodsReturned
from protocol.returns import Back, ReturnRefused, all_returned, refund_lines, returned_so_far, shares

NOW = Moment(1_760_000_000_000, 5_000)
SALE_LINES = (("APPLE", 3, "piece", 300), ("PORK", 500, "g", 2_000), ("APPLE", 1, "piece", 100))


def stamp() -> EventStamp:
    n = iter(range(1, 10**6))
    return EventStamp("S001", 7, NOW, lambda: make_id(NOW.wall_ms, next(n)))


def test_shares_sum_to_what_was_paid_and_follow_the_line_amounts():
    # lines 400 (APPLE, two lines summed) + 2000 = 2400 gross; a basket discount made the total 2300:
    # APPLE 2300 * 400 // 2400 = 383, PORK the rest: 1917
    sold = shares(SALE_LINES, 2_300)
    assert (sold["APPLE"].qty, sold["APPLE"].paid_fen) == (4, 383)
    assert (sold["PORK"].qty, sold["PORK"].unit, sold["PORK"].paid_fen) == (500, "g", 1_917)
    assert sum(s.paid_fen for s in sold.values()) == 2_300


def test_partial_returns_never_give_back_more_than_paid_and_the_last_gives_the_rest():
    sold = shares(SALE_LINES, 2_300)
    first = refund_lines(sold, {}, [("APPLE", 1)])  # 383 * 1 // 4 = 95
    assert first == [("APPLE", 1, 95)]
    before = returned_so_far([(s, q, f) for s, q, f in first])
    second = refund_lines(sold, before, [("APPLE", 2)])  # 383 * 3 // 4 = 287, less 95 = 192
    assert second == [("APPLE", 2, 192)]
    before = returned_so_far([*first, *second])
    last = refund_lines(sold, before, [("APPLE", 1), ("PORK", 500)])  # the rest of each: 383-287=96, 1917
    assert last == [("APPLE", 1, 96), ("PORK", 500, 1_917)]
    assert sum(f for *_, f in first + second + last) == 2_300
    assert all_returned(sold, before, last) and not all_returned(sold, before, last[:1])


def test_a_line_is_never_returned_past_what_was_sold():
    sold = shares(SALE_LINES, 2_300)
    with pytest.raises(ReturnRefused, match=r"APPLE: 2 piece asked, but 4 piece were sold and 3 piece returned already"):
        refund_lines(sold, {"APPLE": Back(3, 287)}, [("APPLE", 2)])
    with pytest.raises(ReturnRefused, match="PORK: 300 g asked.*200 g left"):  # the same SKU twice in one return counts both
        refund_lines(sold, {}, [("PORK", 300), ("PORK", 300)])
    with pytest.raises(ReturnRefused, match="MILK was not sold"):
        refund_lines(sold, {}, [("MILK", 1)])


SALE = returns.Source("sale", "01SALE", "sold", SALE_LINES, 2_300, "cash", None)


def test_a_cash_return_puts_stock_back_shrinks_the_spoiled_and_opens_the_drawer():
    asked = [returns.Asked("APPLE", 2, "piece", "resaleable"), returns.Asked("PORK", 200, "g", "spoiled")]
    rid = make_id(NOW.wall_ms, 999)
    out = returns.take(SALE, "sale 01SALE", {}, asked, {"APPLE": StockLevel("APPLE", 10, 4)}, rid, "1", stamp())
    moves = [e.event for e in out.effects if isinstance(e, MoveStock)]
    # APPLE 10 -> 12 back on hand; PORK (no row yet) +200 returned then -200 shrinkage (spoiled): on hand unchanged
    assert [(m.sku, m.delta, m.reason, m.shrinkage_reason, m.on_hand_after) for m in moves] == [
        ("APPLE", 2, "return", "", 12), ("PORK", 200, "return", "", 200), ("PORK", -200, "shrinkage", "spoiled", 0)]
    event = next(e.event for e in out.effects if isinstance(e, Publish))
    assert isinstance(event, GoodsReturned) and event.sale_id == "01SALE" and not event.order_id
    # APPLE 383 * 2 // 4 = 191; PORK 1917 * 200 // 500 = 766
    assert [(line.sku, line.quantity.amount, line.amount_fen) for line in event.lines] == [("APPLE", 2, 191),
                                                                                         ("PORK", 200, 766)]
    assert [(p.method, p.amount_fen) for p in event.refunds] == [("cash", 957)] and event.total_fen == 957
    assert codec.decode(codec.encode(event)) == event  # it travels
    row = next(e for e in out.effects if isinstance(e, InsertReturn))
    assert row.source == "sale:01SALE" and row.total_fen == 957
    ticket = next(a.ticket for a in out.after if isinstance(a, PrintTicket))
    assert ticket.startswith(b"\x1b@" + returns.DRAWER_KICK)  # the drawer opens, with the receipt, after commit
    assert out.reply["refund"] == {"method": "cash", "amount_fen": 957, "by": "till"}
    assert [m.seq for m in moves] == [8, 9, 10] and event.seq == 11 and out.last_seq == 11


def test_a_stored_value_return_opens_no_drawer_and_an_over_return_is_refused():
    sv = returns.Source("sale", "01SALE", "sold", SALE_LINES, 2_300, "stored_value", "M1")
    out = returns.take(sv, "sale", {}, [returns.Asked("APPLE", 4, "piece", "resaleable")], {}, make_id(1, 1), "1",
                       stamp())
    event = next(e.event for e in out.effects if isinstance(e, Publish))
    assert event.member_id == "M1" and [(p.method, p.amount_fen) for p in event.refunds] == [("stored_value", 383)]
    assert returns.DRAWER_KICK not in next(a.ticket for a in out.after if isinstance(a, PrintTicket))
    with pytest.raises(Refused, match="4 piece were sold and 4 piece returned already") as refused:
        returns.take(sv, "sale", {"APPLE": Back(4, 383)}, [returns.Asked("APPLE", 1, "piece", "resaleable")], {},
                     make_id(1, 2), "1", stamp())
    assert refused.value.status == 409


def test_wrong_units_unknown_sources_and_orders_not_picked_up_are_refused():
    with pytest.raises(Refused, match="PORK was sold by weight: give weight_g") as e:
        returns.take(SALE, "sale", {}, [returns.Asked("PORK", 1, "piece", "resaleable")], {}, make_id(1, 3), "1",
                     stamp())
    assert e.value.status == 422
    with pytest.raises(Refused, match="no sale 01X at this store") as e:
        returns.take(None, "sale 01X", {}, [returns.Asked("PORK", 1, "g", "resaleable")], {}, make_id(1, 4), "1",
                     stamp())
    assert e.value.status == 404
    order = returns.Source("order", "01ORD", "to_pick", (("MILK", 2, "piece", 700),), 700, returns.ORDER_REFUND)
    with pytest.raises(Refused, match="only an order picked up at this store") as e:
        returns.take(order, "order", {}, [returns.Asked("MILK", 1, "piece", "resaleable")], {}, make_id(1, 5), "1",
                     stamp())
    assert e.value.status == 409


def test_an_order_return_is_refunded_by_the_cloud_not_the_till():
    order = returns.Source("order", "01ORD", "picked_up", (("MILK", 2, "piece", 700),), 700, returns.ORDER_REFUND)
    out = returns.take(order, "order", {}, [returns.Asked("MILK", 1, "piece", "damaged")], {}, make_id(1, 6), "1",
                       stamp())
    event = next(e.event for e in out.effects if isinstance(e, Publish))
    assert event.order_id == "01ORD" and event.refunds == () and event.total_fen == 350
    assert out.reply["refund"]["by"] == "cloud"
    assert returns.DRAWER_KICK not in next(a.ticket for a in out.after if isinstance(a, PrintTicket))


def test_an_order_its_own_staff_delivered_is_returned_at_the_till_but_one_still_with_a_rider_is_not():
    delivered = returns.Source("order", "01ORD", "delivered_by_staff", (("MILK", 2, "piece", 700),), 700,
                               returns.ORDER_REFUND)
    out = returns.take(delivered, "order", {}, [returns.Asked("MILK", 2, "piece", "resaleable")], {}, make_id(1, 7),
                       "1", stamp())
    assert out.reply["total_fen"] == 700
    # picked for a rider: whether the rider delivered is the cloud's to know, so the till does not take it back
    with pytest.raises(Refused, match="or delivered by its staff"):
        returns.take(returns.Source("order", "01ORD", "picked", (("MILK", 2, "piece", 700),), 700,
                                    returns.ORDER_REFUND), "order", {}, [returns.Asked("MILK", 1, "piece", "damaged")],
                     {}, make_id(1, 8), "1", stamp())


def test_codes_from_receipts_and_pickup_tickets():
    assert returns.parse_code("SALE:01ABC") == ("sale", "01ABC")
    assert returns.parse_code(" PICKUP:123456 ") == ("pickup", "123456")
    assert returns.parse_code("whatever") == ("", "whatever")
