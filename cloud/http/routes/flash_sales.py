"""Flash sales: open one (hq_admin), read it, and order from it.

The order endpoint has one core, `flash_order_answer`, which the routed endpoint and the fast path
(`cloud/http/flash_fast_path.py`) both call: the same checks, limits, deadline and answers.
"""
from __future__ import annotations

from prometheus_client import Counter
from starlette.responses import JSONResponse

from cloud.http.bodies import FlashOrderRequest, FlashSaleRequest
from cloud.http.operators import require_operator
from cloud.http.parsing import as_record, checked_key, json_object, read_body, read_json
from cloud.http.problems import HTTPProblem
from cloud.http.routes.auth import pass_member
from cloud.services.verdicts import Refusal
from protocol.clock import parse_rfc3339
from protocol.errors import ProtocolError

FLASH_ORDER_ROUTE = "/flash-sales/{sale_id}/orders"
FLASH = Counter("freshmesh_flash_orders_total", "Flash-sale order outcomes", ["outcome"])


async def flash_order_answer(services, sale_id: str, authorization: str, key_header: str | None, content_type: str,
                             raw: bytes) -> tuple[int, dict]:
    """201 and the order, or an exception the caller answers as a problem. The member is the one the flash pass
    names (never a field of the body)."""
    member = pass_member(services, authorization)
    key = checked_key(key_header)
    req = as_record(json_object(raw, content_type), FlashOrderRequest, "flash_order")
    try:
        body = await services.flash.order(sale_id, member, req.qty, key)
    except Refusal as refusal:
        FLASH.labels(refusal.kind).inc()
        raise
    FLASH.labels("accepted").inc()
    return 201, body


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def create_flash_sale(request):
        operator = await require_operator(request, services, "flash_sale.create")
        data = await read_json(request)
        stores = data.pop("stores", None)  # a list of store ids or "chain": the stores whose escrow the sale takes
        if stores is not None and stores != "chain" and not (
                isinstance(stores, list) and stores and all(isinstance(s, str) for s in stores)):
            raise HTTPProblem(422, 'flash_sale.stores: a non-empty list of store ids, or "chain" for every store')
        req = as_record(data, FlashSaleRequest, "flash_sale")
        try:
            starts, ends = parse_rfc3339(req.starts_at, "starts_at"), parse_rfc3339(req.ends_at, "ends_at")
        except ProtocolError as exc:
            raise HTTPProblem(422, str(exc)) from None
        if ends <= starts:
            raise HTTPProblem(422, "ends_at: must be after starts_at")
        if req.sku not in cloud.world.catalogue:
            raise HTTPProblem(422, f"sku: unknown product {req.sku!r}")
        body = await services.flash.create(cloud.ids.new(), by=operator, sku=req.sku, quantity=req.quantity,
                                           price_fen=req.price_fen, starts_ms=starts, ends_ms=ends,
                                           rate_per_s=req.rate_per_s, per_member_limit=req.per_member_limit,
                                           stores=stores)
        return JSONResponse(body, status_code=201)

    async def get_flash_sale(request):
        return JSONResponse(await services.flash.status(request.path_params["sale_id"]))

    async def flash_order(request):
        status, body = await flash_order_answer(services, request.path_params["sale_id"],
                                                request.headers.get("authorization", ""),
                                                request.headers.get("idempotency-key"),
                                                request.headers.get("content-type", ""), await read_body(request))
        return JSONResponse(body, status_code=status)

    return [("/flash-sales", create_flash_sale, ["POST"]), ("/flash-sales/{sale_id}", get_flash_sale, ["GET"]),
            (FLASH_ORDER_ROUTE, flash_order, ["POST"])]
