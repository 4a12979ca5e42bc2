"""Slot arithmetic of local services booking (protocol/service_slots.py): the book's checks, the offered starts,
and (property tests) that an offered start is always bookable by a free staff member and never overlaps a held cell."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import service_slots as slots
from protocol.errors import ProtocolError
from protocol.schema import record_from_wire

DAY = date(2026, 12, 7)  # a Monday
NOW = slots.day_start_ms(DAY) - 24 * 3600_000  # the day before, midnight
MIN = slots.MINUTE_MS


def book(windows=(("09:00", "12:00"), ("14:00", "18:00")), staff=("A", "B"), duration=30):
    return slots.ServiceBook(
        services=(slots.Service(service_id="knife", name="磨刀", name_en="Knife sharpening", duration_min=duration,
                                price_fen=1000, staff=tuple(staff)),),
        staff=tuple(slots.Staff(staff_id=s, name=f"Staff {s}") for s in staff),
        schedule=tuple(slots.Window(weekday=1, opens=o, closes=c) for o, c in windows))


def at(hhmm: str, day: date = DAY) -> int:
    return slots.day_start_ms(day) + slots.minutes(hhmm) * MIN


def test_a_day_offers_every_grid_start_within_its_windows():
    b = book()
    offered = slots.free_slots(b, b.services[0], DAY, {}, NOW)
    assert offered[0] == (at("09:00"), 2)
    assert offered[-1] == (at("17:30"), 2)
    assert (at("11:30"), 2) in offered and (at("11:45"), 2) not in offered  # 30 min would run past 12:00
    assert len(offered) == 11 + 15
    assert slots.free_slots(b, b.services[0], DAY + timedelta(days=1), {}, NOW) == []  # no Tuesday window


def test_held_cells_take_capacity_and_then_the_slot():
    b = book()
    s = b.services[0]
    held = {"A": slots.cells(at("10:00"), 30)}
    offered = dict(slots.free_slots(b, s, DAY, held, NOW))
    assert offered[at("09:45")] == 1 and offered[at("10:00")] == 1 and offered[at("10:15")] == 1
    assert offered[at("10:30")] == 2
    held["B"] = slots.cells(at("10:15"), 60)
    offered = dict(slots.free_slots(b, s, DAY, held, NOW))
    assert at("10:00") not in offered and at("10:15") not in offered
    assert slots.free_staff(s, at("10:00"), held) == []
    assert slots.free_staff(s, at("10:30"), held) == ["A"]


def test_start_refusals_name_the_reason():
    b = book()
    s = b.services[0]
    assert "grid" in slots.start_refusal(b, s, at("10:05"), NOW)
    assert "outside its service hours" in slots.start_refusal(b, s, at("12:45"), NOW)
    assert "run past closing" in slots.start_refusal(b, s, at("17:45"), NOW)
    assert "passed" in slots.start_refusal(b, s, at("10:00"), at("09:45"))
    assert "days ahead" in slots.start_refusal(b, s, at("10:00", DAY + timedelta(days=28)), NOW)
    assert slots.start_refusal(b, s, at("10:00"), NOW) is None


@pytest.mark.parametrize("data, words", [
    ({"services": [], "staff": [{"staff_id": "A", "name": "a"}, {"staff_id": "A", "name": "b"}], "schedule": []},
     r"staff id\(s\) given twice: A"),
    ({"services": [{"service_id": "x", "name": "x", "name_en": "x", "duration_min": 20, "price_fen": 0,
                    "staff": ["A"]}], "staff": [{"staff_id": "A", "name": "a"}], "schedule": []}, "multiple of 15"),
    ({"services": [{"service_id": "x", "name": "x", "name_en": "x", "duration_min": 15, "price_fen": 0,
                    "staff": ["Z"]}], "staff": [{"staff_id": "A", "name": "a"}], "schedule": []},
     "staff Z not in the staff list"),
    ({"services": [], "staff": [], "schedule": [{"weekday": 1, "opens": "10:00", "closes": "09:00"}]},
     "opens must be before closes"),
    ({"services": [], "staff": [], "schedule": [{"weekday": 1, "opens": "09:00", "closes": "12:00"},
                                                {"weekday": 1, "opens": "11:00", "closes": "13:00"}]},
     "weekday 1 has overlapping windows"),
    ({"services": [], "staff": [], "schedule": [{"weekday": 8, "opens": "09:00", "closes": "12:00"}]}, "weekday 8"),
    ({"services": [], "staff": [], "schedule": [{"weekday": 1, "opens": "9:00", "closes": "12:00"}]}, "HH:MM"),
])
def test_a_wrong_book_is_refused_naming_what(data, words):
    with pytest.raises(ProtocolError, match=words):
        record_from_wire(slots.ServiceBook, data, "book")




@st.composite
def days(draw):
    """A book with random windows, staff and one service, random held cells, and a random now."""
    cut = sorted(draw(st.lists(st.integers(0, 96), min_size=2, max_size=6, unique=True)))
    pairs = [(cut[i], cut[i + 1]) for i in range(0, len(cut) - 1, 2)]
    hhmm = lambda q: "24:00" if q == 96 else f"{q * 15 // 60:02d}:{q * 15 % 60:02d}"  # noqa: E731
    staff = [f"S{i}" for i in range(draw(st.integers(1, 4)))]
    b = book(windows=[(hhmm(a), hhmm(z)) for a, z in pairs], staff=staff,
             duration=draw(st.sampled_from([15, 30, 45, 60, 90, 120])))
    held = {s: [slots.day_start_ms(DAY) + q * 15 * MIN for q in draw(st.lists(st.integers(0, 95), max_size=20))]
            for s in staff}
    now = slots.day_start_ms(DAY) + draw(st.integers(-1440, 1440)) * MIN
    return b, held, now


@settings(max_examples=300, deadline=None)
@given(days())
def test_every_offered_start_is_bookable_and_clear_of_held_cells(case):
    b, held, now = case
    s = b.services[0]
    offered = slots.free_slots(b, s, DAY, held, now)
    for start, free in offered:
        assert slots.start_refusal(b, s, start, now) is None
        names = slots.free_staff(s, start, held)
        assert len(names) == free > 0
        for name in names:
            assert set(slots.cells(start, s.duration_min)).isdisjoint(held[name])
    assert [o[0] for o in offered] == sorted({o[0] for o in offered})


@settings(max_examples=300, deadline=None)
@given(days(), st.integers(0, 95))
def test_a_start_not_offered_is_refused_or_has_nobody_free(case, quarter):
    b, held, now = case
    s = b.services[0]
    start = slots.day_start_ms(DAY) + quarter * 15 * MIN
    offered = dict(slots.free_slots(b, s, DAY, held, now))
    if start not in offered:
        assert slots.start_refusal(b, s, start, now) is not None or slots.free_staff(s, start, held) == []


@settings(max_examples=200, deadline=None)
@given(days())
def test_booking_each_offer_in_turn_never_double_books(case):
    """Take the first free staff member for every offer in order, holding their cells: no cell is held twice."""
    b, held, now = case
    s = b.services[0]
    held = {k: list(v) for k, v in held.items()}
    taken: dict[str, set[int]] = {k: set() for k in held}
    for start, _ in slots.free_slots(b, s, DAY, held, now):
        names = slots.free_staff(s, start, held)
        if not names:
            continue  # taken by an earlier booking of this run
        need = slots.cells(start, s.duration_min)
        assert taken[names[0]].isdisjoint(need) and set(held[names[0]]).isdisjoint(need)
        taken[names[0]].update(need)
        held[names[0]].extend(need)
