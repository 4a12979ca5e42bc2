"""The promotion book as it is in force, and the chain's promotion budgets (issue 17, item 4): operator views.

- `GET /rule-book` (views.read): the book in force, as HQ would PUT it back (`PUT /rule-book` replaces it whole).
- `GET /promotion-budgets` (views.read): per budget-capped or per-member-limited rule of the book: its cap, what
  was used (online orders and the shares granted to stores' tills), what is left, and per store the share granted
  and what its tills reported using. Read from the one PromotionBudgets actor, so every API process answers alike.
- `GET /promotion-budgets/limit-conflicts[?store_id=S001]` (store.figures; a store manager: their own store only,
  by default): till sales that used a per-member-limited rule past the member's limit (the cloud counted them after
  the sale: an offline till, or another sale first), newest first. The sales stand; this is what to follow up.
"""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.services.member_pricing import capped_rules
from protocol import roles


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def rule_book(request):
        await require_operator(request, services, "views.read")
        return JSONResponse(cloud.world.rule_data)

    async def budgets(request):
        await require_operator(request, services, "views.read")
        capped = capped_rules(cloud.world.rule_book.rules)
        views = await cloud.actors.budgets.budgets([r.id for r in capped]) if capped else {}
        return JSONResponse({"rule_book_version": cloud.world.rule_book.version, "budgets": [
            {"rule_id": r.id, "name": r.name, "type": r.TYPE, "budget_fen": r.budget_fen,
             "per_member_limit": r.per_member_limit, "used_fen": views[r.id]["used"],
             "left_fen": max(r.budget_fen - views[r.id]["used"], 0) if r.budget_fen else None,
             "store_shares_fen": views[r.id]["shares"], "store_used_fen": views[r.id]["store_used"],
             "store_over_fen": views[r.id]["over"], "store_reclaimed": views[r.id].get("reclaimed", {})}
            for r in capped]})

    async def limit_conflicts(request):
        store = request.query_params.get("store_id") or None
        operator = await require_operator(request, services, "store.figures", store)
        if store is None and operator.role in roles.SCOPED_TO_OWN_STORE:
            store = operator.store_id  # a store manager sees their own store's
        found = await cloud.actors.budgets.limit_conflicts(store or "")
        return JSONResponse({"store_id": store, "conflicts": found})

    return [("/rule-book", rule_book, ["GET"]), ("/promotion-budgets", budgets, ["GET"]),
            ("/promotion-budgets/limit-conflicts", limit_conflicts, ["GET"])]
