"""The back office's stock policy (issue 21 item 3): the chain-wide stock view (per store, per lot and use-by, in
transit, reserved online), the allocation ratio per store × SKU or category, reorder points, the markdown rules in
force, and the transfers waiting for a decision.

Guarantees:
- What the page shows is what the operator API answers (the same service calls: `StockViews.store_view`,
  `Allocations.view`, `Restock.view`, `Transfers.view`), never figures of its own; a store manager sees their own
  store only (asking for another is the 403 page saying why).
- Every change is a public operator endpoint called by cloud/office/static/stock.js, which validates, audits and
  decides by role: `PUT /stores/{id}/allocation`, `PUT /stores/{id}/reorder-points`,
  `POST /operator/transfers/{id}/decision`. The page offers a change only to a role that may make it; the API
  decides again.
- The chain-wide view reads a bounded number of stores: one chosen store, or with a SKU or category filter the
  stores that hold such stock (at most `STORES_SCANNED_MAX`), at most `stock_view.ROWS_MAX` rows.
"""
from __future__ import annotations

import asyncio

from cloud.office import i18n
from cloud.office.pages import lang_of, may, office_operator, office_page
from cloud.office.stock_view import ROWS_MAX, effective_ratios, stock_rows, till_online
from protocol import roles
from protocol.transfer_approval import AWAITING, who_may_decide

STORES_SCANNED_MAX = 60  # stores read for one chain-wide page (each is a stock-pool read and a few queries)
PARALLEL_STORES = 8


def _markdowns(rule_data: dict) -> list[dict]:
    """The markdown rules of the book in force, as the page lists them."""
    out = []
    for r in rule_data.get("rules", []):
        if r.get("type") != "markdown":
            continue
        out.append({"id": r.get("id"), "name": r.get("name", ""), "from_time": r.get("from_time", ""),
                    "days_to_use_by": r.get("days_to_use_by", -1), "percent_off_bp": r.get("percent_off_bp", 0),
                    "price_fen": r.get("price_fen", 0), "skus": len(r.get("skus", [])),
                    "categories": r.get("categories", []), "channels": r.get("channels", [])})
    return out


def routes(services) -> list[tuple]:
    async def _stores_to_read(cloud, store: str | None, skus: list[str]) -> list[str]:
        if store is not None:
            return [store]
        rows = await cloud.db.fetch("select distinct store_id from store_stock where sku = any($1::text[]) "
                                    "order by store_id limit $2", skus, STORES_SCANNED_MAX)
        return [r["store_id"] for r in rows if r["store_id"] in cloud.world.stores]

    async def stock_page(request):
        cloud = services.cloud  # read per request: the area's routes are built before the services are whole
        q = request.query_params
        store = q.get("store") or None
        operator = await office_operator(request, services, "store.figures", store_id=store)
        w = i18n.words(lang_of(request))
        if operator.role in roles.SCOPED_TO_OWN_STORE:
            store = operator.store_id
        catalogue = cloud.world.catalogue
        sku_filter, category = (q.get("sku") or "").strip()[:40] or None, q.get("category") or None
        if store is not None and store not in cloud.world.stores:
            return office_page(request, services, "refused.html", {"why": f"{w['stock.no_store']} ({store[:40]})"},
                               status=404, title=w["stock.title"], operator=operator)
        # the policy sections are about one store: the chosen one, else the first
        policy_store = store or min(cloud.world.stores)
        reading: list[str] = []
        if store is not None or sku_filter or category:
            skus = [s for s, p in catalogue.by_sku.items()
                    if (not sku_filter or sku_filter.lower() in s.lower()) and (not category or p.category == category)]
            reading = await _stores_to_read(cloud, store, skus)
        gate = asyncio.Semaphore(PARALLEL_STORES)

        async def read(store_id: str) -> dict:
            async with gate:
                return await services.stock.store_view(store_id)

        rows = [row for view in await asyncio.gather(*(read(s) for s in reading))
                for row in stock_rows(view, catalogue.by_sku, sku_filter, category)][:ROWS_MAX]
        allocation = await services.allocations.view(policy_store)
        shown_skus = sorted({(r["sku"], r["category"]) for r in rows if r["store_id"] == policy_store})
        ratios = effective_ratios(shown_skus, allocation["allocations"], allocation["default_ratio_bp"])
        for r in rows:
            if r["store_id"] == policy_store:
                bp, source = ratios[r["sku"]]
                r.update(ratio=till_online(bp), ratio_source=source)
        points = await services.restock.view(policy_store)
        waiting = (await services.transfers.view(operator, AWAITING, store))["transfers"]
        moving = await services.transfers.view(operator, "dispatched", store)
        for t in waiting:
            t["may_decide"] = who_may_decide(operator.role, operator.store_id, t["from_store"]) is None
        return office_page(request, services, "stock.html", {
            "rows": rows, "truncated": len(rows) >= ROWS_MAX, "chosen": {"store": store, "sku": sku_filter or "",
                                                                         "category": category or ""},
            "stores": sorted(cloud.world.stores) if operator.role not in roles.SCOPED_TO_OWN_STORE else [store],
            "categories": sorted(catalogue.categories), "policy_store": policy_store,
            "allocations": [{**a, "said": till_online(a["ratio_bp"])} for a in allocation["allocations"]],
            "default_ratio": till_online(allocation["default_ratio_bp"]), "points": points["items"],
            "markdowns": _markdowns(cloud.world.rule_data), "waiting": waiting, "in_transit": moving["in_transit"],
            "may_allocate": may(operator, "allocation.change", policy_store),
            "may_restock": may(operator, "restock.change", policy_store), "filtered": bool(reading),
        }, title=w["stock.title"], operator=operator)

    return [("/office/stock", stock_page, ["GET"])]
