"""The mall's routes: every area's own module, in one list. A new area (member centre, flash sales, group buys)
is a module with `routes(services) -> [(path, endpoint, methods)]` added to AREAS; cloud/http/app.py mounts them
all with the API's guard (deadline, metrics) like every other endpoint."""
from __future__ import annotations

from cloud.mall import account, assets, browse, buy

AREAS = (assets, account, browse, buy)


def routes(services) -> list[tuple]:
    return [route for area in AREAS for route in area.routes(services)]
