"""Operator authentication and authorisation for the HTTP layer: a signed-in operator's session token, their role.

401 when no session token is given or it is not (or no longer) valid; 403 when the operator's role may not do
this (`protocol/roles.py` decides, with the reason as the detail). The console's stream may also take the token
as `?token=` (a browser's EventSource cannot send headers).
"""
from __future__ import annotations

from starlette.requests import Request

from cloud.http.problems import HTTPProblem
from cloud.services.operators import Operator
from cloud.services.verdicts import Refusal
from protocol import roles

SIGN_IN = "sign in as an operator (POST /operator/sessions) and send Authorization: Bearer <session token>"


def operator_token(request: Request, allow_query: bool = False) -> str | None:
    header = request.headers.get("authorization", "")
    if header.startswith("Bearer ") and header[7:].strip():
        return header[7:].strip()
    return (request.query_params.get("token") or None) if allow_query else None


async def operator_of(request: Request, services, allow_query: bool = False) -> Operator | None:
    """The signed-in operator the request carries a session token of, or None (for answers that show operators
    more; a customer's session token is no operator's)."""
    token = operator_token(request, allow_query)
    return None if token is None else await services.operators.session(token)


async def require_operator(request: Request, services, permission: roles.Permission | None,
                           store_id: str | None = None, allow_query: bool = False) -> Operator:
    """The signed-in operator, if their role allows `permission` (on `store_id`; None: any signed-in operator, for
    what every account may know, such as who it is); else a 401 or 403 problem."""
    token = operator_token(request, allow_query)
    if token is None:
        where = " (or ?token=<session token>)" if allow_query else ""
        raise HTTPProblem(401, f"operator endpoint: {SIGN_IN}{where}", headers={"WWW-Authenticate": "Bearer"})
    operator = await services.operators.session(token)
    if operator is None:
        raise HTTPProblem(401, "the operator session is not valid (expired, signed out or unknown): sign in again",
                          headers={"WWW-Authenticate": "Bearer"})
    why = None if permission is None else roles.refusal(operator.role, permission, operator.store_id, store_id)
    if why is not None:
        raise Refusal("forbidden", f"{operator.username}: {why}")
    return operator
