"""The back office's reports area (issue 21 build 5): `/office/reports` picks a report, a range of days, a store
(and a category or grouping where the report has them), and shows a chart (inline SVG drawn here) and the table;
`/office/reports/csv` is the same report as a CSV download.

Guarantees:
- The figures are exactly the operator API's (`GET /operator/reports/<name>`): the same parsing and checks
  (protocol/reports.py), the same service (cloud/services/hq_reports.py), called directly, never over HTTP.
- Scope as in the API: store figures (`store.figures`); a store manager sees their own store only (naming another
  is the 403 page saying why); hq_admin and viewer see every store.
- Read-only: nothing here changes anything. A wrong choice is a sentence on the page, never a raw problem.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from cloud.http.routes.hq_reports import csv_response
from cloud.office import i18n
from cloud.office.pages import lang_of, office_operator, office_page
from cloud.office.report_chart import Series, bar_chart
from cloud.services.hq_reports import HqReports
from protocol import reports as rp
from protocol import roles
from protocol.policy import chain_day

DEFAULT_DAYS = 30
TEXT_COLUMNS = frozenset({"key", "level", "segment", "rule_id", "name", "channel", "sale_id", "sku", "starts_day"})
QUERY = ("from", "to", "store", "category", "group_by")
# what the chart draws of each report: the label column, [(series column, css class)], money or a count
CHARTS: dict[str, tuple[str, list[tuple[str, str]], bool]] = {
    "channel-split": ("key", [("till_sales_fen", "till"), ("online_sales_fen", "online")], True),
    "store-kpis": ("key", [("sales_fen", "till")], True),
    "member-contribution": ("group", [("till_sales_fen", "till"), ("online_sales_fen", "online")], True),
    "promotion-effect": ("name", [("discount_fen", "till")], True),
    "shrinkage": ("key", [("value_at_cost_fen", "loss")], True),
    "flash-sales": ("sale_id", [("units_sold", "till")], False),
}


def cell(column: str, value: Any, w: dict[str, str]) -> str:
    """A table cell's text: fen as yuan, basis points as a percentage, words for the level/segment/channel."""
    if value is None:
        return "—"
    if column.endswith("_fen") and isinstance(value, int):
        return i18n.yuan(value)
    if column.endswith("_bp") and isinstance(value, int):
        return f"{value / 100:.2f}%"
    if column in ("level", "segment", "channel"):
        return w.get(f"reports.{column}.{value}", str(value))
    return str(value)


def numeric(column: str) -> bool:
    """Whether a column holds figures (right-aligned in the table)."""
    return column not in TEXT_COLUMNS


def chart_of(name: str, answer: dict[str, Any], w: dict[str, str]) -> str:
    label, series, money = CHARTS[name]
    rows = answer["rows"]
    if answer["group_by"] == "day":  # every day of the range along the axis, in order, a day without sales at 0
        by_day = {r["key"]: r for r in rows}
        days = rp.each_day(date.fromisoformat(answer["from"]), date.fromisoformat(answer["to"]))
        rows = [by_day.get(d.isoformat(), {"key": d.isoformat()}) for d in days]
    labels = [f"{cell('level', r['level'], w)}/{cell('segment', r['segment'], w)}" if label == "group"
              else str(r[label]) for r in rows]
    drawn = [Series(w[f"reports.series.{css}"] if len(series) > 1 else w[f"reports.col.{column}"],
                    [int(r.get(column, 0)) for r in rows], css) for column, css in series]
    return bar_chart(w[f"reports.name.{name}"], labels, drawn, w["reports.unit.yuan"] if money else
                     w["reports.unit.units"], fmt=i18n.yuan if money else str)


def routes(services) -> list[tuple]:
    made: list[HqReports] = []

    def reports() -> HqReports:  # made on first use: the routes are listed before a cloud exists (tests, openapi)
        if not made:
            made.append(HqReports(services.cloud))
        return made[0]

    async def chosen(request) -> tuple[Any, rp.ReportQuery | None, str, dict[str, str]]:
        """(operator, the query or None, why not, the parameters as chosen) for the page and its CSV."""
        q_params = request.query_params
        name = q_params.get("report") or "channel-split"
        today = chain_day(services.cloud.now_ms())
        params = {"from": (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(), "to": today.isoformat(),
                  **{k: q_params[k] for k in QUERY if q_params.get(k)}}
        operator = await office_operator(request, services, "store.figures", store_id=params.get("store"))
        if "store" not in params and operator.role in roles.SCOPED_TO_OWN_STORE and operator.store_id:
            params["store"] = operator.store_id
        kind = rp.REPORTS.get(name)
        if kind is not None and not kind.by_category:
            params.pop("category", None)  # kept in the form when switching reports; this one has no category
        if kind is not None and params.get("group_by") not in kind.groups:
            params.pop("group_by", None)
        try:
            query = rp.parse_query(name, params)
        except rp.ReportInputError as exc:
            return operator, None, str(exc), {"report": name, **params}
        world = services.cloud.world
        if query.store is not None and query.store not in world.stores:
            return operator, None, f"store: no store {query.store}", {"report": name, **params}
        return operator, query, "", {"report": name, **params}

    async def page(request):
        operator, query, why, params = await chosen(request)
        w = i18n.words(lang_of(request))
        answer, chart = None, ""
        if query is not None:
            answer = await reports().answer(query)
            chart = chart_of(query.report.name, answer, w)
        world = services.cloud.world
        stores = sorted(world.stores) if operator.role not in roles.SCOPED_TO_OWN_STORE else [operator.store_id]
        categories = sorted({p.category for p in world.catalogue.by_sku.values()})
        kind = rp.REPORTS.get(params["report"], rp.REPORTS["channel-split"])
        csv_query = urlencode({k: v for k, v in params.items() if v})
        return office_page(request, services, "reports.html", {
            "params": params, "kind": kind, "reports_list": list(rp.REPORTS), "stores": stores,
            "categories": categories, "answer": answer, "chart": chart, "why": why, "cell": cell,
            "numeric": numeric, "csv_href": f"/office/reports/csv?{csv_query}",
            "store_locked": operator.role in roles.SCOPED_TO_OWN_STORE,
        }, title=w["reports.title"], operator=operator, status=200 if not why else 422)

    async def download(request):
        operator, query, why, _ = await chosen(request)
        if query is None:
            w = i18n.words(lang_of(request))
            return office_page(request, services, "reports.html", {
                "params": {}, "kind": rp.REPORTS["channel-split"], "reports_list": list(rp.REPORTS), "stores": [],
                "categories": [], "answer": None, "chart": "", "why": why, "cell": cell, "numeric": numeric,
                "csv_href": "",
                "store_locked": True}, title=w["reports.title"], operator=operator, status=422)
        return csv_response(await reports().answer(query))

    return [("/office/reports", page, ["GET"]), ("/office/reports/csv", download, ["GET"])]
