"""Members: register by phone, read, top up (idempotent by key)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.bodies import MemberRequest, TopUpRequest
from cloud.http.operators import require_operator
from cloud.http.parsing import idempotency_key, parse


def routes(services) -> list[tuple]:
    async def create_member(request):
        req = await parse(request, MemberRequest, "member")
        body, created = await services.members.register(req.phone)
        return JSONResponse(body, status_code=201 if created else 200)  # 200: the phone is registered already

    async def get_member(request):
        return JSONResponse(await services.members.view(request.path_params["member_id"]))

    async def top_up(request):
        key = idempotency_key(request)
        req = await parse(request, TopUpRequest, "top_up")
        body = await services.members.top_up(request.path_params["member_id"], req.amount_fen, req.method, key)
        return JSONResponse(body, status_code=201)

    async def export_member(request):  # PIPL access: everything held, the phone in clear (operators only)
        require_operator(request, services.cloud.operator_token)
        return JSONResponse(await services.members.export(request.path_params["member_id"]))

    async def erase_member(request):  # PIPL deletion: a tombstone; stores are told to forget the member
        require_operator(request, services.cloud.operator_token)
        return JSONResponse(await services.members.erase(request.path_params["member_id"]))

    return [("/members", create_member, ["POST"]), ("/members/{member_id}", get_member, ["GET"]),
            ("/members/{member_id}/top-ups", top_up, ["POST"]),
            ("/members/{member_id}/export", export_member, ["GET"]),
            ("/members/{member_id}", erase_member, ["DELETE"])]
