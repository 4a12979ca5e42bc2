"""The flash-sale order endpoint as a thin ASGI shell in front of the Starlette app.

Measured (py-spy on a loaded worker): Starlette's middleware stack, routing and Request objects cost about half
of each flash-sale request. This shell handles exactly `POST /flash-sales/{sale_id}/orders` by calling the same
core as the routed endpoint (`flash_order_answer`) under the same deadline, body limit and problem mapping, and
hands every other request to Starlette untouched.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator

from starlette.types import Receive, Scope, Send

from cloud.http.endpoint import REQUEST_DEADLINE_S, observe
from cloud.http.parsing import read_limited
from cloud.http.problems import problem_for
from cloud.http.routes.flash_sales import FLASH_ORDER_ROUTE, flash_order_answer

PATH = re.compile(r"^/flash-sales/([A-Za-z0-9]{1,40})/orders$")


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The ASGI request's body chunks, read with the same limit as every endpoint's body."""
    while True:
        message = await receive()
        yield message.get("body", b"")
        if not message.get("more_body"):
            return


class FlashFastPath:
    def __init__(self, app, services) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        m = PATH.match(scope["path"])
        if m is None:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key")
        extra: dict = {}
        try:
            async with asyncio.timeout(REQUEST_DEADLINE_S):
                status, body = await flash_order_answer(
                    self.services, m.group(1), headers.get(b"authorization", b"").decode("latin-1"),
                    key.decode("latin-1") if key is not None else None,
                    headers.get(b"content-type", b"").decode("latin-1"), await read_limited(_chunks(receive)))
        except Exception as exc:  # noqa: BLE001 - answered as a problem, exactly as the routed endpoint does
            problem = problem_for(exc, FLASH_ORDER_ROUTE)
            status, body, extra = problem.status, problem.body(), problem.headers
        observe(FLASH_ORDER_ROUTE, status, started)
        payload = json.dumps(body, separators=(",", ":")).encode()
        media = b"application/json" if status < 400 else b"application/problem+json"
        raw_headers = [(b"content-type", media), (b"content-length", str(len(payload)).encode())]
        raw_headers += [(k.lower().encode(), str(v).encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})
