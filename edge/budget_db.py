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
create table if not exists budget_generations (  -- the newest take-back generation heard of the rule's share
    rule_id     text primary key,
    generation  integer not null
);
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


async def _generation(db, rule_id: str) -> int:
    async with db.execute("select generation from budget_generations where rule_id = ?", (rule_id,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _set_generation(db, rule_id: str, generation: int) -> None:
    await db.execute("insert into budget_generations (rule_id, generation) values (?, ?) on conflict (rule_id) do "
                     "update set generation = excluded.generation", (rule_id, generation))


async def _grant(db, e: GrantAllowance) -> None:
    """A grant's total: within the generation heard, the highest wins; a newer generation's (granted after a
    take-back this store has not heard yet) is the total; an older one is ignored (it predates a take-back)."""
    held = await _generation(db, e.rule_id)
    if e.generation < held:
        return
    if e.generation > held:
        await _set_generation(db, e.rule_id, e.generation)
        await db.execute("insert into budget_allowances (rule_id, granted_fen) values (?, ?) on conflict (rule_id) "
                         "do update set granted_fen = excluded.granted_fen", (e.rule_id, e.granted_fen))
        return
    await db.execute("insert into budget_allowances (rule_id, granted_fen) values (?, ?) on conflict (rule_id) do "
                     "update set granted_fen = max(granted_fen, excluded.granted_fen)", (e.rule_id, e.granted_fen))


async def _reclaim(db, e: ReclaimAllowance) -> None:
    """The cloud took the unused share back: the till has nothing left of it (a later grant raises it again). A
    take-back no newer than what was heard (a duplicate, or older than a grant made after it) changes nothing;
    generation 0 (a cloud before generations) always applies."""
    if e.generation:
        if e.generation <= await _generation(db, e.rule_id):
            return
        await _set_generation(db, e.rule_id, e.generation)
    await db.execute("update budget_allowances set granted_fen = used_fen where rule_id = ?", (e.rule_id,))


EXECUTORS: dict[type, Any] = {
    GrantAllowance: _grant,
    UseAllowance: lambda db, e: db.execute(
        "insert into budget_allowances (rule_id, used_fen) values (?, ?) on conflict (rule_id) do update set "
        "used_fen = used_fen + excluded.used_fen", (e.rule_id, e.fen)),
    ReclaimAllowance: _reclaim,
    RecordMemberUse: lambda db, e: db.execute(
        "insert into member_rule_uses (member_id, rule_id, sale_id, day, offline, at_ms) values (?, ?, ?, ?, ?, ?) "
        "on conflict do nothing", (e.member_id, e.rule_id, e.sale_id, e.day, int(e.offline), e.at_ms)),
}
