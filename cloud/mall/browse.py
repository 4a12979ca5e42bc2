"""Browsing the mall: home (shelves, scenes, promotion zones, live flash sales), a shelf, a scene, search, a
product, and choosing a store.

Guarantees:
- Pages are rendered from the same calls the public read endpoints make (the catalogue and rule book of
  `GET /products`, the stores of `GET /stores`, one product's stock of `GET /stores/{id}/stock?sku=`): a page
  never shows something the API would not.
- Prices are the list price and, for a signed-in member (the `mall_session` cookie, checked like a Bearer token),
  their level's member price; the cart and the order price with the whole promotion book (cloud/mall/buy.py).
- A stock figure that cannot be read (the actors busy) shows the product as pre-sale rather than failing the page.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

from starlette.responses import RedirectResponse

from cloud.mall import pages, shelf
from cloud.mall.i18n import SHELVES
from cloud.mall.pages import mall_error, mall_page
from cloud.mall.recent import Recent
from protocol.clock import to_rfc3339

CN = timezone(timedelta(hours=8))  # the chain's stores keep China time: daily promotion windows are in it
FLASH_SHOWN = 6
log = logging.getLogger("freshmesh.mall")


def minute_of_day(now_ms: int) -> int:
    t = datetime.fromtimestamp(now_ms / 1000, CN)
    return t.hour * 60 + t.minute


async def live_flash_sales(services) -> list[dict]:
    """Flash sales running now or starting later, soonest ending first (what `GET /flash-sales/{id}` shows of each)."""
    now = services.cloud.now_ms()
    rows = await services.cloud.db.fetch(
        "select sale_id, config from flash_sales where (config->>'ends_ms')::bigint > $1 "
        "order by (config->>'ends_ms')::bigint limit $2", now, FLASH_SHOWN)
    catalogue = services.cloud.world.catalogue
    out = []
    for row in rows:
        config = row["config"] if isinstance(row["config"], dict) else json.loads(row["config"])
        product = catalogue.by_sku.get(config.get("sku", ""))
        if product is not None:
            out.append({"sale_id": row["sale_id"], "name": product.name, "sku": product.sku,
                        "price_fen": config.get("price_fen"), "list_fen": product.price_fen,
                        "ends_at": to_rfc3339(int(config["ends_ms"])), "ends_ms": int(config["ends_ms"])})
    return out


def routes(services) -> list[tuple]:
    cloud = services.cloud
    recent = Recent()  # stores' stock views and flash sales, about a second old at most (cloud/mall/recent.py)

    async def level(request) -> str | None:
        return await pages.level_of(services, await pages.member_of(request, services))

    def priced(request):  # as sold at the customer's chosen store now (its own and scheduled prices applied)
        return cloud.world.catalogue.at(cloud.now_ms(), pages.store_of(request, services) or "")

    async def home(request):
        lvl = await level(request)
        catalogue = priced(request)
        scenes = [{**s, "products": [shelf.tile(p, lvl) for p in shelf.scene_products(catalogue, s)]}
                  for s in shelf.load_scenes()]
        zones = shelf.zones(cloud.world.rule_data, catalogue, minute_of_day(cloud.now_ms()))
        for zone in zones["time_limited"] + zones["group_buys"]:
            zone["tiles"] = [shelf.tile(catalogue.by_sku[s], lvl) for s in zone["skus"][:3]]
        try:
            flash = await recent.get("flash", lambda: live_flash_sales(services))
        except Exception as exc:  # noqa: BLE001 - the home page shows without its flash zone rather than not at all
            log.warning("mall home: flash sales not read: %s", exc)
            flash = []
        return mall_page(request, services, "home.html", {
            "colours": shelf.COLOURS, "scenes": scenes, "zones": zones, "flash": flash, "now_ms": cloud.now_ms(),
            "time_limited": zones["time_limited"][:4], "spend_x": zones["spend_x"][:4],
            "group_buys": zones["group_buys"][:4]})

    async def shelf_page(request):
        name = request.path_params["shelf"]
        if name not in SHELVES:
            return mall_error(request, services, 404, pages.i18n.words(pages.lang_of(request))["page_missing"])
        lvl = await level(request)
        tiles = [shelf.tile(p, lvl) for p in shelf.on_shelf(priced(request), name)]
        w = pages.i18n.words(pages.lang_of(request))
        return mall_page(request, services, "list.html", {"heading": w[f"shelf_{name}"], "tiles": tiles},
                         title=w[f"shelf_{name}"])

    async def scene_page(request):
        found = next((s for s in shelf.load_scenes() if s["id"] == request.path_params["scene"]), None)
        lang = pages.lang_of(request)
        if found is None:
            return mall_error(request, services, 404, pages.i18n.words(lang)["page_missing"])
        lvl = await level(request)
        tiles = [shelf.tile(p, lvl) for p in shelf.scene_products(priced(request), found)]
        return mall_page(request, services, "list.html", {"heading": found["name"][lang], "tiles": tiles,
                                                          "scene": True}, title=found["name"][lang])

    async def search_page(request):
        q = request.query_params.get("q", "")[:40]
        lvl = await level(request)
        tiles = [shelf.tile(p, lvl) for p in shelf.search(priced(request), q)]
        w = pages.i18n.words(pages.lang_of(request))
        return mall_page(request, services, "list.html", {"heading": w["results"], "tiles": tiles, "q": q,
                                                          "searched": True}, title=w["search"])

    async def product_page(request):
        sku = request.path_params["sku"]
        product = priced(request).by_sku.get(sku)
        w = pages.i18n.words(pages.lang_of(request))
        if product is None or "online" not in product.channels:
            return mall_error(request, services, 404, w["product_missing"])
        lvl = await level(request)
        store_id = pages.store_of(request, services)
        state, row = None, None
        if store_id:
            try:
                # the store's whole stock view (GET /stores/{id}/stock), read at most about once a second per store
                # however many customers open its products
                view = await recent.get(("stock", store_id), lambda: services.stock.store_view(store_id))
                row = next((r for r in view["stock"] if r["sku"] == sku), None)
            except Exception as exc:  # noqa: BLE001 - shown as pre-sale, never a failed page
                log.warning("mall product %s: stock at %s not read: %s", sku, store_id, exc)
            state = shelf.availability(row, product)
        return mall_page(request, services, "product.html", {
            "p": shelf.tile(product, lvl), "product": product, "availability": state,
            "available": row.get("available_online") if row else None, "steps": shelf.weight_steps(product)},
            title=product.name)

    async def stores_page(request):
        lat, lon = request.query_params.get("lat"), request.query_params.get("lon")
        try:
            at = (float(lat), float(lon)) if lat and lon else (None, None)
        except ValueError:
            at = (None, None)
        rows = shelf.stores_by_distance(cloud.world.stores.values(), *at)
        return mall_page(request, services, "stores.html", {"rows": rows, "located": at[0] is not None,
                                                            "next": request.query_params.get("next", "")})

    async def choose_store(request):
        """A no-JS fallback of the store choice: `/mall/stores/{id}/choose` remembers it and goes back."""
        store_id = request.path_params["store_id"]
        if store_id not in cloud.world.stores:
            return mall_error(request, services, 404, pages.i18n.words(pages.lang_of(request))["no_store"])
        nxt = request.query_params.get("next", "/mall")
        response = RedirectResponse(nxt if nxt.startswith("/mall") else "/mall", status_code=303)
        response.set_cookie(pages.STORE_COOKIE, store_id, max_age=pages.COOKIE_MAX_AGE_S, path="/mall",
                            samesite="lax")
        return response

    return [("/mall", home, ["GET"]), ("/mall/shelves/{shelf}", shelf_page, ["GET"]),
            ("/mall/scenes/{scene}", scene_page, ["GET"]), ("/mall/search", search_page, ["GET"]),
            ("/mall/products/{sku}", product_page, ["GET"]), ("/mall/stores", stores_page, ["GET"]),
            ("/mall/stores/{store_id}/choose", choose_store, ["GET"])]
