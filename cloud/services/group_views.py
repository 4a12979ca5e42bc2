"""Group buys as operators and members see them (issue 17): the operators' list and one group's whole story, the
console's group-buy panel rows, and what a held group order shows (`group forming (2/3)`).

Guarantees:
- every count is read from the orders' statuses at the moment of reading (never from a counter): `joined` counts the
  places whose order has not ended unserved, `paid` those whose money is kept;
- a store manager sees the groups that touch their own store only (the leader's store, or any place's order
  allocated there); other roles see every group. The list and the detail decide it the same way (`_touches`);
- members appear only masked (their phone as the cloud keeps it masked, never the number, never a member id);
- the list is paged by a cursor (`before`, the last group's `next_before`), newest first, so a page never repeats
  or skips a group however many open meanwhile;
- statuses of orders go through `protocol.order_lifecycle.shown`, like every other place that shows one.

Migration 34 (here): who cancelled a group, when and why (HQ's cancel, `GroupBuys.cancel`), and the list's index.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from cloud.services.verdicts import Refusal
from protocol import group_buys as core
from protocol import order_lifecycle as lifecycle
from protocol.clock import to_rfc3339
from protocol.schema import record, require

MIGRATION_34 = (34, "group buys: who cancelled a group, when and why; the operators' list index", """
    alter table group_buys add column if not exists cancelled_ms bigint;
    alter table group_buys add column if not exists cancelled_by text;     -- the operator's username
    alter table group_buys add column if not exists cancel_reason text;
    create index if not exists group_buys_newest on group_buys (opened_ms desc, group_id desc);
    create index if not exists group_buys_ending on group_buys (group_id)
        where status in ('failed', 'cancelled') and ended_ms is null;
""")
PAGE_DEFAULT, PAGE_MAX = 50, 200
CONSOLE_OPEN_MAX, CONSOLE_RECENT_MAX = 30, 15  # groups on the console's panel
CONSOLE_RECENT_MS = 6 * 3_600_000  # formed, failed and cancelled groups stay on the console this long
UNSERVED = list(lifecycle.UNSERVED_STATUSES)
PAID = list(lifecycle.PAID_STATUSES)

# one group's places counted from its orders' statuses (live: not ended unserved; paid: money kept)
_COUNTS = """(select count(*) from group_members m join orders o on o.order_id = m.order_id
               where m.group_id = g.group_id and o.status <> all($1::text[])) as joined,
             (select count(*) from group_members m join orders o on o.order_id = m.order_id
               where m.group_id = g.group_id and o.status = any($2::text[])) as paid"""
# a group touches a store: its leader's store, or any place's order allocated there
_TOUCHES = """(g.store_id = {p} or exists (select 1 from group_members m join orders o on o.order_id = m.order_id
                                          where m.group_id = g.group_id and o.allocation ? {p}))"""


@record
class CancelBody:
    """HQ's cancel of an open group: why (shown to operators and on every order's timeline)."""
    reason: str

    def __post_init__(self) -> None:
        require(0 < len(self.reason.strip()) <= 200, "reason: say why the group is cancelled (1-200 characters)")


@dataclass(frozen=True, slots=True)
class Filters:
    status: str | None = None
    store: str | None = None
    item: str | None = None
    limit: int = PAGE_DEFAULT
    before: tuple[int, str] | None = None


def parse_filters(query: dict[str, str], known_skus, known_stores) -> Filters:
    """The list's query string, each bad value refused naming it (422)."""
    status = query.get("status") or None
    if status is not None and status not in core.STATUSES:
        raise Refusal("invalid", f"status: one of {', '.join(core.STATUSES)}, not {status[:40]!r}")
    store = query.get("store") or None
    if store is not None and store not in known_stores:
        raise Refusal("invalid", f"store: unknown store {store[:40]!r}")
    item = query.get("item") or None
    if item is not None and item not in known_skus:
        raise Refusal("invalid", f"item: unknown sku {item[:40]!r}")
    raw_limit = query.get("limit") or str(PAGE_DEFAULT)
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= PAGE_MAX:
        raise Refusal("invalid", f"limit: a whole number from 1 to {PAGE_MAX}, not {raw_limit[:20]!r}")
    before = None
    if query.get("before"):
        ms, _, group_id = query["before"].partition(":")
        if not ms.isdigit() or not group_id or len(group_id) > 64:
            raise Refusal("invalid", "before: the `next_before` of the previous page (<opened ms>:<group id>)")
        before = (int(ms), group_id)
    return Filters(status, store, item, int(raw_limit), before)


class GroupViews:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    def _names(self, row) -> dict:
        product = self.cloud.world.catalogue.by_sku.get(row["sku"])
        rule = self.cloud.world.rule_book.by_id.get(row["rule_id"])
        return {"name": product.name if product else row["sku"], "rule_name": rule.name if rule else row["rule_id"],
                "list_price_fen": product.price_fen if product else None}

    def _summary(self, row, now_ms: int) -> dict:
        joined = int(row["joined"])
        return {"group_id": row["group_id"], "rule_id": row["rule_id"], "sku": row["sku"], **self._names(row),
                "store_id": row["store_id"], "status": row["status"], "size": row["size"], "joined": joined,
                "paid": int(row["paid"]), "needed": max(row["size"] - joined, 0) if row["status"] == core.OPEN else 0,
                "group_price_fen": row["price_fen"], "opened_at": to_rfc3339(row["opened_ms"]),
                "closes_at": to_rfc3339(row["closes_ms"]),
                "closes_in_s": (max(row["closes_ms"] - now_ms, 0) // 1000) if row["status"] == core.OPEN else None,
                "formed_at": to_rfc3339(row["formed_ms"]), "cancelled_at": to_rfc3339(row["cancelled_ms"]),
                "outcome": core.outcome(row["status"], row["size"], joined, int(row["paid"]), row["closes_ms"],
                                        row["formed_ms"], row["ended_ms"], row["cancelled_by"], row["cancel_reason"])}

    # ---- the operators' list --------------------------------------------------------------------------------
    async def listed(self, f: Filters, own_store: str | None) -> dict:
        """Groups newest first, filtered; `own_store`: a store manager's store (only groups touching it)."""
        where, args = ["true"], [UNSERVED, PAID]  # type: list[str], list[object]
        for value, clause in ((f.status, "g.status = {p}"), (f.item, "g.sku = {p}"), (f.store, _TOUCHES),
                              (own_store, _TOUCHES)):
            if value is not None:
                args.append(value)
                where.append(clause.format(p=f"${len(args)}"))
        if f.before is not None:
            args += [f.before[0], f.before[1]]
            where.append(f"(g.opened_ms, g.group_id) < (${len(args) - 1}, ${len(args)})")
        rows = await self.cloud.db.fetch(
            f"select g.*, {_COUNTS} from group_buys g where {' and '.join(where)} "  # noqa: S608 - fixed clauses, values bound
            f"order by g.opened_ms desc, g.group_id desc limit {f.limit}", *args)
        now = self.cloud.now_ms()
        groups = [self._summary(r, now) for r in rows]
        last = rows[-1] if len(rows) == f.limit else None
        return {"groups": groups, "next_before": f"{last['opened_ms']}:{last['group_id']}" if last else None}

    # ---- one group ------------------------------------------------------------------------------------------
    async def detail(self, group_id: str, own_store: str | None) -> dict:
        """The group's whole story: window, places (members masked) with their orders' shown statuses, outcome,
        refunds of its orders."""
        row = await self.cloud.db.fetchrow(f"select g.*, {_COUNTS} from group_buys g where g.group_id = $3",  # noqa: S608 - fixed text
                                           UNSERVED, PAID, group_id)
        if row is None:
            raise Refusal("not_found", f"no group buy {group_id}")
        if own_store is not None and not await self.cloud.db.fetchval(
                f"select {_TOUCHES.format(p='$2')} from group_buys g where g.group_id = $1",  # noqa: S608 - fixed text
                group_id, own_store):
            raise Refusal("forbidden", f"group buy {group_id} has no place at store {own_store}: a store manager of "
                                       f"{own_store} sees its own store's groups only")
        places = await self.cloud.db.fetch(
            """select m.order_id, m.member_id, m.joined_ms, o.status, o.group_held, o.total_fen, o.lines, o.allocation,
                      o.refunded_fen, mb.phone_masked
               from group_members m join orders o on o.order_id = m.order_id
               left join members mb on mb.member_id = m.member_id
               where m.group_id = $1 order by m.joined_ms, m.order_id""", group_id)
        refunds = await self.cloud.db.fetch(
            """select movement_id, order_id, amount_fen, state, method, updated_ms from money_movements
               where kind = 'refund' and order_id = any($1::text[]) order by created_ms, movement_id""",
            [p["order_id"] for p in places])
        now = self.cloud.now_ms()
        body = self._summary(row, now)
        progress = (body["joined"], row["size"])
        body["window"] = {"opened_at": body["opened_at"], "closes_at": body["closes_at"],
                          "minutes": (row["closes_ms"] - row["opened_ms"]) // 60_000, "closes_in_s": body["closes_in_s"]}
        body["cancelled"] = ({"by": row["cancelled_by"], "reason": row["cancel_reason"], "at": body["cancelled_at"]}
                             if row["cancelled_ms"] else None)
        body["ended_at"] = to_rfc3339(row["ended_ms"])
        body["members"] = []
        for p in places:
            shown = lifecycle.shown(p["status"], p["group_held"])
            body["members"].append({
                "member": core.masked_name(p["phone_masked"]), "leader": p["member_id"] == row["leader_id"],
                "order_id": p["order_id"], "joined_at": to_rfc3339(p["joined_ms"]),
                "stores": sorted(_json(p["allocation"])), "qty": sum(int(line["qty"]) for line in _json(p["lines"])),
                "total_fen": p["total_fen"], "status": shown, "status_text": lifecycle.status_text(shown, progress),
                "paid": p["status"] in lifecycle.PAID_STATUSES, "holds_a_place": p["status"] not in UNSERVED,
                "refunded_fen": p["refunded_fen"]})
        body["refunds"] = [{"order_id": r["order_id"], "movement_id": r["movement_id"], "amount_fen": r["amount_fen"],
                            "method": r["method"], "state": r["state"], "at": to_rfc3339(r["updated_ms"])}
                           for r in refunds]
        body["refunded_fen"] = sum(r["amount_fen"] for r in refunds if r["state"] == "done")
        return body

    # ---- held orders: what they show -------------------------------------------------------------------------
    async def progress(self, order_ids: list[str]) -> dict[str, tuple[int, int, int]]:
        """For each of these orders that holds a place: (places joined, size, closes_ms) of its group now."""
        if not order_ids:
            return {}
        rows = await self.cloud.db.fetch(
            f"""select m.order_id, g.size, g.closes_ms, {_COUNTS} from group_members m
                join group_buys g on g.group_id = m.group_id where m.order_id = any($3::text[])""",  # noqa: S608 - fixed text
            UNSERVED, PAID, order_ids)
        return {r["order_id"]: (int(r["joined"]), r["size"], r["closes_ms"]) for r in rows}

    async def shown_part(self, row) -> dict:
        """What an order's answer adds when it holds a place in a group: the group, and the status in words."""
        found = await self.cloud.db.fetchrow(
            f"""select g.*, {_COUNTS} from group_members m join group_buys g on g.group_id = m.group_id
                where m.order_id = $3""",  # noqa: S608 - fixed text
            UNSERVED, PAID, row["order_id"])
        shown = lifecycle.shown(row["status"], bool(row["group_held"]))
        if found is None:
            return {"status_text": lifecycle.status_text(shown)}
        joined = int(found["joined"])
        return {"status_text": lifecycle.status_text(shown, (joined, found["size"])),
                "group": {"group_id": found["group_id"], "status": found["status"], "joined": joined,
                          "size": found["size"], "closes_at": to_rfc3339(found["closes_ms"])}}

    # ---- the console ----------------------------------------------------------------------------------------
    async def console_rows(self, conn, now_ms: int) -> list[dict]:
        """Open groups (closing soonest first) and those formed, failed or cancelled lately, for the console panel
        (`cloud/console/group_panel.py` shapes them)."""
        rows = await conn.fetch(
            f"""(select g.*, {_COUNTS} from group_buys g where g.status = 'open' order by g.closes_ms limit $3)
                union all
                (select g.*, {_COUNTS} from group_buys g where g.status <> 'open'
                   and coalesce(g.formed_ms, g.cancelled_ms, g.closes_ms) >= $4
                 order by coalesce(g.formed_ms, g.cancelled_ms, g.closes_ms) desc limit $5)""",  # noqa: S608 - fixed text
            UNSERVED, PAID, CONSOLE_OPEN_MAX, now_ms - CONSOLE_RECENT_MS, CONSOLE_RECENT_MAX)
        return [{"group_id": r["group_id"], "sku": r["sku"], **self._names(r), "store_id": r["store_id"],
                 "status": r["status"], "size": r["size"], "joined": int(r["joined"]), "paid": int(r["paid"]),
                 "price_fen": r["price_fen"], "opened_ms": r["opened_ms"], "closes_ms": r["closes_ms"],
                 "formed_ms": r["formed_ms"], "cancelled_ms": r["cancelled_ms"], "ended_ms": r["ended_ms"],
                 "cancelled_by": r["cancelled_by"], "cancel_reason": r["cancel_reason"]} for r in rows]


def _json(value):
    return json.loads(value) if isinstance(value, str) else value
