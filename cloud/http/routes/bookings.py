"""Local services booking (issue 21 item 7; `cloud/services/bookings.py`).

Public: `GET /stores/{store_id}/services` (what the store offers, its service hours; the price is paid at the store),
`GET /stores/{store_id}/services/{service_id}/slots?date=YYYY-MM-DD` (the free starts, each with how many staff are
free). Customer (session token): `POST /bookings` {"booking_id", "store_id", "service_id", "start"} -> 201 the
booking, 200 the first booking for a retry of its id, 409 `slot` (taken, or not offered then: `reason` says which),
409 `key_reused`; `GET /members/{member_id}/bookings` (own only); `POST /bookings/{booking_id}/cancel` (own, before it
starts; an operator of the booking's store may cancel any of the store's bookings, audited).
Operators: `GET|PUT /operator/stores/{store_id}/services` (the whole book: services, staff, schedule; PUT: hq_admin
or that store's manager, audited), `GET /operator/stores/{store_id}/schedule?date=` (the day's bookings per staff)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import operator_token, require_operator
from cloud.http.parsing import as_record, read_json
from cloud.http.routes.auth import signed_in_member
from cloud.http.routes.members import own_member
from cloud.services.bookings import BookingBody


def routes(services) -> list[tuple]:
    async def offered(request):
        return JSONResponse(await services.bookings.offered(request.path_params["store_id"]))

    async def slots(request):
        p = request.path_params
        return JSONResponse(await services.bookings.slots(p["store_id"], p["service_id"], request.query_params.get("date")))

    async def book(request):
        member = await signed_in_member(request, services)
        body = as_record(await read_json(request), BookingBody, "booking")
        status, answer = await services.bookings.book(member, body)
        return JSONResponse(answer, status_code=status)

    async def mine(request):
        return JSONResponse(await services.bookings.member_bookings(await own_member(request, services)))

    async def cancel(request):
        booking_id = request.path_params["booking_id"]
        token = operator_token(request)
        if token is not None and await services.operators.session(token) is not None:
            store = await services.bookings.store_of(booking_id)
            operator = await require_operator(request, services, "store.change", store_id=store)
            return JSONResponse(await services.bookings.cancel(booking_id, operator=operator))
        return JSONResponse(await services.bookings.cancel(booking_id, member=await signed_in_member(request, services)))

    async def book_view(request):
        store = request.path_params["store_id"]
        await require_operator(request, services, "store.figures", store_id=store)
        return JSONResponse(await services.bookings.book_view(store))

    async def put_book(request):
        store = request.path_params["store_id"]
        operator = await require_operator(request, services, "store.change", store_id=store)
        return JSONResponse(await services.bookings.put_book(store, await read_json(request), operator))

    async def schedule(request):
        store = request.path_params["store_id"]
        await require_operator(request, services, "store.figures", store_id=store)
        return JSONResponse(await services.bookings.schedule(store, request.query_params.get("date")))

    return [("/stores/{store_id}/services", offered, ["GET"]),
            ("/stores/{store_id}/services/{service_id}/slots", slots, ["GET"]),
            ("/bookings", book, ["POST"]), ("/members/{member_id}/bookings", mine, ["GET"]),
            ("/bookings/{booking_id}/cancel", cancel, ["POST"]),
            ("/operator/stores/{store_id}/services", book_view, ["GET"]),
            ("/operator/stores/{store_id}/services", put_book, ["PUT"]),
            ("/operator/stores/{store_id}/schedule", schedule, ["GET"])]
