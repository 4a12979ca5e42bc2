"""Group buys (issue 17 item 2): `POST /group-buys` opens a group with the signed-in member's order (header
`Idempotency-Key`), `GET /group-buys/{group_id}` is the public share page (no personal data beyond masked phones),
`POST /group-buys/{group_id}/join` takes a place with the joiner's order (header `Idempotency-Key`). The orders are
paid, read and cancelled at `/orders/{order_id}…` like any order (`cloud/services/group_buys.py`)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.parsing import as_record, idempotency_key, read_json
from cloud.http.routes.auth import signed_in_member
from cloud.services.group_buys import GroupOrderBody


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

    return [("/group-buys", open_group, ["POST"]), ("/group-buys/{group_id}", view_group, ["GET"]),
            ("/group-buys/{group_id}/join", join_group, ["POST"])]
