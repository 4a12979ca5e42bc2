"""The console's group-buy panel, pure: open groups with their countdown and places joined / needed, and the groups
that formed, failed or were cancelled lately - from the rows `GroupViews.console_rows` read (no I/O, time passed in).

Guarantees: open groups come closing-soonest first (the ones an operator may still help); a group whose window has
passed but that the sweeper has not failed yet shows as closing (0 s left), never as a negative countdown; ended
groups come newest first, each with its outcome in words (`protocol.group_buys.outcome`)."""
from __future__ import annotations

from protocol import group_buys as core
from protocol.clock import to_rfc3339


def group_buys_view(rows: list[dict] | None, now_ms: int) -> dict | None:
    if rows is None:
        return None
    open_rows, ended = [], []
    for r in rows:
        item = {"group_id": r["group_id"], "sku": r["sku"], "name": r["name"], "rule_name": r["rule_name"],
                "store_id": r["store_id"], "status": r["status"], "size": r["size"], "joined": r["joined"],
                "paid": r["paid"], "price_fen": r["price_fen"], "opened_at": to_rfc3339(r["opened_ms"]),
                "closes_at": to_rfc3339(r["closes_ms"]),
                "outcome": core.outcome(r["status"], r["size"], r["joined"], r["paid"], r["closes_ms"], r["formed_ms"],
                                        r["ended_ms"], r["cancelled_by"], r["cancel_reason"])}
        if r["status"] == core.OPEN:
            item.update(needed=max(r["size"] - r["joined"], 0), closes_in_s=max(r["closes_ms"] - now_ms, 0) // 1000)
            open_rows.append(item)
        else:
            at = r["formed_ms"] or r["cancelled_ms"] or r["closes_ms"]
            ended.append({**item, "ended_ms": at, "ended_at": to_rfc3339(at)})
    open_rows.sort(key=lambda g: (g["closes_in_s"], g["group_id"]))
    ended.sort(key=lambda g: (-g["ended_ms"], g["group_id"]))
    return {"open": open_rows, "recent": ended,
            "counts": {s: sum(g["status"] == s for g in open_rows + ended) for s in core.STATUSES}}
