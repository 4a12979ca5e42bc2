"""What till returns did to their sales' coupons, for operators (`cloud/messaging/return_promotions.py`):
`GET /operator/coupons/returns` (`?sale_id=`) lists each effect - a coupon given back by a whole return, kept
because it had expired, a till-spend coupon voided, or kept although used (that one also a coupon conflict)."""
from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.messaging import return_promotions


def routes(services) -> list[tuple]:
    async def effects(request):
        await require_operator(request, services, "views.read")
        sale_id = request.query_params.get("sale_id") or None
        return JSONResponse(await return_promotions.effects(services.cloud.db, sale_id))

    return [("/operator/coupons/returns", effects, ["GET"])]


def paths(op: Callable[..., dict]) -> dict:
    """Its /openapi.json entry (merged by `cloud/http/openapi.py` with its own helper)."""
    return {"/operator/coupons/returns": {
        "get": op("What till returns did to their sales' coupons: coupon_returned (a whole return, within the window), "
                  "coupon_kept_expired, trigger_voided (a till-spend coupon whose sale fell under its minimum), "
                  "trigger_used (the same, already used: kept, reported as a conflict), points_short (a return given "
                  "fewer points than it asked, the code empty)",
                  ("200", "{effects: [{code, effect, detail, sale_id, return_id, store_id, at_ms}]}"),
                  {"401": "no operator session token, or it expired or was revoked",
                   "403": "the operator's role may not do this"}, operator=True, query=["sale_id"])}}
