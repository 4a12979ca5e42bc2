"""Stores: the chain's stores with liveness and lag, one store's stock, and changing a store (an hq_admin, or that
store's manager)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import operator_of, require_operator
from cloud.http.parsing import read_json
from cloud.http.problems import HTTPProblem
from protocol import roles
from protocol.clock import to_rfc3339
from protocol.schema import to_wire


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def stores(request):
        """Anyone sees the stores and their liveness; a store's till sales and revenue are business figures that
        only an operator sees (a store manager: their own store's)."""
        live = {s["store_id"]: s for s in await services.stock.liveness()}
        operator = await operator_of(request, services)
        sales = {r["store_id"]: r for r in await cloud.db.fetch(
            "select store_id, count(*) as n, coalesce(sum(total_fen), 0)::bigint as fen from till_sales group by store_id")
            } if operator else {}
        out = []
        for store in cloud.world.stores.values():
            s = live.get(store.store_id, {})
            view = {**to_wire(store), "online": s.get("online", False),
                    "offline_since": to_rfc3339(s.get("offline_since_ms")),
                    "last_heartbeat": to_rfc3339(s.get("last_heartbeat_ms")),
                    "outbox_depth": s.get("outbox_depth"), "sequence_gap": s.get("sequence_gap"),
                    "lag_ms": s.get("lag_ms"), "lag_p99_ms": s.get("lag_p99_ms"), "devices": s.get("devices", {})}
            if operator and roles.sees_store(operator.role, operator.store_id, store.store_id):
                view["till_sales"] = sales[store.store_id]["n"] if store.store_id in sales else 0
                view["till_sales_fen"] = sales[store.store_id]["fen"] if store.store_id in sales else 0
            out.append(view)
        return JSONResponse({"stores": out})

    async def store_stock(request):
        store_id = request.path_params["store_id"]
        if store_id not in cloud.world.stores:
            raise HTTPProblem(404, f"no store {store_id}")
        sku = request.query_params.get("sku")  # one item: one stock-pool shard and one row, for cheap polling
        if sku is not None and sku not in cloud.world.catalogue.by_sku:
            raise HTTPProblem(404, f"no product {sku}")
        return JSONResponse(await services.stock.store_view(store_id, sku))

    async def put_store(request):
        store_id = request.path_params["store_id"]
        operator = await require_operator(request, services, "store.change", store_id=store_id)
        body = await read_json(request)
        current = cloud.world.stores.get(store_id)
        if current is not None and isinstance(body, dict):
            if "open" not in body:  # a change that does not say keeps the store as it is, open or closed
                body = {**body, "open": current.open}
            elif body["open"] != current.open:  # only HQ opens or closes a store
                await require_operator(request, services, "store.open_close", store_id=store_id)
        return JSONResponse(await services.world_admin.change("store", body, "operator", store_id=store_id,
                                                              by=operator))

    return [("/stores", stores, ["GET"]), ("/stores/{store_id}/stock", store_stock, ["GET"]),
            ("/stores/{store_id}", put_store, ["PUT"])]
