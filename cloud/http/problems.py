"""application/problem+json: every error the API answers says exactly what was wrong.

`HTTPProblem` is raised by the HTTP layer itself (a bad body, a missing header, no operator session). A service's
`Refusal` is mapped here to its status and problem type, and an exception from a backend to 503/500, in one
place (`problem_for`), for the routed endpoints and the flash-order fast path alike.
"""
from __future__ import annotations

import logging
from typing import Any

from starlette.responses import JSONResponse

from cloud.runtime.calls import ActorsUnavailable
from cloud.services.identity import LOCK_MS
from cloud.services.verdicts import Refusal
from protocol.errors import ProtocolError

PROBLEM = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Conflict",
          413: "Payload too large", 415: "Unsupported media type", 422: "Invalid body", 429: "Too many requests",
          500: "Internal error", 503: "Service unavailable"}
RETRY_AFTER_S = {429: 1, 503: 2}
# A refusal's kind -> (status, problem type). Only this table knows which status a business answer gets.
REFUSALS = {
    "invalid": (422, "about:blank"),
    "unauthorized": (401, "/problems/unauthorized"),
    "forbidden": (403, "/problems/forbidden"),
    "locked": (429, "/problems/locked"),
    "not_found": (404, "about:blank"),
    "exists": (409, "/problems/exists"),
    "key_reused": (409, "/problems/idempotency-key-reused"),
    "in_progress": (409, "/problems/in-progress"),
    "out_of_stock": (409, "/problems/out-of-stock"),
    "no_store": (409, "/problems/no-store"),
    "slot": (409, "/problems/slot"),
    "order_state": (409, "/problems/order-state"),
    "payment": (409, "/problems/payment"),
    "coupon": (409, "/problems/coupon"),
    "sold_out": (409, "/problems/sold-out"),
    "not_started": (409, "/problems/not-started"),
    "ended": (409, "/problems/ended"),
    "over_limit": (403, "/problems/over-limit"),
    "throttled": (429, "/problems/throttled"),
    "group_buy": (409, "/problems/group-buy"),
    "unavailable": (503, "/problems/unavailable"),
}
log = logging.getLogger("freshmesh.api")


class HTTPProblem(Exception):
    """Raised by the HTTP layer; answered as application/problem+json."""

    def __init__(self, status: int, detail: str, type_: str = "about:blank", headers: dict | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.type, self.headers, self.extra = status, detail, type_, headers or {}, extra

    def body(self) -> dict:
        return {"type": self.type, "title": TITLES.get(self.status, "Error"), "status": self.status,
                "detail": self.detail, **self.extra}


def from_refusal(refusal: Refusal) -> HTTPProblem:
    status, type_ = REFUSALS[refusal.kind]
    headers = {"Retry-After": "1"} if refusal.kind in ("in_progress", "throttled", "unavailable") else None
    if refusal.kind == "locked":
        headers = {"Retry-After": str(LOCK_MS // 1000)}
    return HTTPProblem(status, refusal.detail, type_=type_, headers=headers, **refusal.extra)


def problem_for(exc: BaseException, route: str) -> HTTPProblem:
    """Any exception out of an endpoint, as the problem the client gets."""
    if isinstance(exc, HTTPProblem):
        return exc
    if isinstance(exc, Refusal):
        return from_refusal(exc)
    if isinstance(exc, ProtocolError):  # a command or record built from a request's values refused one of them
        return HTTPProblem(422, str(exc))
    if isinstance(exc, (TimeoutError, ActorsUnavailable)):
        return HTTPProblem(503, f"the service could not answer in time ({type(exc).__name__}); retry",
                           headers={"Retry-After": str(RETRY_AFTER_S[503])})
    if isinstance(exc, (OSError, ConnectionError)):
        return HTTPProblem(503, f"a backend is unavailable: {exc}; retry", headers={"Retry-After": str(RETRY_AFTER_S[503])})
    log.error("unhandled error on %s", route, exc_info=exc)
    return HTTPProblem(500, "internal error; it has been logged")


def problem(status: int, detail: str, type_: str = "about:blank", headers: dict | None = None, **extra: Any) -> JSONResponse:
    return problem_response(HTTPProblem(status, detail, type_, headers, **extra))


def problem_response(exc: HTTPProblem) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None, media_type=PROBLEM)
