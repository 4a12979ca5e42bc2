"""HTTP plumbing shared by every endpoint: problem+json errors, body parsing into typed records, operator auth."""
from __future__ import annotations

import hmac
import json

from starlette.requests import Request
from starlette.responses import JSONResponse

from protocol.errors import ProtocolError
from protocol.schema import record_from_wire

MAX_BODY_BYTES = 64 * 1024
PROBLEM = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Conflict",
          413: "Payload too large", 415: "Unsupported media type", 422: "Invalid body", 429: "Too many requests",
          500: "Internal error", 503: "Service unavailable"}


class HTTPProblem(Exception):
    """Raised anywhere in a handler; turned into an application/problem+json response."""

    def __init__(self, status: int, detail: str, type_: str = "about:blank", headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status, self.detail, self.type, self.headers, self.extra = status, detail, type_, headers or {}, extra


def problem(status: int, detail: str, type_: str = "about:blank", headers: dict | None = None, **extra) -> JSONResponse:
    body = {"type": type_, "title": TITLES.get(status, "Error"), "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def problem_response(exc: HTTPProblem) -> JSONResponse:
    return problem(exc.status, exc.detail, exc.type, exc.headers, **exc.extra)


async def read_json(request: Request) -> dict:
    if request.headers.get("content-type", "").split(";")[0].strip() not in ("application/json", ""):
        raise HTTPProblem(415, "send the body as application/json")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise HTTPProblem(413, f"body of {len(raw)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPProblem(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPProblem(422, "body must be a JSON object")
    return data


async def parse(request: Request, cls, name: str = "body"):
    """The body as a typed record; any wrong field is a 422 that names it."""
    data = await read_json(request)
    try:
        return record_from_wire(cls, data, name)
    except ProtocolError as exc:
        raise HTTPProblem(422, str(exc)) from None


def idempotency_key(request: Request, required: bool = True) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        if required:
            raise HTTPProblem(400, "the Idempotency-Key header is required: a unique key per intended operation")
        return None
    if not 8 <= len(key) <= 128 or not key.isascii():
        raise HTTPProblem(400, "Idempotency-Key must be 8-128 ASCII characters")
    return key


def require_operator(request: Request, token: str) -> None:
    given = request.headers.get("authorization", "")
    if not given.startswith("Bearer "):
        raise HTTPProblem(401, "operator endpoint: send Authorization: Bearer <FRESHMESH_OPERATOR_TOKEN>",
                          headers={"WWW-Authenticate": "Bearer"})
    if not token or not hmac.compare_digest(given[7:].encode(), token.encode()):
        raise HTTPProblem(403, "operator token not accepted")
