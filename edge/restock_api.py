"""Restock on the store box's lane API (local to the store, works with the cloud unreachable):

- `GET /restock/alerts` (`?status=open|cleared`): the store's restock alerts, newest first - each
  `{"alert_id", "sku", "supplier", "on_hand", "owed", "reorder_point", "target", "suggested_qty", "raised_ms",
  "cleared_ms", "open"}` (`owed`: units of online orders still to pick here; the alert was raised when on_hand -
  owed fell below the reorder point, and clears when it is back at or above it).
- `GET /restock/points`: the reorder points and targets this box holds from HQ (with their versions).
"""
from __future__ import annotations

from starlette.routing import Route

from edge import restock_db
from protocol.errors import ProtocolError


def routes(box, endpoint) -> list[Route]:
    """The restock routes, wrapped by the lane API's `endpoint` (problems)."""
    async def alerts(request, body):
        status = request.query_params.get("status")
        if status not in (None, "open", "cleared"):
            raise ProtocolError(f"status: 'open' or 'cleared', not {status[:20]!r}")
        alerts = await restock_db.alerts(box.store_db.reader, status)
        for alert in alerts:  # whom to order from (the catalogue's supplier; "" when it has none)
            product = box.actor.books.product(alert["sku"])
            alert["supplier"] = product.supplier if product is not None else ""
        return {"store_id": box.actor.store_id, "alerts": alerts}

    async def points(request, body):
        return {"store_id": box.actor.store_id, "points": await restock_db.points(box.store_db.reader)}

    return [Route("/restock/alerts", endpoint(alerts), methods=["GET"]),
            Route("/restock/points", endpoint(points), methods=["GET"])]
