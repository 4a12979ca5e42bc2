"""The markdown report: `GET /operator/reports/markdowns?from=&to=&store=` (RFC 3339 times; default the last 24 h;
an operator with store figures: a store manager sees their own store only) - what markdowns gave away per rule,
store and chain day (cloud/services/markdown_report.py)."""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.services import markdown_report
from protocol.clock import parse_rfc3339
from protocol.errors import ProtocolError
from protocol.messages import valid_store_id


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def markdowns(request):
        q = request.query_params
        store = q.get("store") or None
        if store is not None and not valid_store_id(store):
            raise ProtocolError(f"store: invalid store id {store[:40]!r}")
        operator = await require_operator(request, services, "store.figures", store)
        if store is None and operator.role == "store_manager":  # their own store, never the chain's
            store = operator.store_id
        to_ms = parse_rfc3339(q["to"], "to") if q.get("to") else cloud.now_ms()
        from_ms = parse_rfc3339(q["from"], "from") if q.get("from") else to_ms - markdown_report.DAY_MS
        if not 0 < to_ms - from_ms <= markdown_report.RANGE_MAX_MS:
            raise ProtocolError("from/to: 'from' must be before 'to', at most 366 days apart")
        names = {r.id: r.name for r in cloud.world.rule_book.rules}  # the book in force names its rules
        return JSONResponse(await markdown_report.report(cloud.db, from_ms, to_ms, store, names))

    return [("/operator/reports/markdowns", markdowns, ["GET"])]
