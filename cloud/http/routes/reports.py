"""Operator reports: `GET /operator/reports/losses?from=YYYY-MM-DD&to=YYYY-MM-DD&store=&group_by=reason|category|
store|day&format=json|csv` - what the stores wrote off, valued at cost and at price (`cloud.services.losses`).

Operators who see store figures (`store.figures`): hq_admin and viewer see every store (or the one named); a store
manager only their own store (naming no store means theirs; naming another is a 403). 422 names a wrong parameter.
"""
from __future__ import annotations

from starlette.responses import JSONResponse, Response

from cloud.http.operators import require_operator
from cloud.http.problems import HTTPProblem
from cloud.services.losses import GROUPS, Losses, as_csv, check_range
from protocol import roles


def routes(services) -> list[tuple]:
    losses = Losses(services.cloud)

    async def loss_report(request):
        q = request.query_params
        store = q.get("store") or None
        operator = await require_operator(request, services, "store.figures", store_id=store)
        if store is None and operator.role in roles.SCOPED_TO_OWN_STORE:
            store = operator.store_id  # a store manager's report is of their store
        if store is not None and store not in services.cloud.world.stores:
            raise HTTPProblem(404, f"no store {store[:40]}")
        start, end = q.get("from", ""), q.get("to", "")
        why = check_range(start, end)
        if why is not None:
            raise HTTPProblem(422, why)
        group_by = q.get("group_by", "reason")
        if group_by not in GROUPS:
            raise HTTPProblem(422, f"group_by: one of {', '.join(GROUPS)}")
        fmt = q.get("format", "json")
        if fmt not in ("json", "csv"):
            raise HTTPProblem(422, "format: json or csv")
        answer = await losses.report(start, end, store, group_by)
        if fmt == "csv":
            return Response(as_csv(answer), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="losses-{start}-{end}.csv"'})
        return JSONResponse(answer)

    return [("/operator/reports/losses", loss_report, ["GET"])]
