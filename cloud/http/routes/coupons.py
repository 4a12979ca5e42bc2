"""Coupons: HQ defines coupons and issues them (campaigns, one member), sees cross-channel conflicts; a signed-in
member reads their own wallet (`cloud/services/coupons.py`)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.http.parsing import read_json
from cloud.http.routes.members import own_member
from cloud.services.order_rows import request_hash


def routes(services) -> list[tuple]:
    async def define(request):  # hq_admin (the promotion book's permission): audited
        operator = await require_operator(request, services, "rule_book.change")
        body, created = await services.coupons.define(await read_json(request), operator)
        return JSONResponse(body, status_code=201 if created else 200)

    async def definitions(request):
        await require_operator(request, services, "views.read")
        return JSONResponse(await services.coupons.definitions())

    async def issue(request):  # a campaign, or one member by an operator: idempotent by batch_id, audited
        operator = await require_operator(request, services, "rule_book.change")
        raw = await read_json(request)
        body = await services.coupons.issue(request.path_params["definition_id"], raw, request_hash(raw), operator)
        return JSONResponse(body, status_code=200)

    async def rules(request):
        await require_operator(request, services, "views.read")
        return JSONResponse(services.coupons.rules())

    async def conflicts(request):
        await require_operator(request, services, "views.read")
        return JSONResponse(await services.coupons.conflicts())

    async def wallet(request):  # the signed-in member's own coupons only
        return JSONResponse(await services.coupons.wallet(await own_member(request, services)))

    return [("/operator/coupon-definitions", define, ["POST"]),
            ("/operator/coupon-definitions", definitions, ["GET"]),
            ("/operator/coupon-definitions/{definition_id}/issue", issue, ["POST"]),
            ("/operator/coupons/conflicts", conflicts, ["GET"]),
            ("/operator/coupon-rules", rules, ["GET"]),
            ("/members/{member_id}/coupons", wallet, ["GET"])]
