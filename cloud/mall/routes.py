"""The mall's routes: every area's own module, in one list. A new area (member centre, flash sales, group buys)
is a module with `routes(services) -> [(path, endpoint, methods)]` added to AREAS; cloud/http/app.py mounts them
all with the API's guard (deadline, metrics) like every other endpoint.

Adding a page: a template extending base.html (blocks `page`, `main`, `scripts`), a handler that returns
`mall_page(request, services, "x.html", {...}, title=...)` (cloud/mall/pages.py), its words in BOTH languages of
cloud/mall/i18n.py, its script in static/ using `window.Mall` (api, session, cart, flash), and its path in PAGES of
cloud/http/openapi_mall.py (tests/unit/test_openapi.py checks that every served route is described)."""
from __future__ import annotations

from cloud.mall import (  # flash sales, group buys, member centre (issue 20, part 2)
    account,
    assets,
    bookings,
    browse,
    buy,
    flash,
    groups,
    member_centre,
    stall_shop,
)

AREAS = (assets, account, browse, buy,
         flash, groups, member_centre,
         bookings, stall_shop)  # issue 21: local services booking, a market stall's own shop


def routes(services) -> list[tuple]:
    return [route for area in AREAS for route in area.routes(services)]
