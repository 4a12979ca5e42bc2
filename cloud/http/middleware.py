"""The outermost layer of the cloud's HTTP app: a request id for every request, and the optional access log.

Guarantees:
- every HTTP request has a request id: the client's `X-Request-Id` when it is a sane token (1–128 characters of
  letters, digits, `.`, `_`, `-`, `:`; anything else is replaced, never echoed, so a log line cannot be forged
  through it), else a new one (32 hex digits). It is returned in the response's `X-Request-Id` header and is in
  every log line written while the request is served (`cloud.logs.REQUEST_ID`, a context variable: concurrent
  requests never see each other's);
- with the access log on (`freshmesh cloud --access-log`, i.e. FRESHMESH_ACCESS_LOG=1 in the API workers), one
  line per request on the `freshmesh.access` logger: method, path, status, duration in ms, bytes sent, the
  request id; the query string is left out (it may carry an SSE session token);
- it sits outside the flash fast path, so flash orders get ids and access lines like every other request.
"""
from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.logs import REQUEST_ID

HEADER = b"x-request-id"
SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
access_log = logging.getLogger("freshmesh.access")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's request id if it is a sane token, else a new one."""
    for name, value in headers:
        if name.lower() == HEADER:
            text = value.decode("latin-1")
            if SANE_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RequestContext:
    def __init__(self, app: ASGIApp, access: bool = False) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope.get("headers") or [])
        token = REQUEST_ID.set(request_id)
        started, status, sent = time.perf_counter(), 500, 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, request_id.encode("latin-1"))]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access:
                access_log.info("%s %s %s %.1fms %dB", scope["method"], scope["path"], status,
                                (time.perf_counter() - started) * 1000, sent,
                                extra={"method": scope["method"], "path": scope["path"], "status": status,
                                       "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                                       "bytes": sent})
            REQUEST_ID.reset(token)
