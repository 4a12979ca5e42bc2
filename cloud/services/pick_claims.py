"""A store's part of an order is picked once: the first `OrderPicked` believed for it claims it, under the order's
row lock, before any of its effects (stock, refunds, re-routes) run - so a replayed or hostile second `OrderPicked`
(another event id: its derived ids would not deduplicate) changes nothing, and neither does one for a part that was
picked, handed over or delivered already. `protocol.store_facts.judge_picking` refuses those from what
`cloud.messaging.refusals.pick_claims` finds; `claim` checks again under the lock (two bridges, one batch racing another).

The claim is a timeline note (`PICK_CLAIM`, keyed `<event id>:claim`, its store on the row): no table of its own.
Its detail records whether the order had been cancelled when the picking arrived (`stock_only`): a redelivery of
the same event then finishes the same way it began.
"""
from __future__ import annotations

import json

from cloud.messaging.refusals import CLAIM_SUFFIX as SUFFIX
from cloud.messaging.refusals import RefusedEvent
from cloud.services import order_journal as journal
from protocol import order_lifecycle as lifecycle
from protocol.messages import OrderPicked
from protocol.store_facts import PICKABLE

PICK_CLAIM = lifecycle.PICK_CLAIMED


async def claim(db, e: OrderPicked, now_ms: int) -> bool:
    """Claim the store's part for this event (or find it claimed by this event before); True when the order had been
    cancelled meanwhile: only the stock side applies. RefusedEvent when the part cannot be picked by it."""
    async with db.acquire() as conn, conn.transaction():
        order = await conn.fetchrow("select status from orders where order_id = $1 for update", e.order_id)
        if order is None:
            raise RefusedEvent(f"picked lines of order {e.order_id}, which does not exist")
        mine = f"{e.event_id}{SUFFIX}"
        seen = await conn.fetchrow("select event_key, detail from order_events where order_id = $1 and store_id = $2 "
                                   "and event = $3", e.order_id, e.store_id, PICK_CLAIM)
        if seen is not None:
            if seen["event_key"] != mine:
                raise RefusedEvent(f"picked lines of order {e.order_id}: store {e.store_id}'s part was picked already "
                                   f"(event {seen['event_key'].removesuffix(SUFFIX)})")
            detail = seen["detail"] if isinstance(seen["detail"], dict) else json.loads(seen["detail"])
            return bool(detail.get("stock_only"))
        cancelled = order["status"] == lifecycle.CANCELLED
        part = await conn.fetchval("select status from order_parts where order_id = $1 and store_id = $2",
                                   e.order_id, e.store_id)
        part = part or (lifecycle.PAID if cancelled else order["status"])
        if (order["status"] not in PICKABLE and not cancelled) or part not in PICKABLE:
            raise RefusedEvent(f"picked lines of order {e.order_id} ({order['status']}): store {e.store_id}'s part is "
                               f"{part}, not still to pick")
        detail = {"stock_only": cancelled}
        if cancelled:
            detail["why"] = ("cancelled before the store's picking arrived: the picked units leave the cloud's escrow "
                             "as they left the store's; no money moves")
        await journal.note(conn, e.order_id, PICK_CLAIM, now_ms, store=e.store_id, key=mine, detail=detail)
        return cancelled
