"""HQ's chain reports over HTTP (issue 21 build 5): `GET /operator/reports/<name>?from=YYYY-MM-DD&to=YYYY-MM-DD
&store=&category=&group_by=&format=json|csv` for channel-split, store-kpis, member-contribution, promotion-effect,
shrinkage and flash-sales (cloud/services/hq_reports.py; the parameters: protocol/reports.py).

Operators who see store figures (`store.figures`): hq_admin and viewer see every store (or the one named); a store
manager only their own (naming no store means theirs; naming another is a 403). CSV with `format=csv` or
`Accept: text/csv`. A wrong parameter is a 422 naming it; an unknown store a 404.
"""
from __future__ import annotations

from starlette.responses import JSONResponse, Response

from cloud.http.operators import require_operator
from cloud.http.problems import HTTPProblem
from cloud.services.hq_reports import HqReports
from protocol import reports as rp
from protocol import roles

PATH = "/operator/reports/{}"


async def scoped_query(request, services, name: str) -> tuple[rp.ReportQuery, object]:
    """The report query a request asks for, checked and scoped to what its operator may see; and the operator."""
    try:
        q = rp.parse_query(name, request.query_params, request.headers.get("accept", ""))
    except rp.ReportInputError as exc:
        raise HTTPProblem(422, str(exc)) from None
    operator = await require_operator(request, services, "store.figures", store_id=q.store)
    if q.store is None and operator.role in roles.SCOPED_TO_OWN_STORE:
        q = rp.ReportQuery(q.report, q.start, q.end, operator.store_id, q.category, q.group_by, q.fmt)
    world = services.cloud.world
    if q.store is not None and q.store not in world.stores:
        raise HTTPProblem(404, f"store: no store {q.store}")
    if q.category is not None and all(p.category != q.category for p in world.catalogue.by_sku.values()):
        raise HTTPProblem(422, f"category: no product of the catalogue is in category {q.category!r}")
    return q, operator


def csv_response(answer: dict) -> Response:
    body = rp.as_csv(answer["columns"], answer["rows"], answer["totals"])
    name = f"{answer['report']}-{answer['from']}-{answer['to']}{'-' + answer['store'] if answer['store'] else ''}.csv"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def routes(services) -> list[tuple]:
    reports = HqReports(services.cloud)

    def endpoint(name: str):
        async def report(request):
            q, _ = await scoped_query(request, services, name)
            answer = await reports.answer(q)
            return csv_response(answer) if q.fmt == "csv" else JSONResponse(answer)
        return report

    return [(PATH.format(name), endpoint(name), ["GET"]) for name in rp.REPORTS]


SUMMARIES = {
    "channel-split": "Till vs online sales and tickets by day, store, or store and day (group_by), with the online "
                     "share; category narrows to one category's lines",
    "store-kpis": "Per store (or day): sales, tickets, average ticket, items per ticket, online share, returns, "
                  "shrinkage at list price and the shrinkage rate",
    "member-contribution": "Tickets and sales of each member level and segment (and non-members) across both "
                           "channels, with each group's share of sales",
    "promotion-effect": "Per rule (and channel): uses, discount given, baskets with the rule against the rest",
    "shrinkage": "Write-offs (expired, spoiled, ...), stocktake shortfalls and markdowns by reason, category, store "
                 "or day, at cost and at list price, with the rate against sales",
    "flash-sales": "Flash sales that started in the range: quantity, orders, units sold and left unpaid, sales, "
                   "members, sell-through",
}


def openapi_paths(op) -> dict:
    """/openapi.json's entries (merged by cloud/http/openapi.py, with its own helper)."""
    return {PATH.format(name): {"get": op(
        SUMMARIES[name] + " (from/to: chain days, at most 366; store: a store manager only their own; format=csv or "
        "Accept: text/csv answers CSV)",
        ("200", "{report, from, to, store, category, group_by, columns, rows: [{...columns}], totals}"),
        {"401": "not signed in as an operator", "403": "another store's figures", "404": "unknown store",
         "422": "from, to, store, category, group_by or format is wrong (the detail names it)"},
        operator=True, query=["from", "to", "store", "category", "group_by", "format"])} for name in rp.REPORTS}


def answers() -> dict:
    """The answers' schemas for /openapi.json (cloud/http/openapi_answers.py)."""
    text, nullable = {"type": "string"}, {"type": ["string", "null"]}
    out = {}
    for name, kind in rp.REPORTS.items():
        row = {"type": "object", "description": "the columns of `columns`: fen and counts are integers, *_bp basis "
                                                "points", "required": list(kind.columns)}
        out[(PATH.format(name), "get")] = {
            "type": "object", "required": ["report", "from", "to", "store", "group_by", "columns", "rows", "totals"],
            "properties": {"report": text, "from": text, "to": text, "store": nullable, "category": nullable,
                           "group_by": text, "columns": {"type": "array", "items": text},
                           "rows": {"type": "array", "items": row}, "totals": {"type": "object"}}}
    return out
