"""Transfers between stores on the cloud's side of the bridge: believed (`protocol.transfer_facts`), told to the
other store, recorded.

Guarantees:
- A transfer step is believed only from the store whose side it is (B asks and receives, A dispatches), within
  what was asked, dispatched and moved on the store's own stock; anything else is refused with the reason through
  the bridge's normal path (dead-lettered, the store told `refused`), and the rest of the batch applies.
- Recorded once: each step updates the `transfers` row in the bridge's transaction with the event id, and only from
  the status before it (a step never goes back), so a redelivery changes nothing.
- The other store is told (A: `TransferToDispatch` once asked; B: `TransferArriving` once dispatched) after that
  transaction commits (so its answer finds the row), under an event id derived from the transfer, so a re-send at
  start (`cloud.services.transfers.Transfers.resend`, also covering a crash in between) is applied once by the
  store (its inbox keeps the id).
"""
from __future__ import annotations

import functools
import json
import logging
from typing import Any

from cloud.messaging import to_stores
from protocol.ids import derived_id
from protocol.lots import chain_day
from protocol.messages import Message, StockMoved
from protocol.transfer_facts import (
    TRANSFER_REASONS,
    TransferFacts,
    TransfersKnown,
    discrepancies,
    judge_transfers,
    named_transfers,
)
from protocol.transfer_messages import (
    TransferArriving,
    TransferCancelled,
    TransferDispatched,
    TransferLine,
    TransferLotLine,
    TransferReceived,
    TransferRequested,
    TransferToDispatch,
)

log = logging.getLogger(__name__)
TRANSFER_EVENTS = (TransferRequested, TransferDispatched, TransferReceived)


def jsonb(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def tell_to_dispatch(cloud, row) -> None:
    """Store A is asked to dispatch (applied once there: the event id is derived from the transfer)."""
    lines = tuple(TransferLine(sku=x["sku"], qty=x["qty"]) for x in jsonb(row["lines"]))
    await to_stores.send(cloud, row["from_store"], functools.partial(
        TransferToDispatch, transfer_id=row["transfer_id"], to_store=row["to_store"], lines=lines,
        requested_by=row["requested_by"][:64], reason=row["reason"]),
        event_id=derived_id(row["transfer_id"], "to_dispatch"))


async def tell_arriving(cloud, row, sent: list[dict[str, Any]], dispatched_by: str) -> None:
    """Store B is told what is on its way, per lot (applied once there, likewise)."""
    asked = tuple(TransferLine(sku=x["sku"], qty=x["qty"]) for x in jsonb(row["lines"]))
    lines = tuple(TransferLotLine(sku=x["sku"], lot=x["lot"], use_by=x["use_by"], qty=x["qty"]) for x in sent)
    await to_stores.send(cloud, row["to_store"], functools.partial(
        TransferArriving, transfer_id=row["transfer_id"], from_store=row["from_store"], asked_lines=asked, lines=lines,
        dispatched_by=dispatched_by, reason=row["reason"]), event_id=derived_id(row["transfer_id"], "arriving"))


async def tell_cancelled(cloud, row, reason: str) -> None:
    """Both stores hear of a cancellation (A stops, B's list shows it); applied once at each, likewise."""
    for store in (row["from_store"], row["to_store"]):
        await to_stores.send(cloud, store, functools.partial(TransferCancelled, transfer_id=row["transfer_id"],
                                                             reason=reason),
                             event_id=derived_id(row["transfer_id"], f"cancelled:{store}"))


def _lot_lines(lines: tuple[TransferLotLine, ...]) -> list[dict[str, Any]]:
    return [{"sku": x.sku, "lot": x.lot, "use_by": x.use_by, "qty": x.qty} for x in lines]


def _lot_tuples(lines: list[dict[str, Any]]) -> list[tuple[str, str, str, int]]:
    return [(x["sku"], x["lot"], x["use_by"], x["qty"]) for x in lines]


async def incoming(db, store_id: str) -> dict[str, int]:
    """sku -> units dispatched to `store_id` by other stores and not received yet (in transit to it)."""
    rows = await db.fetch("""select x->>'sku' as sku, sum((x->>'qty')::bigint)::bigint as qty
                             from transfers t, jsonb_array_elements(t.dispatched) x
                             where t.to_store = $1 and t.status = 'dispatched' group by 1""", store_id)
    return {r["sku"]: int(r["qty"]) for r in rows}


class BridgeTransfers:
    """Held by the bridge: `admit` judges a batch's transfer events, `tell` tells the other stores, `record` writes."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def _known(self, events: list[Message]) -> TransfersKnown:
        ids = sorted(named_transfers(events))
        catalogue = self.cloud.world.catalogue
        known = TransfersKnown(stores=frozenset(self.cloud.world.stores), products=frozenset(catalogue.by_sku))
        for r in await self.cloud.db.fetch("select * from transfers where transfer_id = any($1::text[])", ids):
            asked = {x["sku"]: x["qty"] for x in jsonb(r["lines"])}
            sent: dict[tuple[str, str], int] = {}
            for x in jsonb(r["dispatched"]) or []:
                sent[(x["sku"], x["lot"])] = sent.get((x["sku"], x["lot"]), 0) + x["qty"]
            use_by = {(x["sku"], x["lot"]): x["use_by"] for x in jsonb(r["dispatched"]) or []}
            known.transfers[r["transfer_id"]] = TransferFacts(r["transfer_id"], r["from_store"], r["to_store"],
                                                              r["status"], asked, sent, use_by)
        for r in await self.cloud.db.fetch(
                "select reference, store_id, sku, reason, sum(abs(delta))::bigint as moved from stock_movements "
                "where reference = any($1::text[]) and reason = any($2::text[]) group by 1, 2, 3, 4",
                ids, list(TRANSFER_REASONS)):
            known.moved[(r["reference"], r["store_id"], r["sku"], r["reason"])] = r["moved"]
        return known

    async def admit(self, events: list[Message]) -> dict[str, str]:
        """event id -> why, for the batch's transfer events (and transfer movements) the cloud does not believe."""
        mine: list[Message] = [e for e in events if isinstance(e, TRANSFER_EVENTS)
                or (isinstance(e, StockMoved) and e.reason in TRANSFER_REASONS)]
        if not mine:
            return {}
        return judge_transfers(mine, await self._known(mine))

    async def tell(self, events: list[Message]) -> None:
        """The other store of each believed request (A) and dispatch (B), after the batch's transaction committed:
        the store's next step is judged against the row recorded. A failure is logged: `resend` tells it later."""
        try:
            await self._tell(events)
        except Exception as exc:  # noqa: BLE001 - recorded already; the re-send at start tells the store
            log.warning("stores not told of the batch's transfer steps (%s); re-sent at start", exc)

    async def _tell(self, events: list[Message]) -> None:
        for e in events:
            if isinstance(e, TransferRequested):
                await tell_to_dispatch(self.cloud, {
                    "transfer_id": e.transfer_id, "from_store": e.from_store, "to_store": e.store_id,
                    "lines": [{"sku": x.sku, "qty": x.qty} for x in e.lines],
                    "requested_by": f"{e.store_id}:{e.requested_by}", "reason": e.reason})
            elif isinstance(e, TransferDispatched):
                row = await self.cloud.db.fetchrow("select * from transfers where transfer_id = $1", e.transfer_id)
                if row is not None:  # recorded with the batch (it is told after the commit)
                    await tell_arriving(self.cloud, row, _lot_lines(e.lines), e.dispatched_by)

    async def record(self, conn, events: list[Message]) -> None:
        for e in events:
            if isinstance(e, TransferRequested):
                await conn.execute(
                    """insert into transfers (transfer_id, from_store, to_store, status, lines, reason, origin,
                           requested_by, request_event_id, requested_ms, updated_ms)
                       values ($1, $2, $3, 'requested', $4::jsonb, $5, 'store', $6, $7, $8, $8)
                       on conflict (transfer_id) do nothing""",
                    e.transfer_id, e.from_store, e.store_id, json.dumps([{"sku": x.sku, "qty": x.qty} for x in e.lines]),
                    e.reason, f"{e.store_id}:{e.requested_by}", e.event_id, e.wall_ms)
            elif isinstance(e, TransferDispatched):
                await conn.execute(
                    """update transfers set status = 'dispatched', dispatched = $2::jsonb, dispatched_by = $3,
                           dispatch_event_id = $4, dispatched_ms = $5, updated_ms = $5
                       where transfer_id = $1 and status in ('requested', 'cancelled')""",
                    e.transfer_id, json.dumps(_lot_lines(e.lines)), f"{e.store_id}:{e.dispatched_by}", e.event_id,
                    e.wall_ms)
            elif isinstance(e, TransferReceived):
                row = await conn.fetchrow("select from_store, status, dispatched from transfers where transfer_id = $1",
                                          e.transfer_id)
                got = _lot_lines(e.lines)
                if row is not None and row["status"] == "dispatched":
                    await _received_lots(conn, e, row["from_store"], jsonb(row["dispatched"]) or [])
                await conn.execute(
                    """update transfers set status = 'received', received = $2::jsonb, discrepancies = $3::jsonb,
                           received_by = $4, receive_event_id = $5, received_ms = $6, updated_ms = $6
                       where transfer_id = $1 and status = 'dispatched'""",
                    e.transfer_id, json.dumps(got), json.dumps(discrepancies(
                        _lot_tuples((jsonb(row["dispatched"]) if row else None) or []), _lot_tuples(got))),
                    f"{e.store_id}:{e.received_by}", e.event_id, e.wall_ms)


async def _received_lots(conn, e: TransferReceived, from_store: str, sent: list[dict[str, Any]]) -> None:
    """What B's receipt means for costs and losses: each lot received carries A's unit cost to B (`lot_costs`, so
    B's losses and margins of it are valued as A's were), and what was dispatched and did not arrive is a loss in
    transit at A (`loss_lines`, reason "transit", valued at A's lot cost, else the product's cost, by the loss
    report). Over-deliveries are not losses. Idempotent: recorded once with the receipt (its event id keys them)."""
    await conn.execute(
        """insert into lot_costs (store_id, sku, lot, unit_cost_fen, receiving_id, updated_ms)
           select $1, c.sku, c.lot, c.unit_cost_fen, $3, $4 from lot_costs c
           join unnest($5::text[], $6::text[]) as r(sku, lot) on (c.sku, c.lot) = (r.sku, r.lot)
           where c.store_id = $2
           on conflict (store_id, sku, lot) do update
           set unit_cost_fen = excluded.unit_cost_fen, receiving_id = excluded.receiving_id,
               updated_ms = excluded.updated_ms where lot_costs.updated_ms <= excluded.updated_ms""",
        e.store_id, from_store, e.transfer_id, e.wall_ms,
        [x.sku for x in e.lines if x.qty > 0], [x.lot for x in e.lines if x.qty > 0])
    short = [d for d in discrepancies(_lot_tuples(sent), _lot_tuples(_lot_lines(e.lines))) if d["short"] > 0]
    if short:
        await conn.executemany(
            """insert into loss_lines (event_id, lot, store_id, sku, qty, reason, day, wall_ms)
               values ($1, $2, $3, $4, $5, 'transit', $6::text::date, $7) on conflict do nothing""",
            [(derived_id(e.event_id, f"transit:{d['sku']}"), d["lot"], from_store, d["sku"], d["short"],
              chain_day(e.wall_ms), e.wall_ms) for d in short])
