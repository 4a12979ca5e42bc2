"""Bodies of the store box's delivery endpoints (served with the lane API, `edge/lanes.py`):

- `POST /deliveries/{order_id}/returned` `{"to": "stock" | "shrinkage", "reason"}`: goods of an order no rider could
  deliver (the cloud sent `DeliveryReturned`) booked back on hand, or to shrinkage with a reason (spoiled, damaged,
  ...) -> 200 `{"order_id", "status", "on_hand"}`; again: the first answer, nothing moved twice.
- `POST /deliveries/{order_id}/own-staff` `{"staff_id"}`: the store's staff take a delivery order out instead of a
  rider; `POST /deliveries/{order_id}/delivered` `{"staff_id"}`: they handed it over. Each step reaches the cloud
  once (`StaffDelivery`), which moves the order as a rider's callbacks would.
- `GET /deliveries?status=returned` (the default; or `returned_to_stock`, `returned_to_shrinkage`, `out_with_staff`,
  `delivered_by_staff`): the store's delivery orders in that state, newest first, with their lines and why they came
  back (when the store heard of the order only by its return), so staff find the goods to book without being told
  the order ids; 422 any other status.
The decisions are `edge/core/deliveries.py`.
"""
from __future__ import annotations

import json

from edge.core.deliveries import BOOKED_SHRINKAGE, BOOKED_STOCK, DELIVERED_BY_STAFF, OUT_WITH_STAFF, RETURNED
from edge.core.outcome import Refused
from protocol.messages import NAME_RE
from protocol.schema import record, require

LISTED_STATUSES = (RETURNED, BOOKED_STOCK, BOOKED_SHRINKAGE, OUT_WITH_STAFF, DELIVERED_BY_STAFF)
LISTED_MAX = 200  # a back room has a handful; bounded all the same


@record
class ReturnedBody:
    to: str
    reason: str = ""

    def __post_init__(self) -> None:
        require(self.to in ("stock", "shrinkage"), "to: stock or shrinkage")
        require(len(self.reason) <= 32, "reason: at most 32 characters")


@record
class StaffBody:
    staff_id: str

    def __post_init__(self) -> None:
        require(bool(NAME_RE.fullmatch(self.staff_id)), "staff_id: 1-32 letters, digits, '_' or '-'")


async def listed(reader, status: str | None) -> dict:
    """The delivery orders in `status` (default `returned`), read on the store database's reader connection (it
    never sees a transaction in progress, and nothing here waits for the store's mailbox)."""
    status = status or RETURNED
    if status not in LISTED_STATUSES:
        raise Refused(422, f"status: one of {', '.join(LISTED_STATUSES)}")
    async with reader.execute("select order_id, payload from orders where status = ? "
                              "order by rowid desc limit ?", (status, LISTED_MAX)) as cur:
        rows = list(await cur.fetchall())
    found = []
    for order_id, payload in rows:
        body = json.loads(payload)
        lines = [{"sku": x["sku"], "qty": x["qty"], "unit": x.get("unit", "piece")} for x in body.get("lines", [])]
        found.append({"order_id": order_id, "status": status, "lines": lines,
                      **({"reason": body["returned_reason"]} if body.get("returned_reason") else {})})
    return {"deliveries": found}
