"""Points paying part of an online order (issue 17.5): a split payment, points for part and another method for the
rest.

Guarantees:
- The points part is a ledger redemption (`RedeemPoints`) whose transfer id derives from the order
  (`protocol.points.redeem_id`), journaled in `points_payments` before it is attempted: a replayed or concurrent pay
  redeems once. The ledger refuses past the member's balance (`insufficient points`), so points never go negative.
- Points pay at most `POINTS_MAX_SHARE_BP` of the order (`protocol.points.points_refusal`); the order's charge
  (`Payments.charge`) is for the rest only (`points_part_fen`), so the two parts always add up to the total.
- The points come back exactly once (`GrantPoints` under `give_back_id`, and a conditional state change) when the
  other method is refused, and when the order ends unserved (cancelled, expired, rejected, refunded): at once by
  `give_back` where the order ends, and by `sweep` (the money sweeper's round) whatever ended it - less the points
  partial refunds already gave back (`cloud/services/points_refunds.py`: a return or an after-sales approval gives
  back points and money in the proportion the order was paid), so in all they come back once.
- Once redeemed, an order's points part is fixed: paying again with other points is refused (409) until it was given
  back; a payment of the order already in progress without points is not split afterwards.
"""
from __future__ import annotations

import logging

from actors.member_ledger import GrantPoints, RedeemPoints
from cloud.services import points_refunds
from cloud.services.verdicts import Refusal
from protocol.money_saga import ENDED_STATUSES, PAID_STATUSES, SAGA_GRACE_MS, charge_id
from protocol.points import give_back_id, points_refusal, points_value_fen, redeem_id

log = logging.getLogger("freshmesh.points")
OPEN_STATES = ("redeeming", "redeemed")
SWEEP_BATCH_MAX = 100


async def points_part_fen(db, order_id: str) -> int:
    """What redeemed points pay of the order (0: none): the order's charge is for its total less this. (The hook
    `Payments.charge` reads.)"""
    value = await db.fetchval("select value_fen from points_payments where order_id = $1 and state = 'redeemed'",
                              order_id)
    return int(value or 0)


def part_json(row) -> dict | None:
    """The points part as `GET /orders/{id}` shows it (`points_payment`)."""
    if row is None:
        return None
    body = {"points": row["points"], "value_fen": row["value_fen"], "state": row["state"],
            "ledger_id": redeem_id(row["order_id"], row["attempt"])}
    if row["detail"]:
        body["detail"] = row["detail"]
    return body


class PointsPay:
    def __init__(self, orders) -> None:
        self.orders, self.cloud = orders, orders.cloud

    async def part(self, order_id: str):
        return await self.cloud.db.fetchrow("select * from points_payments where order_id = $1", order_id)

    async def view(self, order_id: str) -> dict:
        """The order's points part, for the order's JSON (`{"points_payment": …}`; null when none)."""
        return {"points_payment": part_json(await self.part(order_id))}

    async def pay(self, order_id: str, member: str, method: str, points: int) -> dict:
        """Pay `points` of the order with points and the rest with `method` (the money saga). A replay with the same
        points answers as the first; the other method refused gives the points back before the refusal is
        answered."""
        order = await self.orders.get(order_id, member)  # another member's order answers 404 like an unknown one
        if order["status"] in PAID_STATUSES:
            return {**await self.orders.pay(order_id, member, method), **await self.view(order_id)}
        if order["status"] != "reserved":
            raise Refusal("order_state", f"order {order_id} is {order['status']}; it cannot be paid")
        why = points_refusal(order["total_fen"], points)
        if why:
            raise Refusal("invalid", why)
        row = await self._redeem(order, points)
        try:
            body = await self.orders.pay(order_id, member, method)
        except Refusal as refusal:
            if refusal.kind == "payment":  # the rest was refused: the points are not kept for a payment that failed
                await self._give_back(row, f"the {method} part was refused: {refusal.detail}")
            raise
        return {**body, **await self.view(order_id)}

    async def _redeem(self, order, points: int):
        """The order's points part redeemed (journaled first; once per attempt id); its row. Refusal when the
        order's points part is fixed otherwise, a payment without points is under way, or the ledger refuses."""
        order_id, member, now = order["order_id"], order["member_id"], self.cloud.now_ms()
        charge = await self.orders.payments.get(charge_id(order_id))
        async with self.cloud.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("select * from points_payments where order_id = $1 for update", order_id)
            if row is not None and row["state"] in OPEN_STATES:
                if row["points"] != points:
                    raise Refusal("payment", f"order {order_id} is already being paid with {row['points']} points; "
                                             f"{points} points cannot be used instead")
            else:
                if charge is not None and charge["state"] in ("requested", "done"):
                    raise Refusal("payment", f"a {charge['method']} payment of order {order_id} for its whole total "
                                             "is already under way: finish it, or wait until it lapses")
                attempt = 1 if row is None else row["attempt"] + 1
                await conn.execute(
                    """insert into points_payments (order_id, member_id, points, value_fen, attempt, state, created_ms,
                           updated_ms) values ($1, $2, $3, $4, $5, 'redeeming', $6, $6)
                       on conflict (order_id) do update set points = $3, value_fen = $4, attempt = $5,
                           state = 'redeeming', detail = null, updated_ms = $6""",
                    order_id, member, points, points_value_fen(points), attempt, now)
                row = await conn.fetchrow("select * from points_payments where order_id = $1", order_id)
        if row["state"] == "redeeming":
            row = await self._send_redeem(row)
        if row["state"] != "redeemed":
            raise Refusal("payment", f"points refused: {row['detail']}")
        return row

    async def _send_redeem(self, row):
        """The redemption sent (again: the ledger answers a repeat with its first result) and its answer recorded."""
        order_id = row["order_id"]
        result = (await self.cloud.actors.member_ledger.send(RedeemPoints(
            id=redeem_id(order_id, row["attempt"]), member=row["member_id"], points=row["points"]))).settled
        if result.status == "ok":
            await self._set(order_id, row["attempt"], "redeeming", "redeemed", None)
        else:
            await self._set(order_id, row["attempt"], "redeeming", "failed",
                            f"{result.reason}: {row['points']} asked, the member has {result.get('points')}")
        return await self.part(order_id)

    async def _set(self, order_id: str, attempt: int, was: str, state: str, detail: str | None) -> bool:
        done = await self.cloud.db.fetchval(
            "update points_payments set state = $4, detail = coalesce($5, detail), updated_ms = $6 "
            "where order_id = $1 and attempt = $2 and state = $3 returning 1",
            order_id, attempt, was, state, detail, self.cloud.now_ms())
        return bool(done)

    async def _give_back(self, row, why: str) -> None:
        """The redeemed points back to the member, once (the ledger id is the attempt's; the state flips once), less
        what the order's partial refunds gave back already."""
        left = row["points"] - await points_refunds.points_returned(self.cloud.db, row["order_id"])
        result = await self.cloud.actors.member_ledger.send(GrantPoints(
            id=give_back_id(row["order_id"], row["attempt"]), member=row["member_id"], points=left,
            why=why[:200])) if left > 0 else None
        if result is not None and not result.succeeded:  # stays redeemed: the sweeper tries again
            log.error("points of order %s not given back yet: %s", row["order_id"], result.settled.reason)
            return
        if await self._set(row["order_id"], row["attempt"], "redeemed", "returned", why[:500]):
            log.info("order %s: %d points given back (%s)", row["order_id"], max(left, 0), why)
            if self.orders.payments.on_balance_changed is not None:
                await self.orders.payments.on_balance_changed(row["member_id"])

    async def give_back(self, order_id: str) -> None:
        """Where an order ends (cancel, expiry): its redeemed points back if it ended unserved. Safe to call any
        number of times, and for orders without points."""
        row = await self.part(order_id)
        if row is None or row["state"] != "redeemed":
            return
        status = await self.cloud.db.fetchval("select status from orders where order_id = $1", order_id)
        if status in ENDED_STATUSES:
            await self._give_back(row, f"order {order_id} {status}")

    async def sweep(self) -> int:
        """Redemptions a crash left half-way asked again, and the points of every order that ended unserved given
        back (whatever ended it: a cancel, the expiry sweep, a rejected or refunded order)."""
        now = self.cloud.now_ms()
        rows = await self.cloud.db.fetch(
            """select p.*, o.status from points_payments p join orders o on o.order_id = p.order_id
               where p.state = any($1::text[]) and (o.status = any($2::text[]) or
                     (p.state = 'redeeming' and p.updated_ms < $3))
               order by p.updated_ms limit $4""",
            list(OPEN_STATES), list(ENDED_STATUSES), now - SAGA_GRACE_MS, SWEEP_BATCH_MAX)
        for row in rows:
            if row["state"] == "redeeming":
                row = await self._send_redeem(row)
            if row["state"] == "redeemed":
                await self.give_back(row["order_id"])
        return len(rows) + await points_refunds.sweep(self.orders.payments)
