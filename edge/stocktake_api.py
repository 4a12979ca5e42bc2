"""Stocktakes on the store box's lane API (local to the store, works with the cloud unreachable):

    POST /stocktakes                       {"scope": "all" | {"categories": [...]} | {"areas": [...]} (the store's
                                           shelf areas: edge/shelf_areas_api.py) | {"skus": [...]}, "opened_by",
                                           "stocktake_id"?} -> 201 the count sheet: the SKUs in scope and their lots
                                           to count, WITHOUT book quantities (a blind count)
    GET  /stocktakes                       the newest stocktakes (?status=open|posted|cancelled), lines counted so far
    GET  /stocktakes/{id}/sheet            the count sheet again (blind)
    POST /stocktakes/{id}/counts           {"sku", "lot"? ("" = unlotted stock), "counted" (pieces or grams),
                                           "counted_by"}: any number of times while selling goes on; a recount
                                           replaces the earlier count of that (sku, lot). The answer shows no book.
    GET  /stocktakes/{id}                  the manager's review (headers X-Manager-Id, X-Manager-Pin: 401/403 as for
                                           approving): per counted line the book at count, the variance in units and
                                           valued at cost and at price; the lines not counted yet
    POST /stocktakes/{id}/approve          {"manager_id", "pin", "zero_uncounted"?: false}: a manager (a cashier of the
                                           box config with "role": "manager") posts the variances; 401 an unknown id
                                           or wrong PIN, 403 not a manager (the detail says why)
    POST /stocktakes/{id}/cancel           {"cancelled_by"}: nothing posted

Who opens, counts or cancels is named by cashier id; a box with cashiers configured takes only theirs (404 naming the
field otherwise), as receiving does.

Refusals are problem+json naming what was wrong: 404 no such stocktake, SKU or lot in its scope, 409 a SKU held by
another open stocktake or a stocktake already posted or cancelled, 422 a malformed body. The decisions are
`edge/core/stocktake.py`, run in the store actor's mailbox by `edge/stocktake_ops.py`.
"""
from __future__ import annotations

import json
from typing import Any

from starlette.routing import Route

from edge.core.outcome import Refused
from edge.core.stocktake import Approver, Scope, check_approver
from edge.staff import known_cashier
from protocol.errors import ProtocolError
from protocol.ids import is_id
from protocol.lots import check_lot
from protocol.messages import NAME_RE, SKU_RE
from protocol.schema import record, record_from_wire, require
from protocol.stocktake_messages import COUNT_MAX

BODY_MAX_BYTES = 64 * 1024  # a scope may name a few hundred SKUs
SCOPE_ITEMS_MAX = 500
STATUSES = ("open", "posted", "cancelled")
KIND_NAMES = {"skus": "a sku", "categories": "a category", "areas": "an area"}


def _name(value: str, what: str) -> None:
    require(bool(NAME_RE.fullmatch(value)), f"{what}: 1-32 letters, digits, '_' or '-'")


@record
class OpenBody:
    scope: dict[str, Any]  # {"all": true} | {"categories"|"areas"|"skus": [...]} ("all" is read as {"all": true})
    opened_by: str
    stocktake_id: str | None = None

    def __post_init__(self) -> None:
        _name(self.opened_by, "opened_by")
        require(self.stocktake_id is None or is_id(self.stocktake_id), "stocktake_id: not an id")
        require(len(self.scope) == 1 and next(iter(self.scope)) in ("all", "categories", "areas", "skus"),
                'scope: "all", {"categories": [...]}, {"areas": [...]} or {"skus": [...]}')
        kind, items = next(iter(self.scope.items()))
        if kind == "all":
            require(items is True, 'scope: "all"')
            return
        require(isinstance(items, list) and 0 < len(items) <= SCOPE_ITEMS_MAX,
                f"scope.{kind}: a list of 1-{SCOPE_ITEMS_MAX}")
        for item in items:
            ok = isinstance(item, str) and (bool(SKU_RE.match(item)) if kind == "skus" else 0 < len(item) <= 64)
            require(ok, f"scope.{kind}: {str(item)[:48]!r} is not {KIND_NAMES[kind]}")

    def as_scope(self) -> Scope:
        kind, items = next(iter(self.scope.items()))
        return "all" if kind == "all" else {kind: list(dict.fromkeys(items))}


@record
class CountBody:
    sku: str
    counted: int
    counted_by: str
    lot: str = ""

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"sku: invalid sku {self.sku[:48]!r}")
        check_lot(self.lot, "lot")
        require(0 <= self.counted <= COUNT_MAX, f"counted: 0..{COUNT_MAX} (pieces, or grams if sold by the kg)")
        _name(self.counted_by, "counted_by")


@record
class ApproveBody:
    manager_id: str
    pin: str
    zero_uncounted: bool = False

    def __post_init__(self) -> None:
        _name(self.manager_id, "manager_id")
        require(0 < len(self.pin) <= 32, "pin: 1-32 characters")


@record
class CancelBody:
    cancelled_by: str

    def __post_init__(self) -> None:
        _name(self.cancelled_by, "cancelled_by")


def routes(box, endpoint) -> list[Route]:
    """`endpoint(fn, body_cls)`: the lane API's handler wrapper (path ids checked, bodies parsed, refusals mapped)."""
    actor = box.actor

    async def open_(request, body):
        raw = b""
        async for chunk in request.stream():  # refused as it grows, not after reading it all
            raw += chunk
            if len(raw) > BODY_MAX_BYTES:
                raise Refused(413, f"body exceeds {BODY_MAX_BYTES} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ProtocolError("body is not valid JSON") from None
        if isinstance(data, dict) and data.get("scope") == "all":
            data["scope"] = {"all": True}
        parsed = record_from_wire(OpenBody, data, "body")
        known_cashier(box, parsed.opened_by, "opened_by")
        return await actor.ask("stocktake", action="open", scope=parsed.as_scope(), opened_by=parsed.opened_by,
                               stocktake_id=parsed.stocktake_id)

    def created(handle):
        async def wrapped(request):
            response = await handle(request)
            if response.status_code == 200:
                response.status_code = 201
            return response
        return wrapped

    async def listed(request, body):
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            raise ProtocolError(f"status: one of {', '.join(STATUSES)}")
        return await actor.ask("stocktake", action="listed", status=status)

    async def manager(request) -> Approver:
        """The review shows the book quantities the count is blind to: only a manager sees it (PIN in headers)."""
        who, pin = request.headers.get("x-manager-id", ""), request.headers.get("x-manager-pin", "")
        if not who or not pin:
            raise Refused(401, "the review shows book quantities: send a manager's X-Manager-Id and X-Manager-Pin")
        _name(who, "X-Manager-Id")
        require(len(pin) <= 32, "X-Manager-Pin: 1-32 characters")
        pins = box.cashier_pins
        approver = Approver(who, await pins.verify(who, pin, box.clock.monotonic_ms()), pins.role(who) or "cashier")
        check_approver(approver, request.path_params["stocktake_id"])
        return approver

    async def view(request, body):
        await manager(request)
        return await actor.ask("stocktake", action="view", stocktake_id=request.path_params["stocktake_id"])

    async def sheet(request, body):
        return await actor.ask("stocktake", action="sheet", stocktake_id=request.path_params["stocktake_id"])

    async def count(request, body: CountBody):
        known_cashier(box, body.counted_by, "counted_by")
        return await actor.ask("stocktake", action="count", stocktake_id=request.path_params["stocktake_id"],
                               sku=body.sku, lot=body.lot, counted=body.counted, counted_by=body.counted_by)

    async def approve(request, body: ApproveBody):
        pins = box.cashier_pins
        pin_ok = await pins.verify(body.manager_id, body.pin, box.clock.monotonic_ms())  # argon2, off the loop
        approver = Approver(body.manager_id, pin_ok, pins.role(body.manager_id) or "cashier")
        return await actor.ask("stocktake", action="approve", stocktake_id=request.path_params["stocktake_id"],
                               approver=approver, zero_uncounted=body.zero_uncounted)

    async def cancel(request, body: CancelBody):
        known_cashier(box, body.cancelled_by, "cancelled_by")
        return await actor.ask("stocktake", action="cancel", stocktake_id=request.path_params["stocktake_id"],
                               by=body.cancelled_by)

    return [Route("/stocktakes", created(endpoint(open_)), methods=["POST"]),
            Route("/stocktakes", endpoint(listed), methods=["GET"]),
            Route("/stocktakes/{stocktake_id}", endpoint(view), methods=["GET"]),
            Route("/stocktakes/{stocktake_id}/sheet", endpoint(sheet), methods=["GET"]),
            Route("/stocktakes/{stocktake_id}/counts", endpoint(count, CountBody), methods=["POST"]),
            Route("/stocktakes/{stocktake_id}/approve", endpoint(approve, ApproveBody), methods=["POST"]),
            Route("/stocktakes/{stocktake_id}/cancel", endpoint(cancel, CancelBody), methods=["POST"])]
