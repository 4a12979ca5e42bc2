"""The back office's routes: every area's own module, in one list, each handler wrapped so that a page's stop
(`OfficeStop`: sign in first, or not allowed) becomes its response. cloud/http/app.py mounts them with the API's
guard (deadline, metrics) like every other endpoint.

Adding an area: a module `cloud/office/<area>.py` with `routes(services) -> [(path, endpoint, methods)]` added to
AREAS, its entry in NAV (path, word id, the permission that shows it), templates extending base.html (blocks
`main`, `scripts`), its words in BOTH `cloud/office/locale/*/LC_MESSAGES/<area>.po`, its script in static/ using
`window.Office` (api, form, words), and its paths in PAGES of cloud/http/openapi_office.py."""
from __future__ import annotations

import functools

from cloud.office import catalogue, home, marketplaces, promotions, reports, services, stalls, stock, stores
from cloud.office.pages import OfficeStop
from protocol.roles import Permission

AREAS = (home, catalogue, promotions, stock, stores, services, stalls, reports, marketplaces)
# (path, word id, permission): the nav shows an area to the operators whose role has the permission (None: all)
NAV: list[tuple[str, str, Permission | None]] = [
    ("/office", "office.home", None),
    ("/office/catalogue", "catalogue.nav", "views.read"),
    ("/office/promotions", "promotions.title", "views.read"),
    ("/office/campaigns", "promotions.campaigns", "views.read"),
    ("/office/stock", "stock.nav", "store.figures"),
    ("/office/stores", "stores.nav", "views.read"),
    ("/office/services", "services.nav", "store.figures"),  # local services: schedule and book (issue 21)
    ("/office/stalls", "stalls.nav", "stall.read"),
    ("/office/reports", "reports.nav", "store.figures"),  # HQ reports (issue 21)
    ("/office/marketplaces", "marketplaces.nav", "store.figures"),  # marketplaces' shares and orders (issue 23)
]


def _stops_answered(endpoint):
    @functools.wraps(endpoint)
    async def page(request):
        try:
            return await endpoint(request)
        except OfficeStop as stop:
            return stop.response
    return page


def routes(services) -> list[tuple]:
    return [(path, _stops_answered(endpoint), methods)
            for area in AREAS for path, endpoint, methods in area.routes(services)]
