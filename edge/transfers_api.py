"""Transfers between stores on the store box's local API (served with the lanes; works with the cloud unreachable):

    POST /transfers                   {"from_store", "lines": [{"sku", "qty"}], "requested_by", "reason"[,
                                      "transfer_id"]} -> 201 the transfer (status requested): this store asks
    GET  /transfers?status=           to_dispatch | dispatched (sent from here) | requested | arriving | received |
                                      cancelled (by HQ before it was dispatched)
    GET  /transfers/{id}              one transfer
    POST /transfers/{id}/dispatch     {"lines": [{"sku", "qty", "lot"?}], "dispatched_by"} -> the transfer, dispatched
                                      (stock leaves here: from the named lot, else first-expiry-first-out)
    POST /transfers/{id}/receive      {"lines": [{"sku", "lot", "qty"}], "received_by"} -> the transfer, received,
                                      with its `discrepancies` (a dispatched line not named arrived as 0)

Who asked, dispatched or received is a cashier id of the box (any plain id when it has none configured; else 404).
Quantities are in the SKU's stock unit (pieces, or grams of a product sold by the kg). Each step is idempotent by
the transfer id (done twice: its first answer). Refusals are problem+json naming what was wrong: 404 unknown
transfer or product, 409 not in a state for it, more than asked or on hand, a lot that is expired or was not
dispatched, 422 a malformed body. The decisions are `edge/core/transfers.py`."""
from __future__ import annotations

from starlette.routing import Route

from edge.core.transfers import Send
from edge.staff import known_cashier
from protocol.ids import is_id
from protocol.lots import is_lot
from protocol.messages import NAME_RE, SKU_RE, valid_store_id
from protocol.schema import record, require
from protocol.transfer_messages import REASON_MAX_CHARS, TRANSFER_LINES_MAX, TRANSFER_QTY_MAX

STATUSES = ("requested", "arriving", "received", "to_dispatch", "dispatched", "cancelled")


def _sku_qty(sku: str, qty: int, least: int = 1) -> None:
    require(bool(SKU_RE.match(sku)), f"lines: invalid sku {sku[:40]!r}")
    require(least <= qty <= TRANSFER_QTY_MAX, f"lines {sku}: qty {least}..{TRANSFER_QTY_MAX} (pieces, or grams)")


def _staff(who: str, field: str) -> None:
    require(bool(NAME_RE.fullmatch(who)), f"{field}: 1-32 letters, digits, '_' or '-'")


def _count(lines: tuple) -> None:
    require(0 < len(lines) <= TRANSFER_LINES_MAX, f"lines: 1-{TRANSFER_LINES_MAX} lines")


@record
class AskLine:
    sku: str
    qty: int

    def __post_init__(self) -> None:
        _sku_qty(self.sku, self.qty)


@record
class RequestBody:
    from_store: str
    lines: tuple[AskLine, ...]
    requested_by: str
    reason: str = ""
    transfer_id: str | None = None

    def __post_init__(self) -> None:
        require(valid_store_id(self.from_store), f"from_store: invalid store id {self.from_store[:40]!r}")
        _count(self.lines)
        _staff(self.requested_by, "requested_by")
        require(len(self.reason) <= REASON_MAX_CHARS, f"reason: at most {REASON_MAX_CHARS} characters")
        require(self.transfer_id is None or is_id(self.transfer_id), "transfer_id: not an id")


@record
class SendLine:
    sku: str
    qty: int
    lot: str | None = None

    def __post_init__(self) -> None:
        _sku_qty(self.sku, self.qty)
        require(self.lot is None or is_lot(self.lot), f"lines {self.sku}: invalid lot")


@record
class DispatchBody:
    lines: tuple[SendLine, ...]
    dispatched_by: str

    def __post_init__(self) -> None:
        _count(self.lines)
        _staff(self.dispatched_by, "dispatched_by")


@record
class GotLine:
    sku: str
    qty: int
    lot: str = ""

    def __post_init__(self) -> None:
        _sku_qty(self.sku, self.qty, least=0)
        require(is_lot(self.lot), f"lines {self.sku}: invalid lot")


@record
class ReceiveBody:
    lines: tuple[GotLine, ...]
    received_by: str

    def __post_init__(self) -> None:
        _count(self.lines)
        _staff(self.received_by, "received_by")


def transfer_routes(box, endpoint) -> list[Route]:
    """`endpoint(fn, body_cls)`: the lane API's handler wrapper (path ids checked, bodies parsed, refusals mapped)."""
    actor = box.actor

    async def ask(request, body: RequestBody):
        known_cashier(box, body.requested_by, "requested_by")
        return await actor.ask("transfer", step="request", from_store=body.from_store,
                               lines=[(x.sku, x.qty) for x in body.lines], requested_by=body.requested_by,
                               reason=body.reason, transfer_id=body.transfer_id)

    async def listed(request, body):
        status = request.query_params.get("status")
        require(status is None or status in STATUSES, f"status: one of {', '.join(STATUSES)}")
        return await actor.ask("transfer", step="list", status=status)

    async def view(request, body):
        return await actor.ask("transfer", step="view", transfer_id=request.path_params["transfer_id"])

    async def dispatch(request, body: DispatchBody):
        known_cashier(box, body.dispatched_by, "dispatched_by")
        return await actor.ask("transfer", step="dispatch", transfer_id=request.path_params["transfer_id"],
                               sends=[Send(x.sku, x.qty, x.lot) for x in body.lines],
                               dispatched_by=body.dispatched_by)

    async def receive(request, body: ReceiveBody):
        known_cashier(box, body.received_by, "received_by")
        return await actor.ask("transfer", step="receive", transfer_id=request.path_params["transfer_id"],
                               got=[(x.sku, x.lot, x.qty) for x in body.lines], received_by=body.received_by)

    return [
        Route("/transfers", endpoint(ask, RequestBody), methods=["POST"]),
        Route("/transfers", endpoint(listed), methods=["GET"]),
        Route("/transfers/{transfer_id}", endpoint(view), methods=["GET"]),
        Route("/transfers/{transfer_id}/dispatch", endpoint(dispatch, DispatchBody), methods=["POST"]),
        Route("/transfers/{transfer_id}/receive", endpoint(receive, ReceiveBody), methods=["POST"]),
    ]
