"""The back office's market stalls (issue 21.6): `/office/stalls` and `/office/stalls/{stall_id}`.

- HQ (hq_admin) and viewers see every store's stalls; an hq_admin creates stalls here (through
  `POST /operator/stalls`). A stall owner opening `/office/stalls` is taken to their own stall's page.
- A stall's page shows its fee rule, its settlement and sales for a period (this month so far by default), and its
  products; the stall's owner (or an hq_admin) changes a product's name and price (through
  `PUT /operator/stalls/{stall_id}/products/{sku}`). The CSV of the settlement is the API's own
  (`GET /operator/stalls/{stall_id}/settlement?format=csv`), fetched with the operator's session.
- Reads call the service directly (cloud/services/stalls.py) with the signed-in operator, so the page shows exactly
  what that operator's API calls would: a stall owner another stall's page gets the 403 page with the reason.
"""
from __future__ import annotations

from starlette.responses import RedirectResponse

from cloud.office import i18n
from cloud.office.pages import OfficeStop, lang_of, office_operator, office_page
from cloud.services.verdicts import Refusal
from protocol.policy import CHAIN_UTC_OFFSET_MIN, chain_day


def this_month(now_ms: int) -> tuple[str, str]:
    """The default period: the first of this chain month to today (chain days)."""
    today = chain_day(now_ms, CHAIN_UTC_OFFSET_MIN)
    return str(today.replace(day=1)), str(today)


def _stop(request, services, operator, refusal: Refusal):
    """A refusal of the service as a page: 403 with the reason, 404 for no such stall, 422 for a wrong period."""
    w = i18n.words(lang_of(request))
    status = {"forbidden": 403, "not_found": 404}.get(refusal.kind, 422)
    title = w["office.refused_title"] if status == 403 else w["stalls.cannot_show"]
    why = f"{w['office.refused']} ({refusal.detail})" if status == 403 else refusal.detail
    return OfficeStop(office_page(request, services, "refused.html", {"why": why}, status=status,
                                  title=title, operator=operator))


def routes(services) -> list[tuple]:
    async def listed(request):
        operator = await office_operator(request, services, "stall.read")
        if operator.role == "stall_owner":
            if not operator.stall_id:
                raise _stop(request, services, operator, Refusal("forbidden", "this stall_owner account has no stall"))
            return RedirectResponse(f"/office/stalls/{operator.stall_id}", status_code=303)
        w = i18n.words(lang_of(request))
        stalls = await services.stalls.listed(operator, request.query_params.get("store_id") or None)
        stores = sorted(services.cloud.world.stores)
        return office_page(request, services, "stalls.html", {"stalls": stalls, "stores": stores},
                           title=w["stalls.title"], operator=operator)

    async def one(request):
        operator = await office_operator(request, services, "stall.read")
        stall_id = request.path_params["stall_id"]
        w = i18n.words(lang_of(request))
        start, end = this_month(services.cloud.now_ms())
        start, end = request.query_params.get("from") or start, request.query_params.get("to") or end
        try:
            stall = await services.stalls.stall(operator, stall_id)
            settlement = await services.stalls.settlement(operator, stall_id, start, end)
            sales = await services.stalls.sales(operator, stall_id, start, end)
        except Refusal as refusal:
            raise _stop(request, services, operator, refusal) from None
        return office_page(request, services, "stalls_one.html", {
            "stall": stall, "settlement": settlement, "sales": sales, "products": services.stalls.products(stall_id),
            "start": start, "end": end}, title=f"{w['stalls.stall']} {stall['name']}", operator=operator)

    return [("/office/stalls", listed, ["GET"]), ("/office/stalls/{stall_id}", one, ["GET"])]
