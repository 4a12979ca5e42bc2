"""Running the service: health, metrics, the OpenAPI document, the invariant audit (any signed-in operator)."""
from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse, Response

from cloud.http import db_watch
from cloud.http import metrics as exported
from cloud.http.openapi import openapi_document
from cloud.http.operators import require_operator
from cloud.logs import version
from cloud.services import order_book
from protocol.clock import parse_rfc3339

DAY_MS = 86_400_000

HEALTH_PROBE_S = 3


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def health(request):
        checks = {"database": "ok", "actors": "ok", "nats": "ok" if cloud.nats and cloud.nats.is_connected else "down"}
        watch = db_watch.current
        try:
            if watch is not None and not watch.up:  # known frozen: said at once, not after a query's timeout
                raise ConnectionError(watch.why)
            await asyncio.wait_for(cloud.db.fetchval("select 1"), HEALTH_PROBE_S)
        except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the health check
            checks["database"] = f"down: {type(exc).__name__}: {exc}"
        try:
            await asyncio.wait_for(cloud.actors.router.info(), HEALTH_PROBE_S)
        except Exception as exc:  # noqa: BLE001
            checks["actors"] = f"down: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks, "worker": services.worker_id,
                             "version": version(),
                             "database_latency_ms": watch.latency_ms if watch is not None else None},
                            status_code=200 if ok else 503)

    async def metrics(request):
        return Response(exported.exposition(await exported.gather(services)), media_type=exported.MEDIA_TYPE)

    async def openapi(request):
        return JSONResponse(openapi_document())

    async def audit(request):
        await require_operator(request, services, "views.read")
        body = await services.stock.audit()
        body["reported"] = {"coupon_conflicts": await services.coupons.conflict_count()}  # known, not lost
        return JSONResponse(body)

    async def order_summary(request):
        """Orders by final state and the open ones with what each waits for (a store manager: their store's)."""
        operator = await require_operator(request, services, "views.read")
        since = request.query_params.get("since")
        since_ms = parse_rfc3339(since, "since") if since else cloud.now_ms() - DAY_MS
        return JSONResponse(await order_book.summary(cloud, since_ms, operator.store_id))

    return [("/health", health, ["GET"]), ("/metrics", metrics, ["GET"]), ("/openapi.json", openapi, ["GET"]),
            ("/audit", audit, ["GET"]), ("/operator/orders/summary", order_summary, ["GET"])]
