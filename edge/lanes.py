"""The lane API for the cashier terminal (local to the store box): scan, weigh, member, cart (view, void), pay,
cashier sign-in and out, cash top-ups of stored value, pickups, receiving, deliveries (goods back, own staff),
returns and after-sales, health; and picking online orders in the back room (`edge/picking_api.py`)."""
from __future__ import annotations

import asyncio
import collections
import json
import sqlite3

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from edge import (
    coupons,
    label_scale_routes,
    lane_guard,
    limit_ops,
    markdowns_api,
    points_till,
    receiving_api,
    restock_api,
    returns_api,
    split_pay,
    stocktake_api,
    stored_value,
)
from edge.cashier_pins import SignInBody
from edge.core.cart import IDEMPOTENCY_KEY_MAX, UnknownProduct
from edge.core.split_tender import Tender
from edge.delivery_routes import ReturnedBody, StaffBody, listed
from edge.devices.serial_driver import DeviceNotReady
from edge.disk import is_disk_full
from edge.picking_api import picking_routes
from edge.shelf_areas_api import routes as shelf_area_routes
from edge.store_actor import Busy, Refused
from edge.till import routes as till_routes
from edge.transfers_api import transfer_routes
from protocol import codec
from protocol.errors import ProtocolError
from protocol.gs1 import printable_fnc1
from protocol.messages import check_lane
from protocol.schema import from_wire, record, record_from_wire, require

PROBLEM = "application/problem+json"
MAX_BODY_BYTES = 16 * 1024  # the largest lane body is a few fields
MAX_BODY_NESTING = 4
PAID_KEYS_MAX = 1_000  # pays remembered by Idempotency-Key (this process's life: a retry comes within seconds)


def problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": {401: "Unauthorized", 403: "Forbidden", 404: "Not found",
                                                          409: "Conflict", 422: "Invalid",
                                                          503: "Unavailable"}.get(status, "Error"),
                         "status": status, "detail": detail}, status_code=status, media_type=PROBLEM,
                        headers={"Retry-After": "1"} if status == 503 else None)


@record
class ScanBody:
    code: str


@record
class WeighBody:
    sku: str


@record
class MemberBody:
    phone: str | None = None
    member_code: str | None = None

    def __post_init__(self) -> None:
        require((self.phone is None) != (self.member_code is None), "give exactly one of phone or member_code")


@record
class ReceiveBody:
    qty: int

    def __post_init__(self) -> None:
        require(0 < self.qty <= 10_000_000, "qty: 1..10000000 (pieces, or grams if sold by the kg)")


@record
class SplitBody:
    method: str  # stored_value | wallet_sim
    amount_fen: int


@record
class PayBody:
    method: str
    tendered_fen: int = 0
    points: int = 0  # points paying part of the sale (edge/points_till.py)
    first: SplitBody | None = None  # a split: this part first, `method` the rest (edge/split_pay.py)

    def __post_init__(self) -> None:
        require(self.method in ("cash", "stored_value", "wallet_sim"), "method: one of cash, stored_value, wallet_sim")
        require(self.tendered_fen >= 0, "tendered_fen: must not be negative")


@record
class TopUpBody:
    amount_fen: int

    def __post_init__(self) -> None:
        require(self.amount_fen > 0, "amount_fen: must be positive")


def fnc1_printable(data):
    """A scan body's code with GS1's FNC1 (a control character, refused in text) as its printable stand-in."""
    if isinstance(data, dict) and isinstance(data.get("code"), str):
        return {**data, "code": printable_fnc1(data["code"])}
    return data


async def member_asks(box, lane: str, cart: dict) -> dict:
    """Online, once a member is identified: their uses of limited rules (the cart priced with them) and their
    coupons for an offline period, asked of the cloud at once (independent: the lane waits for the slower, each at
    most HOLD_TIMEOUT_MS). The coupons go onto the member's view, which the priced cart shares."""
    priced, _ = await asyncio.gather(limit_ops.ask(box, lane, cart), coupons.snapshot(box, cart))
    priced["member"] = cart.get("member")
    return priced


def build_lane_app(box) -> Starlette:
    """`box` has .actor (StoreActor), .scale (a driver with read_stable()), .health()."""
    actor = box.actor

    def endpoint(fn, body_cls=None, prepare=None, max_bytes: int = MAX_BODY_BYTES):
        """`prepare`: turns the parsed JSON into what `body_cls` reads (a route's own shorthand), before the record
        is checked; `max_bytes`: the route's body limit (a few fields by default)."""
        async def handle(request: Request):
            try:
                for name, value in request.path_params.items():  # what the cloud would refuse, refused here
                    from_wire(str, value, name)
                if "lane" in request.path_params:
                    check_lane(request.path_params["lane"])
                lane_guard.check(box, request.method, request.url.path, request.path_params, request.query_params)
                body = None
                if body_cls is not None:
                    raw = b""
                    async for chunk in request.stream():  # refused as it grows, not after reading it all
                        raw += chunk
                        if len(raw) > max_bytes:
                            return problem(413, f"body exceeds {max_bytes} bytes")
                    try:
                        data = json.loads(raw)
                    except (ValueError, RecursionError):
                        return problem(400, "body is not valid JSON")
                    codec.check_depth(data, MAX_BODY_NESTING)  # a ProtocolError: 422 below
                    body = record_from_wire(body_cls, prepare(data) if prepare else data, "body")
                result = await fn(request, body)
                status = 201 if request.method == "POST" and request.url.path.endswith(
                    ("/pay", "/top-ups", "/returns", "/receivings", "/shrinkage", "/transfers")) else 200
                return JSONResponse(result, status_code=status)
            except UnknownProduct as exc:
                return problem(404, str(exc))
            except ProtocolError as exc:
                return problem(422, str(exc))
            except Refused as exc:
                return problem(exc.status, str(exc))
            except Busy as exc:
                return problem(503, str(exc))
            except DeviceNotReady as exc:
                return problem(409, str(exc))
            except (sqlite3.Error, OSError) as exc:  # a full disk: 503 naming it, nothing written (edge/disk.py)
                if not is_disk_full(exc):
                    raise
                return problem(503, box.disk.refused(exc))
        return handle

    def retry_key(request) -> str | None:
        """A scan's, weighing's or pay's Idempotency-Key: a retried scan or weighing is added to the cart once
        (edge/core/cart.py), a retried pay answers the sale it made."""
        key = request.headers.get("Idempotency-Key") or None
        if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
            raise ProtocolError(f"Idempotency-Key: at most {IDEMPOTENCY_KEY_MAX} characters")
        return key

    async def scan(request, body):
        if coupons.looks_like_code(body.code):  # a coupon's code goes to the cart as a coupon (edge/coupons.py)
            return await coupons.scan(box, request.path_params["lane"], body.code)
        return await actor.ask("scan", lane=request.path_params["lane"], code=body.code, key=retry_key(request))

    async def weigh(request, body):
        if box.scale is None:
            raise Refused(409, "no scale configured on this box")
        key = retry_key(request)
        reading = await box.scale.read_stable()
        return await actor.ask("weighed", lane=request.path_params["lane"], sku=body.sku, grams=reading, key=key)

    async def member(request, body):
        cart = await actor.ask("member", lane=request.path_params["lane"], phone=body.phone, member_code=body.member_code)
        return await member_asks(box, request.path_params["lane"], cart)

    async def cart(request, body):
        return await actor.ask("cart_view", lane=request.path_params["lane"])

    async def void(request, body):  # the coupons held for the cart go back too (edge/coupons.py)
        return await coupons.void(box, request.path_params["lane"])

    paid: collections.OrderedDict[tuple[str, str], dict] = collections.OrderedDict()  # (lane, key) -> its sale

    async def pay(request, body):
        lane, key = request.path_params["lane"], retry_key(request)
        if key is not None and (lane, key) in paid:  # the sale was made; its answer was lost: the same answer
            return paid[(lane, key)]
        try:
            if body.first is not None:  # two tenders, all or nothing (edge/split_pay.py)
                reply = await split_pay.pay(box, lane, body.method, body.tendered_fen,
                                            Tender(body.first.method, body.first.amount_fen), body.points)
            elif body.points:  # points pay part of the sale, the method the rest
                reply = await points_till.pay(box, lane, body.method, body.tendered_fen, body.points)
            else:
                reply = await stored_value.pay(box, lane, body.method, body.tendered_fen)
        finally:
            await coupons.give_back(box)  # the sale's unused coupon holds (edge/coupons.py)
        if key is not None:
            paid[(lane, key)] = reply
            while len(paid) > PAID_KEYS_MAX:
                paid.popitem(last=False)
        return reply

    async def sign_in(request, body):
        pin_ok = await box.cashier_pins.verify(body.cashier_id, body.pin, box.clock.monotonic_ms())  # argon2, off the loop
        return await actor.ask("sign_in", lane=request.path_params["lane"], cashier_id=body.cashier_id, pin_ok=pin_ok)

    async def sign_out(request, body):
        return await actor.ask("sign_out", lane=request.path_params["lane"])

    async def top_up(request, body):
        return await actor.ask("top_up", lane=request.path_params["lane"], amount_fen=body.amount_fen)

    async def pickup(request, body):
        return await actor.ask("pickup", pickup_code=request.path_params["code"])

    async def receive(request, body):
        return await actor.ask("receive", sku=request.path_params["sku"], qty=body.qty)

    async def health(request, body):
        return await box.health()

    async def stock(request, body):  # every SKU's on-hand, the cloud's escrow, and the lots (use-by, cost)
        return {"store_id": box.store_id, "stock": await box.store_db.stock_view()}

    async def stock_audit(request, body):  # Σ movements = on_hand, per SKU and per lot
        return {"store_id": box.store_id, "violations": await box.store_db.stock_audit()}

    async def returned(request, body):  # goods of an undelivered order back: on hand or to shrinkage
        return await actor.ask("book_returned", order_id=request.path_params["order_id"], to=body.to,
                               reason=body.reason)

    async def deliveries(request, body):  # which deliveries are back (or out with staff): edge/delivery_routes.py
        return await listed(box.store_db.reader, request.query_params.get("status"))

    async def own_staff(request, body):  # the store's staff deliver instead of a rider
        return await actor.ask("staff_delivery", order_id=request.path_params["order_id"], step="out",
                               staff_id=body.staff_id)

    async def staff_delivered(request, body):
        return await actor.ask("staff_delivery", order_id=request.path_params["order_id"], step="delivered",
                               staff_id=body.staff_id)

    return Starlette(routes=[
        Route("/lanes/{lane}/scan", endpoint(scan, ScanBody, prepare=fnc1_printable), methods=["POST"]),
        Route("/lanes/{lane}/weigh", endpoint(weigh, WeighBody), methods=["POST"]),
        Route("/lanes/{lane}/member", endpoint(member, MemberBody), methods=["POST"]),
        Route("/lanes/{lane}/cart", endpoint(cart), methods=["GET"]),
        Route("/lanes/{lane}/cart", endpoint(void), methods=["DELETE"]),
        Route("/lanes/{lane}/pay", endpoint(pay, PayBody), methods=["POST"]),
        Route("/lanes/{lane}/cashier", endpoint(sign_in, SignInBody), methods=["POST"]),
        Route("/lanes/{lane}/cashier", endpoint(sign_out), methods=["DELETE"]),
        Route("/lanes/{lane}/top-ups", endpoint(top_up, TopUpBody), methods=["POST"]),
        Route("/pickups/{code}", endpoint(pickup), methods=["POST"]),
        Route("/stock/{sku}/receive", endpoint(receive, ReceiveBody), methods=["POST"]),
        Route("/stock", endpoint(stock), methods=["GET"]),
        Route("/stock/audit", endpoint(stock_audit), methods=["GET"]),
        Route("/deliveries", endpoint(deliveries), methods=["GET"]),
        Route("/deliveries/{order_id}/returned", endpoint(returned, ReturnedBody), methods=["POST"]),
        Route("/deliveries/{order_id}/own-staff", endpoint(own_staff, StaffBody), methods=["POST"]),
        Route("/deliveries/{order_id}/delivered", endpoint(staff_delivered, StaffBody), methods=["POST"]),
        Route("/health", endpoint(health), methods=["GET"]),
        *returns_api.routes(box, endpoint),
        *receiving_api.routes(box, endpoint),  # delivery notes and shrinkage: edge/receiving_api.py
        *picking_routes(box, endpoint),  # the back room: edge/picking_api.py
        *markdowns_api.routes(box, endpoint),  # markdown labels, what is marked down now: edge/markdowns_api.py
        *stocktake_api.routes(box, endpoint),  # count sessions: edge/stocktake_api.py
        *shelf_area_routes(box, endpoint),  # PUT/GET /areas, the store's shelf areas: edge/shelf_areas_api.py
        *transfer_routes(box, endpoint),  # transfers between stores: edge/transfers_api.py
        *label_scale_routes.routes(box, endpoint),  # GET /label-scales: edge/label_scale_routes.py
        *restock_api.routes(box, endpoint),  # restock alerts and points: edge/restock_api.py
        *coupons.routes(box, endpoint),  # POST /lanes/{lane}/coupon: edge/coupons.py
        *till_routes.routes(box, endpoint),  # the cashier's page, GET /till/{lane}: edge/till/routes.py
    ])
