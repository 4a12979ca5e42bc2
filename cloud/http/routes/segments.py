"""Member profiles, segments, campaigns and the promotion-effect report (issue 17 items 6 and 7):

- `GET /operator/members/{member_id}/profile` (hq_admin, viewer): channels, visits, average ticket, favourite
  categories, last visit, RFM, the segment now and as of the last recompute; the phone masked only.
- `GET /operator/segments[?segment=&after=&limit=]` (hq_admin, viewer): members per segment; with `segment`, a page
  of its members (`next_after` names the next page's start).
- `POST /operator/segments/recompute` (hq_admin, audited): recompute now (409 while another recompute runs).
- `POST /operator/campaigns` {"definition_id", "segment", "campaign_id"?} (hq_admin, audited; `Idempotency-Key` or
  `campaign_id` makes a retry answer the same campaign, 200 instead of 201); `GET /operator/campaigns`.
- `GET /operator/reports/promotions?from=YYYY-MM-DD&to=YYYY-MM-DD&store=&channel=till|online&format=json|csv|html`
  (operators who see store figures; a store manager only their own store); `html` is a server-rendered page for a
  browser (its operator session token may come as ?token=, as the console's does).
"""
from __future__ import annotations

import hashlib

from starlette.responses import HTMLResponse, JSONResponse, Response

from cloud.http.operators import require_operator
from cloud.http.parsing import idempotency_key, read_json
from cloud.http.problems import HTTPProblem
from cloud.services.losses import check_range
from cloud.services.promotion_report import CHANNELS, PromotionReport, as_csv, as_html
from cloud.services.segments import ID_RE, PAGE_MAX, Segments
from protocol import roles


def routes(services) -> list[tuple]:
    segments: Segments = getattr(services, "segments", None) or Segments(services.cloud)
    report = PromotionReport(services.cloud)

    async def profile(request):
        await require_operator(request, services, "members.profiles")
        return JSONResponse(await segments.profile(request.path_params["member_id"]))

    async def overview(request):
        await require_operator(request, services, "members.profiles")
        q = request.query_params
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= PAGE_MAX:
            raise HTTPProblem(422, f"limit: an integer 1..{PAGE_MAX}")
        return JSONResponse(await segments.overview(q.get("segment") or None, q.get("after", ""), limit))

    async def recompute(request):
        operator = await require_operator(request, services, "segments.manage")
        return JSONResponse(await segments.recompute(operator.username, operator))

    async def launch(request):
        operator = await require_operator(request, services, "segments.manage")
        body = await read_json(request)
        extra = set(body) - {"definition_id", "segment", "campaign_id"}
        if extra:
            raise HTTPProblem(422, f"unknown field(s) {sorted(extra)}")
        definition, segment = body.get("definition_id"), body.get("segment")
        if not isinstance(definition, str) or not isinstance(segment, str):
            raise HTTPProblem(422, "definition_id and segment: strings, both required")
        campaign_id = body.get("campaign_id")
        if campaign_id is None:
            key = idempotency_key(request, required=False)
            campaign_id = ("c-" + hashlib.sha256(f"{operator.operator_id}:{key}".encode()).hexdigest()[:24]
                           if key else services.cloud.ids.new())
        if not isinstance(campaign_id, str) or not ID_RE.fullmatch(campaign_id):
            raise HTTPProblem(422, "campaign_id: 1-64 letters, digits, '_', '.', ':' or '-'")
        campaign, made = await segments.campaign_to_segment(definition, segment, f"campaign:{campaign_id}",
                                                            operator, campaign_id)
        return JSONResponse(campaign, status_code=201 if made else 200)

    async def campaigns(request):
        await require_operator(request, services, "members.profiles")
        return JSONResponse({"campaigns": await segments.campaigns()})

    async def promotions(request):
        q = request.query_params
        store, fmt = q.get("store") or None, q.get("format", "json")
        # the page is opened in a browser, which sends no header: its session token may come as ?token=
        operator = await require_operator(request, services, "store.figures", store_id=store,
                                          allow_query=fmt == "html")
        if store is None and operator.role in roles.SCOPED_TO_OWN_STORE:
            store = operator.store_id  # a store manager's report is of their store
        if store is not None and store not in services.cloud.world.stores and not await services.cloud.db.fetchval(
                "select exists (select 1 from promotion_baskets where store_id = $1)", store):
            raise HTTPProblem(404, f"no store {store[:40]}")  # a store that left the world still has its figures
        start, end = q.get("from", ""), q.get("to", "")
        why = check_range(start, end)
        if why is not None:
            raise HTTPProblem(422, why)
        channel = q.get("channel") or None
        if channel is not None and channel not in CHANNELS:
            raise HTTPProblem(422, f"channel: one of {', '.join(CHANNELS)}")
        if fmt not in ("json", "csv", "html"):
            raise HTTPProblem(422, "format: json, csv or html")
        answer = await report.report(start, end, store, channel)
        if fmt == "html":
            return HTMLResponse(as_html(answer), headers={"Cache-Control": "no-store"})
        if fmt == "csv":
            return Response(as_csv(answer), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="promotions-{start}-{end}.csv"'})
        return JSONResponse(answer)

    return [("/operator/members/{member_id}/profile", profile, ["GET"]),
            ("/operator/segments", overview, ["GET"]),
            ("/operator/segments/recompute", recompute, ["POST"]),
            ("/operator/campaigns", launch, ["POST"]),
            ("/operator/campaigns", campaigns, ["GET"]),
            ("/operator/reports/promotions", promotions, ["GET"])]
