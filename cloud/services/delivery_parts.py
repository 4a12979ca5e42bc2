"""A delivery order's store parts on their way to the customer: each store's part (`order_parts`, kept by picking)
goes out with its own rider, so it moves on its own (`hand_to_rider`, `deliver`, `fail_delivery`, `redispatch`,
`refund` when it failed twice), and the order follows `lifecycle.overall` of its parts.

Guarantees:
- a split delivery is `out_for_delivery` only when every store's goods left with a rider and `delivered` only when
  every part was delivered (one store's rider no longer takes the whole order with them);
- a part refunded after its second failure (its share of the money back, its goods back to its store) leaves the
  order to the other parts; when they are delivered the order ends `partially_refunded`; when no part is left it is
  refunded whole (`Deliveries.give_up`);
- the order moves only through `order_journal.advance` along `delivery.order_path` (the part's event first, with
  the caller's key, so a repeated callback or store event changes nothing); a part step the lifecycle refuses
  raises IllegalTransition with nothing changed.
"""
from __future__ import annotations

import json

from cloud.services import order_journal as journal
from protocol import delivery
from protocol import order_lifecycle as lifecycle
from protocol.picking import share_fen


def target_of(parts: list[str]) -> str:
    """The order's status from its parts': their overall, except that a delivered order one of whose parts was
    refunded (it failed twice) ends partially refunded."""
    target = lifecycle.overall(parts)
    if target == lifecycle.DELIVERED and lifecycle.REFUNDED in parts:
        return lifecycle.PARTIALLY_REFUNDED
    return target


async def ensure_parts(conn, order_id: str, status: str, allocation: dict, now: int) -> None:
    """Parts are made at the order's status when no store event made them (an order readied another way)."""
    await conn.executemany("insert into order_parts (order_id, store_id, status, updated_ms) values ($1, $2, $3, $4) "
                           "on conflict do nothing", [(order_id, s, status, now) for s in allocation])


async def statuses(db, order_id: str) -> dict[str, str]:
    """The order's parts by store, made first if missing."""
    async with db.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("select status, allocation from orders where order_id = $1", order_id)
        if row is None:
            return {}
        await ensure_parts(conn, order_id, row["status"], json.loads(row["allocation"]), 0)
        return {r["store_id"]: r["status"] for r in await conn.fetch(
            "select store_id, status from order_parts where order_id = $1", order_id)}


async def step(db, order_id: str, store: str, event: str, now: int, *, key: str, detail: dict) -> journal.Step:
    """Move `store`'s part by `event`; the order follows its parts (or a `rider` note says the part moved)."""
    async with db.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("select status, fulfilment, allocation from orders where order_id = $1 for update",
                                  order_id)
        if row is None:
            raise LookupError(f"no order {order_id}")
        await ensure_parts(conn, order_id, row["status"], json.loads(row["allocation"]), now)
        done = await conn.fetchval("select 1 from order_events where order_id = $1 and event_key = $2", order_id, key)
        if done:  # this step was taken before (a duplicate callback, a redelivered store event)
            return await journal.advance(conn, order_id, "rider", now, store=store, key=key, detail=detail)
        part = await conn.fetchval("select status from order_parts where order_id = $1 and store_id = $2 for update",
                                   order_id, store)
        if part is None:
            raise LookupError(f"order {order_id} has no part at {store}")
        after = lifecycle.step(row["fulfilment"], part, event)  # IllegalTransition: nothing changed
        await conn.execute("update order_parts set status = $3, updated_ms = $4 where order_id = $1 and store_id = $2",
                           order_id, store, after, now)
        parts = [r["status"] for r in await conn.fetch("select status from order_parts where order_id = $1", order_id)]
        path = delivery.order_path(row["status"], target_of(parts))
        if not path:  # the order stays where it is (waiting on another part): the part's move is on the timeline
            return await journal.advance(conn, order_id, "rider", now, store=store, key=key,
                                         detail={**detail, "part": store, "part_event": event, "part_status": after})
        first = await journal.advance(conn, order_id, path[0], now, store=store, key=key,
                                      detail={**detail, "part": store} if len(parts) > 1 else detail)
        for then in path[1:]:
            await journal.advance(conn, order_id, then, now, store=store, key=f"{key}:{then}",
                                  detail={"part": store, "after": event})
        return first


def part_lines(order_lines: list[dict], allocated: list[dict], whole: bool) -> list[dict]:
    """The order's lines as far as one store's part holds them (`allocated`: its allocation lines, sku and qty),
    each with its share of the line's amount; `whole`: the order has this one part, its lines as they are."""
    if whole:
        return order_lines
    have: dict[str, int] = {}
    for line in allocated:
        have[line["sku"]] = have.get(line["sku"], 0) + int(line["qty"])
    out = []
    for line in order_lines:
        qty = min(have.get(line["sku"], 0), int(line["qty"]))
        if qty:
            out.append({**line, "qty": qty, "amount_fen": share_fen(int(line["amount_fen"]), qty, int(line["qty"]))})
    return out
