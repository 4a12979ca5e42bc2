"""Charging an order more after it was paid, within what the customer pre-authorised: a catch-weight item picked
heavier than ordered (cloud/services/picking.py decides how much, `protocol.picking.extra_to_charge`).

Guarantees:
- one movement per reason, `charge:<order>:<part>`, journaled `requested` before it is attempted (`money_movements`,
  kind `charge`), then `done` or `failed`; the same part again answers its first movement (a retried event);
- stored value only: the MemberLedger `Spend` carries the movement id as its transfer id, so a retry (or the money
  resolver, after a crash) spends once. A wallet payment cannot be taken again without the customer: refused here,
  and the caller lets the store absorb it;
- an order's extra charges count with its charge everywhere money is matched: the full refund gives them back
  too, partial refunds may give back up to charge + extras, and `/audit` compares refunds with both.
"""
from __future__ import annotations

import logging

from actors.member_ledger import Spend
from cloud.services.verdicts import Refusal
from protocol.money_saga import PAID_STATUSES, charge_id

log = logging.getLogger("freshmesh.payments")


def extra_charge_id(order_id: str, part: str) -> str:
    return f"{charge_id(order_id)}:{part}"


async def extras_done(conn, order_id: str) -> int:
    """What the order's extra charges took (done): it is the customer's money like the charge."""
    return await conn.fetchval(
        "select coalesce(sum(amount_fen), 0)::bigint from money_movements where order_id = $1 and kind = 'charge' "
        "and state = 'done' and movement_id like $2", order_id, extra_charge_id(order_id, "%"))


async def charge_extra(payments, order_id: str, part: str, amount_fen: int, reason: str):
    """Take `amount_fen` more from the order's member's stored value for one reason; the movement afterwards
    (`done`, or `failed` with why: e.g. the balance does not cover it). Refusal when the order is not paid or was
    not paid by stored value."""
    if amount_fen <= 0:
        raise Refusal("invalid", f"extra charge of order {order_id} ({part}): amount must be positive, not {amount_fen}")
    cloud = payments.cloud
    mid = extra_charge_id(order_id, part)
    if await payments.get(mid) is None:
        charge = await payments.get(charge_id(order_id))
        if charge is None or charge["state"] != "done":
            raise Refusal("order_state", f"order {order_id} has no payment to add to")
        if charge["method"] != "stored_value":
            raise Refusal("payment", f"order {order_id} was paid by {charge['method']}: an extra charge needs the "
                                     "customer")
        async with cloud.db.acquire() as conn, conn.transaction():
            status = await conn.fetchval("select status from orders where order_id = $1 for update", order_id)
            if status not in PAID_STATUSES:
                raise Refusal("order_state", f"order {order_id} is {status}; only a paid order is charged extra")
            await conn.execute(
                """insert into money_movements (movement_id, kind, order_id, member_id, method, amount_fen, state,
                       detail, created_ms, updated_ms)
                   values ($1, 'charge', $2, $3, 'stored_value', $4, 'requested', $5, $6, $6) on conflict do nothing""",
                mid, order_id, charge["member_id"], amount_fen, reason[:500], cloud.now_ms())
    row = await payments.get(mid)
    if row["state"] == "requested":
        result = (await cloud.actors.member_ledger.send(Spend(id=mid, member=row["member_id"],
                                                              amount_fen=row["amount_fen"]))).settled
        if result.status == "ok":
            await payments.settle(mid, "done")
            if payments.on_balance_changed is not None:
                await payments.on_balance_changed(row["member_id"])
        else:
            await payments.settle(mid, "failed", detail=f"{result.reason} (balance {result.get('stored_value_fen')} "
                                                         f"fen, extra {row['amount_fen']} fen)")
            log.warning("extra charge %s not taken: %s", mid, result.reason)
    return await payments.get(mid)
