"""Which store a shortage asks for a transfer, and how much (protocol.restock_transfers)."""
from __future__ import annotations

from protocol.restock_transfers import KEEP_FLOOR_PIECES, Holder, source, surplus


def test_the_nearest_store_with_a_surplus_is_asked_for_at_most_what_is_needed():
    near_short = Holder("S2", on_hand=KEEP_FLOOR_PIECES + 1, target=None, distance_m=500)  # 1 spare: not worth it
    near = Holder("S3", on_hand=40, target=30, distance_m=900)  # 10 spare
    far = Holder("S4", on_hand=400, target=None, distance_m=5_000)
    assert source([far, near, near_short], 16, weighed=False) == ("S3", 10)
    assert source([far], 16, weighed=False) == ("S4", 16)


def test_nothing_is_asked_when_no_store_has_a_surplus_or_the_need_is_tiny():
    assert source([Holder("S2", 20, 25, 100)], 16, weighed=False) is None
    assert source([Holder("S2", 400, None, 100)], 1, weighed=False) is None
    assert source([], 16, weighed=False) is None


def test_a_store_keeps_its_own_target_or_the_chains_floor():
    assert surplus(Holder("S2", 100, 60, 0), weighed=False) == 40
    assert surplus(Holder("S2", 100, None, 0), weighed=False) == 100 - KEEP_FLOOR_PIECES
    assert surplus(Holder("S2", 8_000, None, 0), weighed=True) == 3_000  # grams above the 5 kg floor


def test_a_store_never_gives_below_its_own_point_nor_what_its_online_orders_still_take():
    # the shell passes on-hand less what the holder's open online orders will still pick: 60 - 25 owed = 35
    assert surplus(Holder("S2", 35, 30, 0, reorder_point=10), weighed=False) == 5
    assert surplus(Holder("S2", 35, None, 0, reorder_point=30), weighed=False) == 5  # a point, no target
    assert surplus(Holder("S2", 8, 30, 0, reorder_point=10), weighed=False) == 0  # short itself: gives nothing
    holders = [Holder("S2", 31, 30, 100, reorder_point=30), Holder("S3", 90, 40, 200, reorder_point=20)]
    assert source(holders, 16, weighed=False) == ("S3", 16)  # the nearer one has 1 to spare: not worth a trip
