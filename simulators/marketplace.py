"""A SIMULATED third-party marketplace (shaped like Meituan Shangou / Ele.me retail / JD Daojia's open platforms),
run as its own small HTTP service. No real customer buys anything; everything it answers says `"platform":
"simulated"` and its log lines start "MARKETPLACE (simulated)".

Its shops are the chain's stores, by the chain's own store id (the merchant's shop code, as those platforms let a
merchant name its shops). Every merchant request is signed with the app secret (`protocol/partner_signing.py`,
`Mkt-` headers; 401 otherwise) and every webhook it pushes is signed the same way.

The merchant's API:
- `PUT /v1/shops/{shop}/stock` `{"items": [{"sku", "stock"}]}`: the units the shop offers (absolute, >= 0); the
  marketplace sells no more than that: each order takes its units off, a cancelled one puts them back.
- `PUT /v1/shops/{shop}/prices` `{"items": [{"sku", "price_fen", "name"?}]}`; `GET /v1/shops/{shop}/items`.
- `POST /v1/orders/{id}/confirm` (the merchant takes the order), `/ready` (packed: the platform's rider collects it
  after `rider_delay_ms`, then delivers after `step_ms`: `order.picked_up`, `order.delivered` webhooks), `/reject`
  `{"reason"}` (the merchant cannot serve it: cancelled, the customer refunded by the platform, its units back).
- `POST /v1/refunds/{id}/agree` and `/reject` `{"reason"}`; `GET /v1/orders/{id}`.
- `POST /v1/orders/{id}/part-refund` `{"out_refund_no", "amount_fen", "reason"}`: the merchant gives part of the money
  back itself (a line it could not pack); once per `out_refund_no`, never past the order's total.
- With probability `fail_rate` a merchant request answers 503 and changes nothing (retry).

Webhooks (POST to `callback_url`, signed, `{"event_id", "event", "at_ms", "platform", ...}`): `order.created` (the
order with its own id `MK…`, shop, items with prices, total, a masked customer), `order.cancelled` (`reason`:
`customer_cancelled`, `merchant_timeout`, `merchant_rejected`), `order.picked_up`, `order.delivered`,
`refund.requested` (`refund_id`, items, amount), `refund.decided`. Each is resent until answered 2xx (a few tries,
backing off), after `delay_ms`, and sent twice with probability `duplicate_rate`. An order the merchant has not
confirmed within `confirm_timeout_ms` is cancelled (`merchant_timeout`).

The platform's customers (tests and the demo drive them):
- `POST /sim/orders` `{"shop_id", "items": [{"sku", "qty"}], "customer"?: {"name", "phone"}}`: 409 when the shop
  offers fewer units than asked (what the merchant pushed), else the order.
- `POST /sim/orders/{id}/cancel` (before it is ready), `POST /sim/orders/{id}/refund` `{"items": [{"sku", "qty"}],
  "reason"}` (after delivery).
- `GET /sim/webhooks?order_id=`: every webhook sent and how the merchant answered each push; `GET /health`: counters.

Start it: `freshmesh sim marketplace --port P --app-key K --app-secret S --callback-url URL [...]`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from protocol.partner_signing import Scheme
from simulators.partner_sim import PLATFORM, PartnerSim, Refused, now_ms
from simulators.sim_http import ServiceThread, run_in_foreground

LABEL = "MARKETPLACE (simulated)"
SIGNING = Scheme("Mkt")
BODY_MAX_BYTES = 32_768
ITEMS_MAX = 200
UNITS_MAX = 1_000_000
CANCELLABLE = ("created", "confirmed")  # by the customer; once packed it is on its way
log = logging.getLogger("freshmesh.sim.marketplace")


@dataclass(frozen=True)
class Settings:
    app_key: str
    app_secret: str
    callback_url: str
    delay_ms: int = 0  # before a webhook is first pushed
    rider_delay_ms: int = 1_000  # from ready to the platform's rider collecting it
    step_ms: int = 1_000  # from collected to delivered
    confirm_timeout_ms: int = 300_000
    fail_rate: float = 0.0
    duplicate_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "duplicate_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if not self.app_key or not self.app_secret:
            raise ValueError("app_key and app_secret are required")
        if not self.callback_url.startswith(("http://", "https://")):
            raise ValueError("callback_url: the merchant's webhook URL, http(s)")


def _items(data: dict, field: str, allowed: tuple[str, ...]) -> list[dict]:
    """`data["items"]`: a list of {sku, <field> int >= 0 (> 0 for qty)}, each sku once."""
    items = data.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= ITEMS_MAX:
        raise Refused(400, "PARAM_ERROR", f"items: a list of 1 to {ITEMS_MAX}")
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {"sku", field, *allowed}:
            raise Refused(400, "PARAM_ERROR", f"items[{i}]: an object with sku and {field}")
        sku, value = item.get("sku"), item.get(field)
        if not isinstance(sku, str) or not 1 <= len(sku) <= 64 or "\x00" in sku:
            raise Refused(400, "PARAM_ERROR", f"items[{i}].sku: 1 to 64 characters")
        least = 1 if field == "qty" else 0
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= UNITS_MAX:
            raise Refused(400, "PARAM_ERROR", f"items[{i}].{field}: an integer {least}..{UNITS_MAX}")
        if sku in seen:
            raise Refused(400, "PARAM_ERROR", f"items[{i}].sku: {sku} named twice")
        seen.add(sku)
    return items


class SimulatedMarketplace:
    """The simulated platform's state and answers; one event loop, no locks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.partner = PartnerSim(LABEL, SIGNING, settings.app_key, settings.app_secret, settings.fail_rate,
                                  settings.seed, BODY_MAX_BYTES)
        self.stock: dict[tuple[str, str], int] = {}  # (shop, sku) -> units offered now
        self.prices: dict[tuple[str, str], dict] = {}  # (shop, sku) -> {price_fen, name}
        self.orders: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.sent: list[dict] = []
        self.counts = dict.fromkeys(("orders", "sold_out", "confirmed", "rejected", "cancelled", "timed_out",
                                     "delivered", "refunds", "merchant_refunds", "duplicated", "stock_updates"), 0)

    # ---- the merchant's requests (simulators/partner_sim.py checks them) ----------------------------------------
    async def _signed(self, request: Request) -> dict:
        return await self.partner.signed_request(request)

    def _refused(self, refused: Refused) -> JSONResponse:
        return self.partner.answer_refused(refused)

    async def put_stock(self, request: Request) -> JSONResponse:
        try:
            items = _items(await self._signed(request), "stock", ())
        except Refused as refused:
            return self._refused(refused)
        shop = request.path_params["shop"]
        for item in items:
            self.stock[(shop, item["sku"])] = item["stock"]
        self.counts["stock_updates"] += 1
        return JSONResponse({"updated": len(items), "platform": PLATFORM})

    async def put_prices(self, request: Request) -> JSONResponse:
        try:
            items = _items(await self._signed(request), "price_fen", ("name",))
        except Refused as refused:
            return self._refused(refused)
        shop = request.path_params["shop"]
        for item in items:
            self.prices[(shop, item["sku"])] = {"price_fen": item["price_fen"], "name": str(item.get("name", ""))[:64]}
        return JSONResponse({"updated": len(items), "platform": PLATFORM})

    async def get_items(self, request: Request) -> JSONResponse:
        try:
            await self._signed(request)
        except Refused as refused:
            return self._refused(refused)
        return JSONResponse({"items": self._shop_items(request.path_params["shop"]), "platform": PLATFORM})

    def _shop_items(self, shop: str) -> list[dict]:
        skus = sorted({k for s, k in self.stock if s == shop} | {k for s, k in self.prices if s == shop})
        return [{"sku": k, "stock": self.stock.get((shop, k), 0), **self.prices.get((shop, k), {})} for k in skus]

    def _order(self, request: Request) -> dict:
        order = self.orders.get(request.path_params["oid"])
        if order is None:
            raise Refused(404, "ORDER_NOT_EXIST", "no such order")
        return order

    async def confirm(self, request: Request) -> JSONResponse:
        try:
            await self._signed(request)
            order = self._order(request)
            if order["status"] not in ("created", "confirmed"):
                raise Refused(409, "ORDER_STATUS_ERROR", f"the order is {order['status']}")
        except Refused as refused:
            return self._refused(refused)
        if order["status"] == "created":
            order["status"] = "confirmed"
            self.counts["confirmed"] += 1
        return JSONResponse(self._view(order))

    async def ready(self, request: Request) -> JSONResponse:
        try:
            await self._signed(request)
            order = self._order(request)
            if order["status"] not in ("confirmed", "ready"):
                raise Refused(409, "ORDER_STATUS_ERROR", f"the order is {order['status']}: confirm it first")
        except Refused as refused:
            return self._refused(refused)
        if order["status"] == "confirmed":
            order["status"] = "ready"
            self.partner.spawn(self._ride(order))
        return JSONResponse(self._view(order))

    async def reject(self, request: Request) -> JSONResponse:
        try:
            data = await self._signed(request)
            order = self._order(request)
            if order["status"] not in ("created", "confirmed", "cancelled"):
                raise Refused(409, "ORDER_STATUS_ERROR", f"the order is {order['status']}: too late to reject")
        except Refused as refused:
            return self._refused(refused)
        if order["status"] != "cancelled":
            self.counts["rejected"] += 1
            await self._cancel(order, "merchant_rejected", str(data.get("reason", ""))[:120])
        return JSONResponse(self._view(order))

    async def decide_refund(self, request: Request) -> JSONResponse:
        try:
            data = await self._signed(request)
            refund = self.refunds.get(request.path_params["rid"])
            if refund is None:
                raise Refused(404, "REFUND_NOT_EXIST", "no such refund")
        except Refused as refused:
            return self._refused(refused)
        decision = "agreed" if request.url.path.endswith("/agree") else "rejected"
        if refund["status"] == "requested":
            refund.update(status=decision, reason_decided=str(data.get("reason", ""))[:120])
            self.partner.spawn(self._webhook("refund.decided", {"refund_id": refund["refund_id"],
                                                         "order_id": refund["order_id"], "status": decision}))
        return JSONResponse({**refund, "platform": PLATFORM})

    async def part_refund(self, request: Request) -> JSONResponse:
        """The merchant gives part of an order's money back itself (a line it could not pack): the platform refunds
        its customer that much. Once per `out_refund_no` (the same again answers the first)."""
        try:
            data = await self._signed(request)
            order = self._order(request)
            out_no, amount = data.get("out_refund_no"), data.get("amount_fen")
            if not isinstance(out_no, str) or not 1 <= len(out_no) <= 128:
                raise Refused(400, "PARAM_ERROR", "out_refund_no: 1 to 128 characters")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
                raise Refused(400, "PARAM_ERROR", "amount_fen: a positive integer")
            done = next((r for r in self.refunds.values() if r.get("out_refund_no") == out_no), None)
            if done is not None:
                return JSONResponse({**done, "platform": PLATFORM})
            if order["status"] == "cancelled":
                raise Refused(409, "ORDER_STATUS_ERROR", "the order is cancelled: refunded whole already")
            given = sum(r["amount_fen"] for r in self.refunds.values()
                        if r["order_id"] == order["order_id"] and r["status"] == "agreed")
            if given + amount > order["total_fen"]:
                raise Refused(409, "REFUND_EXCEED", f"{given} of {order['total_fen']} fen refunded already")
        except Refused as refused:
            return self._refused(refused)
        refund = {"refund_id": "RF" + uuid.uuid4().hex[:14].upper(), "order_id": order["order_id"], "items": [],
                  "amount_fen": amount, "reason": str(data.get("reason", ""))[:120], "status": "agreed",
                  "by": "merchant", "out_refund_no": out_no}
        self.refunds[refund["refund_id"]] = refund
        self.counts["merchant_refunds"] += 1
        return JSONResponse({**refund, "platform": PLATFORM}, status_code=201)

    async def get_order(self, request: Request) -> JSONResponse:
        try:
            await self._signed(request)
            order = self._order(request)
        except Refused as refused:
            return self._refused(refused)
        refunds = [r for r in self.refunds.values() if r["order_id"] == order["order_id"]]
        return JSONResponse({**self._view(order), "refunds": refunds,
                             "refunded_fen": sum(r["amount_fen"] for r in refunds if r["status"] == "agreed")})

    @staticmethod
    def _view(order: dict) -> dict:
        keys = ("order_id", "shop_id", "items", "total_fen", "status", "reason", "customer", "created_ms")
        return {**{k: order[k] for k in keys}, "platform": PLATFORM}

    # ---- the platform's customers (tests, the demo) -------------------------------------------------------------
    async def sim_order(self, request: Request) -> JSONResponse:
        try:
            data = json.loads(await request.body() or b"{}")
            shop = data.get("shop_id") if isinstance(data, dict) else None
            if not isinstance(shop, str) or not shop:
                raise Refused(400, "PARAM_ERROR", "shop_id required")
            items = _items(data, "qty", ())
        except ValueError:
            return self._refused(Refused(400, "PARAM_ERROR", "body is not JSON"))
        except Refused as refused:
            return self._refused(refused)
        short = {i["sku"]: self.stock.get((shop, i["sku"]), 0) for i in items
                 if self.stock.get((shop, i["sku"]), 0) < i["qty"]}
        if short:
            self.counts["sold_out"] += 1
            return JSONResponse({"code": "STOCK_NOT_ENOUGH", "message": "the shop offers fewer units",
                                 "offered": short, "platform": PLATFORM}, status_code=409)
        for i in items:
            self.stock[(shop, i["sku"])] -= i["qty"]
        lines = [{"sku": i["sku"], "qty": i["qty"], "price_fen": self.prices.get((shop, i["sku"]), {}).get("price_fen", 0)}
                 for i in items]
        customer = data.get("customer") if isinstance(data.get("customer"), dict) else {}
        phone = str(customer.get("phone", "13800000000"))[:20]
        order = {"order_id": "MK" + uuid.uuid4().hex[:14].upper(), "shop_id": shop, "items": lines,
                 "total_fen": sum(line["qty"] * line["price_fen"] for line in lines), "status": "created",
                 "reason": "", "created_ms": now_ms(),
                 "customer": {"name": str(customer.get("name", "顾客"))[:1] + "**",
                              "phone": phone[:3] + "****" + phone[-4:]}}
        self.orders[order["order_id"]] = order
        self.counts["orders"] += 1
        log.info("%s: order %s at %s, %d line(s), %d fen", LABEL, order["order_id"], shop, len(lines),
                 order["total_fen"])
        self.partner.spawn(self._webhook("order.created", {"order": self._view(order)}))
        self.partner.spawn(self._confirm_timeout(order))
        return JSONResponse(self._view(order), status_code=201)

    async def sim_cancel(self, request: Request) -> JSONResponse:
        try:
            order = self._order(request)
            if order["status"] not in CANCELLABLE:
                raise Refused(409, "ORDER_STATUS_ERROR", f"the order is {order['status']}: too late to cancel")
        except Refused as refused:
            return self._refused(refused)
        await self._cancel(order, "customer_cancelled", "")
        return JSONResponse(self._view(order))

    async def sim_refund(self, request: Request) -> JSONResponse:
        try:
            order = self._order(request)
            data = json.loads(await request.body() or b"{}")
            if order["status"] != "delivered":
                raise Refused(409, "ORDER_STATUS_ERROR", f"the order is {order['status']}: refunds follow delivery")
            items = _items(data, "qty", ())
            bought = {line["sku"]: line for line in order["items"]}
            for i in items:
                if i["sku"] not in bought or i["qty"] > bought[i["sku"]]["qty"]:
                    raise Refused(400, "PARAM_ERROR", f"{i['sku']}: not bought, or more than bought")
        except ValueError:
            return self._refused(Refused(400, "PARAM_ERROR", "body is not JSON"))
        except Refused as refused:
            return self._refused(refused)
        lines = [{"sku": i["sku"], "qty": i["qty"], "price_fen": bought[i["sku"]]["price_fen"]} for i in items]
        refund = {"refund_id": "RF" + uuid.uuid4().hex[:14].upper(), "order_id": order["order_id"],
                  "items": lines, "amount_fen": sum(x["qty"] * x["price_fen"] for x in lines),
                  "reason": str(data.get("reason", ""))[:120], "status": "requested"}
        self.refunds[refund["refund_id"]] = refund
        self.counts["refunds"] += 1
        self.partner.spawn(self._webhook("refund.requested", {"refund": refund, "shop_id": order["shop_id"]}))
        return JSONResponse({**refund, "platform": PLATFORM}, status_code=201)

    async def sim_webhooks(self, request: Request) -> JSONResponse:
        order_id = request.query_params.get("order_id")
        sent = [w for w in self.sent if order_id in (None, w.get("order_id"))]
        ids = {w["event_id"] for w in sent}
        return JSONResponse({"webhooks": sent, "answers": [[i, s] for i, s in self.partner.answers if i in ids]})

    async def sim_stock(self, request: Request) -> JSONResponse:
        """What the shop offers now, as the marketplace's customers see it (no signature: the public shop page)."""
        return JSONResponse({"items": self._shop_items(request.path_params["shop"]), "platform": PLATFORM})

    async def health(self, _request: Request) -> JSONResponse:
        counts = {**self.counts, "webhooks": self.partner.pushed, "webhook_failed": self.partner.push_failed,
                  "refused": self.partner.refused}
        return JSONResponse({"status": "ok", "platform": PLATFORM, "counts": counts, "orders": len(self.orders)})

    # ---- what happens to an order --------------------------------------------------------------------------------
    async def _cancel(self, order: dict, reason: str, detail: str) -> None:
        order.update(status="cancelled", reason=reason)
        for line in order["items"]:  # the units are offered again (until the merchant pushes its own figure)
            key = (order["shop_id"], line["sku"])
            self.stock[key] = self.stock.get(key, 0) + line["qty"]
        self.counts["cancelled"] += 1
        self.partner.spawn(self._webhook("order.cancelled", {"order_id": order["order_id"], "shop_id": order["shop_id"],
                                                      "reason": reason, "detail": detail}))

    async def _confirm_timeout(self, order: dict) -> None:
        await asyncio.sleep(self.settings.confirm_timeout_ms / 1000)
        if order["status"] == "created":
            self.counts["timed_out"] += 1
            await self._cancel(order, "merchant_timeout", "not confirmed in time")

    async def _ride(self, order: dict) -> None:
        await asyncio.sleep(self.settings.rider_delay_ms / 1000)
        order["status"] = "picked_up"
        await self._webhook("order.picked_up", {"order_id": order["order_id"], "shop_id": order["shop_id"]})
        await asyncio.sleep(self.settings.step_ms / 1000)
        order["status"] = "delivered"
        self.counts["delivered"] += 1
        await self._webhook("order.delivered", {"order_id": order["order_id"], "shop_id": order["shop_id"]})

    async def _webhook(self, event: str, fields: dict) -> None:
        body = {"event_id": uuid.uuid4().hex, "event": event, "at_ms": now_ms(), "platform": PLATFORM, **fields}
        order_id = fields.get("order_id") or fields.get("order", {}).get("order_id") or \
            fields.get("refund", {}).get("order_id")
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        if self.settings.delay_ms:
            await asyncio.sleep(self.settings.delay_ms / 1000)
        self.sent.append({**body, "order_id": order_id})
        await self.partner.push(self.settings.callback_url, raw, body["event_id"])
        if self.settings.duplicate_rate and self.partner.rng.random() < self.settings.duplicate_rate:
            self.counts["duplicated"] += 1
            self.sent.append({**body, "order_id": order_id})
            await self.partner.push(self.settings.callback_url, raw, body["event_id"])


def build_app(settings: Settings) -> Starlette:
    market = SimulatedMarketplace(settings)
    app = Starlette(routes=[
        Route("/v1/shops/{shop}/stock", market.put_stock, methods=["PUT"]),
        Route("/v1/shops/{shop}/prices", market.put_prices, methods=["PUT"]),
        Route("/v1/shops/{shop}/items", market.get_items, methods=["GET"]),
        Route("/v1/orders/{oid}/confirm", market.confirm, methods=["POST"]),
        Route("/v1/orders/{oid}/ready", market.ready, methods=["POST"]),
        Route("/v1/orders/{oid}/reject", market.reject, methods=["POST"]),
        Route("/v1/orders/{oid}/part-refund", market.part_refund, methods=["POST"]),
        Route("/v1/orders/{oid}", market.get_order, methods=["GET"]),
        Route("/v1/refunds/{rid}/agree", market.decide_refund, methods=["POST"]),
        Route("/v1/refunds/{rid}/reject", market.decide_refund, methods=["POST"]),
        Route("/sim/orders", market.sim_order, methods=["POST"]),
        Route("/sim/orders/{oid}/cancel", market.sim_cancel, methods=["POST"]),
        Route("/sim/orders/{oid}/refund", market.sim_refund, methods=["POST"]),
        Route("/sim/shops/{shop}/items", market.sim_stock, methods=["GET"]),
        Route("/sim/webhooks", market.sim_webhooks, methods=["GET"]),
        Route("/health", market.health, methods=["GET"]),
    ], lifespan=market.partner.lifespan)
    app.state.market = market
    return app


def start_in_thread(settings: Settings, port: int = 0) -> ServiceThread:
    """The simulated marketplace on its own thread and event loop; `.url`, `.app.state.market`, `.stop()`."""
    return ServiceThread(lambda: build_app(settings), port, "marketplace-simulated").start()


def run(settings: Settings, port: int) -> int:
    """`freshmesh sim marketplace`: in the foreground until SIGINT/SIGTERM; exit status 0 after a clean stop."""
    return run_in_foreground(build_app(settings), port, LABEL)
