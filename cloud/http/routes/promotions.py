"""The promotion book as it is in force, and the chain's promotion budgets (issue 17, item 4): operator views.

- `GET /rule-book` (views.read): the book in force, as HQ would PUT it back (`PUT /rule-book` replaces it whole).
- `GET /promotion-budgets` (views.read): per budget-capped or per-member-limited rule of the book: its cap, what
  was used (online orders and the shares granted to stores' tills), what is left, and per store the share granted
  and what its tills reported using. Read from the one PromotionBudgets actor, so every API process answers alike.
"""
from __future__ import annotations

from starlette.responses import JSONResponse

from cloud.http.operators import require_operator
from cloud.services.member_pricing import capped_rules


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
             "store_over_fen": views[r.id]["over"]} for r in capped]})

    return [("/rule-book", rule_book, ["GET"]), ("/promotion-budgets", budgets, ["GET"])]
