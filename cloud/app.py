"""The ASGI app factory for uvicorn (each worker process builds its own services from the environment)."""
from __future__ import annotations

import contextlib
import os

from cloud.api import build_app
from cloud.services import start_services
from cloud.shards import ShardConfig
from cloud.world import World


def create_app():
    """uvicorn --factory cloud.app:create_app; configured by NATS_URL, DATABASE_URL, RAY_ADDRESS,
    FRESHMESH_OPERATOR_TOKEN, FRESHMESH_WORLD and FRESHMESH_BACKGROUND (1 in exactly one worker)."""
    started = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        world = World.load(os.environ.get("FRESHMESH_WORLD") or None)
        started["services"] = await start_services(
            world, os.environ["DATABASE_URL"], os.environ.get("NATS_URL"), os.environ.get("FRESHMESH_OPERATOR_TOKEN", ""),
            ShardConfig(), background=os.environ.get("FRESHMESH_BACKGROUND") == "1")
        built = build_app(started["services"])
        app.router.routes[:] = built.app.router.routes
        fast.services = started["services"]
        yield
        await started["services"].stop()

    from starlette.applications import Starlette

    from cloud.api import method_not_allowed, not_found
    from cloud.flash_fastpath import FlashFastPath
    app = Starlette(routes=[], lifespan=lifespan, exception_handlers={404: not_found, 405: method_not_allowed})
    fast = FlashFastPath(app, None)
    return fast
