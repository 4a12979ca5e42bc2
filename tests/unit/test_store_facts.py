"""The cloud believes a store only about its own facts (protocol.store_facts), and one store's rate never limits
another's (protocol.rate): pure rules, no servers."""
from __future__ import annotations

import itertools

import pytest

from protocol.messages import (
    CashToppedUp,
    EscrowGranted,
    Payment,
    PickupCompleted,
    Quantity,
    SaleCommitted,
    SaleLine,
    StockMoved,
)
from protocol.policy import chain_day
from protocol.rate import StoreRateLimits, StoreRates, TokenBucket
from protocol.store_facts import CASH_DAY_LOOKBACK_MS, STOCK_QTY_MAX, Known, OrderFacts, cash_day, judge, named_members

_ids = itertools.count(1)


def env(store: str = "S001") -> dict:
    n = next(_ids)
    return {"event_id": f"01HZZZZZZZZZZZZZZZZZZ{n:05d}", "store_id": store, "seq": n, "wall_ms": 1, "mono_ms": 1}


def sale(member: str | None = None, store: str = "S001", total: int = 990) -> SaleCommitted:
    return SaleCommitted(**env(store), sale_id=f"s{next(_ids)}", lane="1",
                         lines=(SaleLine(sku="EGG", quantity=Quantity.pieces(1), amount_fen=total),), total_fen=total,
                         payments=(Payment(method="cash", amount_fen=total, reference=""),), member_id=member,
                         offline=False)


def moved(on_hand: int, delta: int = 10, store: str = "S001") -> StockMoved:
    return StockMoved(**env(store), sku="EGG", delta=delta, reason="receiving", shrinkage_reason="",
                      on_hand_after=on_hand, reference="")


def grant(qty: int, store: str = "S001") -> EscrowGranted:
    return EscrowGranted(**env(store), sku="EGG", qty=qty, escrow_after=qty)


def pickup(order_id: str, store: str = "S001") -> PickupCompleted:
    return PickupCompleted(**env(store), order_id=order_id, pickup_code="123456", lane="1")


def test_a_sale_naming_a_member_who_does_not_exist_is_refused():
    known_member, unknown = sale("M1"), sale("M-made-up")
    refused = judge([known_member, unknown, sale(None)], Known(members={"M1"}))
    assert list(refused) == [unknown.event_id]
    assert "member 'M-made-up', who does not exist" in refused[unknown.event_id]


def test_a_sale_total_past_the_bound_is_refused():
    assert judge([sale(total=10**12)], Known())


def test_pickups_only_of_own_paid_orders():
    known = Known(orders={
        "O-mine": OrderFacts("O-mine", "pickup", "paid", frozenset({"S001"})),
        "O-split": OrderFacts("O-split", "pickup", "picked_up", frozenset({"S001", "S002"})),
        "O-theirs": OrderFacts("O-theirs", "pickup", "paid", frozenset({"S002"})),
        "O-unpaid": OrderFacts("O-unpaid", "pickup", "reserved", frozenset({"S001"})),
        "O-flash": OrderFacts("O-flash", "flash", "paid", frozenset()),
    })
    events = {o: pickup(o) for o in ("O-mine", "O-split", "O-theirs", "O-unpaid", "O-flash", "O-none")}
    refused = judge(events.values(), known)
    assert {o for o, e in events.items() if e.event_id in refused} == {"O-theirs", "O-unpaid", "O-flash", "O-none"}
    assert "not allocated to this store" in refused[events["O-theirs"].event_id]
    assert "reserved, not paid" in refused[events["O-unpaid"].event_id]


def test_a_grant_fits_in_the_reported_on_hand_counting_the_batch():
    huge = grant(10**12)
    assert "exceeds" in judge([huge], Known(on_hand={("S001", "EGG"): 10}))[huge.event_id]
    never = grant(1)
    assert "never reported" in judge([never], Known())[never.event_id]
    # received in the same batch, before the grant: believed; a second grant past the on-hand is not
    first, second = grant(40), grant(61)
    refused = judge([moved(100), first, second], Known(escrow={("S001", "EGG"): 0}))
    assert list(refused) == [second.event_id] and "escrow 101" in refused[second.event_id]
    # the escrow the cloud already holds counts
    assert judge([grant(5)], Known(on_hand={("S001", "EGG"): 10}, escrow={("S001", "EGG"): 6}))
    # another store's on-hand never counts for this one
    assert judge([moved(100, store="S002"), grant(5)], Known())


def test_movements_within_bounds():
    assert judge([moved(STOCK_QTY_MAX + 1)], Known())
    assert judge([moved(10, delta=-(STOCK_QTY_MAX + 1))], Known())
    assert not judge([moved(STOCK_QTY_MAX, delta=5)], Known())


def test_token_bucket_refills_to_its_burst_and_never_from_a_clock_stepping_back():
    bucket = TokenBucket(rate_per_s=10, burst=20, now_ms=0)
    bucket.take(20)
    bucket.refill(500)
    assert bucket.tokens == pytest.approx(5)
    bucket.refill(100)  # back in time: nothing
    assert bucket.tokens == pytest.approx(5)
    bucket.refill(100_000)
    assert bucket.tokens == 20
    assert bucket.has(10**9)  # bigger than the burst: passes only from a full bucket


def test_one_store_over_its_rate_does_not_limit_another():
    rates = StoreRates(StoreRateLimits(events_per_s=10, events_burst=5, bytes_per_s=1000, bytes_burst=3000))
    flood = [rates.admit("S001", 1000, 0) for _ in range(10)]
    assert flood == [True, True, True, False, False, False, False, False, False, False]  # bytes ran out first
    assert all(rates.admit("S002", 100, 0) for _ in range(5)) and not rates.admit("S002", 100, 0)
    assert rates.admit("S001", 1000, 1000)  # a second later: room again


def test_limits_from_env():
    assert StoreRateLimits.from_env({"FRESHMESH_STORE_EVENTS_PER_S": "5"}).events_per_s == 5
    with pytest.raises(ValueError):
        StoreRateLimits.from_env({"FRESHMESH_STORE_BYTES_BURST": "lots"})


def test_a_reclaim_before_a_grant_in_the_batch_makes_room_for_it():
    from protocol.messages import EscrowReclaimRequested
    back = EscrowReclaimRequested(**env(), sku="EGG", qty=4)
    regrant = grant(6)
    known = Known(on_hand={("S001", "EGG"): 10}, escrow={("S001", "EGG"): 8})
    assert judge([back, regrant], known) == {}
    assert judge([regrant], known)  # without the reclaim it would not fit


def top_up(member: str, store: str = "S001") -> CashToppedUp:
    return CashToppedUp(**env(store), topup_id=f"01HZZZZZZZZZZZZZZZZZZT{next(_ids):04d}", lane="1", member_id=member,
                        amount_fen=500,
                        cashier_id="C01", shift_id=f"01HZZZZZZZZZZZZZZZZZZH{next(_ids):04d}")


def test_attack_a_cash_top_up_for_a_made_up_member_is_judged_with_the_batch_not_while_applying_it():
    ghost, real = top_up("nobody"), top_up("M1")
    assert named_members([ghost, real, sale("M2")]) == {"nobody", "M1", "M2"}
    refused = judge([ghost, real], Known(members={"M1"}))
    assert list(refused) == [ghost.event_id]
    assert refused[ghost.event_id] == (f"store S001 stored_value.cash_topped_up refused: cash top-up {ghost.topup_id}: "
                                       "no member 'nobody'")


def test_a_cash_top_up_counts_on_the_day_the_till_took_it_unless_that_day_is_made_up():
    day = 86_400_000
    received = 1_750_000_000_000
    assert cash_day(received - 2 * day, received) == chain_day(received - 2 * day)  # a store cut off for two days
    assert cash_day(received - CASH_DAY_LOOKBACK_MS, received) == chain_day(received - CASH_DAY_LOOKBACK_MS)
    assert cash_day(received - CASH_DAY_LOOKBACK_MS - 1, received) == chain_day(received)  # too far back
    assert cash_day(received + 30 * day, received) == chain_day(received)  # in the future
