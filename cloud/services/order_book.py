"""The chain's orders at a glance, for operators and the demo's summary: how many ended in each final state, and
every order that has not ended with what it is waiting for (`protocol.order_lifecycle.why_open`), and what
happened after ordering: rider tries, till returns, after-sales (`order_figures`).

A store manager sees their own store's orders only (an order belongs to the stores it is allocated to).
"""
from __future__ import annotations

import json

from cloud.services import order_figures
from cloud.services.group_views import GroupViews
from protocol import order_lifecycle as lifecycle
from protocol.clock import to_rfc3339

OPEN_LISTED_MAX = 200


async def summary(cloud, since_ms: int, store_id: str | None = None) -> dict:
    """Orders created since `since_ms`: counts by status (final ones under `ended`), and the open ones (at most
    `OPEN_LISTED_MAX`, oldest first) each with why it is still open."""
    where = "created_ms >= $1"
    args: list[object] = [since_ms]
    if store_id is not None:
        where += " and allocation ? $2"
        args.append(store_id)
    counts = {r["status"]: r["n"] for r in await cloud.db.fetch(
        f"select status, count(*)::int as n from orders where {where} group by status", *args)}  # noqa: S608 - fixed text
    rows = await cloud.db.fetch(
        f"""select order_id, kind, fulfilment, status, group_held, allocation, expires_ms, slot_start_ms, created_ms,
                   updated_ms
            from orders where {where} and status <> all(${len(args) + 1}::text[])
            order by created_ms limit {OPEN_LISTED_MAX}""",  # noqa: S608 - fixed text, values bound
        *args, list(lifecycle.FINAL_STATUSES))
    now = cloud.now_ms()
    # a paid order held for its group buy shows `group_forming`, with its group's count and window (the lifecycle)
    groups = await GroupViews(cloud).progress([r["order_id"] for r in rows if r["group_held"]])
    shown = {r["order_id"]: lifecycle.shown(r["status"], r["group_held"]) for r in rows}
    return {
        "since": to_rfc3339(since_ms),
        "ended": {s: n for s, n in counts.items() if lifecycle.is_final(s)},
        "open_count": sum(n for s, n in counts.items() if not lifecycle.is_final(s)),
        "open": [{"order_id": r["order_id"], "kind": r["kind"], "status": shown[r["order_id"]],
                  "status_text": lifecycle.status_text(shown[r["order_id"]], (groups.get(r["order_id"]) or (0, 0))[:2]),
                  "stores": sorted(json.loads(r["allocation"])), "since": to_rfc3339(r["updated_ms"]),
                  "waiting_for": lifecycle.why_open(shown[r["order_id"]], r["fulfilment"], now, r["expires_ms"],
                                                    r["slot_start_ms"], groups.get(r["order_id"]))}
                 for r in rows],
        **await order_figures.figures(cloud, since_ms, store_id),
    }
