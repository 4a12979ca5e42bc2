"""Group buys (issue 17 item 2): `POST /group-buys` opens a group with the signed-in member's order (header
`Idempotency-Key`), `GET /group-buys/{group_id}` is the public share page (no personal data beyond masked phones),
`POST /group-buys/{group_id}/join` takes a place with the joiner's order (header `Idempotency-Key`). The orders are
paid, read and cancelled at `/orders/{order_id}…` like any order (`cloud/services/group_buys.py`).

Operators (`cloud/services/group_views.py`): `GET /operator/group-buys?status=open|formed|failed|cancelled&store=&item=
&limit=&before=` (newest first; `next_before` pages on) and `GET /operator/group-buys/{group_id}` (members masked, their
orders, window, outcome, refunds): every operator role reads them ("store.figures"), a store manager only the groups
touching their own store; `POST /operator/group-buys/{group_id}/cancel` `{"reason"}`: an hq_admin ends an open group
(audited), its orders cancelled and refunded like a failed group's -> the group's detail."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.http.parsing import as_record, idempotency_key, read_json
from cloud.http.routes.auth import signed_in_member
from cloud.services.group_buys import GroupOrderBody
from cloud.services.group_views import CancelBody, parse_filters
from protocol import roles


def routes(services) -> list[tuple]:
    async def open_group(request):
        member = await signed_in_member(request, services)
        key = idempotency_key(request)
        raw = await read_json(request)
        body = as_record(raw, GroupOrderBody, "group buy")
        return JSONResponse(await services.group_buys.open(body, member, key, raw), status_code=201)

    async def view_group(request):
        return JSONResponse(await services.group_buys.view(request.path_params["group_id"]))

    async def join_group(request):
        member = await signed_in_member(request, services)
        key = idempotency_key(request)
        raw = await read_json(request)
        body = as_record(raw, GroupOrderBody, "group buy")
        return JSONResponse(await services.group_buys.join(request.path_params["group_id"], body, member, key, raw),
                            status_code=201)

    def own_store(operator) -> str | None:
        return operator.store_id if operator.role in roles.SCOPED_TO_OWN_STORE else None

    async def operator_list(request):
        query = dict(request.query_params)
        operator = await require_operator(request, services, "store.figures", store_id=query.get("store") or None)
        world = services.cloud.world
        filters = parse_filters(query, world.catalogue.by_sku, world.stores)
        return JSONResponse(await services.group_buys.views.listed(filters, own_store(operator)))

    async def operator_detail(request):
        operator = await require_operator(request, services, "store.figures")
        return JSONResponse(await services.group_buys.views.detail(request.path_params["group_id"], own_store(operator)))

    async def operator_cancel(request):
        operator = await require_operator(request, services, "group_buys.cancel")
        body = as_record(await read_json(request), CancelBody, "cancel")
        return JSONResponse(await services.group_buys.cancel(request.path_params["group_id"], body, operator))

    return [("/group-buys", open_group, ["POST"]), ("/group-buys/{group_id}", view_group, ["GET"]),
            ("/group-buys/{group_id}/join", join_group, ["POST"]),
            ("/operator/group-buys", operator_list, ["GET"]), ("/operator/group-buys/{group_id}", operator_detail, ["GET"]),
            ("/operator/group-buys/{group_id}/cancel", operator_cancel, ["POST"])]
