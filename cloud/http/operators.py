"""Operator authentication: a bearer token, compared in constant time.

401 when no token is given, 403 when the one given is not the operator's. The console's stream may also take it
as `?token=` (a browser's EventSource cannot send headers)."""
from __future__ import annotations

import hmac

from starlette.requests import Request

from cloud.http.problems import HTTPProblem


def is_operator(request: Request, token: str) -> bool:
    """Whether the request carries the operator's bearer token (for answers that show operators more)."""
    header = request.headers.get("authorization", "")
    return bool(token) and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode())


def require_operator(request: Request, token: str, allow_query: bool = False) -> None:
    header = request.headers.get("authorization", "")
    given = header[7:] if header.startswith("Bearer ") else (request.query_params.get("token") if allow_query else None)
    if not given:
        where = " or ?token=<FRESHMESH_OPERATOR_TOKEN>" if allow_query else ""
        raise HTTPProblem(401, f"operator endpoint: send Authorization: Bearer <FRESHMESH_OPERATOR_TOKEN>{where}",
                          headers={"WWW-Authenticate": "Bearer"})
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPProblem(403, "operator token not accepted")
