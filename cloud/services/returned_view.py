"""The one "handed over, and returned so far" view of an online order (`protocol.handed_over`), read from PostgreSQL:
both a return at a till (`cloud.messaging.returns`) and an after-sales request (`after_sales.py`) are judged on it.

Read it under the order's row lock (`lock_order`, in the caller's transaction) when the judgement leads to a refund:
a till return, an after-sales request and its approval for the same order are then judged one after the other, each
seeing what the one before gave back (never two refunds believed for the same goods).

Where picking is kept: the store's `OrderPicked` lines are on the order's timeline (`order_events`, event `picked`
or `part_ready`, the store's id, detail `lines`); what picking gave back or charged is in `money_movements` under
the part names `cloud.services.picking` gives them.
"""
from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from cloud.services.extra_charges import extra_charge_id
from protocol import handed_over as ho
from protocol.money_saga import part_refund_id
from protocol.picking import money_part
from protocol.returns import Back, Sold

PICKED_EVENTS = ("picked", "part_ready")


@dataclass
class ReturnsView:
    parts: dict[str, dict[str, Sold]]  # store -> sku -> handed over, and what is left paid for it
    before: dict[str, dict[str, Back]]  # store -> sku -> given back already (till returns, after-sales)


async def lock_order(conn, order_id: str):
    """The order's row, locked for the caller's transaction (None: no such order)."""
    return await conn.fetchrow("select * from orders where order_id = $1 for update", order_id)


def _units(catalogue, skus) -> dict[str, str]:
    by_sku = catalogue.by_sku
    return {s: "g" if (p := by_sku.get(s)) is not None and p.weighed else "piece" for s in skus}


async def order_view(conn, catalogue, order, *, skip_returns: Collection[str] = (), skip_request: str | None = None,
                     requests: tuple[str, ...] = ("approved",)) -> ReturnsView:
    """`order`: its row. Given back so far counts every till return but those in `skip_returns`, and the after-sales requests
    in `requests` but `skip_request` (the one being judged)."""
    oid = order["order_id"]
    lines = json.loads(order["lines"])
    allocation = {s: [(x["sku"], x["qty"]) for x in part] for s, part in (json.loads(order["allocation"]) or {}).items()
                  if isinstance(part, list)}  # a flash order's allocation before its store is a sale, not stores
    picked: dict[str, list[ho.Picked]] = {}
    for r in await conn.fetch("select store_id, detail from order_events where order_id = $1 and event = any($2::text[])"
                              " and store_id is not null order by seq", oid, list(PICKED_EVENTS)):
        if r["store_id"] in picked:
            continue  # the store's first pick is the one its money was decided on
        rows = json.loads(r["detail"] or "{}").get("lines") or []
        picked[r["store_id"]] = [ho.Picked(x["sku"], x["ordered"], x["picked"], x.get("short", 0),
                                           x.get("substitute_sku", ""), x.get("substitute_qty", 0)) for x in rows]
    moved = {r["movement_id"]: (r["kind"], r["amount_fen"]) for r in await conn.fetch(
        "select movement_id, kind, amount_fen from money_movements where order_id = $1 and state <> 'failed' and "
        "(kind = 'refund' or state = 'done')", oid)}
    refunds: dict[tuple[str, str, str], int] = {}
    charges: dict[str, int] = {}
    for store, part in allocation.items():
        weight = money_part("weight", oid, store)
        refunds[("weight", store, "")] = _fen(moved, part_refund_id(oid, weight), "refund")
        charges[store] = _fen(moved, extra_charge_id(oid, weight), "charge")
        for sku, _ in part:
            for kind in ("short", "sub"):
                refunds[(kind, store, sku)] = _fen(moved, part_refund_id(oid, money_part(kind, oid, store, sku)),
                                                   "refund")
    skus = {x["sku"] for x in lines} | {p.substitute_sku for ps in picked.values() for p in ps if p.substitute_sku}
    units = _units(catalogue, skus)
    ordered = ho.part_lines([(x["sku"], x["qty"], units[x["sku"]], x["amount_fen"]) for x in lines],
                            order["total_fen"], allocation)
    parts = ho.handed_over(ordered, picked, refunds, charges, units)
    back: list[tuple[str, str, int, int]] = []
    for r in await conn.fetch("select return_id, store_id, lines from till_returns where order_id = $1", oid):
        if r["return_id"] not in skip_returns:
            back += [(r["store_id"], x[0], x[1], x[2]) for x in json.loads(r["lines"])]
    for r in await conn.fetch("select request_id, store_id, lines from after_sales where order_id = $1 and "
                              "status = any($2::text[])", oid, list(requests)):
        if r["request_id"] != skip_request:
            back += [(x.get("store", r["store_id"]), x["sku"], x["qty"], x["amount_fen"]) for x in json.loads(r["lines"])]
    return ReturnsView(parts, ho.given_back(back))


def _fen(moved: dict, movement_id: str, kind: str) -> int:
    found = moved.get(movement_id)
    return found[1] if found is not None and found[0] == kind else 0
