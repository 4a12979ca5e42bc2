"""The operator console over HTTP: the page, a live stream of snapshots (server-sent events), one snapshot as JSON.

- `GET /console`: the page (static, no data in it, so it is not protected); it signs the operator in with their
  username and password (POST /operator/sessions), keeps the session token in sessionStorage and passes it on.
- `GET /console/stream`: `text/event-stream`, one `snapshot` event per tick (about a second) and a comment
  every few seconds of silence. Operator only: `Authorization: Bearer` or `?token=` (EventSource cannot send
  headers). A client that goes away is noticed at once (`http.disconnect`) or at the next write, and its
  subscription ends with it: nothing is left running for it.
- `GET /console/snapshot`: the same snapshot as JSON (operator only).
Customers' endpoints never need an operator session; these never work without one (401 without or with an invalid
one); every operator role may read them.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from cloud.http.operators import require_operator
from cloud.http.sse import Event, EventStream

KEEPALIVE_S = 10.0


def console_page() -> str:
    return resources.files("cloud.console").joinpath("static/console.html").read_text(encoding="utf-8")


async def snapshots(feed) -> AsyncGenerator[Event | None, None]:
    """The feed's snapshots as `snapshot` events (None after `KEEPALIVE_S` of silence)."""
    async with feed.subscribe() as queue:
        while True:
            try:
                snap = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield None
                continue
            yield "snapshot", str(snap["at_ms"]), snap


def routes(services) -> list[tuple]:
    """(path, endpoint, methods), guarded by the HTTP app like every other endpoint."""

    async def operator(request: Request) -> None:
        await require_operator(request, services, "views.read", allow_query=True)

    async def page(request):
        return HTMLResponse(console_page(), headers={"Cache-Control": "no-cache"})

    async def stream(request):
        await operator(request)
        return EventStream(lambda: snapshots(services.console()))

    async def snapshot(request):
        await operator(request)
        return JSONResponse(await services.console().snapshot())

    return [("/console", page, ["GET"]), ("/console/stream", stream, ["GET"]),
            ("/console/snapshot", snapshot, ["GET"])]
