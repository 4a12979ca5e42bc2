"""This store's offline shares of budget-capped promotion rules (edge/core/budget_allowance.py), in SQLite.

Executed inside the Outcome's one transaction: a sale's use is taken from the share with the sale itself.
"""
from __future__ import annotations

from typing import Any

from edge.core.outcome import GrantAllowance, UseAllowance

SCHEMA = """
create table if not exists budget_allowances (
    rule_id      text primary key,
    granted_fen  integer not null default 0,   -- the total the cloud granted this store (the highest heard)
    used_fen     integer not null default 0    -- what this store's tills gave under the rule
);
"""


async def allowances(db) -> dict[str, tuple[int, int]]:
    """rule -> (granted, used)."""
    async with db.execute("select rule_id, granted_fen, used_fen from budget_allowances") as cur:
        return {rule: (granted, used) for rule, granted, used in await cur.fetchall()}


EXECUTORS: dict[type, Any] = {
    GrantAllowance: lambda db, e: db.execute(
        "insert into budget_allowances (rule_id, granted_fen) values (?, ?) on conflict (rule_id) do update set "
        "granted_fen = max(granted_fen, excluded.granted_fen)", (e.rule_id, e.granted_fen)),
    UseAllowance: lambda db, e: db.execute(
        "insert into budget_allowances (rule_id, used_fen) values (?, ?) on conflict (rule_id) do update set "
        "used_fen = used_fen + excluded.used_fen", (e.rule_id, e.fen)),
}
