"""Operators: sign in and out, who am I, the accounts (hq_admin), and the operator audit log (hq_admin)."""
from __future__ import annotations

from starlette.responses import JSONResponse, Response

from cloud.http.bodies import OperatorAccountRequest, OperatorSignInRequest
from cloud.http.operators import SIGN_IN, operator_token, require_operator
from cloud.http.parsing import parse
from cloud.http.problems import HTTPProblem


def _int_param(request, name: str, default: int | None) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit():
        raise HTTPProblem(422, f"{name}: a positive integer")
    return int(text)


def routes(services) -> list[tuple]:
    async def sign_in(request):
        req = await parse(request, OperatorSignInRequest, "operator_sign_in")
        return JSONResponse(await services.operators.sign_in(req.username, req.password), status_code=201)

    async def sign_out(request):
        token = operator_token(request)
        if token is None:
            raise HTTPProblem(401, f"nothing to sign out: {SIGN_IN}", headers={"WWW-Authenticate": "Bearer"})
        await services.operators.sign_out(token)
        return Response(status_code=204)

    async def me(request):
        operator = await require_operator(request, services, None)  # every account may know who it is
        return JSONResponse(operator.to_json())

    async def accounts(request):
        await require_operator(request, services, "operators.manage")
        return JSONResponse({"operators": await services.operators.accounts()})

    async def create_account(request):
        operator = await require_operator(request, services, "operators.manage")
        req = await parse(request, OperatorAccountRequest, "operator")
        if req.stall_id is not None:  # a stall owner's stall must be a stall of their store
            await services.stalls.check_owner_stall(req.store_id, req.stall_id)
        body = await services.operators.create(req.username, req.password, req.role, req.store_id, by=operator,
                                               known_stores=services.cloud.world.stores, stall_id=req.stall_id)
        return JSONResponse(body, status_code=201)

    async def audit_log(request):
        await require_operator(request, services, "audit_log.read")
        return JSONResponse(await services.operators.audit_log(_int_param(request, "limit", 50),
                                                               _int_param(request, "before", None)))

    return [("/operator/sessions", sign_in, ["POST"]), ("/operator/sessions", sign_out, ["DELETE"]),
            ("/operator/me", me, ["GET"]), ("/operators", accounts, ["GET"]), ("/operators", create_account, ["POST"]),
            ("/operator/audit", audit_log, ["GET"])]
