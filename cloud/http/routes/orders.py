"""Online orders of the signed-in member: place (idempotent by the member's key), read, pay, cancel."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.bodies import CancelRequest, OrderRequest, PayRequest
from cloud.http.parsing import as_record, idempotency_key, json_object, parse, read_body, read_json
from cloud.http.problems import HTTPProblem
from cloud.http.routes.auth import bearer_of, signed_in_member
from cloud.http.sse import EventStream
from protocol.digits import is_whole_number


def routes(services) -> list[tuple]:
    async def create_order(request):
        member = await signed_in_member(request, services)
        key = idempotency_key(request)
        raw = await read_json(request)
        body = await services.orders.create(as_record(raw, OrderRequest, "order"), member, key, raw)
        return JSONResponse(body, status_code=201)  # a retry with the same key answers the same

    async def get_order(request):
        member = await signed_in_member(request, services)
        body = await services.orders.view(request.path_params["order_id"], member)
        body.update(await services.orders.points.view(body["order_id"]))  # the points part, if any
        return JSONResponse(body)

    async def follow_order(request):
        """The order's timeline as server-sent events (`step`), from after `Last-Event-ID` (a reconnecting browser
        sends it) or `?after=`; EventSource cannot send headers, so `?token=` may carry the session token."""
        token = request.headers.get("authorization", "")
        if not token and request.query_params.get("token"):
            token = "Bearer " + request.query_params["token"]
        member = await services.identity.member_of(bearer_of(token, "session token (or ?token=)"))
        if member is None:
            raise HTTPProblem(401, "the session token is not valid (expired, revoked or unknown): sign in again",
                              headers={"WWW-Authenticate": "Bearer"})
        order_id = request.path_params["order_id"]
        await services.orders.get(order_id, member)  # someone else's order answers 404 like an unknown one
        after = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        if not is_whole_number(after, 9):
            raise HTTPProblem(422, f"after / Last-Event-ID: must be a timeline seq (a whole number), not {after[:20]!r}")
        followers = await services.followers()

        async def steps():
            async for entry in followers.follow(services.cloud.db, order_id, int(after)):
                yield None if entry is None else ("step", str(entry["seq"]), entry)
        return EventStream(steps)

    async def pay_order(request):
        member = await signed_in_member(request, services)
        req = await parse(request, PayRequest, "payment")
        order_id = request.path_params["order_id"]
        if req.points:  # a split payment: points for part, `method` for the rest (cloud/services/points_pay.py)
            body = await services.orders.points.pay(order_id, member, req.method, req.points)
        else:
            body = await services.orders.pay(order_id, member, req.method)
        # 202: a wallet payment was created; the order is paid when the provider's signed notification comes
        return JSONResponse(body, status_code=202 if body["status"] == "reserved" else 200)

    async def cancel_order(request):
        member = await signed_in_member(request, services)
        raw = await read_body(request)  # an empty body is a cancel with the default reason
        content_type = request.headers.get("content-type", "")
        req = as_record(json_object(raw, content_type), CancelRequest, "cancel") if raw else CancelRequest()
        return JSONResponse(await services.orders.cancel(request.path_params["order_id"], member, req.reason))

    return [("/orders", create_order, ["POST"]), ("/orders/{order_id}", get_order, ["GET"]),
            ("/orders/{order_id}/events", follow_order, ["GET"]),
            ("/orders/{order_id}/pay", pay_order, ["POST"]), ("/orders/{order_id}/cancel", cancel_order, ["POST"])]
