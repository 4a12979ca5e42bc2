"""The wallet provider's notifications: `POST /callbacks/pay`, answered as WeChat Pay API v3 expects.

204 (no body) when the notification is handled - credited now, or already (a duplicate: the provider sends at
least once). Anything that must not be believed or cannot be credited (a bad signature, an unknown payment, a
wrong amount, currency or merchant) credits nothing and is answered 4xx with `{"code": "FAIL", "message"}`, which
the provider records (and retries a few times); each one is logged with its reason."""
from __future__ import annotations

from starlette.responses import JSONResponse, Response

from cloud.http.parsing import read_body


def routes(services) -> list[tuple]:
    async def wallet_notification(request):
        status, message = await services.payments.notified(request.headers, await read_body(request))
        if status < 300:
            return Response(status_code=204)
        return JSONResponse({"code": "FAIL", "message": message}, status_code=status)

    return [("/callbacks/pay", wallet_notification, ["POST"])]
