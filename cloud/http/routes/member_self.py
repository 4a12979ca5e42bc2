"""A signed-in member's own account, as the mall's member centre (and any mini-program) needs it: their orders, a
copy of their personal data, and their own deletion request.

- `GET /members/{member_id}/orders?limit=` -> {"member_id", "orders": [order, newest first]} (1-100, default 30)
- `GET /members/{member_id}/personal-data` -> what `GET /members/{member_id}/export` gives HQ (PIPL access and
  portability: the phone in clear, ledger, orders, till sales, sessions), as a download
  (`Content-Disposition: attachment`)
- `POST /members/{member_id}/erasure` {"confirm": "erase"} -> 200 the tombstone (`Members.erase`): the phone, member
  code and delivery places of finished orders are forgotten, every session revoked, the stores told; 409 while an
  order is still open or stored value is left (it would be lost: spend it or have it refunded first); 422 without
  the confirmation word.

Guarantees: only the signed-in member's own account (another member's id answers 404 as an unknown one, so ids
cannot be probed); the erasure is the same tombstone as HQ's (one code path), logged with who asked.
"""
from __future__ import annotations

import json
import logging

from starlette.responses import JSONResponse

from cloud.http.parsing import read_json
from cloud.http.problems import HTTPProblem
from cloud.http.routes.members import own_member
from cloud.services.order_rows import order_json
from protocol import order_lifecycle as lifecycle

ORDERS_LIMIT_DEFAULT, ORDERS_LIMIT_MAX = 30, 100
CONFIRM_WORD = "erase"
log = logging.getLogger("freshmesh.members")


def orders_limit(text: str | None) -> int:
    if text is None:
        return ORDERS_LIMIT_DEFAULT
    if not text.isdigit() or not 1 <= int(text) <= ORDERS_LIMIT_MAX:
        raise HTTPProblem(422, f"limit: a whole number 1-{ORDERS_LIMIT_MAX}, not {text[:20]!r}")
    return int(text)


def erasure_refusal(open_orders: list[str], stored_value_fen: int) -> str | None:
    """Why the member may not erase their account now (None: they may). Pure."""
    if open_orders:
        return (f"{len(open_orders)} order(s) still open ({', '.join(open_orders[:5])}): wait until they are finished "
                "or cancel them first")
    if stored_value_fen > 0:
        return (f"stored value of {stored_value_fen} fen is left on the account and would be lost: spend it or ask a "
                "store for a refund first")
    return None


def routes(services) -> list[tuple]:
    async def my_orders(request):
        member = await own_member(request, services)
        limit = orders_limit(request.query_params.get("limit"))
        rows = await services.cloud.db.fetch(
            "select * from orders where member_id = $1 order by created_ms desc limit $2", member, limit)
        return JSONResponse({"member_id": member, "orders": [order_json(r) for r in rows]})

    async def my_data(request):
        member = await own_member(request, services)
        body = await services.members.export(member)
        log.info("member %s downloaded their personal data", member)
        return JSONResponse(body, headers={
            "Content-Disposition": f'attachment; filename="freshmesh-{member}.json"', "Cache-Control": "no-store"})

    async def erase_me(request):
        member = await own_member(request, services)
        raw = await read_json(request)
        if set(raw) != {"confirm"} or raw.get("confirm") != CONFIRM_WORD:
            raise HTTPProblem(422, f'confirm: send exactly {{"confirm": "{CONFIRM_WORD}"}} to erase this account')
        open_rows = await services.cloud.db.fetch(
            "select order_id from orders where member_id = $1 and not (status = any($2::text[])) order by created_ms",
            member, list(lifecycle.FINAL_STATUSES))
        view = await services.members.view(member)
        why = erasure_refusal([r["order_id"] for r in open_rows], view["stored_value_fen"])
        if why:
            raise HTTPProblem(409, f"the account cannot be erased now: {why}")
        body = await services.members.erase(member)
        log.info("member %s erased at their own request: %s", member, json.dumps(body))
        return JSONResponse(body)

    return [("/members/{member_id}/orders", my_orders, ["GET"]),
            ("/members/{member_id}/personal-data", my_data, ["GET"]),
            ("/members/{member_id}/erasure", erase_me, ["POST"])]
