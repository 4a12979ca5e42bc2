"""Cashiers' shift reports as the cloud recorded them (cloud/messaging/shift_reports.py):
`GET /operator/shifts?store=<id>&from=<time>&to=<time>&limit=<n>`, newest first.

Operators who see store figures (`store.figures`): hq_admin and viewer any store (or all of them, naming none), a
store manager only their own store (naming none means theirs; naming another is a 403). `from`/`to`: RFC 3339
times, or days YYYY-MM-DD (the chain's days: `to` is inclusive); without them, the last 7 days. Each report: the
shift, cashier, lane, opened/closed, float, the count by denomination, expected and counted per method, the cash
difference, and the numbers of sales, returns and voids. 422 names a wrong parameter.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from starlette.responses import JSONResponse

from cloud.http.openapi_answers_base import BOOL, INT, STR, TIME, array, nullable, obj
from cloud.http.operators import require_operator
from cloud.http.problems import HTTPProblem
from cloud.messaging.shift_reports import LIST_MAX, listed
from protocol import roles
from protocol.clock import to_rfc3339
from protocol.digits import is_whole_number
from protocol.messages import valid_store_id
from protocol.policy import CHAIN_UTC_OFFSET_MIN

DAY_MS = 24 * 3600 * 1000
ANSWER = obj(["store", "from", "to", "shifts"], store=nullable(STR), to=TIME, shifts=array(obj(  # `shifts` below
    ["shift_id", "store_id", "lane", "cashier_id", "opened_ms", "closed_ms", "opened_at", "closed_at", "float_fen",
     "counted", "methods", "expected_fen", "counted_fen", "difference_fen", "sales", "returns", "voids",
     "uncounted"], uncounted=BOOL, shift_id=STR, store_id=STR, lane=STR, cashier_id=STR, opened_ms=INT,
    closed_ms=INT, opened_at=TIME,
    closed_at=TIME, float_fen=INT, expected_fen=INT, counted_fen=INT, difference_fen=INT, sales=INT, returns=INT,
    voids=INT, counted=array(obj(["denomination_fen", "pieces"], denomination_fen=INT, pieces=INT)),
    methods=array(obj(["method", "expected_fen", "counted_fen", "difference_fen"], method=STR, expected_fen=INT,
                      counted_fen=INT, difference_fen=INT)))), **{"from": TIME})
DEFAULT_DAYS = 7


def moment(text: str, name: str, end: bool) -> int:
    """`text` as epoch ms: an RFC 3339 time, or a chain day (its start; for `to`, the next day's start)."""
    chain_tz = timezone(timedelta(minutes=CHAIN_UTC_OFFSET_MIN))
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=chain_tz)
            return int(start.timestamp() * 1000) + (DAY_MS if end else 0)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPProblem(422, f"{name}: an RFC 3339 time or a day YYYY-MM-DD, not {text[:40]!r}") from None
    if value.tzinfo is None:
        raise HTTPProblem(422, f"{name}: give a timezone (e.g. 2026-01-01T09:00:00+08:00 or ...Z)")
    return int(value.timestamp() * 1000)


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def shifts(request):
        q = request.query_params
        store = q.get("store") or None
        if store is not None and not valid_store_id(store):
            raise HTTPProblem(422, f"store: not a store id: {store[:40]!r}")
        operator = await require_operator(request, services, "store.figures", store_id=store)
        if store is None and operator.role in roles.SCOPED_TO_OWN_STORE:
            store = operator.store_id  # a store manager's shifts are their store's
        now = cloud.now_ms()
        to_ms = moment(q["to"], "to", end=True) if q.get("to") else now + 1
        from_ms = moment(q["from"], "from", end=False) if q.get("from") else to_ms - DEFAULT_DAYS * DAY_MS
        if to_ms < from_ms:
            raise HTTPProblem(422, "to is before from")
        raw = q.get("limit", "100")
        if not is_whole_number(raw, 9) or not 0 < int(raw) <= LIST_MAX:
            raise HTTPProblem(422, f"limit: 1..{LIST_MAX}")
        reports = await listed(cloud.db, store, from_ms, to_ms, int(raw))
        for r in reports:
            r["opened_at"], r["closed_at"] = to_rfc3339(r["opened_ms"]), to_rfc3339(r["closed_ms"])
        return JSONResponse({"store": store, "from": to_rfc3339(from_ms), "to": to_rfc3339(to_ms), "shifts": reports})

    return [("/operator/shifts", shifts, ["GET"])]


def openapi_paths(op) -> dict:
    """/openapi.json's entry (merged by cloud/http/openapi.py, with its own helper)."""
    return {"/operator/shifts": {"get": op(
        "Cashiers' shift reports from the tills, newest first (?store=; a store manager sees their own store's; "
        "from/to: RFC 3339 times or days, default the last 7 days): shift, cashier, lane, opened/closed, float, the "
        "count by denomination, expected and counted per method, the cash difference, sales/returns/voids",
        ("200", "{store, from, to, shifts: [{shift_id, store_id, lane, cashier_id, opened_at, closed_at, float_fen, "
                "counted, methods, expected_fen, counted_fen, difference_fen, sales, returns, voids, uncounted (closed "
                "without a count: counted = expected)}]}"),
        {"401": "not signed in as an operator", "403": "another store's",
         "422": "store, from, to or limit is wrong (the detail names it)"},
        operator=True, query=["store", "from", "to", "limit"])}}
