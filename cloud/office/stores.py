"""The back office's stores (issue 21 item 4): the chain's stores with their boxes' health, and one store's page to
change where it is, its hours, its pickup and delivery reach, its slots, its delivery fee, and to open or close it.

Guarantees:
- The list's health (online, lag, outbox, disk, devices) is the operations console's own reckoning
  (`cloud.console.snapshot.store_rows` over the store registry's view), so the two never disagree.
- A change is the public `PUT /stores/{id}` (cloud/office/static/stores.js), which validates the store whole,
  audits it and answers a problem naming what was wrong: the page never writes by itself.
- A store manager may change their own store only: another store's page is shown read-only with the sentence why
  (`protocol.roles.refusal`), and the API refuses the write all the same (403, shown as a sentence).
"""
from __future__ import annotations

from cloud.console.snapshot import ConsoleConfig, ConsoleInputs, ConsoleMemory, store_rows
from cloud.office import i18n
from cloud.office.pages import lang_of, office_operator, office_page
from protocol import roles
from protocol.schema import to_wire

SLOT_MINUTES = (15, 30, 60, 120)  # the slot grids a store may use (cloud/world.py Store)


def health(stores: dict[str, str], registry: list[dict], now_ms: int) -> dict[str, dict]:
    """Each store's box health as the console shows it, by store id. Pure."""
    rows = store_rows(ConsoleInputs(now_ms=now_ms, stores=stores, registry=registry), ConsoleMemory(),
                      ConsoleConfig())
    return {r["store_id"]: r for r in rows}


def routes(services) -> list[tuple]:
    async def _health(store_id: str | None = None) -> dict[str, dict]:
        cloud = services.cloud  # read per request: the area's routes are built before the services are whole
        stores = {s.store_id: s.name for s in cloud.world.stores.values() if store_id in (None, s.store_id)}
        return health(stores, await services.stock.liveness(store_id), cloud.now_ms())

    async def stores_page(request):
        operator = await office_operator(request, services, "views.read")
        w, cloud = i18n.words(lang_of(request)), services.cloud
        boxes = await _health()
        listed = [{"store": to_wire(s), "health": boxes.get(s.store_id, {}),
                   "editable": roles.allowed(operator.role, "store.change", operator.store_id, s.store_id)}
                  for s in sorted(cloud.world.stores.values(), key=lambda s: s.store_id)]
        return office_page(request, services, "stores.html", {"stores": listed}, title=w["stores.title"],
                           operator=operator)

    async def store_page(request):
        store_id = request.path_params["store_id"]
        operator = await office_operator(request, services, "views.read")
        w, cloud = i18n.words(lang_of(request)), services.cloud
        store = cloud.world.stores.get(store_id)
        if store is None:
            return office_page(request, services, "refused.html", {"why": f"{w['stores.missing']} ({store_id[:40]})"},
                               status=404, title=w["stores.title"], operator=operator)
        why_not = roles.refusal(operator.role, "store.change", operator.store_id, store_id)
        return office_page(request, services, "store.html", {
            "store": to_wire(store), "health": (await _health(store_id)).get(store_id, {}),
            "read_only": why_not is not None, "why_not": why_not, "slot_choices": SLOT_MINUTES},
            title=f"{w['stores.store']} {store_id}", operator=operator)

    return [("/office/stores", stores_page, ["GET"]), ("/office/stores/{store_id}", store_page, ["GET"])]
