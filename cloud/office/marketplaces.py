"""The back office's marketplaces (issue 23): per store, each marketplace's share of the store's online escrow and the
part it holds now, HQ's form to change a share, and the orders the marketplaces sent to the store with where each
stands here and what the platform was told.

Guarantees:
- What the page shows is what the cloud holds: the shares (`ChannelShares.view`), the parts (the StockPool's, as the
  stock view answers them: `StockViews.store_view`), the orders (`marketplace_orders` joined with our orders); a
  store manager sees their own store only (asking for another is the 403 page saying why).
- A share is changed only through the public `PUT /stores/{id}/marketplaces/{m}/share` (cloud/office/static/
  marketplaces.js), which validates, audits and decides by role; the page offers the form only to a role that may.
- Bounded: at most `ORDERS_MAX` orders listed, the newest first; the counts by status are of all of them.
"""
from __future__ import annotations

from cloud.office import i18n
from cloud.office.pages import lang_of, may, office_operator, office_page
from protocol import roles

ORDERS_MAX = 100


def routes(services) -> list[tuple]:
    async def marketplaces_page(request):
        cloud = services.cloud  # read per request: the area's routes are built before the services are whole
        store = request.query_params.get("store") or None
        operator = await office_operator(request, services, "store.figures", store_id=store)
        w = i18n.words(lang_of(request))
        if operator.role in roles.SCOPED_TO_OWN_STORE:
            store = operator.store_id
        if store is None:  # the first store with a share, else the first store
            store = await cloud.db.fetchval("select min(store_id) from channel_shares where store_id = any($1::text[])",
                                            sorted(cloud.world.stores)) or min(cloud.world.stores)
        if store not in cloud.world.stores:
            return office_page(request, services, "refused.html", {"why": f"{w['marketplaces.no_store']} "
                                                                          f"({store[:40]})"},
                               status=404, title=w["marketplaces.title"], operator=operator)
        shares = (await services.channel_shares.view(store))["shares"]
        view = await services.stock.store_view(store)
        catalogue = cloud.world.catalogue
        parts = [{"sku": row["sku"], "name": catalogue.get(row["sku"]).name if row["sku"] in catalogue else "",
                  "escrow": row.get("escrow", 0), "mall": row.get("available_online", 0),
                  "channels": row.get("channels", {})}
                 for row in view.get("stock", []) if row.get("channels")]
        orders = [dict(r) for r in await cloud.db.fetch(
            """select l.marketplace, l.platform_order_id, l.order_id, l.confirmed_ms, l.ready_ms, l.rejected_ms,
                      l.cancelled_ms, l.cancel_reason, l.created_ms, o.status, o.total_fen
               from marketplace_orders l left join orders o using (order_id)
               where l.store_id = $1 order by l.created_ms desc limit $2""", store, ORDERS_MAX)]
        for o in orders:
            o["status"] = o["status"] or "not_taken"
        counts = {r["status"]: r["n"] for r in await cloud.db.fetch(  # every order of the store, not the newest only
            """select coalesce(o.status, 'not_taken') as status, count(*) as n
               from marketplace_orders l left join orders o using (order_id) where l.store_id = $1 group by 1""",
            store)}
        return office_page(request, services, "marketplaces.html", {
            "store": store, "shares": shares, "parts": parts, "orders": orders, "counts": counts,
            "stores": sorted(cloud.world.stores) if operator.role not in roles.SCOPED_TO_OWN_STORE else [store],
            "categories": sorted(catalogue.categories), "may_share": may(operator, "allocation.change", store),
            "marketplaces": sorted(services.marketplaces) or ["simmkt"],
        }, title=w["marketplaces.title"], operator=operator)

    return [("/office/marketplaces", marketplaces_page, ["GET"])]
