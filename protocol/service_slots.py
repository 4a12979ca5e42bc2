"""Local services booking (issue 21 item 7), the pure part: a store's service book (services, staff, weekly
opening windows) checked on the way in, and the slot arithmetic every side computes identically.

Guarantees (pure: no I/O, no clock; `now_ms` and the day are passed in):
- a book is valid or refused with a sentence naming the field: ids unique, every service's staff known, durations
  whole multiples of the booking grid, windows on the grid, opening before closing, no overlapping windows in a day;
- time is a grid of `GRID_MIN` cells in the store's local time (China, UTC+8, no daylight saving): a booking holds
  one cell per `GRID_MIN` of its duration for one staff member, so "no double booking of a staff member" is "no cell
  held twice", which PostgreSQL enforces with a primary key on (store, staff, cell);
- `free_slots` offers a start only inside one opening window (the service ends before the window closes), at least
  `notice_min` after now, and only while at least one of the service's staff holds none of its cells; its `free`
  is the capacity left (staff free for the whole service);
- `start_refusal` says why a start cannot be booked at all (not on the grid, outside the hours, too soon), the same
  rule `free_slots` applies, so a client that books an offered slot is refused only when someone took it first.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone

from protocol.schema import record, require

GRID_MIN = 15  # the booking grid: starts and durations are whole multiples of it
DURATION_MAX_MIN = 8 * 60
SERVICES_MAX, STAFF_MAX, WINDOWS_MAX = 50, 50, 7 * 4
NOTICE_MIN = 30  # a start is offered at least this long ahead (time for the staff to see it)
BOOK_AHEAD_DAYS = 14  # how far ahead a customer may book
STORE_TZ = timezone(timedelta(hours=8))  # the stores' clocks (China time; no daylight saving)
MINUTE_MS, DAY_MIN = 60_000, 24 * 60
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00")
NAME_MAX_CHARS = 60


def minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def _name(text: str, what: str) -> None:
    require(0 < len(text.strip()) <= NAME_MAX_CHARS, f"{what}: 1-{NAME_MAX_CHARS} characters")


@record
class Staff:
    staff_id: str
    name: str

    def __post_init__(self) -> None:
        require(ID.fullmatch(self.staff_id) is not None,
                f"staff {self.staff_id!r}: an id of 1-40 letters, digits, '_' or '-'")
        _name(self.name, f"staff {self.staff_id}: name")


@record
class Service:
    service_id: str
    name: str  # in Chinese: what the store's customers read first
    name_en: str
    duration_min: int
    price_fen: int  # paid at the store when the service is given (0: free)
    staff: tuple[str, ...]  # who gives it

    def __post_init__(self) -> None:
        sid = self.service_id
        require(ID.fullmatch(sid) is not None, f"service {sid!r}: an id of 1-40 letters, digits, '_' or '-'")
        _name(self.name, f"service {sid}: name")
        _name(self.name_en, f"service {sid}: name_en")
        require(0 < self.duration_min <= DURATION_MAX_MIN and self.duration_min % GRID_MIN == 0,
                f"service {sid}: duration_min must be a multiple of {GRID_MIN} from {GRID_MIN} to {DURATION_MAX_MIN}")
        require(0 <= self.price_fen <= 10_000_000, f"service {sid}: price_fen must be 0-10000000 (fen)")
        require(len(self.staff) > 0, f"service {sid}: staff: name at least one staff member who gives it")
        require(len(set(self.staff)) == len(self.staff), f"service {sid}: staff: a staff member named twice")


@record
class Window:
    weekday: int  # 1 = Monday ... 7 = Sunday (ISO)
    opens: str  # "HH:MM", store time
    closes: str  # "HH:MM" ("24:00": midnight)

    def __post_init__(self) -> None:
        require(1 <= self.weekday <= 7, f"window weekday {self.weekday}: 1 (Monday) to 7 (Sunday)")
        for what, value in (("opens", self.opens), ("closes", self.closes)):
            require(HHMM.fullmatch(value) is not None, f"window {self.weekday} {what}: HH:MM, not {value!r}")
            require(minutes(value) % GRID_MIN == 0, f"window {self.weekday} {what} {value}: on the {GRID_MIN}-minute grid")
        require(minutes(self.opens) < minutes(self.closes),
                f"window {self.weekday} {self.opens}-{self.closes}: opens must be before closes")


@record
class ServiceBook:
    """What one store offers: its services, its staff, and its weekly opening windows for services."""
    services: tuple[Service, ...]
    staff: tuple[Staff, ...]
    schedule: tuple[Window, ...]

    def __post_init__(self) -> None:
        require(len(self.services) <= SERVICES_MAX, f"services: at most {SERVICES_MAX}")
        require(len(self.staff) <= STAFF_MAX, f"staff: at most {STAFF_MAX}")
        require(len(self.schedule) <= WINDOWS_MAX, f"schedule: at most {WINDOWS_MAX} windows")
        _unique([s.service_id for s in self.services], "service")
        _unique([s.staff_id for s in self.staff], "staff")
        known = {s.staff_id for s in self.staff}
        for service in self.services:
            unknown = [s for s in service.staff if s not in known]
            require(not unknown, f"service {service.service_id}: staff {', '.join(unknown)} not in the staff list")
        for day in range(1, 8):
            spans = sorted((minutes(w.opens), minutes(w.closes)) for w in self.schedule if w.weekday == day)
            for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
                require(start >= end, f"schedule: weekday {day} has overlapping windows")

    def service(self, service_id: str) -> Service | None:
        return next((s for s in self.services if s.service_id == service_id), None)

    def staff_name(self, staff_id: str) -> str:
        return next((s.name for s in self.staff if s.staff_id == staff_id), staff_id)


def _unique(ids: list[str], what: str) -> None:
    twice = sorted({i for i in ids if ids.count(i) > 1})
    require(not twice, f"{what} id(s) given twice: {', '.join(twice)}")


def day_start_ms(day: date) -> int:
    """Midnight of `day` in store time, as epoch ms."""
    return int(datetime(day.year, day.month, day.day, tzinfo=STORE_TZ).timestamp() * 1000)


def store_day(at_ms: int) -> date:
    return datetime.fromtimestamp(at_ms / 1000, STORE_TZ).date()


def windows_ms(book: ServiceBook, day: date) -> list[tuple[int, int]]:
    """The day's opening windows as epoch-ms spans, earliest first."""
    base = day_start_ms(day)
    return sorted((base + minutes(w.opens) * MINUTE_MS, base + minutes(w.closes) * MINUTE_MS)
                  for w in book.schedule if w.weekday == day.isoweekday())


def cells(start_ms: int, duration_min: int) -> list[int]:
    """The grid cells a booking of `duration_min` from `start_ms` holds (their start times)."""
    return [start_ms + i * GRID_MIN * MINUTE_MS for i in range(duration_min // GRID_MIN)]


def start_refusal(book: ServiceBook, service: Service, start_ms: int, now_ms: int,
                  notice_min: int = NOTICE_MIN, ahead_days: int = BOOK_AHEAD_DAYS) -> str | None:
    """Why `service` cannot start at `start_ms` whoever is free (None: it may, if a staff member is free)."""
    if (start_ms - day_start_ms(store_day(start_ms))) % (GRID_MIN * MINUTE_MS):
        return f"a service starts on the {GRID_MIN}-minute grid (e.g. 10:00, 10:15)"
    if start_ms < now_ms + notice_min * MINUTE_MS:
        return f"that time has passed or is less than {notice_min} minutes away"
    if store_day(start_ms) > store_day(now_ms) + timedelta(days=ahead_days):
        return f"bookings open {ahead_days} days ahead"
    end_ms = start_ms + service.duration_min * MINUTE_MS
    if not any(opens <= start_ms and end_ms <= closes for opens, closes in windows_ms(book, store_day(start_ms))):
        return "the store does not give this service then (outside its service hours, or it would run past closing)"
    return None


def free_staff(service: Service, start_ms: int, held: Mapping[str, Iterable[int]]) -> list[str]:
    """The service's staff who hold none of the cells a booking at `start_ms` would need (in the service's order)."""
    need = set(cells(start_ms, service.duration_min))
    return [s for s in service.staff if need.isdisjoint(held.get(s, ()))]


def free_slots(book: ServiceBook, service: Service, day: date, held: Mapping[str, Iterable[int]], now_ms: int,
               notice_min: int = NOTICE_MIN, ahead_days: int = BOOK_AHEAD_DAYS) -> list[tuple[int, int]]:
    """(start_ms, staff free) for every start on `day` a customer may book now, earliest first. `held`: each staff
    member's held cells (any service: a staff member gives one service at a time)."""
    held_sets = {staff: set(c) for staff, c in held.items()}
    step = GRID_MIN * MINUTE_MS
    out = []
    for opens, closes in windows_ms(book, day):
        for start in range(opens, closes - service.duration_min * MINUTE_MS + 1, step):
            if start_refusal(book, service, start, now_ms, notice_min, ahead_days) is None:
                free = len(free_staff(service, start, held_sets))
                if free:
                    out.append((start, free))
    return out
