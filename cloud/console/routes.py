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
import json
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from cloud.http.operators import require_operator

KEEPALIVE_S = 10.0
RETRY_MS = 2_000  # how soon a browser's EventSource reconnects after losing the stream


def console_page() -> str:
    return resources.files("cloud.console").joinpath("static/console.html").read_text(encoding="utf-8")


class EventStream:
    """An ASGI response: the feed's snapshots as server-sent events until the client disconnects."""

    media_type = "text/event-stream"

    def __init__(self, feed) -> None:
        self.feed = feed
        self.status_code = 200  # read by the metrics wrapper

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no")]})  # no proxy may hold events back
        gone = asyncio.create_task(_disconnected(receive))
        try:
            async with self.feed.subscribe() as queue:
                await _chunk(send, f"retry: {RETRY_MS}\n\n")
                while not gone.done():
                    getter = asyncio.create_task(queue.get())
                    done, _ = await asyncio.wait({getter, gone}, timeout=KEEPALIVE_S,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if getter in done:
                        data = json.dumps(getter.result(), separators=(",", ":"))
                        await _chunk(send, f"event: snapshot\nid: {getter.result()['at_ms']}\ndata: {data}\n\n")
                    else:
                        getter.cancel()
                        if not gone.done():
                            await _chunk(send, ": still here\n\n")
        except OSError:
            pass  # the client went away mid-write (ASGI 2.4 servers say so this way)
        finally:
            gone.cancel()
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass


async def _chunk(send, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def routes(services) -> list[tuple]:
    """(path, endpoint, methods), guarded by the HTTP app like every other endpoint."""

    async def operator(request: Request) -> None:
        await require_operator(request, services, "views.read", allow_query=True)

    async def page(request):
        return HTMLResponse(console_page(), headers={"Cache-Control": "no-cache"})

    async def stream(request):
        await operator(request)
        return EventStream(services.console())

    async def snapshot(request):
        await operator(request)
        return JSONResponse(await services.console().snapshot())

    return [("/console", page, ["GET"]), ("/console/stream", stream, ["GET"]),
            ("/console/snapshot", snapshot, ["GET"])]
