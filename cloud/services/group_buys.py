"""Group buys (拼团, issue 17 item 2): open a group with your order, share its link, friends join with theirs; when
every place holds a paid order the group forms and every order goes to its store; when the window closes short
every order is cancelled and refunded.

Guarantees (decisions in `protocol/group_buys.py`, orders through `cloud/services/orders.py` as any order):
- a member's group order is a real order: routed, its stock reserved, priced by the promotion book with the group's
  rule among `formed_groups` (so at the group price; a plain `POST /orders` never has it), and paid like any order;
- a place is taken under the group's row lock (`select … for update`), so the (size+1)-th of concurrent joiners is
  refused "full" and a member never holds two places; a joiner refused after their order was made gets that order
  cancelled at once (it was never paid: nothing but its reservation to give back);
- an order holding a place is `group_held` until the group forms: paid, but `Orders.notify_stores` does not send it
  to its store (the money sweeper's re-telling skips it too); forming clears the hold of every place in the same
  transaction that marks the group formed, then tells the stores (a crash in between: the sweeper tells them);
- a place whose order ended unserved (the member cancelled, it expired unpaid) is free again: places are counted
  from the orders' statuses under the lock, never from a counter that could drift;
- `sweep_due` fails every group whose window closed short and cancels each of its orders through `Orders.cancel`
  (money back once by the refund's id, stock and slots released); it is idempotent and safe in several processes
  (the flip to `failed` is conditional; a group is `ended` only when every order has ended);
- HQ's `cancel` (an hq_admin, audited in the same transaction as the flip) ends an open group the same way, under the
  group's lock, so it never races a forming: whichever takes the lock first wins and the other sees it;
- the group price is never worse than the member's own price (`protocol.group_buys.price_basis`): a member whose
  level price is at or below it takes a place at their own price, and the answer and the timeline say so; a member
  is refused only when the rule is not in force for their order, and the refusal names the rule and the store;
- every place's order gets a `group_progress` note when another member takes a place, so its timeline shows the
  group's count as it grows (`group forming (2/3)`).
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Literal

from cloud.services import operators as operator_audit
from cloud.services import order_journal as journal
from cloud.services.group_views import GroupViews
from cloud.services.order_request import Location, OrderItem, OrderRequest
from cloud.services.verdicts import Refusal
from protocol import group_buys as core
from protocol import order_lifecycle as lifecycle
from protocol.clock import to_rfc3339
from protocol.money_saga import SAGA_GRACE_MS
from protocol.pricing.rules import GroupBuy
from protocol.schema import record, require

log = logging.getLogger("freshmesh.groups")
SWEEP_BATCH_MAX = 50  # groups failed per sweep round (the rest next round)


@record
class GroupOrderRequest(OrderRequest):
    """An order placed by the group-buy service only (never parsed from a customer's body): it names the group-buy
    rules the pricing treats as formed for it."""
    formed_groups: tuple[str, ...] = ()


@record
class GroupOrderBody:
    """What a customer sends to open (`rule_id`) or join a group: their own order of the group's item."""
    qty: int
    slot_start: str
    fulfilment: Literal["pickup", "delivery"] = "pickup"
    store_id: str | None = None
    location: Location | None = None
    allow_substitutions: bool = False
    rule_id: str = ""

    def __post_init__(self) -> None:
        require(self.qty > 0, "qty: must be positive (pieces, or grams if sold by the kg)")


def _group_id(member: str, key: str) -> str:
    return "G" + hashlib.blake2b(f"{member}/{key}".encode(), digest_size=10).hexdigest()


def _row_group(row, seats) -> core.Group:
    return core.Group(group_id=row["group_id"], rule_id=row["rule_id"], sku=row["sku"], leader_id=row["leader_id"],
                      size=row["size"], price_fen=row["price_fen"], opened_ms=row["opened_ms"],
                      closes_ms=row["closes_ms"], status=row["status"],
                      seats=tuple(core.Seat(s["member_id"], s["order_id"], s["status"] in lifecycle.PAID_STATUSES)
                                  for s in seats))


LIVE_SEATS = """select m.order_id, m.member_id, m.joined_ms, o.status, mb.phone_masked
                from group_members m join orders o on o.order_id = m.order_id
                left join members mb on mb.member_id = m.member_id
                where m.group_id = $1 and o.status <> all($2::text[]) order by m.joined_ms, m.order_id"""


class GroupBuys:
    def __init__(self, cloud, orders) -> None:
        self.cloud, self.orders = cloud, orders
        self.views = GroupViews(cloud)  # the operators' list and detail, what a held order shows, the console's rows
        # FRESHMESH_GROUP_WINDOW_S: the window of groups whose rule names none (default 24 h); every process of one
        # cloud must read the same value. Tests and the demo shorten it.
        self.window_ms = int(float(os.environ.get("FRESHMESH_GROUP_WINDOW_S", "0")) * 1000) or core.GROUP_WINDOW_MS

    # ---- open, join ---------------------------------------------------------------------------------------
    async def open(self, body: GroupOrderBody, member: str, key: str, raw: dict) -> dict:
        """A new group of `body.rule_id`, with the leader's order in its first place."""
        now = self.cloud.now_ms()
        rule = core.rule_for(self.cloud.world.rule_book, body.rule_id, body.store_id or "", now)
        if isinstance(rule, str):
            raise Refusal("invalid", rule)
        group_id = _group_id(member, key)
        group = core.open_group(group_id, rule, member, now, self.window_ms)
        # the leader's order first: a group is recorded only once there is an order to hold its first place
        order, basis = await self._order(group_id, group.rule_id, group.sku, body, member, key, raw)
        await self.cloud.db.execute(
            """insert into group_buys (group_id, rule_id, sku, leader_id, store_id, size, price_fen, opened_ms,
                   closes_ms) values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (group_id) do nothing""",
            group_id, group.rule_id, group.sku, member, body.store_id, group.size, group.price_fen,
            group.opened_ms, group.closes_ms)
        return await self._take_place(group_id, order, member, basis)

    async def join(self, group_id: str, body: GroupOrderBody, member: str, key: str, raw: dict) -> dict:
        """The joiner's order in a place of the group; refusals say why (closed, expired, already in it, full)."""
        if body.rule_id:
            raise Refusal("invalid", "rule_id: a group's rule is its own; join with your order fields only")
        row = await self.cloud.db.fetchrow("select * from group_buys where group_id = $1", group_id)
        if row is None:
            raise Refusal("not_found", f"no group buy {group_id}")
        retry = await self.cloud.db.fetchval("select order_id from orders where idempotency_key = $1",
                                             f"{member}/{self._order_key(group_id, key)}")
        if retry is None:  # a quick refusal before anything is reserved (decided again under the lock below)
            group = _row_group(row, await self.cloud.db.fetch(LIVE_SEATS, group_id, list(lifecycle.UNSERVED_STATUSES)))
            refused = core.join_refusal(group, member, self.cloud.now_ms())
            if refused is not None:
                raise Refusal("group_buy", refused.reason, reason=refused.code)
        order, basis = await self._order(group_id, row["rule_id"], row["sku"], body, member, key, raw)
        return await self._take_place(group_id, order, member, basis)

    @staticmethod
    def _order_key(group_id: str, key: str) -> str:
        return f"group:{group_id}:{key}"

    async def _order(self, group_id: str, rule_id: str, sku: str, body: GroupOrderBody, member: str, key: str,
                     raw: dict) -> tuple[dict, core.PriceBasis | None]:
        """The member's order of the group's item, priced with the group's rule as formed."""
        req = GroupOrderRequest(fulfilment=body.fulfilment, items=(OrderItem(sku=sku, qty=body.qty),),
                                slot_start=body.slot_start, store_id=body.store_id, location=body.location,
                                allow_substitutions=body.allow_substitutions, formed_groups=(rule_id,))
        order = await self.orders.create(req, member, self._order_key(group_id, key), {**raw, "group_id": group_id})
        if "pricing" not in order:  # a retry answers the first outcome, without its pricing: the first request checked it
            return order, None
        basis = self._basis(rule_id, sku, order)
        if isinstance(basis, str):
            if order["status"] == "reserved":
                await self.orders.cancel(order["order_id"], None, f"group buy: {basis}")
            raise Refusal("invalid", basis)
        return order, basis

    def _basis(self, rule_id: str, sku: str, order: dict) -> core.PriceBasis | str:
        """What the member pays in the group (the group price, or their own when that is at or below it), or why the
        group's rule did not apply to the order at all (a sentence naming the rule and the order's store)."""
        applied = order["pricing"]["applied"]
        world, store = self.cloud.world, order["stores"][0]
        rule = world.rule_book.by_id.get(rule_id)
        in_force = core.rule_for(world.rule_book, rule_id, store, self.cloud.now_ms())
        if isinstance(in_force, str) or rule is None or not isinstance(rule, GroupBuy):
            return f"{in_force if isinstance(in_force, str) else rule_id}: the group price does not apply to this order"
        # the level the order was priced at (its member-price saving names it); none: the list price is theirs
        level = next((a["rule_id"].split(":", 1)[1] for a in applied if a["rule_id"].startswith("member-price:")), None)
        product = world.catalogue.get(sku)
        own = product.price_for(level)
        label = f"{level} member price" if level and own != product.price_fen else "own price (the list price)"
        basis = core.price_basis(rule, rule_id in {a["rule_id"] for a in applied}, own, label)
        if basis is None:
            return (f"rule_id: the group buy {rule_id} was not in force online at {store} when this order was priced "
                    "(its hours just ended or began): try again")
        return basis

    async def _take_place(self, group_id: str, order: dict, member: str, basis: core.PriceBasis | None) -> dict:
        refused = await self._seat(group_id, order["order_id"], member, basis)
        if refused is not None:
            if order["status"] == "reserved":  # made for this place and never paid: nothing to keep it for
                await self.orders.cancel(order["order_id"], None, f"group buy: {refused.reason}")
            raise Refusal("group_buy", refused.reason, reason=refused.code)
        answer = {"group": await self.view(group_id), "order": await self.orders.view(order["order_id"], member)}
        if basis is not None:
            answer["price"] = {"basis": basis.basis, "unit_fen": basis.unit_fen,
                               "group_price_fen": basis.group_price_fen, "note": basis.note}
        return answer

    async def _seated(self, order_id: str) -> bool:
        return bool(await self.cloud.db.fetchval("select 1 from group_members where order_id = $1", order_id))

    async def _seat(self, group_id: str, order_id: str, member: str,
                    basis: core.PriceBasis | None = None) -> core.JoinRefused | None:
        """Take a place for the order, under the group's lock; None when it holds one (now or before)."""
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from group_buys where group_id = $1 for update", group_id)
            seats = await conn.fetch(LIVE_SEATS, group_id, list(lifecycle.UNSERVED_STATUSES))
            if any(s["order_id"] == order_id for s in seats):
                return None  # a retry of the same request: the place is already this order's
            joined = core.join(_row_group(row, seats), core.Seat(member, order_id, False), now)
            if isinstance(joined, core.JoinRefused):
                return joined
            held = await conn.fetchval("update orders set group_held = true where order_id = $1 and status = 'reserved' "
                                       "returning order_id", order_id)
            if held is None:
                status = await conn.fetchval("select status from orders where order_id = $1", order_id)
                return core.JoinRefused("closed", f"your order {order_id} for this place is {status}: join again "
                                                  "with a new Idempotency-Key")
            await conn.execute("insert into group_members (order_id, group_id, member_id, joined_ms) "
                               "values ($1, $2, $3, $4)", order_id, group_id, member, now)
            await journal.note(conn, order_id, "group_joined", now,
                               detail={"group_id": group_id, "place": len(joined.seats), "size": joined.size,
                                       "note": "paid orders wait until the group forms",
                                       **({"price": basis.note} if basis is not None else {})})
            for other in seats:  # the others' timelines show the group growing
                await journal.note(conn, other["order_id"], "group_progress", now,
                                   detail={"group_id": group_id, "joined": len(joined.seats), "size": joined.size})
        return None

    async def place_freed(self, order_id: str) -> None:
        """A place's order ended unserved (its member cancelled, it expired unpaid): while the group is open, every
        remaining place's timeline notes the group's new count (`group_progress`). Only a note: the count itself is
        always read from the orders' statuses."""
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select g.* from group_members m join group_buys g on g.group_id = m.group_id "
                                      "where m.order_id = $1 for update of g", order_id)
            if row is None or row["status"] != core.OPEN:
                return
            seats = await conn.fetch(LIVE_SEATS, row["group_id"], list(lifecycle.UNSERVED_STATUSES))
            for seat in seats:
                await journal.note(conn, seat["order_id"], "group_progress", now,
                                   detail={"group_id": row["group_id"], "joined": len(seats), "size": row["size"],
                                           "left": True})

    # ---- forming ------------------------------------------------------------------------------------------
    async def held(self, row) -> None:
        """An order of a group that has not formed was paid (`Orders.notify_stores` asks, instead of telling its
        stores): if every place now holds a paid order the group forms and every order goes to its store."""
        group_id = await self.cloud.db.fetchval("select group_id from group_members where order_id = $1",
                                                row["order_id"])
        if group_id is None:
            log.warning("order %s is held for a group but has no place in one", row["order_id"])
            return
        await self.try_form(group_id)

    async def try_form(self, group_id: str) -> bool:
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from group_buys where group_id = $1 for update", group_id)
            # the places' orders locked too: a member's cancel either ends before (their place is free, the group
            # does not form) or waits and finds its order no longer held (the store is told of the cancel)
            seats = await conn.fetch(LIVE_SEATS + " for update of o", group_id, list(lifecycle.UNSERVED_STATUSES))
            group = _row_group(row, seats)
            if not core.forms(group, now):
                return False
            await conn.execute("update group_buys set status = 'formed', formed_ms = $2 where group_id = $1",
                               group_id, now)
            orders = [s.order_id for s in group.seats]
            await conn.execute("update orders set group_held = false where order_id = any($1::text[])", orders)
            for order_id in orders:
                await journal.note(conn, order_id, "group_formed", now, detail={"group_id": group_id,
                                                                                "size": group.size})
        log.info("group %s formed (%d members)", group_id, group.size)
        for order_id in orders:  # outside the lock; a failure here is retried by the money sweeper's re-telling
            paid = await self.cloud.db.fetchrow("select * from orders where order_id = $1", order_id)
            if paid["status"] == lifecycle.PAID:  # (cancelled since: its cancel told the store)
                await self.orders.notify_stores(paid)
        return True

    # ---- failing ------------------------------------------------------------------------------------------
    async def sweep_due(self) -> int:
        """Groups whose window closed short: failed, and every order cancelled and refunded. Returns how many groups
        were worked on."""
        now = self.cloud.now_ms()
        rows = await self.cloud.db.fetch(
            "select group_id from group_buys where (status = 'open' and closes_ms <= $1) "
            "or (status in ('failed', 'cancelled') and ended_ms is null) order by closes_ms limit $2", now,
            SWEEP_BATCH_MAX)
        for row in rows:
            try:
                await self._fail(row["group_id"])
            except Exception:  # noqa: BLE001 - one group's trouble must not stop the others; next round retries
                log.exception("group %s: could not be ended yet", row["group_id"])
        # groups whose last payment's request died before it could form them (nothing else would retry)
        full = await self.cloud.db.fetch(
            """select g.group_id from group_buys g where g.status = 'open' and g.closes_ms > $1 and g.size <=
                   (select count(*) from group_members m join orders o on o.order_id = m.order_id
                    where m.group_id = g.group_id and o.status = any($2::text[]) and o.updated_ms < $3)
               limit $4""", now, list(lifecycle.PAID_STATUSES), now - SAGA_GRACE_MS, SWEEP_BATCH_MAX)
        for row in full:
            await self.try_form(row["group_id"])
        return len(rows) + len(full)

    async def _fail(self, group_id: str) -> None:
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from group_buys where group_id = $1 for update", group_id)
            group = _row_group(row, [])
            if core.fails(group, now):
                await conn.execute("update group_buys set status = 'failed' where group_id = $1", group_id)
            elif row["status"] not in core.ENDED_UNFORMED:
                return  # formed meanwhile
        why = (f"cancelled by HQ: {row['cancel_reason']}" if row["status"] == core.CANCELLED
               else "did not form in time")
        await self._end_orders(group_id, f"group buy {group_id} {why}")

    async def cancel(self, group_id: str, body, operator) -> dict:
        """HQ ends an open group: flipped to `cancelled` under its lock (audited in the same transaction), then every
        order cancelled and refunded as a failed group's (the sweeper finishes what a crash leaves). Cancelling a
        cancelled group again answers the same (an operator's retry); a formed or failed one is refused (409)."""
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from group_buys where group_id = $1 for update", group_id)
            if row is None:
                raise Refusal("not_found", f"no group buy {group_id}")
            seats = await conn.fetch(LIVE_SEATS, group_id, list(lifecycle.UNSERVED_STATUSES))
            group = _row_group(row, seats)
            refused = core.cancel_refusal(group, now)
            if refused is not None:
                raise Refusal("group_buy", refused, reason=row["status"] if row["status"] != core.OPEN else "closing")
            if row["status"] == core.OPEN:
                await conn.execute("update group_buys set status = 'cancelled', cancelled_ms = $2, cancelled_by = $3, "
                                   "cancel_reason = $4 where group_id = $1", group_id, now, operator.username,
                                   body.reason.strip())
                await operator_audit.record(conn, now, operator, "group_buy.cancel", group_id,
                                            {"status": row["status"], "joined": len(seats), "size": row["size"]},
                                            {"status": core.CANCELLED, "reason": body.reason.strip(),
                                             "orders": [s["order_id"] for s in seats]})
                reason = body.reason.strip()
            else:  # cancelled before: the same answer (the first reason stands)
                reason = row["cancel_reason"]
        log.info("group %s cancelled by %s: %s", group_id, operator.username, reason)
        await self._end_orders(group_id, f"group buy {group_id} cancelled by HQ: {reason}")
        return await self.views.detail(group_id, None)

    async def _end_orders(self, group_id: str, reason: str) -> None:
        """Every order of a failed or cancelled group cancelled (money back once, stock and slots released); the
        group is `ended` once none is left open."""
        now = self.cloud.now_ms()
        orders = await self.cloud.db.fetch("select o.order_id, o.status from group_members m join orders o "
                                           "on o.order_id = m.order_id where m.group_id = $1", group_id)
        open_left = 0
        for order in orders:
            if lifecycle.is_final(order["status"]):
                continue
            try:
                await self.orders.cancel(order["order_id"], None, reason)
            except Refusal as refusal:  # e.g. still being placed: next round
                open_left += 1
                log.info("group %s: order %s not cancelled yet: %s", group_id, order["order_id"], refusal.detail)
        if not open_left:
            await self.cloud.db.execute("update group_buys set ended_ms = $2 where group_id = $1 and ended_ms is null",
                                        group_id, now)

    # ---- read ---------------------------------------------------------------------------------------------
    async def view(self, group_id: str) -> dict:
        """The share link's page: the item, the prices, places taken and left, the window; members only by their
        masked phone."""
        row = await self.cloud.db.fetchrow("select * from group_buys where group_id = $1", group_id)
        if row is None:
            raise Refusal("not_found", f"no group buy {group_id}")
        seats = await self.cloud.db.fetch(LIVE_SEATS, group_id, list(lifecycle.UNSERVED_STATUSES))
        product = self.cloud.world.catalogue.by_sku.get(row["sku"])
        ended = row["status"] in core.ENDED_UNFORMED
        joined = len(seats) if not ended else 0
        return {"group_id": group_id, "rule_id": row["rule_id"], "sku": row["sku"],
                "name": product.name if product else row["sku"], "unit": product.unit if product else "",
                "group_price_fen": row["price_fen"], "list_price_fen": product.price_fen if product else None,
                "size": row["size"], "joined": joined, "remaining": max(row["size"] - joined, 0),
                "status": row["status"], "opened_at": to_rfc3339(row["opened_ms"]),
                "closes_at": to_rfc3339(row["closes_ms"]),
                "formed_at": to_rfc3339(row["formed_ms"]) if row["formed_ms"] else None,
                "members": [{"name": core.masked_name(s["phone_masked"]), "leader": s["member_id"] == row["leader_id"]}
                            for s in seats] if not ended else []}

    async def figures(self, since_ms: int = 0) -> dict:
        """Counts for the operators and the demo: groups opened, formed, failed; places taken."""
        row = await self.cloud.db.fetchrow(
            "select count(*) as opened, count(*) filter (where status = 'formed') as formed, "
            "count(*) filter (where status = 'failed') as failed from group_buys where opened_ms >= $1", since_ms)
        return {k: int(row[k]) for k in ("opened", "formed", "failed")}

