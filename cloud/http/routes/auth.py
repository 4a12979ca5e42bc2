"""Customer sign-in: ask for a one-time code by SMS, exchange it for a session token, sign out; who am I; and the
SMS provider's signed delivery receipts."""
from __future__ import annotations

from starlette.responses import JSONResponse, Response

from cloud.http.bodies import CodeRequest, SignInRequest
from cloud.http.parsing import parse, read_body
from cloud.http.problems import HTTPProblem
from cloud.services import sms
from protocol.clock import to_rfc3339


def bearer(request) -> str:
    return bearer_of(request.headers.get("authorization", ""), "session token")


def bearer_of(header: str, what: str) -> str:
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise HTTPProblem(401, f"sign in first: send Authorization: Bearer <{what}>", headers={"WWW-Authenticate": "Bearer"})
    return header[7:].strip()


def pass_member(services, header: str) -> str:
    """The member a flash pass in an Authorization header names (checked locally: no I/O); 401 otherwise."""
    member = services.passes.member(bearer_of(header, "flash pass from POST /auth/passes"))
    if member is None:
        raise HTTPProblem(401, "the flash pass is not valid (expired, altered, or not a pass): get a new one with "
                               "POST /auth/passes", headers={"WWW-Authenticate": "Bearer"})
    return member


async def signed_in_member(request, services) -> str:
    """The member whose session token the request carries; 401 when there is none or it is no longer valid."""
    member = await services.identity.member_of(bearer(request))
    if member is None:
        raise HTTPProblem(401, "the session token is not valid (expired, revoked or unknown): sign in again",
                          headers={"WWW-Authenticate": "Bearer"})
    return member


def routes(services) -> list[tuple]:
    async def request_code(request):
        req = await parse(request, CodeRequest, "code_request")
        return JSONResponse(await services.identity.request_code(req.phone), status_code=202)

    async def sign_in(request):
        req = await parse(request, SignInRequest, "sign_in")
        return JSONResponse(await services.identity.sign_in(req.phone, req.code), status_code=201)

    async def sign_out(request):
        await services.identity.sign_out(bearer(request))
        return Response(status_code=204)

    async def flash_pass(request):
        token, lapses = services.passes.issue(await signed_in_member(request, services))
        return JSONResponse({"pass": token, "expires_at": to_rfc3339(lapses)}, status_code=201)

    async def me(request):
        return JSONResponse(await services.members.view(await signed_in_member(request, services)))

    async def sms_delivery(request):
        """A delivery receipt from the SMS provider: signed with the shared secret, applied once per message."""
        raw = await read_body(request)
        provider = services.identity.sms
        if provider is None or not sms.verify_headers(provider.secret, request.headers, raw, services.cloud.now_ms()):
            raise HTTPProblem(401, f"delivery receipt not signed by our SMS provider ({sms.TIMESTAMP_HEADER} and "
                                   f"{sms.SIGNATURE_HEADER}), or too old")
        try:
            receipt = sms.parse_delivery(raw)
        except ValueError as exc:
            raise HTTPProblem(422, str(exc)) from None
        await services.cloud.db.execute(
            """insert into sms_deliveries (message_id, status, at_ms) values ($1, $2, $3)
               on conflict (message_id) do update set status = excluded.status, at_ms = excluded.at_ms
               where sms_deliveries.at_ms <= excluded.at_ms""", receipt["message_id"], receipt["status"],
            receipt["at_ms"])
        return Response(status_code=204)

    return [("/auth/codes", request_code, ["POST"]), ("/auth/sessions", sign_in, ["POST"]),
            ("/auth/sessions", sign_out, ["DELETE"]),
            ("/auth/passes", flash_pass, ["POST"]), ("/me", me, ["GET"]),
            ("/callbacks/sms", sms_delivery, ["POST"])]
