"""After-sales requests at the store, as pure decisions: a customer asked the cloud for a refund of some lines of an
order this store handed over; the store's staff approve or refuse it on the store box.

An approval of a request whose goods come back (`with_return`) takes them back into stock here, on hand or to
shrinkage with a reason, like a till return. A decision commits with its `AfterSalesDecided` event in one SQLite
transaction (the usual event path: exactly once to the cloud, which refunds through the order's payment on an
approval). Deciding the same way again answers the request as it is; deciding the other way after a decision is
refused (409), as is refusing without a reason.
"""
from __future__ import annotations

from collections.abc import Mapping

from edge.core.outcome import DecideAfterSales, Effect, Outcome, Publish, Refused, StoreAfterSales
from edge.core.returns import returned_stock
from edge.core.state import EventStamp, StockLevel
from protocol.return_messages import DISPOSITIONS, AfterSalesDecided, AfterSalesRequested

STAFF_MAX_CHARS = 32


def received(message: AfterSalesRequested) -> StoreAfterSales:
    return StoreAfterSales(message.request_id, message.order_id, message.status, {
        "lines": [{"sku": line.sku, "qty": line.qty} for line in message.lines], "amount_fen": message.amount_fen,
        "reason": message.reason, "with_return": message.with_return, "received_ms": message.wall_ms})


def decide(request: dict | None, request_id: str, approved: bool, reason: str, staff: str, stamp: EventStamp,
           levels: Mapping[str, StockLevel] | None = None, disposition: str = "resaleable") -> Outcome:
    """`request`: the stored request ({"request_id", "order_id", "status", "lines", "with_return", ...}) or None.
    An approval of a request with the goods returned takes them back here (`levels`: their stock now), on hand or
    to shrinkage (`disposition`), journaled like a till return."""
    if request is None:
        raise Refused(404, f"no after-sales request {request_id} at this store")
    want = "approved" if approved else "refused"
    if request["status"] == want:
        return Outcome(reply=request)
    if request["status"] != "requested":
        raise Refused(409, f"after-sales request {request_id} was {request['status']} already")
    if not approved and not reason.strip():
        raise Refused(422, "reason: a refusal says why")
    if len(staff) > STAFF_MAX_CHARS:
        raise Refused(422, f"staff: at most {STAFF_MAX_CHARS} characters")
    if disposition not in DISPOSITIONS:
        raise Refused(422, f"disposition must be one of {', '.join(DISPOSITIONS)}, not {disposition!r}")
    stock: list[Effect] = []
    if approved and request.get("with_return"):  # the customer brought the goods back to this store
        stock = returned_stock([(x["sku"], x["qty"], disposition) for x in request["lines"]], levels or {},
                               request_id, stamp)
    event = stamp.make(AfterSalesDecided, request_id=request_id, order_id=request["order_id"], approved=approved,
                       reason=reason, staff=staff)
    return Outcome(reply={**request, "status": want, "decision_reason": reason, "staff": staff},
                   effects=(*stock, DecideAfterSales(request_id, want, reason, staff, stamp.moment.wall_ms),
                            Publish(event)),
                   last_seq=stamp.outcome_seq)
