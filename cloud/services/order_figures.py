"""What happened to the chain's orders after they were placed, for operators and the demo's summary: rider tries by
outcome (and why they failed), redispatches and orders that came back to the store; till returns and online
after-sales requests, counted and in fen.

Read-only figures from the system of record (`deliveries`, `till_returns`, `after_sales`), over the same window
as `order_book.summary` (rows made since `since_ms`) and, for a store manager, their own store only.
"""
from __future__ import annotations

from typing import Any


async def figures(cloud, since_ms: int, store_id: str | None = None) -> dict:
    db = cloud.db
    mine = " and store_id = $2" if store_id is not None else ""
    args: list[Any] = [since_ms] + ([store_id] if store_id is not None else [])
    tries = await db.fetch(
        f"""select status, coalesce(reason, '') as reason, count(*)::int as n from deliveries
            where created_ms >= $1{mine} group by status, reason""", *args)  # noqa: S608 - fixed text, values bound
    orders = await db.fetchrow(
        f"""select count(distinct order_id)::int as orders,
                   count(distinct order_id) filter (where attempt > 1)::int as redispatched
            from deliveries where created_ms >= $1{mine}""", *args)  # noqa: S608 - fixed text, values bound
    returns = await db.fetch(
        f"""select method, count(*)::int as n, coalesce(sum(amount_fen), 0)::bigint as fen,
                   count(order_id)::int as of_orders
            from till_returns where received_ms >= $1{mine} group by method""", *args)  # noqa: S608
    requests = await db.fetch(
        f"""select status, count(*)::int as n, coalesce(sum(amount_fen), 0)::bigint as fen from after_sales
            where created_ms >= $1{mine} group by status""", *args)  # noqa: S608 - fixed text, values bound
    by_status: dict[str, int] = {}
    failed: dict[str, int] = {}
    for r in tries:
        by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
        if r["status"] in ("failed", "cancelled") and r["reason"]:
            failed[r["reason"]] = failed.get(r["reason"], 0) + r["n"]
    return {
        "deliveries": {"orders": orders["orders"], "tries": sum(by_status.values()), "tries_by_status": by_status,
                       "failed_by_reason": failed, "redispatched": orders["redispatched"]},
        "till_returns": {"count": sum(r["n"] for r in returns), "fen": sum(int(r["fen"]) for r in returns),
                         "by_method": {r["method"]: {"count": r["n"], "fen": int(r["fen"])} for r in returns},
                         "of_online_orders": sum(r["of_orders"] for r in returns)},
        "after_sales": {s["status"]: {"count": s["n"], "fen": int(s["fen"])} for s in requests},
    }
