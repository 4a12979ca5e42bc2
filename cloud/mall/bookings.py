"""The mall's local services (issue 21 item 7): the services of the chosen store, a service's page (pick a day and a
free time, book), and the signed-in customer's bookings.

Guarantees:
- What a page shows is what the public API answers (the same service calls: `Bookings.offered`, `Bookings.slots`);
  booking and cancelling are the public `POST /bookings` and `POST /bookings/{id}/cancel` with the customer's session
  (cloud/mall/static/bookings.js), one `booking_id` made per attempt and kept for its retry, so a retry never books
  twice; the customer's bookings are read with `GET /members/{id}/bookings` (their own only).
- A time someone else took first is answered with the mall's own sentence in the customer's language (the
  problem's `reason` "taken"), never a raw problem body; the day's times are re-read so the taken one disappears.
- Days are the store's (China time): `days(...)` is pure and unit-tested.
"""
from __future__ import annotations

from datetime import date, timedelta

from cloud.mall import i18n
from cloud.mall.pages import lang_of, mall_error, mall_page, store_of
from cloud.services.verdicts import Refusal
from protocol import service_slots as core

DAYS_SHOWN = 7  # the day picker: today and the next six days (bookings open further ahead through the API)


def days(now_ms: int, chosen: str | None, shown: int = DAYS_SHOWN) -> tuple[list[dict], date]:
    """The day picker's days (store time) from today, and the chosen one (today when `chosen` is not one of them).
    Pure."""
    today = core.store_day(now_ms)
    out = [{"date": (today + timedelta(days=i)).isoformat(), "weekday": (today + timedelta(days=i)).isoweekday(),
            "label": (today + timedelta(days=i)).strftime("%m-%d")} for i in range(shown)]
    picked = next((date.fromisoformat(str(d["date"])) for d in out if d["date"] == chosen), today)
    return out, picked


def routes(services) -> list[tuple]:
    cloud = services.cloud

    def words(request) -> dict[str, str]:
        return i18n.words(lang_of(request))

    async def service_list(request):
        store_id = store_of(request, services)
        offered = await services.bookings.offered(store_id) if store_id else None
        return mall_page(request, services, "services.html", {"offered": offered}, title=words(request)["svc_title"])

    async def service_page(request):
        store_id = store_of(request, services)
        if store_id is None:
            return mall_error(request, services, 409, words(request)["svc_pick_store"])
        service_id = request.path_params["service_id"]
        offered = await services.bookings.offered(store_id)
        found = [s for s in offered["services"] if s["service_id"] == service_id]
        if not found:
            return mall_error(request, services, 404, words(request)["page_missing"])
        shown, day = days(cloud.now_ms(), request.query_params.get("date"))
        try:
            free = await services.bookings.slots(store_id, service_id, day.isoformat())
        except Refusal:
            return mall_error(request, services, 404, words(request)["page_missing"])
        service = found[0]
        name = service["name_en"] if lang_of(request) == "en" else service["name"]
        return mall_page(request, services, "service.html", {
            "s": service, "name": name, "days": shown, "day": day.isoformat(), "slots": free["slots"],
            "schedule": offered["schedule"], "store_id": store_id}, title=name)

    async def my_bookings(request):
        return mall_page(request, services, "bookings.html", {}, title=words(request)["svc_my_bookings"])

    return [("/mall/services", service_list, ["GET"]), ("/mall/services/{service_id}", service_page, ["GET"]),
            ("/mall/bookings", my_bookings, ["GET"])]
