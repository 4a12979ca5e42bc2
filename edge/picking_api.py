"""The back-room picking API of the store box (served with the lanes, local to the store):

    GET  /picking/orders                              the orders to pick (earliest slot first), with what is recorded
    GET  /picking/orders/{order_id}                   one order
    POST /picking/orders/{order_id}/start             a picker takes it (the cloud hears `start_picking`)
    POST /picking/orders/{order_id}/lines/{sku}       {"qty"} pieces | {"weight_g"} grams (none: the scale's stable
                                                      reading) | {"qty"/"weight_g": 0} short | + {"substitute_sku",
                                                      "substitute_qty"[, "short"]}
    POST /picking/orders/{order_id}/done              stock out, `OrderPicked` to the cloud, in one transaction

Refusals are problem+json naming what was wrong: 404 unknown order, line or product, 409 not in a state for it (or
the scale not ready), 422 a weight outside the product's tolerance or quantities that do not add up, 403 a
substitute the customer did not allow. The decisions are `edge/core/picking.py`."""
from __future__ import annotations

from starlette.routing import Route

from edge.core.picking import PickRequest
from edge.store_actor import Refused
from protocol.messages import SKU_RE
from protocol.schema import record, require

WEIGHT_MAX_G = 100_000  # one order line: 100 kg


@record
class PickLineBody:
    qty: int | None = None
    weight_g: int | None = None
    substitute_sku: str | None = None
    substitute_qty: int = 0
    short: int | None = None

    def __post_init__(self) -> None:
        require(self.qty is None or 0 <= self.qty <= 100_000, "qty: 0..100000 pieces")
        require(self.weight_g is None or 0 <= self.weight_g <= WEIGHT_MAX_G, f"weight_g: 0..{WEIGHT_MAX_G} grams")
        require(self.qty is None or self.weight_g is None, "give qty (pieces) or weight_g (grams), not both")
        require(self.substitute_sku is None or bool(SKU_RE.match(self.substitute_sku)),
                "substitute_sku: not a sku")
        require(0 <= self.substitute_qty <= 100_000, "substitute_qty: 0..100000")
        require(self.short is None or self.short >= 0, "short: must not be negative")


def picking_routes(box, endpoint) -> list[Route]:
    """`endpoint(fn, body_cls)`: the lane API's handler wrapper (path ids checked, bodies parsed, refusals mapped)."""
    actor = box.actor

    async def pick_list(request, body):
        return await actor.ask("pick_list")

    async def view(request, body):
        return await actor.ask("pick_view", order_id=request.path_params["order_id"])

    async def start(request, body):
        return await actor.ask("pick_start", order_id=request.path_params["order_id"])

    async def line(request, body: PickLineBody):
        sku = request.path_params["sku"]
        weight = body.weight_g
        product = actor.books.product(sku)
        if (weight is None and body.qty is None and body.substitute_sku is None and product is not None
                and product.weighed):
            if box.scale is None:
                raise Refused(409, "no scale configured on this box: give weight_g")
            weight = await box.scale.read_stable()  # stable readings only (DeviceNotReady: 409)
        request_ = PickRequest(qty=body.qty, weight_g=weight, substitute_sku=body.substitute_sku,
                               substitute_qty=body.substitute_qty, short=body.short)
        return await actor.ask("pick_line", order_id=request.path_params["order_id"], sku=sku, request=request_)

    async def done(request, body):
        return await actor.ask("pick_done", order_id=request.path_params["order_id"])

    return [
        Route("/picking/orders", endpoint(pick_list), methods=["GET"]),
        Route("/picking/orders/{order_id}", endpoint(view), methods=["GET"]),
        Route("/picking/orders/{order_id}/start", endpoint(start), methods=["POST"]),
        Route("/picking/orders/{order_id}/lines/{sku}", endpoint(line, PickLineBody), methods=["POST"]),
        Route("/picking/orders/{order_id}/done", endpoint(done), methods=["POST"]),
    ]
