"""The cloud's HTTP API (Starlette): orders, flash sales, members, stores, products, health, metrics, OpenAPI,
and the operator console (cloud/console_http.py).

Every error is application/problem+json saying exactly what was wrong. Every request has a deadline: when the
actors or the database do not answer in time the client gets 503 with Retry-After, never a hang.
"""
from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloud.actor_client import ActorsUnavailable
from cloud.console_http import console_routes
from cloud.http import HTTPProblem, idempotency_key, parse, problem, problem_response, read_json, require_operator
from cloud.openapi import openapi_document
from cloud.requests import (CancelRequest, FlashOrderRequest, FlashSaleRequest, MemberRequest, OrderRequest,
                            PayRequest, TopUpRequest)
from protocol.clock import parse_rfc3339, to_rfc3339
from protocol.errors import ProtocolError
from protocol.schema import to_wire

REQUEST_DEADLINE_S = 10.0
log = logging.getLogger("freshmesh.api")
REQUESTS = Counter("freshmesh_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("freshmesh_http_request_seconds", "HTTP request latency", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
FLASH = Counter("freshmesh_flash_orders_total", "Flash-sale order outcomes", ["outcome"])


def handler(fn):
    """Deadline, problem+json for every failure, and metrics, around each endpoint."""
    async def wrapped(request: Request):
        route = request.scope.get("route").path if request.scope.get("route") else request.url.path
        started = time.perf_counter()
        try:
            async with asyncio.timeout(REQUEST_DEADLINE_S):
                response = await fn(request)
        except HTTPProblem as exc:
            response = problem_response(exc)
        except (TimeoutError, ActorsUnavailable) as exc:
            response = problem(503, f"the service could not answer in time ({type(exc).__name__}); retry",
                               headers={"Retry-After": "2"})
        except (OSError, ConnectionError) as exc:
            response = problem(503, f"a backend is unavailable: {exc}; retry", headers={"Retry-After": "2"})
        except Exception:  # noqa: BLE001
            log.exception("unhandled error on %s", route)
            response = problem(500, "internal error; it has been logged")
        REQUESTS.labels(route, response.status_code).inc()
        LATENCY.labels(route).observe(time.perf_counter() - started)
        return response
    return wrapped


def build_routes(services) -> list[Route]:
    cloud = services.cloud

    def operator(request: Request) -> None:
        require_operator(request, cloud.operator_token)

    async def health(request):
        checks = {"database": "ok", "actors": "ok", "nats": "ok" if cloud.nats and cloud.nats.is_connected else "down"}
        try:
            await cloud.db.fetchval("select 1")
        except Exception as exc:  # noqa: BLE001
            checks["database"] = f"down: {exc}"
        try:
            await asyncio.wait_for(cloud.actors.info(cloud.shards.order_router_name()), 3)
        except Exception as exc:  # noqa: BLE001
            checks["actors"] = f"down: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks, "worker": services.worker_id},
                            status_code=200 if ok else 503)

    async def products(request):
        return JSONResponse({"products": cloud.world.catalogue.to_data(), "rule_book_version": cloud.world.rule_book.version})

    async def stores(request):
        live = {s["store_id"]: s for s in await services.registry_view()}
        sales = {r["store_id"]: r for r in await cloud.db.fetch(
            "select store_id, count(*) as n, coalesce(sum(total_fen), 0)::bigint as fen from till_sales group by store_id")}
        out = []
        for store in cloud.world.stores.values():
            s = live.get(store.store_id, {})
            out.append({**to_wire(store), "online": s.get("online", False),
                        "offline_since": to_rfc3339(s.get("offline_since_ms")),
                        "last_heartbeat": to_rfc3339(s.get("last_heartbeat_ms")),
                        "outbox_depth": s.get("outbox_depth"), "sequence_gap": s.get("sequence_gap"),
                        "lag_ms": s.get("lag_ms"), "lag_p99_ms": s.get("lag_p99_ms"), "devices": s.get("devices", {}),
                        "till_sales": sales[store.store_id]["n"] if store.store_id in sales else 0,
                        "till_sales_fen": sales[store.store_id]["fen"] if store.store_id in sales else 0})
        return JSONResponse({"stores": out})

    async def store_stock(request):
        store_id = request.path_params["store_id"]
        if store_id not in cloud.world.stores:
            raise HTTPProblem(404, f"no store {store_id}")
        sku = request.query_params.get("sku")  # one item: one stock-pool shard and one row, for cheap polling
        if sku is not None and sku not in cloud.world.catalogue.by_sku:
            raise HTTPProblem(404, f"no product {sku}")
        return JSONResponse(await services.stock_view(store_id, sku))

    async def create_order(request):
        key = idempotency_key(request)
        raw = await read_json(request)
        req = await parse_dict(raw, OrderRequest, "order")
        status, body = await services.orders.create(req, key, raw)
        return JSONResponse(body, status_code=status)

    async def get_order(request):
        from cloud.orders import order_json
        return JSONResponse(order_json(await services.orders.get(request.path_params["order_id"])))

    async def pay_order(request):
        req = await parse(request, PayRequest, "payment")
        return JSONResponse(await services.orders.pay(request.path_params["order_id"], req.method))

    async def cancel_order(request):
        raw = await request.body()
        req = await parse(request, CancelRequest, "cancel") if raw else CancelRequest()
        return JSONResponse(await services.orders.cancel(request.path_params["order_id"], req.reason))

    async def create_flash_sale(request):
        operator(request)
        req = await parse(request, FlashSaleRequest, "flash_sale")
        try:
            starts, ends = parse_rfc3339(req.starts_at, "starts_at"), parse_rfc3339(req.ends_at, "ends_at")
        except ProtocolError as exc:
            raise HTTPProblem(422, str(exc)) from None
        if ends <= starts:
            raise HTTPProblem(422, "ends_at: must be after starts_at")
        if req.sku not in cloud.world.catalogue:
            raise HTTPProblem(422, f"sku: unknown product {req.sku!r}")
        sale_id = cloud.ids.new()
        body = await services.flash.create(sale_id, {"sku": req.sku, "quantity": req.quantity, "price_fen": req.price_fen,
                                                     "starts_ms": starts, "ends_ms": ends, "rate_per_s": req.rate_per_s,
                                                     "per_member_limit": req.per_member_limit})
        return JSONResponse(body, status_code=201)

    async def get_flash_sale(request):
        return JSONResponse(await services.flash.status(request.path_params["sale_id"]))

    async def flash_order(request):
        key = idempotency_key(request)
        req = await parse(request, FlashOrderRequest, "flash_order")
        worker = await services.flash.worker(request.path_params["sale_id"])
        try:
            status, body = await worker.order(req.member_id, req.qty, key)
        except HTTPProblem as exc:
            FLASH.labels(exc.type.rsplit("/", 1)[-1]).inc()
            raise
        FLASH.labels("accepted").inc()
        return JSONResponse(body, status_code=status)

    async def create_member(request):
        req = await parse(request, MemberRequest, "member")
        status, body = await services.members.register(req.phone)
        return JSONResponse(body, status_code=status)

    async def get_member(request):
        return JSONResponse(await services.members.view(request.path_params["member_id"]))

    async def top_up(request):
        key = idempotency_key(request)
        req = await parse(request, TopUpRequest, "top_up")
        body = await services.members.top_up(request.path_params["member_id"], req.amount_fen, req.method, key)
        return JSONResponse(body, status_code=201)

    async def put_products(request):
        operator(request)
        data = await read_json(request)
        if not isinstance(data.get("products"), list):
            raise HTTPProblem(422, "products: a list of products is required")
        return JSONResponse(await services.world_admin.change("catalogue", data["products"], data.get("reason", "operator")))

    async def put_rule_book(request):
        operator(request)
        return JSONResponse(await services.world_admin.change("rule_book", await read_json(request), "operator"))

    async def put_store(request):
        operator(request)
        body = await read_json(request)
        return JSONResponse(await services.world_admin.change("store", body, "operator",
                                                              store_id=request.path_params["store_id"]))

    async def audit(request):
        operator(request)
        return JSONResponse(await services.audit())

    async def metrics(request):
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request):
        return JSONResponse(openapi_document())

    routes = [
        ("/health", health, ["GET"]), ("/metrics", metrics, ["GET"]), ("/openapi.json", openapi, ["GET"]),
        ("/products", products, ["GET"]), ("/stores", stores, ["GET"]), ("/stores/{store_id}/stock", store_stock, ["GET"]),
        ("/orders", create_order, ["POST"]), ("/orders/{order_id}", get_order, ["GET"]),
        ("/orders/{order_id}/pay", pay_order, ["POST"]), ("/orders/{order_id}/cancel", cancel_order, ["POST"]),
        ("/flash-sales", create_flash_sale, ["POST"]), ("/flash-sales/{sale_id}", get_flash_sale, ["GET"]),
        ("/flash-sales/{sale_id}/orders", flash_order, ["POST"]),
        ("/members", create_member, ["POST"]), ("/members/{member_id}", get_member, ["GET"]),
        ("/members/{member_id}/top-ups", top_up, ["POST"]),
        ("/products", put_products, ["PUT"]), ("/rule-book", put_rule_book, ["PUT"]),
        ("/stores/{store_id}", put_store, ["PUT"]), ("/audit", audit, ["GET"]),
        *console_routes(services),
    ]
    return [Route(path, handler(fn), methods=methods) for path, fn, methods in routes] + services.extra_routes()


async def parse_dict(raw: dict, cls, name: str):
    from protocol.schema import record_from_wire
    try:
        return record_from_wire(cls, raw, name)
    except ProtocolError as exc:
        raise HTTPProblem(422, str(exc)) from None


def not_found(request, exc):
    return problem(404, f"no such endpoint: {request.method} {request.url.path}")


def method_not_allowed(request, exc):
    return problem(405, f"{request.method} is not allowed on {request.url.path}")


def build_app(services, lifespan=None):
    from cloud.flash_fastpath import FlashFastPath
    app = Starlette(routes=build_routes(services), lifespan=lifespan,
                    exception_handlers={404: not_found, 405: method_not_allowed})
    return FlashFastPath(app, services)
