"""The StoreActor's transfer steps (run inside its one mailbox, through `StoreActor._transfer`): each loads what
the pure core (`edge.core.transfers`) decides on from the StoreDb, asks it, and executes its Outcome - movements,
the transfer row and the event for the cloud in one SQLite transaction. Works the same with the cloud unreachable:
the outbox carries each step to the cloud later, exactly once.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from edge import transfers_db
from edge.core import transfers
from protocol.lots import chain_day
from protocol.transfer_messages import TransferArriving, TransferCancelled, TransferToDispatch


async def request(actor, from_store: str, lines: list[tuple[str, int]], requested_by: str, reason: str,
                  transfer_id: str | None = None) -> dict[str, Any]:
    transfer_id = transfer_id or actor.ids.new()
    known = await transfers_db.one(actor.db.writer, transfer_id)
    return await actor._execute(transfers.request(transfer_id, actor.store_id, from_store, lines, requested_by, reason,
                                                  known, actor.books, actor._stamp()))


async def dispatch(actor, transfer_id: str, sends: list[transfers.Send], dispatched_by: str) -> dict[str, Any]:
    transfer = await transfers_db.one(actor.db.writer, transfer_id)
    skus = sorted({s.sku for s in sends})
    levels = await actor.db.stock_levels(skus)
    lots = {sku: await actor.db.lot_levels(sku) for sku in skus}
    day = chain_day(actor.clock.now_ms())
    return await actor._execute(transfers.dispatch(transfer, transfer_id, actor.store_id, sends, dispatched_by, levels,
                                                   lots, day, actor._stamp()))


async def receive(actor, transfer_id: str, got: list[tuple[str, str, int]], received_by: str) -> dict[str, Any]:
    transfer = await transfers_db.one(actor.db.writer, transfer_id)
    skus = sorted({s for s, *_ in transfer.sent}) if transfer else []
    levels = await actor.db.stock_levels(skus)
    ratios = {sku: await actor._ratio_of(sku) for sku in skus}
    lots = {sku: await actor.db.lot_levels(sku) for sku in skus}
    return await actor._execute(transfers.receive(transfer, transfer_id, actor.store_id, got, received_by, levels,
                                                  ratios, actor._stamp(), lots))


async def listed(actor, status: str | None = None) -> dict[str, Any]:
    """The store's transfers; a request the cloud refused shows `refused` with the cloud's reason."""
    rows = await transfers_db.listed(actor.db.writer, status)
    refused = await transfers_db.refused_requests(actor.db.writer) if any(t.status == "requested" for t in rows) else {}
    out = []
    for t in rows:
        shown = t.as_json(actor.store_id)
        if t.status == "requested" and t.transfer_id in refused:
            shown.update(refused=True, refused_reason=refused[t.transfer_id])
        out.append(shown)
    return {"store_id": actor.store_id, "transfers": out}


async def view(actor, transfer_id: str) -> dict[str, Any]:
    transfer = await transfers_db.one(actor.db.writer, transfer_id)
    if transfer is None:
        raise transfers.Refused(404, f"no transfer {transfer_id} at this store")
    return transfer.as_json(actor.store_id)


async def cloud_message(actor, message: TransferToDispatch | TransferArriving | TransferCancelled) -> str:
    seen = await actor.db.seen_cloud_message(message.event_id)
    known = await transfers_db.one(actor.db.writer, message.transfer_id)
    reply: str = await actor._execute(transfers.told(message, seen, known, actor.clock.now_ms()))
    return reply


STEPS: dict[str, Callable[..., Awaitable[Any]]] = {
    "request": request, "dispatch": dispatch, "receive": receive, "list": listed, "view": view,
    "cloud_message": cloud_message}
