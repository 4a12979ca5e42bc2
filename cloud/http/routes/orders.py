"""Online orders of the signed-in member: place (idempotent by the member's key), read, pay, cancel."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.bodies import CancelRequest, OrderRequest, PayRequest
from cloud.http.parsing import as_record, idempotency_key, json_object, parse, read_body, read_json
from cloud.http.routes.auth import signed_in_member


def routes(services) -> list[tuple]:
    async def create_order(request):
        member = await signed_in_member(request, services)
        key = idempotency_key(request)
        raw = await read_json(request)
        body = await services.orders.create(as_record(raw, OrderRequest, "order"), member, key, raw)
        return JSONResponse(body, status_code=201)  # a retry with the same key answers the same

    async def get_order(request):
        member = await signed_in_member(request, services)
        return JSONResponse(await services.orders.view(request.path_params["order_id"], member))

    async def pay_order(request):
        member = await signed_in_member(request, services)
        req = await parse(request, PayRequest, "payment")
        body = await services.orders.pay(request.path_params["order_id"], member, req.method)
        # 202: a wallet payment was created; the order is paid when the provider's signed notification comes
        return JSONResponse(body, status_code=202 if body["status"] == "reserved" else 200)

    async def cancel_order(request):
        member = await signed_in_member(request, services)
        raw = await read_body(request)  # an empty body is a cancel with the default reason
        content_type = request.headers.get("content-type", "")
        req = as_record(json_object(raw, content_type), CancelRequest, "cancel") if raw else CancelRequest()
        return JSONResponse(await services.orders.cancel(request.path_params["order_id"], member, req.reason))

    return [("/orders", create_order, ["POST"]), ("/orders/{order_id}", get_order, ["GET"]),
            ("/orders/{order_id}/pay", pay_order, ["POST"]), ("/orders/{order_id}/cancel", cancel_order, ["POST"])]
