"""The checkout's slots with their places: the router counts places left per slot (a read, nothing booked), the
cart price lists every slot with `capacity`, `left` and `full` (a full one stays listed so the page can say why it
cannot be chosen), and a router that cannot answer leaves the list as it was rather than failing the price."""
from __future__ import annotations

from actors.order_router import BookSlot, OrderRouter, ReleaseSlot, SlotsLeftQuery, UpsertStore
from cloud.services.cart_preview import with_places

NINE_AM_LOCAL = 1_767_229_200_000  # 2026-01-01 09:00 UTC+8
TEN_AM_LOCAL = NINE_AM_LOCAL + 3_600_000


def router(capacity: int) -> OrderRouter:
    r = OrderRouter()
    r.apply(UpsertStore(id="u1", store="S1", lat=31.2, lon=121.4, pickup_radius_m=5_000, delivery_radius_m=3_000,
                        slot_capacity=capacity), 0)
    return r


def test_places_left_count_the_bookings_and_give_back_a_released_one():
    r = router(2)
    assert r.slots_left("S1", [NINE_AM_LOCAL, TEN_AM_LOCAL]) == [[NINE_AM_LOCAL, 2], [TEN_AM_LOCAL, 2]]
    for n in range(2):
        assert r.apply(BookSlot(id=f"b{n}", store="S1", slot_start_ms=NINE_AM_LOCAL, order_id=f"O{n}"), 1).succeeded
    assert r.slots_left("S1", [NINE_AM_LOCAL, TEN_AM_LOCAL]) == [[NINE_AM_LOCAL, 0], [TEN_AM_LOCAL, 2]]
    assert not r.apply(BookSlot(id="b3", store="S1", slot_start_ms=NINE_AM_LOCAL, order_id="O3"), 2).succeeded
    r.apply(ReleaseSlot(id="r0", store="S1", slot_start_ms=NINE_AM_LOCAL, order_id="O0"), 3)
    assert r.slots_left("S1", [NINE_AM_LOCAL]) == [[NINE_AM_LOCAL, 1]]
    assert r.slots_left("S404", [NINE_AM_LOCAL]) == [[NINE_AM_LOCAL, 0]]  # an unknown store has no places


def test_a_store_closed_by_hq_has_no_places():
    r = OrderRouter()
    r.apply(UpsertStore(id="u1", store="S1", lat=31.2, lon=121.4, pickup_radius_m=5_000, delivery_radius_m=3_000,
                        slot_capacity=4, open=False), 0)
    assert r.slots_left("S1", [NINE_AM_LOCAL]) == [[NINE_AM_LOCAL, 0]]


def test_the_query_asks_the_actors_own_read():
    r = router(3)
    r.apply(BookSlot(id="b", store="S1", slot_start_ms=TEN_AM_LOCAL, order_id="O1"), 1)
    query = SlotsLeftQuery(store="S1", slot_starts_ms=(NINE_AM_LOCAL, TEN_AM_LOCAL))
    assert query.answer(r) == [[NINE_AM_LOCAL, 3], [TEN_AM_LOCAL, 2]]


def test_each_slot_shows_its_places_and_a_full_one_stays_listed_as_full():
    shown = [{"start": "a", "start_ms": NINE_AM_LOCAL}, {"start": "b", "start_ms": TEN_AM_LOCAL}]
    annotated = with_places(shown, {NINE_AM_LOCAL: 0, TEN_AM_LOCAL: 7}, 40)
    assert annotated == [{"start": "a", "start_ms": NINE_AM_LOCAL, "capacity": 40, "left": 0, "full": True},
                         {"start": "b", "start_ms": TEN_AM_LOCAL, "capacity": 40, "left": 7, "full": False}]
    assert with_places(shown, None, 40) == shown  # the router did not answer: the slots as they were
