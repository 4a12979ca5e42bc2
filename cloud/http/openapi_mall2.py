"""/openapi.json's entries for the member centre's own-account endpoints (cloud/http/routes/member_self.py): the
paths (merged by `cloud/http/openapi.py`, which passes its own helper so the two stay one style) and their answer
schemas (merged into `cloud/http/openapi_answers.ANSWERS`, written from the code that builds each body)."""
from __future__ import annotations

from collections.abc import Callable

from cloud.http.openapi_answers import INT, ORDER, STR, TIME, array, nullable, obj

OWN = {"404": "unknown member, or another member (answered alike)"}

ANSWERS: dict[tuple[str, str], dict] = {
    ("/members/{member_id}/orders", "get"): obj(["member_id", "orders"], member_id=STR, orders=array(ORDER)),
    ("/members/{member_id}/personal-data", "get"): obj(  # cloud/services/members.py export
        ["member_id", "phone", "phone_masked", "member_code", "created_at", "erased_at", "ledger", "orders",
         "till_sales", "sessions"],
        member_id=STR, phone=nullable(STR), phone_masked=nullable(STR), member_code=nullable(STR), created_at=TIME,
        erased_at=nullable(TIME),
        ledger=obj(["stored_value_fen", "points", "level"], stored_value_fen=INT, points=INT, level=STR),
        orders=array({"type": "object"}), till_sales=array({"type": "object"}),
        sessions=obj(["total", "live"], total=INT, live=INT)),
    ("/members/{member_id}/erasure", "post"): obj(  # cloud/services/members.py erase
        ["member_id", "erased_at", "sessions_revoked", "stored_value_fen", "points"], member_id=STR, erased_at=TIME,
        sessions_revoked=INT, stored_value_fen=INT, points=INT),
}


def mall2_paths(op: Callable[..., dict]) -> dict:
    return {
        "/members/{member_id}/orders": {"get": op(
            "The signed-in member's orders, newest first (limit 1-100, default 30), each as GET /orders/{id} shows it",
            ("200", "{member_id, orders}"), {**OWN, "422": "limit is not a whole number 1-100"},
            params=["member_id"], query=["limit"], member=True)},
        "/members/{member_id}/personal-data": {"get": op(
            "A copy of everything held about the signed-in member (PIPL access and portability): phone in clear, "
            "member code, ledger, online orders, till sales, sessions; sent as a download (Content-Disposition)",
            ("200", "{member_id, phone, phone_masked, member_code, created_at, erased_at, ledger, orders, till_sales, "
                    "sessions}"), OWN, params=["member_id"], member=True)},
        "/members/{member_id}/erasure": {"post": op(
            'Erase the signed-in member\'s account (PIPL deletion) {"confirm": "erase"}: phone, member code and the '
            "delivery places of finished orders forgotten, every session revoked, stores told to forget the member; "
            "the ledger keeps its entries under the id (nothing links it to the person any more); points are lost",
            ("200", "{member_id, erased_at, sessions_revoked, stored_value_fen, points}"),
            {**OWN, "409": "an order is still open, or stored value is left (the detail says which)",
             "422": 'the body is not exactly {"confirm": "erase"}'}, params=["member_id"], member=True)},
    }
