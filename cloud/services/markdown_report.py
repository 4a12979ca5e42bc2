"""What markdowns gave away, from what the tills reported (`markdowns_given`, kept by the bridge): for the operator
report `GET /operator/reports/markdowns` and for any other report that counts markdown as a cost (the loss report
calls `markdown_totals`).

Read-only; every figure is integer fen, grouped by rule, store and the chain's business day of the sale.
"""
from __future__ import annotations

from typing import Any

from protocol.policy import chain_day

DAY_MS = 86_400_000
RANGE_MAX_MS = 366 * DAY_MS  # one report covers at most a year


async def markdown_totals(db, from_ms: int, to_ms: int, store: str | None = None) -> list[dict[str, Any]]:
    """Per (rule, store, chain day) in [from_ms, to_ms) by the sales' wall clock: {"rule_id", "store_id", "day"
    (YYYY-MM-DD), "lines", "given_fen"} ordered by day, store, rule. `db`: an asyncpg pool or connection."""
    rows = await db.fetch(
        """select rule_id, store_id, day, count(*) as lines, sum(saving_fen) as given_fen from markdowns_given
           where wall_ms >= $1 and wall_ms < $2 and ($3::text is null or store_id = $3)
           group by rule_id, store_id, day order by day, store_id, rule_id""", from_ms, to_ms, store)
    return [{"rule_id": r["rule_id"], "store_id": r["store_id"], "day": r["day"].isoformat(), "lines": r["lines"],
             "given_fen": int(r["given_fen"])} for r in rows]


async def report(db, from_ms: int, to_ms: int, store: str | None, rule_names: dict[str, str]) -> dict[str, Any]:
    """The operator report: the rows of `markdown_totals` (with each rule's name where the book still has it), and
    totals by rule and by store."""
    rows = await markdown_totals(db, from_ms, to_ms, store)
    by_rule: dict[str, int] = {}
    by_store: dict[str, int] = {}
    for r in rows:
        r["rule_name"] = rule_names.get(r["rule_id"], r["rule_id"])
        by_rule[r["rule_id"]] = by_rule.get(r["rule_id"], 0) + r["given_fen"]
        by_store[r["store_id"]] = by_store.get(r["store_id"], 0) + r["given_fen"]
    return {"from_day": chain_day(from_ms).isoformat(), "to_day": chain_day(max(to_ms - 1, from_ms)).isoformat(),
            "store_id": store, "rows": rows, "by_rule": by_rule, "by_store": by_store,
            "total_fen": sum(by_rule.values())}
