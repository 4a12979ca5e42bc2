"""The store's shelf areas on the box's lane API (local to the store, works with the cloud unreachable):

    GET /areas      the map, area by area: {"areas": [{"area", "skus": [{"sku", "name"}]}], "skus", "set_by",
                    "set_ms"}
    PUT /areas      {"manager_id", "pin", "areas": {"<sku>": "<area>", ...}}: a manager (a cashier of the box config
                    with "role": "manager") replaces the whole map -> 200 the map as GET shows it; 401 an unknown id
                    or wrong PIN, 403 not a manager, 404 an unknown SKU (named), 422 a bad area name (named);
                    nothing changes on any refusal

A stocktake may then be scoped by areas: `POST /stocktakes {"scope": {"areas": ["果蔬A区"]}, ...}`
(edge/stocktake_api.py); its count sheet lists each SKU's area. The decisions are `edge/core/shelf_areas.py`, run in
the store actor's mailbox (`edge/stocktake_ops.py`).
"""
from __future__ import annotations

from typing import Any

from starlette.routing import Route

from edge.core.shelf_areas import AREAS_MAX, Manager
from protocol.messages import NAME_RE, SKU_RE
from protocol.schema import record, require

BODY_MAX_BYTES = 512 * 1024  # a large store's whole map: thousands of SKUs


@record
class AreasBody:
    manager_id: str
    pin: str
    areas: dict[str, Any]

    def __post_init__(self) -> None:
        require(bool(NAME_RE.fullmatch(self.manager_id)), "manager_id: 1-32 letters, digits, '_' or '-'")
        require(0 < len(self.pin) <= 32, "pin: 1-32 characters")
        require(len(self.areas) <= AREAS_MAX, f"areas: at most {AREAS_MAX} SKUs")
        for sku, area in self.areas.items():
            require(bool(SKU_RE.match(sku)), f"areas: {sku[:48]!r} is not a sku")
            require(isinstance(area, str), f"areas.{sku}: an area is a text")


def routes(box, endpoint) -> list[Route]:
    """`endpoint(fn, body_cls)`: the lane API's handler wrapper (bodies parsed, refusals mapped)."""
    actor = box.actor

    async def listed(request, body):
        return await actor.ask("stocktake", action="areas")

    async def replace(request, body: AreasBody):
        pins = box.cashier_pins
        pin_ok = await pins.verify(body.manager_id, body.pin, box.clock.monotonic_ms())  # argon2, off the loop
        manager = Manager(body.manager_id, pin_ok, pins.role(body.manager_id) or "cashier")
        return await actor.ask("stocktake", action="set_areas", areas=body.areas, manager=manager)

    return [Route("/areas", endpoint(listed), methods=["GET"]),
            Route("/areas", endpoint(replace, AreasBody, max_bytes=BODY_MAX_BYTES), methods=["PUT"])]
