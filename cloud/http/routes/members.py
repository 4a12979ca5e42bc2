"""Members: a signed-in member reads and tops up their own account (registration is signing in: `routes/auth.py`)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.bodies import TopUpRequest
from cloud.http.operators import require_operator
from cloud.http.parsing import as_record, idempotency_key, read_json
from cloud.http.routes.auth import signed_in_member
from cloud.services.order_rows import request_hash
from cloud.services.verdicts import Refusal


async def own_member(request, services) -> str:
    """The member in the path when it is the signed-in member; another member's id answers exactly as an unknown
    one does (404), so ids cannot be probed."""
    member, wanted = await signed_in_member(request, services), request.path_params["member_id"]
    if wanted != member:
        raise Refusal("not_found", f"no member {wanted}")
    return member


def routes(services) -> list[tuple]:
    async def get_member(request):
        return JSONResponse(await services.members.view(await own_member(request, services)))

    async def top_up(request):  # 202: the money comes in when the wallet provider says it was paid
        member = await own_member(request, services)
        key = idempotency_key(request)
        raw = await read_json(request)
        req = as_record(raw, TopUpRequest, "top_up")
        body = await services.members.top_up(member, req.amount_fen, req.method, key, request_hash(raw))
        return JSONResponse(body, status_code=200 if body["state"] == "done" else 202)

    async def get_top_up(request):
        member = await own_member(request, services)
        return JSONResponse(await services.members.top_up_view(member, request.path_params["top_up_id"]))

    async def export_member(request):  # PIPL access: everything held, the phone in clear (HQ admins only; audited)
        operator = await require_operator(request, services, "members.personal_data")
        member_id = request.path_params["member_id"]
        body = await services.members.export(member_id)
        await services.operators.record_now(operator, "member.export", f"member {member_id}", None, None)
        return JSONResponse(body)

    async def erase_member(request):  # PIPL deletion: a tombstone; stores are told to forget the member (audited)
        operator = await require_operator(request, services, "members.personal_data")
        member_id = request.path_params["member_id"]
        body = await services.members.erase(member_id)
        await services.operators.record_now(operator, "member.erase", f"member {member_id}", None,
                                            {"erased_at": body.get("erased_at")})
        return JSONResponse(body)

    return [("/members/{member_id}", get_member, ["GET"]),
            ("/members/{member_id}/top-ups", top_up, ["POST"]),
            ("/members/{member_id}/top-ups/{top_up_id}", get_top_up, ["GET"]),
            ("/members/{member_id}/export", export_member, ["GET"]),
            ("/members/{member_id}", erase_member, ["DELETE"])]
