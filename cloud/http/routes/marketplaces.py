"""The marketplaces' webhooks: `POST /callbacks/marketplace/{marketplace}` (`cloud/services/marketplace_orders.py`).

200 `{"code": 0, "message"}` when handled: applied now, before (a duplicate: the platform sends at least once), or
acknowledged without effect (a late status); the platform stops resending it. A webhook that must not be believed
(bad or stale signature: 401), cannot be read (400) or names no marketplace of ours (404) changes nothing and is
answered with a problem naming why; 503 when it could not be handled now (the platform resends it)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.parsing import read_body
from cloud.http.problems import problem


def routes(services) -> list[tuple]:
    async def marketplace_webhook(request):
        said = await services.marketplace_orders.notified(request.path_params["marketplace"], request.headers,
                                                          await read_body(request))
        if said.status < 300:
            return JSONResponse({"code": 0, "message": said.message})
        return problem(said.status, f"marketplace webhook: {said.message}")

    return [("/callbacks/marketplace/{marketplace}", marketplace_webhook, ["POST"])]
