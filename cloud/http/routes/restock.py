"""Restock (issue 16 item 7): HQ's reorder points per store and SKU - `PUT /stores/{store_id}/reorder-points`
(hq_admin only, audited, sent to the store) and `GET` the same (operators who see the store's figures; with the
defaults from sales velocity) - and `GET /operator/restock?store=` (open restock alerts and the suggested order per
supplier; a store manager: their own store)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.http.parsing import read_json


def routes(services) -> list[tuple]:
    async def put_points(request):
        store_id = request.path_params["store_id"]
        operator = await require_operator(request, services, "restock.change", store_id=store_id)
        body = await read_json(request)
        return JSONResponse(await services.restock.set_points(store_id, body, operator))

    async def get_points(request):
        store_id = request.path_params["store_id"]
        await require_operator(request, services, "store.figures", store_id=store_id)
        return JSONResponse(await services.restock.view(store_id))

    async def operator_restock(request):
        store_id = request.query_params.get("store") or None
        operator = await require_operator(request, services, "store.figures", store_id=store_id)
        if store_id is None and operator.role == "store_manager":
            store_id = operator.store_id  # a store manager sees their own store's
        return JSONResponse(await services.restock.operator_view(store_id))

    return [("/stores/{store_id}/reorder-points", put_points, ["PUT"]),
            ("/stores/{store_id}/reorder-points", get_points, ["GET"]),
            ("/operator/restock", operator_restock, ["GET"])]
