"""Market stalls (issue 21.6): the stalls a store hosts, their sales, products and settlements.

Guarantees:
- A stall is created by an hq_admin, once: its id is made by HQ (the command's id); sending the same stall again
  answers it (`exists` is not an error: created False), a different stall under a taken id is a conflict. Every
  creation and every product change is recorded in the operator audit log in the write's own transaction (a
  product change goes through the world's versioned catalogue, `WorldAdmin.change`, which audits it).
- Who may see which stall is decided in `protocol/roles.py` (the permission) and `protocol/stalls.py`
  (`stall_refusal`: a stall owner their own stall only); every read and write here asks it first.
- A stall's sales are what the cloud believed (`till_sales.stall_id`, set by the bridge for sales judged by
  `protocol/stalls.judge_sale`), net of what was returned, plus its products' lines in online orders of its store
  whose goods reached the customer. Nothing of another stall or of the store is ever in a stall's answers.
- Settlement arithmetic is pure (`protocol/stalls.settle`), in integer fen.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal
from protocol import order_lifecycle as lifecycle
from protocol import roles, stalls
from protocol.clock import to_rfc3339
from protocol.errors import ProtocolError
from protocol.policy import CHAIN_UTC_OFFSET_MIN
from protocol.pricing import price_book

STALL_FIELDS = ("stall_id", "store_id", "name", "owner", "commission_bp", "monthly_fee_fen")
SALES_PAGE_MAX = 500  # the newest till sales a stall's sales answer lists (the totals count them all)
COLUMNS = ("stall_id", "store_id", "from", "to", "till_sales_fen", "online_sales_fen", "sales_fen", "commission_bp",
           "commission_fen", "months_charged", "monthly_fee_fen", "fixed_fees_fen", "payout_fen")
TILL_SQL = """select sale_id, lane, total_fen, returned_fen, lines, wall_ms from till_sales
              where stall_id = $1 and wall_ms >= $2 and wall_ms < $3 order by wall_ms desc, sale_id limit $4"""
TILL_SUM_SQL = """select count(*) as n, coalesce(sum(total_fen - returned_fen), 0)::bigint as fen from till_sales
                  where stall_id = $1 and wall_ms >= $2 and wall_ms < $3"""
# the stall's products' lines in its store's online orders whose goods reached the customer, by when ordered, less
# their share of what the order refunded (a refund is shared over the order's lines by amount, as the reports do)
ONLINE_SQL = """select o.order_id, o.created_ms, l->>'sku' as sku,
                       (l->>'amount_fen')::bigint - case when g.goods > 0
                           then (o.refunded_fen * (l->>'amount_fen')::bigint) / g.goods else 0 end as amount_fen
                from orders o
                cross join lateral (select coalesce(sum((x->>'amount_fen')::bigint), 0) as goods
                                    from jsonb_array_elements(o.lines) x) g
                cross join lateral jsonb_array_elements(o.lines) l
                where o.allocation ? $1 and o.status = any($2::text[]) and o.created_ms >= $3 and o.created_ms < $4
                  and l->>'sku' = any($5::text[]) order by o.created_ms desc, o.order_id"""


def _stall_json(row) -> dict[str, Any]:
    return {"stall_id": row["stall_id"], "store_id": row["store_id"], "name": row["name"], "owner": row["owner"],
            "commission_bp": row["commission_bp"], "monthly_fee_fen": row["monthly_fee_fen"],
            "created_at": to_rfc3339(row["created_ms"])}


def settlement_csv(answer: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerow([answer[c] for c in COLUMNS])
    return out.getvalue()


class Stalls:
    def __init__(self, cloud, world_admin) -> None:
        self.cloud, self.world_admin = cloud, world_admin  # world_admin: makes the new catalogue versions

    def _may(self, by: Operator, permission: roles.Permission, stall_id: str) -> None:
        why = roles.refusal(by.role, permission) or stalls.stall_refusal(by.role, by.stall_id, stall_id)
        if why is not None:
            raise Refusal("forbidden", f"{by.username}: {why}")

    async def create(self, by: Operator, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """(the stall, created now); a Refusal when the body is wrong, the store unknown or the id taken."""
        self._may(by, "stalls.manage", str(body.get("stall_id", "")))
        if unknown := sorted(set(body) - set(STALL_FIELDS)):
            raise Refusal("invalid", f"body: unknown field(s) {', '.join(map(str, unknown))}; a stall has "
                                     f"{', '.join(STALL_FIELDS)}")
        try:
            fields: dict[str, Any] = {k: body.get(k) for k in STALL_FIELDS}
            stall = stalls.Stall(**fields)  # its __post_init__ checks every field's type and range
        except (ProtocolError, TypeError) as exc:
            raise Refusal("invalid", str(exc)) from None
        if stall.store_id not in self.cloud.world.stores:
            raise Refusal("invalid", f"store_id: no store {stall.store_id[:40]}")
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "insert into stalls (stall_id, store_id, name, owner, commission_bp, monthly_fee_fen, created_ms) "
                "values ($1, $2, $3, $4, $5, $6, $7) on conflict (stall_id) do nothing returning *",
                stall.stall_id, stall.store_id, stall.name.strip(), stall.owner.strip(), stall.commission_bp,
                stall.monthly_fee_fen, now)
            if row is None:  # the id is taken: the same stall sent again answers it, another is a conflict
                old = await conn.fetchrow("select * from stalls where stall_id = $1", stall.stall_id)
                same = (old["store_id"], old["name"], old["owner"], old["commission_bp"], old["monthly_fee_fen"]) == (
                    stall.store_id, stall.name.strip(), stall.owner.strip(), stall.commission_bp, stall.monthly_fee_fen)
                if not same:
                    raise Refusal("exists", f"stall_id: {stall.stall_id} is another stall already "
                                            f"({old['name']} at {old['store_id']})")
                return _stall_json(old), False
            answer = _stall_json(row)
            await record(conn, now, by, "stall.create", f"stall:{stall.stall_id}", None, answer)
        return answer, True

    async def stall(self, by: Operator, stall_id: str) -> dict[str, Any]:
        self._may(by, "stall.read", stall_id)
        row = await self.cloud.db.fetchrow("select * from stalls where stall_id = $1", stall_id)
        if row is None:
            raise Refusal("not_found", f"no stall {stall_id[:40]}")
        return _stall_json(row)

    async def public(self, stall_id: str) -> dict[str, Any] | None:
        """What the mall shows of a stall (its shop page): its name and store; None when there is no such stall."""
        row = await self.cloud.db.fetchrow("select stall_id, store_id, name from stalls where stall_id = $1", stall_id)
        return None if row is None else dict(row)

    async def listed(self, by: Operator, store_id: str | None = None) -> list[dict[str, Any]]:
        """The stalls (of one store, if named) this operator may see: a stall owner only their own."""
        if (why := roles.refusal(by.role, "stall.read")) is not None:
            raise Refusal("forbidden", f"{by.username}: {why}")
        own = (by.stall_id or "") if by.role == "stall_owner" else None  # no stall on the account: none listed
        rows = await self.cloud.db.fetch(
            "select * from stalls where ($1::text is null or store_id = $1) and ($2::text is null or stall_id = $2) "
            "order by store_id, stall_id", store_id, own)
        return [_stall_json(r) for r in rows]

    async def check_owner_stall(self, store_id: str | None, stall_id: str) -> None:
        """A stall owner's account names a stall of their store."""
        found = await self.cloud.db.fetchval("select store_id from stalls where stall_id = $1", stall_id)
        if found is None:
            raise Refusal("invalid", f"stall_id: no stall {stall_id[:40]}")
        if found != store_id:
            raise Refusal("invalid", f"stall_id: stall {stall_id} is at {found}, not at store_id {store_id}")

    def products(self, stall_id: str) -> list[dict[str, Any]]:
        return [p for p in self.cloud.world.catalogue.to_data() if p.get("stall") == stall_id]

    def _period(self, start: str, end: str) -> tuple[date, date, int, int]:
        try:
            first, last = stalls.parse_period(start, end)
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        return (first, last, *stalls.day_bounds_ms(first, last, CHAIN_UTC_OFFSET_MIN))

    async def _online(self, stall: dict[str, Any], a: int, b: int) -> list[dict[str, Any]]:
        skus = [p["sku"] for p in self.products(stall["stall_id"])]
        if not skus:
            return []
        rows = await self.cloud.db.fetch(ONLINE_SQL, stall["store_id"], list(lifecycle.HANDED_OVER_STATUSES), a, b,
                                         skus)
        return [{"order_id": r["order_id"], "sku": r["sku"], "amount_fen": r["amount_fen"],
                 "at": to_rfc3339(r["created_ms"])} for r in rows]

    async def sales(self, by: Operator, stall_id: str, start: str, end: str) -> dict[str, Any]:
        """The stall's till sales (newest first, at most SALES_PAGE_MAX listed) and online lines in the period."""
        stall = await self.stall(by, stall_id)
        first, last, a, b = self._period(start, end)
        rows = await self.cloud.db.fetch(TILL_SQL, stall_id, a, b, SALES_PAGE_MAX)
        total = await self.cloud.db.fetchrow(TILL_SUM_SQL, stall_id, a, b)
        till = [{"sale_id": r["sale_id"], "lane": r["lane"], "total_fen": r["total_fen"],
                 "returned_fen": r["returned_fen"], "at": to_rfc3339(r["wall_ms"]),
                 "lines": [{"sku": line[0], "amount": line[1], "unit": line[2], "amount_fen": line[3]}
                           for line in json.loads(r["lines"])]} for r in rows]
        online = await self._online(stall, a, b)
        return {"stall_id": stall_id, "store_id": stall["store_id"], "from": str(first), "to": str(last),
                "till_sales": till, "till_count": total["n"], "till_sales_fen": total["fen"],
                "online_lines": online, "online_sales_fen": sum(line["amount_fen"] for line in online)}

    async def settlement(self, by: Operator, stall_id: str, start: str, end: str) -> dict[str, Any]:
        stall = await self.stall(by, stall_id)
        first, last, a, b = self._period(start, end)
        till = await self.cloud.db.fetchrow(TILL_SUM_SQL, stall_id, a, b)
        online = sum(line["amount_fen"] for line in await self._online(stall, a, b))
        s = stalls.settle(till["fen"], online, stall["commission_bp"], stall["monthly_fee_fen"], first, last)
        return {"stall_id": stall_id, "store_id": stall["store_id"], "name": stall["name"], "from": str(first),
                "to": str(last), "till_count": till["n"], "till_sales_fen": s.till_sales_fen,
                "online_sales_fen": s.online_sales_fen, "sales_fen": s.sales_fen,
                "commission_bp": stall["commission_bp"], "commission_fen": s.commission_fen,
                "months_charged": s.months_charged, "monthly_fee_fen": stall["monthly_fee_fen"],
                "fixed_fees_fen": s.fixed_fees_fen, "payout_fen": s.payout_fen}

    async def change_product(self, by: Operator, stall_id: str, sku: str, body: dict[str, Any]) -> dict[str, Any]:
        """A stall's product's `name` and/or `price_fen` (list price): only a product of this stall."""
        self._may(by, "stall.products", stall_id)
        await self.stall(by, stall_id)  # the stall exists (a 404 names it)
        unknown = sorted(set(body) - {"name", "price_fen", "reason"})
        if unknown or not ({"name", "price_fen"} & set(body)):
            raise Refusal("invalid", f"body: give name and/or price_fen only (not {', '.join(unknown)})" if unknown
                          else "body: give name and/or price_fen")
        if "name" in body and (not isinstance(body["name"], str) or not 0 < len(body["name"].strip()) <= 80):
            raise Refusal("invalid", "name: 1-80 characters")
        if "price_fen" in body and (type(body["price_fen"]) is not int or body["price_fen"] <= 0):
            raise Refusal("invalid", "price_fen: a positive integer (fen per piece, or per kg when weighed)")
        async with self.world_admin.editing():  # built from the newest catalogue, stored before another change
            catalogue = self.cloud.world.catalogue.to_data()
            found = next((p for p in catalogue if p["sku"] == sku), None)
            if found is None:
                raise Refusal("not_found", f"no product {sku[:40]}")
            if found.get("stall", "") != stall_id:
                raise Refusal("forbidden", f"{by.username}: {sku} is not a product of stall {stall_id}")
            changed = {**found, **({"name": body["name"].strip()} if "name" in body else {}),
                       **({"price_fen": body["price_fen"]} if "price_fen" in body else {})}
            new = [changed if p["sku"] == sku else p for p in catalogue]
            # a new catalogue version, audited with this product's before and after, sent to every store and the mall
            now = self.cloud.now_ms()
            prices = (price_book.entries_to_data(price_book.chain_price_set_now(self.cloud.world.catalogue.prices,
                                                                                {sku}, now))
                      if "price_fen" in body else None)  # the stall's price from now: the chain's entries end
            answer = await self.world_admin.change("catalogue", new, f"stall {stall_id}: {sku}", by=by, locked=True,
                                                   prices=prices)
        return {"product": changed, "version": answer["version"]}
