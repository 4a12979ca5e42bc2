"""What every endpoint gets: a deadline, problem+json for every failure, and metrics.

When the actors or the database do not answer in time the client gets 503 with Retry-After, never a hang.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response

from cloud.http.db_watch import within_database
from cloud.http.parsing import checked_path
from cloud.http.problems import problem_for, problem_response

REQUEST_DEADLINE_S = 10.0
REQUESTS = Counter("freshmesh_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("freshmesh_http_request_seconds", "HTTP request latency", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))

Endpoint = Callable[[Request], Awaitable[Response]]


def observe(route: str, status: int, started: float) -> None:
    REQUESTS.labels(route, status).inc()
    LATENCY.labels(route).observe(time.perf_counter() - started)


def guarded(fn: Endpoint) -> Endpoint:
    """The endpoint under the request deadline, with every exception answered as a problem."""
    async def wrapped(request: Request) -> Response:
        route = request.scope["route"].path if request.scope.get("route") else request.url.path
        started = time.perf_counter()
        try:
            checked_path(request.path_params)
            async with asyncio.timeout(REQUEST_DEADLINE_S):  # and sooner if PostgreSQL stops answering
                response = await within_database(lambda: fn(request), route)
        except Exception as exc:  # noqa: BLE001 - mapped to the problem the client gets (500s are logged)
            response = problem_response(problem_for(exc, route))
        observe(route, response.status_code, started)
        return response
    return wrapped
