"""HQ's allocation ratio per store and SKU or category: `PUT /stores/{store_id}/allocation` (hq_admin only, audited)
and `GET /stores/{store_id}/allocation` (operators who see the store's figures); each marketplace's share of the
store's online escrow: `PUT /stores/{store_id}/marketplaces/{marketplace}/share` and `GET /stores/{store_id}/marketplaces`
(the same roles)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.http.parsing import read_json


def routes(services) -> list[tuple]:
    async def put_allocation(request):
        store_id = request.path_params["store_id"]
        operator = await require_operator(request, services, "allocation.change", store_id=store_id)
        body = await read_json(request)
        return JSONResponse(await services.allocations.set(store_id, body, operator))

    async def get_allocation(request):
        store_id = request.path_params["store_id"]
        await require_operator(request, services, "store.figures", store_id=store_id)
        return JSONResponse(await services.allocations.view(store_id))

    async def put_share(request):
        store_id = request.path_params["store_id"]
        operator = await require_operator(request, services, "allocation.change", store_id=store_id)
        body = await read_json(request)
        return JSONResponse(await services.channel_shares.set(store_id, request.path_params["marketplace"], body,
                                                              operator))

    async def get_shares(request):
        store_id = request.path_params["store_id"]
        await require_operator(request, services, "store.figures", store_id=store_id)
        return JSONResponse(await services.channel_shares.view(store_id))

    return [("/stores/{store_id}/allocation", put_allocation, ["PUT"]),
            ("/stores/{store_id}/allocation", get_allocation, ["GET"]),
            ("/stores/{store_id}/marketplaces/{marketplace}/share", put_share, ["PUT"]),
            ("/stores/{store_id}/marketplaces", get_shares, ["GET"])]
