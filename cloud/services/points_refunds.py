"""Partial refunds of an online order paid partly with points (`cloud/services/points_pay.py`): a till return of
the order's lines and an approved after-sales request give back points and money in the proportion the order was
paid (`protocol.return_promotions.points_split`), never more than was paid in either.

Guarantees:
- `journal` runs in the caller's transaction, which holds the order's row lock (the returns and after-sales paths
  judge the lines under it): the money part is journaled as the usual part refund (`Payments.journal_part`,
  `refund:<order>:<part>`), the points part as a `points_refunds` row `requested` under the ledger id
  `ptsr:<order>:<part>` - both with the judgement, so a concurrent refund of the same order sees them. A part
  journaled before is never split again (a retry finds its rows and only finishes them).
- `finish` carries the part out after the commit: the money through the order's payment, the points through the
  member ledger (`GrantPoints` under the row's id: the ledger answers a repeat with its first result), the row
  `done` once granted; one left `requested` (the ledger did not answer) is granted by `sweep` (the money sweeper's
  round).
- When the order ends refunded whole, `points_pay` gives back only the points these parts did not
  (`points_returned`), so the points come back exactly once in all.
An order paid without points refunds as before: the whole part in money.
"""
from __future__ import annotations

import logging

from actors.member_ledger import GrantPoints
from protocol.money_saga import part_refund_id
from protocol.points import points_value_fen
from protocol.return_promotions import PointsPaid, points_split

log = logging.getLogger("freshmesh.points")
SWEEP_BATCH_MAX = 100


def points_refund_id(order_id: str, part: str) -> str:
    """The ledger id of a part's points (`ptsr:<order>:ret:<return>` is 62 characters with ids of 26, within the
    ledger's 64)."""
    return f"ptsr:{order_id}:{part}"


async def points_returned(db, order_id: str) -> int:
    """The points the order's partial refunds gave back (or are giving back): the whole refund gives only the rest."""
    return int(await db.fetchval("select coalesce(sum(points), 0)::bigint from points_refunds where order_id = $1",
                                 order_id))


async def journal(conn, payments, order, charge, part: str, amount_fen: int, reason: str) -> tuple[int, int]:
    """Journal a partial refund of `order` worth `amount_fen` (the lines' value): (money fen, points) it gives back.
    In the caller's transaction holding the order's row lock (`order`: its row read under it)."""
    order_id = order["order_id"]
    pid = points_refund_id(order_id, part)
    done = await conn.fetchrow(
        "select (select amount_fen from money_movements where movement_id = $1) as money, "
        "(select points from points_refunds where movement_id = $2) as points", part_refund_id(order_id, part), pid)
    if done["money"] is not None or done["points"] is not None:  # journaled before: as it was
        return int(done["money"] or 0), int(done["points"] or 0)
    paid = await conn.fetchrow("select member_id, points from points_payments where order_id = $1 "
                               "and state = 'redeemed'", order_id)
    money, points = amount_fen, 0
    if paid is not None:
        before = await conn.fetchrow(
            "select (select coalesce(sum(amount_fen), 0)::bigint from money_movements where order_id = $1 "
            "and kind = 'refund' and movement_id like $2 and state <> 'failed') as money, "
            "(select coalesce(sum(value_fen), 0)::bigint from points_refunds where order_id = $1) as value, "
            "(select coalesce(sum(points), 0)::bigint from points_refunds where order_id = $1) as points",
            order_id, part_refund_id(order_id, "%"))
        money, points = points_split(PointsPaid(order["total_fen"], paid["points"]),
                                     int(before["money"]) + int(before["value"]), int(before["points"]), amount_fen)
    if money > 0:
        await payments.journal_part(conn, order_id, order["status"], charge, part, money, reason)
    if points > 0:
        now = payments.cloud.now_ms()
        await conn.execute(
            """insert into points_refunds (movement_id, order_id, member_id, part, points, value_fen, state, created_ms,
                   updated_ms) values ($1, $2, $3, $4, $5, $6, 'requested', $7, $7) on conflict do nothing""",
            pid, order_id, paid["member_id"], part, points, points_value_fen(points), now)
    return money, points


async def finish(payments, order_id: str, part: str) -> None:
    """Carry a journaled part out (after its transaction committed): its money, then its points (each once)."""
    cloud = payments.cloud
    if await payments.get(part_refund_id(order_id, part)) is not None:
        await payments.finish_part(order_id, part)
    row = await cloud.db.fetchrow("select * from points_refunds where movement_id = $1 and state = 'requested'",
                                  points_refund_id(order_id, part))
    if row is not None:
        await _grant(payments, row)


async def _grant(payments, row) -> None:
    cloud = payments.cloud
    result = await cloud.actors.member_ledger.send(GrantPoints(
        id=row["movement_id"], member=row["member_id"], points=row["points"],
        why=f"order {row['order_id']}: part refunded ({row['part']})"[:200]))
    if not result.succeeded:  # stays requested: the sweeper asks again
        log.error("points of %s not given back yet: %s", row["movement_id"], result.settled.reason)
        return
    await cloud.db.execute("update points_refunds set state = 'done', updated_ms = $2 where movement_id = $1 "
                           "and state = 'requested'", row["movement_id"], cloud.now_ms())
    if payments.on_balance_changed is not None:
        await payments.on_balance_changed(row["member_id"])


async def sweep(payments) -> int:
    """Points parts a crash or a silent ledger left `requested`, granted now (the ledger id makes it once)."""
    rows = await payments.cloud.db.fetch("select * from points_refunds where state = 'requested' order by created_ms "
                                         "limit $1", SWEEP_BATCH_MAX)
    for row in rows:
        await _grant(payments, row)
    return len(rows)
