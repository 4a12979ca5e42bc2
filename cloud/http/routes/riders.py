"""The rider platform's status callbacks: `POST /callbacks/rider`.

200 `{"code": 0, "message"}` when handled - applied now, already (a duplicate: the platform sends at least once),
or acknowledged without effect (late, out of order, a superseded try): the platform stops resending it. A callback
that must not be believed (bad or stale signature: 401), cannot be read (400) or names no delivery of ours (404)
changes nothing and is answered with a problem naming why (the platform records it and retries a few times)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.parsing import read_body
from cloud.http.problems import problem


def routes(services) -> list[tuple]:
    async def rider_callback(request):
        status, message = await services.deliveries.notified(request.headers, await read_body(request))
        if status < 300:
            return JSONResponse({"code": 0, "message": message})
        return problem(status, f"rider callback: {message}")

    return [("/callbacks/rider", rider_callback, ["POST"])]
