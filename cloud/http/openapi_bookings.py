"""/openapi.json's entries for local services booking (cloud/http/routes/bookings.py) and its mall pages
(cloud/mall/services.py): the paths (merged by `cloud/http/openapi.py`, which passes its `_op` so the styles stay
one), the request bodies, and the answers field by field (written from `cloud/services/bookings.py`)."""
from __future__ import annotations

from collections.abc import Callable

from cloud.http import openapi_answers
from cloud.http.openapi_answers import INT, STR, TIME, array, nullable, obj

NO_SESSION = "no operator session token, or it expired or was revoked"
WINDOW = obj(["weekday", "opens", "closes"], weekday=INT, opens=STR, closes=STR)
SERVICE = obj(["service_id", "name", "name_en", "duration_min", "price_fen", "staff"], service_id=STR, name=STR,
              name_en=STR, duration_min=INT, price_fen=INT, staff=array(STR))
STAFF = obj(["staff_id", "name"], staff_id=STR, name=STR)
BOOK_BODY = obj(["services", "staff", "schedule"], services=array(SERVICE), staff=array(STAFF),
                schedule=array(WINDOW))
BOOK = obj(["store_id", "version", "services", "staff", "schedule"], store_id=STR, version=INT,
           services=array(SERVICE), staff=array(STAFF), schedule=array(WINDOW))
BOOKING = obj(["booking_id", "store_id", "service_id", "service_name", "staff_id", "start", "end", "price_fen",
               "pay_at", "status"],  # cloud/services/bookings.py booking_json
              booking_id=STR, store_id=STR, service_id=STR, service_name=STR, service_name_en=STR, staff_id=STR,
              staff_name=STR, start=TIME, end=TIME, local_start=STR, price_fen=INT,
              pay_at={"enum": ["store"]}, status={"enum": ["booked", "cancelled"]},
              cancelled_at=nullable(TIME), cancelled_by=nullable(STR), member_id=STR, local_end=STR)
SCHEMAS = {"ServiceBook": BOOK_BODY,
           "Booking": obj(["booking_id", "store_id", "service_id", "start"], booking_id=STR, store_id=STR,
                          service_id=STR, start=TIME)}
ANSWERS: dict[tuple[str, str], dict] = {
    ("/stores/{store_id}/services", "get"): obj(
        ["store_id", "version", "pay_at", "services", "schedule"], store_id=STR, version=INT, pay_at=STR,
        grid_min=INT, services=array(obj(["service_id", "name", "name_en", "duration_min", "price_fen", "staff"],
                                         service_id=STR, name=STR, name_en=STR, duration_min=INT, price_fen=INT,
                                         staff=INT)), schedule=array(WINDOW)),
    ("/stores/{store_id}/services/{service_id}/slots", "get"): obj(
        ["store_id", "service_id", "date", "slots"], store_id=STR, service_id=STR, date=STR, duration_min=INT,
        price_fen=INT, pay_at=STR, slots=array(obj(["start", "local", "free"], start=TIME, local=STR, free=INT))),
    ("/bookings", "post"): BOOKING,
    ("/members/{member_id}/bookings", "get"): obj(["member_id", "bookings"], member_id=STR, bookings=array(BOOKING)),
    ("/bookings/{booking_id}/cancel", "post"): BOOKING,
    ("/operator/stores/{store_id}/services", "get"): BOOK,
    ("/operator/stores/{store_id}/services", "put"): BOOK,
    ("/operator/stores/{store_id}/schedule", "get"): obj(
        ["store_id", "date", "staff"], store_id=STR, date=STR,
        staff=array(obj(["staff_id", "name", "bookings"], staff_id=STR, name=STR, bookings=array(BOOKING)))),
}
PAGES = [("/mall/services", "Local services at the chosen store (knife sharpening, fish cleaning, ...)", []),
         ("/mall/services/{service_id}", "A service: pick a day and a free time, book (POST /bookings)",
          ["service_id"]),
         ("/mall/bookings", "The signed-in customer's service bookings; cancel one", [])]


def booking_paths(op: Callable[..., dict]) -> dict:
    store = ["store_id"]
    paths = {
        "/stores/{store_id}/services": {"get": op(
            "The store's local services (name, duration, price paid at the store, how many staff give it) and its "
            "weekly service hours", ("200", "{store_id, version, pay_at, services, schedule}"),
            {"404": "no such store"}, params=store)},
        "/stores/{store_id}/services/{service_id}/slots": {"get": op(
            "The starts of the service a customer may book on ?date=YYYY-MM-DD (store time), each with how many of "
            "its staff are free", ("200", "{store_id, service_id, date, slots: [{start, local, free}]}"),
            {"404": "no such store, or it offers no such service", "422": "date is not YYYY-MM-DD"},
            params=["store_id", "service_id"], query=["date"])},
        "/bookings": {"post": op(
            "Book a service for the signed-in member {booking_id (made once by the client), store_id, service_id, "
            "start}: a staff member free for the whole service is held; the price is paid at the store; the same "
            "booking_id again answers the first booking (200)", ("201", "the booking"),
            {"403": "over_limit: the member already holds 5 bookings ahead (cancel one first)",
             "404": "no such store or service",
             "409": "slot: the time was just taken (reason taken) or is not offered (reason not_offered: outside "
                    "the service hours, too soon, off the grid); key_reused: the booking_id named another booking",
             "422": "a field is wrong (the detail names it)"}, body="Booking", member=True)},
        "/members/{member_id}/bookings": {"get": op(
            "The signed-in member's service bookings, latest start first", ("200", "{member_id, bookings}"),
            {"404": "unknown member, or another member (answered alike)"}, params=["member_id"], member=True)},
        "/bookings/{booking_id}/cancel": {"post": op(
            "Cancel a booking: its member (before it starts), or an operator of its store (hq_admin, or that store's "
            "manager; audited); the staff member's time is free again; cancelling again answers the same",
            ("200", "the booking, cancelled"),
            {"403": "an operator of another store, or a viewer", "404": "no such booking, or another member's",
             "409": "the booking has started or passed (a member cannot cancel it any more)"},
            params=["booking_id"], member=True)},
        "/operator/stores/{store_id}/services": {
            "get": op("The store's whole service book as it is edited (any operator who sees the store)",
                      ("200", "{store_id, version, services, staff, schedule}"),
                      {"401": NO_SESSION, "403": "a store manager of another store", "404": "no such store"},
                      operator=True, params=store),
            "put": op("Replace the store's service book {services, staff, schedule} (hq_admin, or that store's "
                      "manager; audited; bookings made keep their staff and time)",
                      ("200", "{store_id, version, services, staff, schedule}"),
                      {"401": NO_SESSION, "403": "a store manager of another store, or a viewer",
                       "404": "no such store", "422": "the book is wrong (the detail names the field)"},
                      body="ServiceBook", operator=True, params=store)},
        "/operator/stores/{store_id}/schedule": {"get": op(
            "The store's service bookings on ?date=YYYY-MM-DD per staff member (cancelled ones marked)",
            ("200", "{store_id, date, staff: [{staff_id, name, bookings}]}"),
            {"401": NO_SESSION, "403": "a store manager of another store", "404": "no such store",
             "422": "date is not YYYY-MM-DD"}, operator=True, params=store, query=["date"])},
    }
    for path, summary, params in PAGES:
        paths[path] = {"get": op(summary, ("200", "text/html"), {"404": "no such page (an HTML page says so)"},
                                 params=params)}
        openapi_answers.MEDIA[(path, "get")] = ("text/html", {"type": "string", "description": "an HTML page"})
    openapi_answers.ANSWERS.update(ANSWERS)
    return paths
