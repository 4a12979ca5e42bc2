"""The stores' stocktakes as the cloud recorded them: `GET /operator/stocktakes?store=<id>` (operators who see the
store's figures: HQ and viewers any store or all of them, a store manager their own store), newest first, each
with its counted lines and variances in units and valued at cost and at price (cloud/messaging/stocktakes.py)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.http.problems import HTTPProblem
from cloud.messaging.stocktakes import listed
from protocol.digits import is_whole_number

LIMIT_MAX = 500


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def stocktakes(request):
        store_id = request.query_params.get("store") or None
        if store_id is not None and store_id not in cloud.world.stores:
            raise HTTPProblem(404, f"no store {store_id}")
        operator = await require_operator(request, services, "store.figures", store_id=store_id)
        if store_id is None and operator.store_id is not None and operator.role == "store_manager":
            store_id = operator.store_id  # a store manager sees their own store's
        raw = request.query_params.get("limit", "100")
        if not is_whole_number(raw, 9) or not 0 < int(raw) <= LIMIT_MAX:
            raise HTTPProblem(422, f"limit: 1..{LIMIT_MAX}")
        return JSONResponse({"store": store_id, "stocktakes": await listed(cloud.db, store_id, int(raw))})

    return [("/operator/stocktakes", stocktakes, ["GET"])]
