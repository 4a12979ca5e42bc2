"""The cloud's HTTP API (Starlette): one routes module per resource, each endpoint guarded (deadline,
problem+json, metrics), the flash-order fast path in front, and the factory uvicorn workers call.

Every error is application/problem+json saying exactly what was wrong; when the actors or the database do not
answer in time the client gets 503 with Retry-After, never a hang.
"""
from __future__ import annotations

import contextlib
import os

from starlette.applications import Starlette
from starlette.routing import Route

from cloud.console.routes import routes as console_routes
from cloud.http.endpoint import guarded
from cloud.http.flash_fast_path import FlashFastPath
from cloud.http.middleware import RequestContext
from cloud.http.problems import problem
from cloud.http.routes import (
    after_sales,
    allocations,
    auth,
    bookings,
    cart,
    catalogue,
    coupons,
    flash_sales,
    group_buys,
    hq_reports,
    markdowns,
    marketplaces,
    member_self,
    members,
    operations,
    operators,
    orders,
    payments,
    points,
    prices,
    promotions,
    reports,
    restock,
    return_promotions,
    riders,
    rule_book_drafts,
    segments,
    shifts,
    stalls,
    stocktakes,
    stores,
    transfers,
)
from cloud.mall.routes import routes as mall_routes
from cloud.office.routes import routes as office_routes

RESOURCES = (operations, auth, operators, catalogue, stores, allocations, orders, flash_sales, members, payments,
             riders, marketplaces, after_sales, markdowns, reports, restock, stocktakes, transfers, group_buys,
             segments, points, coupons, promotions, return_promotions, shifts, cart,
             member_self,  # member_self: the member centre's own-account endpoints (issue 20)
             bookings, stalls, rule_book_drafts,  # issue 21: services booking, market stalls, promotion editor,
             hq_reports, prices)  # HQ reports, catalogue and prices


def build_routes(services) -> list[Route]:
    found = [r for module in RESOURCES for r in module.routes(services)] + console_routes(services)
    found += mall_routes(services)  # the customers' mall at /mall (cloud/mall/)
    found += office_routes(services)  # the HQ back office at /office (cloud/office/)
    return [Route(path, guarded(fn), methods=methods) for path, fn, methods in found]


def not_found(request, exc):
    return problem(404, f"no such endpoint: {request.method} {request.url.path}")


def method_not_allowed(request, exc):
    return problem(405, f"{request.method} is not allowed on {request.url.path}")


def access_log_on() -> bool:
    return os.environ.get("FRESHMESH_ACCESS_LOG") == "1"  # `freshmesh cloud --access-log`


def build_app(services, lifespan=None) -> RequestContext:
    app = Starlette(routes=build_routes(services), lifespan=lifespan,
                    exception_handlers={404: not_found, 405: method_not_allowed})
    return RequestContext(FlashFastPath(app, services), access=access_log_on())


def create_app() -> RequestContext:
    """uvicorn --factory cloud.http.app:create_app; configured by NATS_URL, DATABASE_URL, RAY_ADDRESS,
    FRESHMESH_WORLD, FRESHMESH_BACKGROUND (1 in exactly one worker) and the keys
    (FRESHMESH_SECRET_KEY, FRESHMESH_PII_KEYS, FRESHMESH_STORE_SECRET: cloud/keys.py)."""
    from cloud.http import db_watch
    from cloud.http.metrics import worker_exited
    from cloud.logs import configure
    from cloud.runtime.shard_map import ShardConfig
    from cloud.wiring import start_services
    from cloud.world import World

    @contextlib.asynccontextmanager
    async def lifespan(app):
        world = World.load(os.environ.get("FRESHMESH_WORLD") or None)
        services = await start_services(
            world, os.environ["DATABASE_URL"], os.environ.get("NATS_URL"),
            ShardConfig.from_env(), background=os.environ.get("FRESHMESH_BACKGROUND") == "1")
        app.router.routes[:] = build_routes(services)
        fast.services = services
        db_watch.current = db_watch.DbWatch(os.environ["DATABASE_URL"]).start()  # a frozen PostgreSQL: 503 in ~2 s
        try:
            yield
            await services.stop()
        finally:
            await db_watch.current.stop()
            worker_exited()

    configure(default_level="WARNING")  # this worker's log lines: JSON with the request id (cloud/logs.py)
    app = Starlette(routes=[], lifespan=lifespan, exception_handlers={404: not_found, 405: method_not_allowed})
    fast = FlashFastPath(app, None)
    return RequestContext(fast, access=access_log_on())
