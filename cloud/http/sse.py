"""Server-sent events as an ASGI response: what an async generator yields, until the client goes away.

The generator yields `(event, id, data)` to send one event, or None when it has had nothing to say for a while
(the stream then writes a comment, so a dead connection is noticed). A client that goes away is noticed at once
(`http.disconnect`) or at the next write; the generator is closed with it, so nothing is left running for it.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Callable

RETRY_MS = 2_000  # how soon a browser's EventSource reconnects after losing the stream
Event = tuple[str, str, dict]


class EventStream:
    media_type = "text/event-stream"

    def __init__(self, events: Callable[[], AsyncGenerator[Event | None, None]]) -> None:
        self.events = events
        self.status_code = 200  # read by the metrics wrapper

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no")]})  # no proxy may hold events back
        gone = asyncio.create_task(_disconnected(receive))
        events = self.events()
        try:
            await _chunk(send, f"retry: {RETRY_MS}\n\n")
            while not gone.done():
                following = asyncio.ensure_future(anext(events))
                await asyncio.wait({following, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    following.cancel()
                    break
                try:
                    item = following.result()
                except StopAsyncIteration:
                    break
                if item is None:
                    await _chunk(send, ": still here\n\n")
                else:
                    name, event_id, data = item
                    await _chunk(send, f"event: {name}\nid: {event_id}\ndata: "
                                       f"{json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n")
        except OSError:
            pass  # the client went away mid-write (ASGI 2.4 servers say so this way)
        finally:
            gone.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await events.aclose()
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass


async def _chunk(send, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
