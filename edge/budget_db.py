"""This store's offline shares of budget-capped promotion rules (edge/core/budget_allowance.py), in SQLite.

Executed inside the Outcome's one transaction: a sale's use is taken from the share with the sale itself.
"""
from __future__ import annotations

from typing import Any

from edge.core.budget_allowance import ReclaimAllowance
from edge.core.member_limits import MemberLimits, RecordMemberUse
from edge.core.outcome import GrantAllowance, UseAllowance

SCHEMA = """
create table if not exists budget_allowances (
    rule_id      text primary key,
    granted_fen  integer not null default 0,   -- the total the cloud granted this store (the highest heard)
    used_fen     integer not null default 0    -- what this store's tills gave under the rule
);
create table if not exists member_rule_uses (  -- this store's sales' uses of per-member-limited rules
    member_id  text not null,
    rule_id    text not null,
    sale_id    text not null,
    day        text not null,                  -- the chain day of the sale (the offline allowance's day)
    offline    integer not null,               -- sold without the cloud's answer on the member's uses
    at_ms      integer not null,
    primary key (sale_id, rule_id)
);
create index if not exists member_rule_uses_member on member_rule_uses (member_id, rule_id);
"""


async def allowances(db) -> dict[str, tuple[int, int]]:
    """rule -> (granted, used)."""
    async with db.execute("select rule_id, granted_fen, used_fen from budget_allowances") as cur:
        return {rule: (granted, used) for rule, granted, used in await cur.fetchall()}


async def member_limits(db, member_id: str, day: str, cloud=None, cloud_at_ms: int = 0) -> MemberLimits:
    """What this store knows of the member's uses of limited rules: every sale here, today's offline ones, and (with
    the cloud's answer of `cloud_at_ms`) those recorded since that answer."""
    async with db.execute("select rule_id, count(*), sum(offline and day = ?), sum(at_ms >= ?) from member_rule_uses "
                          "where member_id = ? group by rule_id", (day, cloud_at_ms, member_id)) as cur:
        rows = await cur.fetchall()
    since = {r: int(n or 0) for r, _, _, n in rows} if cloud is not None else {}
    return MemberLimits(member_id, cloud, {r: n for r, n, _, _ in rows}, {r: int(off or 0) for r, _, off, _ in rows},
                        cloud_at_ms, since)


EXECUTORS: dict[type, Any] = {
    GrantAllowance: lambda db, e: db.execute(
        "insert into budget_allowances (rule_id, granted_fen) values (?, ?) on conflict (rule_id) do update set "
        "granted_fen = max(granted_fen, excluded.granted_fen)", (e.rule_id, e.granted_fen)),
    UseAllowance: lambda db, e: db.execute(
        "insert into budget_allowances (rule_id, used_fen) values (?, ?) on conflict (rule_id) do update set "
        "used_fen = used_fen + excluded.used_fen", (e.rule_id, e.fen)),
    # the cloud took the unused share back: the till has nothing left of it (a later grant raises it again)
    ReclaimAllowance: lambda db, e: db.execute(
        "update budget_allowances set granted_fen = used_fen where rule_id = ?", (e.rule_id,)),
    RecordMemberUse: lambda db, e: db.execute(
        "insert into member_rule_uses (member_id, rule_id, sale_id, day, offline, at_ms) values (?, ?, ?, ?, ?, ?) "
        "on conflict do nothing", (e.member_id, e.rule_id, e.sale_id, e.day, int(e.offline), e.at_ms)),
}
