"""The back office's local services (issue 21 item 7): a store's day schedule per staff member (the bookings the
mall made), and its service book (services, staff, weekly service hours) for HQ or the store's manager to edit.

Guarantees:
- The page is read with the operator's `office_session` (`office_operator(..., "store.figures", store)`): a store
  manager sees only their own store (another store's page is the 403 page saying why); the values are the very
  service calls the operator API answers (`Bookings.book_view`, `Bookings.schedule`), never HTTP to ourselves.
- Every change is the operator JSON API with the Bearer session (cloud/office/static/services.js): the whole book
  with `PUT /operator/stores/{id}/services`, a booking cancelled with `POST /bookings/{id}/cancel`; the API
  checks, audits and decides by role, and a refusal is shown as its sentence in the form's alert.
- `store_and_day(...)` is pure: the store asked for (a store manager's own by default) and the store day.
"""
from __future__ import annotations

from datetime import date

from cloud.office import i18n
from cloud.office.pages import lang_of, office_operator, office_page, signed_in
from protocol import service_slots as core


def store_and_day(asked_store: str | None, asked_day: str | None, own_store: str | None, stores: list[str],
                  now_ms: int) -> tuple[str | None, str]:
    """The store to show (asked, else the operator's own, else the chain's first) and the day (asked if it is a
    date, else today in store time). Pure."""
    store = asked_store if asked_store in stores else own_store if own_store in stores else (stores[0] if stores else None)
    try:
        day = date.fromisoformat(asked_day or "").isoformat()
    except ValueError:
        day = core.store_day(now_ms).isoformat()
    return store, day


def routes(services) -> list[tuple]:
    async def page(request):
        cloud = services.cloud  # read per request: the area's routes are built before the services are whole
        stores = sorted(cloud.world.stores)
        someone = await signed_in(request, services)
        store, day = store_and_day(request.query_params.get("store"), request.query_params.get("date"),
                                   someone.store_id if someone else None, stores, cloud.now_ms())
        operator = await office_operator(request, services, "store.figures", store_id=store)
        w = i18n.words(lang_of(request))
        book = await services.bookings.book_view(store) if store else None
        schedule = await services.bookings.schedule(store, day) if store else None
        weekdays = [(n, w[f"services.weekday_{n}"]) for n in range(1, 8)]
        return office_page(request, services, "services.html", {
            "stores": [s for s in stores if operator.role != "store_manager" or s == operator.store_id],
            "store": store, "day": day, "book": book, "schedule": schedule, "weekdays": weekdays,
            "grid_min": core.GRID_MIN}, title=w["services.title"], operator=operator)

    return [("/office/services", page, ["GET"])]
