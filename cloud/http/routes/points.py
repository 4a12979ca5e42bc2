"""Points (issue 17.5): the exchange offers, a member's exchanges of points for coupons, and the till receipts'
satisfaction survey.

- `GET /points/offers` -> {"offers": [{"offer_id" (= definition_id), "definition_id", "points", "worth_fen",
  "title", "value", "channels", "stores", "valid_until", "valid_days", "left"?}]}: the coupon definitions with a
  points price, valid and issuable now; with a customer's `Authorization: Bearer <session>` also below that
  member's per-member limit (401 when the token is not valid)
- `POST /members/{member_id}/points/exchange` {"offer_id": <a coupon definition id>} + Idempotency-Key (the
  signed-in member only) -> 201 {"exchange_id", "offer_id", "points", "state": "issued", "code", "coupon"} (the
  price is the definition's) | 409 insufficient points | 409 coupon: ended / not valid yet / a limit reached (no
  points taken) | 409 key reused | 422 not an offer | 503 the coupon could not be issued (the points were given
  back)
- `GET /members/{member_id}/points/exchanges` -> {"exchanges": […]}
- `GET /surveys/{token}` -> the survey page (HTML, Chinese first) | 403 forged | 404 sale unknown (yet) / no member
- `POST /surveys/{token}` {"satisfaction": 1-5, "freshness": 1-5, "comment"} (JSON, or the page's form) -> 201
  {"sale_id", "points_granted", …} | 409 answered already | 403 forged | 404 | 422 bad answer
(Points paying part of an order: `POST /orders/{id}/pay {"method", "points"}`, routes/orders.py.)
"""
from __future__ import annotations

from urllib.parse import parse_qs

from starlette.responses import HTMLResponse, JSONResponse

from cloud.http.parsing import idempotency_key, json_object, read_body, read_json
from cloud.http.problems import HTTPProblem
from cloud.http.routes.auth import signed_in_member
from cloud.http.routes.members import own_member
from cloud.services.order_rows import request_hash

FORM = "application/x-www-form-urlencoded"


def routes(services) -> list[tuple]:
    async def offers(request):  # public; a signed-in customer sees only what they may still buy
        member = await signed_in_member(request, services) if "authorization" in request.headers else None
        return JSONResponse(await services.points_exchange.offers(member))

    async def exchange(request):
        member = await own_member(request, services)
        key = idempotency_key(request)
        raw = await read_json(request)
        offer_id, extra = raw.get("offer_id"), sorted(set(raw) - {"offer_id"})
        if extra:  # a price, a quantity, ...: the definition says what it costs, never the client
            raise HTTPProblem(422, f"unknown field(s) {extra}: send only offer_id (the offer's price is its own)")
        if not isinstance(offer_id, str) or not offer_id:
            raise HTTPProblem(422, "offer_id: required, the id of a coupon definition in GET /points/offers")
        body = await services.points_exchange.exchange(member, offer_id, key, request_hash(raw))
        return JSONResponse(body, status_code=201)

    async def exchanges(request):
        return JSONResponse(await services.points_exchange.list(await own_member(request, services)))

    async def survey_page(request):
        status, text = await services.surveys.show(request.path_params["token"])
        return HTMLResponse(text, status_code=status)

    async def survey_answer(request):
        raw = await read_body(request)
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip() == FORM:  # the page's own form
            try:
                fields = {k: v[0] for k, v in parse_qs(raw.decode(), max_num_fields=10).items()}
            except (UnicodeDecodeError, ValueError) as exc:
                raise HTTPProblem(400, f"form body could not be read: {exc}") from None
        else:
            fields = json_object(raw, content_type)
        body = await services.surveys.answer(request.path_params["token"], fields)
        return JSONResponse(body, status_code=201)

    return [("/points/offers", offers, ["GET"]),
            ("/members/{member_id}/points/exchange", exchange, ["POST"]),
            ("/members/{member_id}/points/exchanges", exchanges, ["GET"]),
            ("/surveys/{token}", survey_page, ["GET"]),
            ("/surveys/{token}", survey_answer, ["POST"])]
