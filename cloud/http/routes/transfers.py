"""Transfers between stores: `POST /operator/transfers` {"from_store", "to_store", "lines": [{"sku", "qty"}],
"reason"} (an hq_admin, or the to-store's manager; audited) -> 201 the transfer; `GET /transfers?status=&store=`
(operators; a store manager sees their own store's only) -> {"transfers", "in_transit"};
`POST /operator/transfers/{id}/cancel` {"reason"} (hq_admin or the to-store's manager; audited; only before it
was dispatched) -> the transfer. The stores' own steps
come through their boxes (`edge/transfers_api.py`) and the bridge."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.http.parsing import read_json


def routes(services) -> list[tuple]:
    async def ask(request):
        body = await read_json(request)
        to_store = body.get("to_store")
        operator = await require_operator(request, services, "store.change",
                                          store_id=to_store if isinstance(to_store, str) else None)
        return JSONResponse(await services.transfers.request(body, operator), status_code=201)

    async def listed(request):
        store = request.query_params.get("store") or None
        operator = await require_operator(request, services, "store.figures", store_id=store)
        return JSONResponse(await services.transfers.view(operator, request.query_params.get("status") or None,
                                                          store))

    async def cancel(request):
        body = await read_json(request)
        operator = await require_operator(request, services, "store.change")
        return JSONResponse(await services.transfers.cancel(request.path_params["transfer_id"], body, operator))

    return [("/operator/transfers", ask, ["POST"]), ("/transfers", listed, ["GET"]),
            ("/operator/transfers/{transfer_id}/cancel", cancel, ["POST"])] + approval_routes(services)


def approval_routes(services) -> list[tuple]:
    """`POST /operator/transfers/{id}/decision` {"decision": "approve" | "refuse", "reason"} (the sending store's
    manager or an hq_admin; audited; a refusal says why) -> the transfer (`store_told` once approved)."""
    async def decision(request):
        body = await read_json(request)
        operator = await require_operator(request, services, "views.read")  # who decides: transfer_approvals
        return JSONResponse(await services.transfer_approvals.decide(request.path_params["transfer_id"], body,
                                                                     operator))

    return [("/operator/transfers/{transfer_id}/decision", decision, ["POST"])]
