"""Charging an order more after it was paid, within what the customer pre-authorised: a catch-weight item picked
heavier than ordered (cloud/services/picking.py decides how much, `protocol.picking.extra_to_charge`).

Guarantees:
- one movement per reason, `charge:<order>:<part>`, journaled `requested` before it is attempted (`money_movements`,
  kind `charge`), then `done` or `failed`; the same part again answers its first movement (a retried event);
- stored value only: the MemberLedger `Spend` carries the movement id as its transfer id, so a retry (or the money
  resolver, after a crash) spends once. A wallet payment cannot be taken again without the customer: refused here,
  and the caller lets the store absorb it;
- an order's extra charges count with its charge everywhere money is matched: the full refund gives them back
  too, partial refunds may give back up to charge + extras, and `/audit` compares refunds with both;
- the full refund is journaled only once no extra charge is in flight (`settle_requested` decides them first; one
  still undecided makes the refund wait for the sweeper); an extra that nonetheless ends `done` after the full
  refund was journaled is given back as its own part (`refund:<order>:late:<part>`, `refund_late_extras`).
"""
from __future__ import annotations

import logging

from actors.member_ledger import Spend
from cloud.services.verdicts import Refusal
from protocol.money_saga import PAID_STATUSES, charge_id, may_refund, part_refund_id, refund_id

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
        await take(payments, row)
        if (await payments.get(mid))["state"] == "done":
            # the order may have ended (cancelled, refunded whole) while this was in flight: given back then
            await refund_late_extras(payments, order_id)
    return await payments.get(mid)


async def take(payments, row) -> None:
    """Carry out one requested extra charge: the ledger's Spend under the movement id (a retry, or the same Spend
    still in flight elsewhere, answers the first result), then the journal."""
    mid = row["movement_id"]
    result = (await payments.cloud.actors.member_ledger.send(Spend(id=mid, member=row["member_id"],
                                                                   amount_fen=row["amount_fen"]))).settled
    if result.status == "ok":
        if await payments.settle(mid, "done") and payments.on_balance_changed is not None:
            await payments.on_balance_changed(row["member_id"])
    else:
        await payments.settle(mid, "failed", detail=f"{result.reason} (balance {result.get('stored_value_fen')} "
                                                     f"fen, extra {row['amount_fen']} fen)")
        log.warning("extra charge %s not taken: %s", mid, result.reason)


async def extras_requested(db, order_id: str) -> list:
    """The order's extra charges still in flight (journaled, outcome unknown)."""
    return await db.fetch("select * from money_movements where order_id = $1 and kind = 'charge' "
                          "and state = 'requested' and movement_id like $2", order_id, extra_charge_id(order_id, "%"))


async def settle_requested(payments, order_id: str) -> None:
    """Before the order's full refund is counted: every extra charge in flight decided now (taken or failed), so
    the refund gives back what it took. Without this a Spend still in flight (or finished later by the resolver
    after a crash) would take money that the already-journaled full refund never counted."""
    for row in await extras_requested(payments.cloud.db, order_id):
        await take(payments, row)


async def refund_late_extras(payments, order_id: str) -> None:
    """Extra charges that ended `done` after the order's full refund was journaled (so it did not count them)
    given back each as its own part, `refund:<order>:late:<part>`, decided under the order's row lock and capped
    by what the order still owes: what its charges took less every refund not failed."""
    if not await extras_done(payments.cloud.db, order_id):
        return  # no extra charge taken: the full refund gave back the whole charge
    charge = await payments.get(charge_id(order_id))
    if charge is None or await payments.get(refund_id(order_id)) is None:
        return  # no full refund yet: when it is journaled it counts every extra done by then
    async with payments.cloud.db.acquire() as conn, conn.transaction():
        status = await conn.fetchval("select status from orders where order_id = $1 for update", order_id)
        if not may_refund(status):
            return
        owed = await conn.fetchval(
            """select coalesce(sum(amount_fen) filter (where kind = 'charge' and state = 'done'), 0)
                    - coalesce(sum(amount_fen) filter (where kind = 'refund' and state <> 'failed'), 0)
               from money_movements where order_id = $1 and (movement_id = $2 or movement_id like $3
                    or movement_id = $4 or movement_id like $5)""",
            order_id, charge_id(order_id), extra_charge_id(order_id, "%"), refund_id(order_id),
            part_refund_id(order_id, "%"))
        extras = await conn.fetch("select * from money_movements where order_id = $1 and kind = 'charge' and "
                                  "state = 'done' and movement_id like $2 order by updated_ms desc", order_id,
                                  extra_charge_id(order_id, "%"))
        for extra in extras:
            if owed <= 0:
                break
            part = "late:" + extra["movement_id"].removeprefix(extra_charge_id(order_id, ""))
            amount = min(owed, extra["amount_fen"])
            made = await conn.fetchval(
                """insert into money_movements (movement_id, kind, order_id, member_id, method, amount_fen, state,
                       detail, created_ms, updated_ms)
                   values ($1, 'refund', $2, $3, $4, $5, 'requested', $6, $7, $7) on conflict do nothing
                   returning movement_id""",
                part_refund_id(order_id, part), order_id, extra["member_id"], extra["method"], amount,
                f"extra charge {extra['movement_id']} taken after the order ended", payments.cloud.now_ms())
            if made:
                log.warning("order %s: extra charge %s done after its full refund: giving back %d fen",
                            order_id, extra["movement_id"], amount)
                owed -= amount
    for row in await payments.cloud.db.fetch("select * from money_movements where movement_id like $1 and "
                                             "state = 'requested'", part_refund_id(order_id, "late:%")):
        await payments.give_back(row, charge)

