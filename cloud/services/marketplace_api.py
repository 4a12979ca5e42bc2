"""The marketplace adapter: a third-party marketplace (Meituan Shangou, Ele.me retail, JD Daojia) selling from the
stores' shelves, over its open API - the flow those platforms share: an app key and secret, signed requests, shops
named by the merchant's own store codes, stock and prices pushed by the merchant, orders pushed to the merchant's
webhook with the platform's own order ids, the merchant confirming, packing (the platform's rider collects) or
rejecting each order, and deciding refund requests.

- `push_stock` and `push_prices` set what a shop offers (absolute figures per SKU); the platform sells no more.
- `confirm`, `ready`, `reject` move one of its orders; `agree_refund` and `reject_refund` decide a refund request;
  `part_refund` gives part of an order's money back (a line the store could not pack); `order` reads one (a webhook
  was lost).
- `read_webhook` believes only bodies signed with the app secret (`protocol/partner_signing.py`, `Mkt-` headers,
  ±5 min), verified on the raw bytes before they are parsed, and answers a `Webhook` with every field checked.
- An answer that is not JSON, a 5xx or none is `MarketplaceUnavailable` (try again later), a 4xx
  `MarketplaceRefused` with the platform's code.

The simulated marketplace this is written against: `simulators/marketplace.py`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from cloud.services.partner_http import REQUEST_TIMEOUT_S, BadCallback, SignedClient
from protocol.partner_signing import Scheme

SIGNING = Scheme("Mkt")
WEBHOOK_BODY_MAX_BYTES = 32_768
EVENTS = ("order.created", "order.cancelled", "order.picked_up", "order.delivered", "refund.requested",
          "refund.decided")
LINES_MAX = 200
ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # the marketplace's ids go into our URLs and keys: nothing else


class MarketplaceUnavailable(RuntimeError):
    """The marketplace did not answer, or answered 5xx or not JSON: try again later."""


class MarketplaceRefused(RuntimeError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    qty: int
    price_fen: int


@dataclass(frozen=True, slots=True)
class Webhook:
    """One push from the marketplace, checked. `order_id` is the marketplace's; `lines`, `total_fen` and `customer`
    come with `order.created`, `refund_id`, `lines` and `amount_fen` with `refund.requested`."""
    event_id: str
    event: str
    order_id: str
    shop_id: str = ""
    at_ms: int = 0
    lines: tuple[Line, ...] = ()
    total_fen: int = 0
    reason: str = ""
    refund_id: str = ""
    amount_fen: int = 0
    status: str = ""  # refund.decided: agreed | rejected
    customer: dict[str, str] = field(default_factory=dict)


def _text(data: dict, name: str, limit: int = 64, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str) or len(value) > limit or (required and not value) or not value.isprintable():
        raise ValueError(f"{name}: a text of {1 if required else 0}-{limit} characters expected")
    return value


def _id(data: dict, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not ID.match(value):
        raise ValueError(f"{name}: 1-64 letters, digits, _ or - expected")
    return value


def _count(data: dict, name: str, least: int = 0, most: int = 10**9) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise ValueError(f"{name}: an integer {least}..{most} expected")
    return value


def _lines(items) -> tuple[Line, ...]:
    if not isinstance(items, list) or not 1 <= len(items) <= LINES_MAX:
        raise ValueError(f"items: a list of 1-{LINES_MAX} lines expected")
    lines = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"items[{i}]: an object expected")
        try:
            lines.append(Line(_text(item, "sku"), _count(item, "qty", 1, 1_000_000), _count(item, "price_fen")))
        except ValueError as exc:
            raise ValueError(f"items[{i}].{exc}") from None
    return tuple(lines)


def parse_webhook(data: dict) -> Webhook:
    """A webhook's body as read after its signature verified; ValueError naming the bad field."""
    event = _text(data, "event", 32)
    if event not in EVENTS:
        raise ValueError(f"event: unknown event {event!r} (known: {', '.join(EVENTS)})")
    event_id, at_ms = _id(data, "event_id"), _count(data, "at_ms", 0, 10**14)
    if event == "order.created":
        order = data.get("order")
        if not isinstance(order, dict):
            raise ValueError("order: an object expected")
        customer = order.get("customer") or {}
        if not isinstance(customer, dict):
            raise ValueError("order.customer: an object expected")
        return Webhook(event_id, event, _id(order, "order_id"), at_ms=at_ms, shop_id=_text(order, "shop_id"),
                       lines=_lines(order.get("items")), total_fen=_count(order, "total_fen"),
                       customer={"name": _text(customer, "name", 32, False), "phone": _text(customer, "phone", 20, False)})
    if event == "refund.requested":
        refund = data.get("refund")
        if not isinstance(refund, dict):
            raise ValueError("refund: an object expected")
        return Webhook(event_id, event, _id(refund, "order_id"), at_ms=at_ms, shop_id=_text(data, "shop_id", 64, False),
                       refund_id=_id(refund, "refund_id"), lines=_lines(refund.get("items")),
                       amount_fen=_count(refund, "amount_fen"), reason=_text(refund, "reason", 120, False))
    if event == "refund.decided":
        return Webhook(event_id, event, _id(data, "order_id"), at_ms=at_ms, refund_id=_id(data, "refund_id"),
                       status=_text(data, "status", 16))
    return Webhook(event_id, event, _id(data, "order_id"), at_ms=at_ms, shop_id=_text(data, "shop_id", 64, False),
                   reason=_text(data, "reason", 64, False))


class HttpMarketplace:
    """One marketplace over HTTP (`marketplace`: its id, as in the channel `mkt:<id>`)."""

    def __init__(self, marketplace: str, base_url: str, app_key: str, app_secret: str, clock,
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.marketplace, self.base_url = marketplace, base_url.rstrip("/")
        self._http = SignedClient(f"marketplace {marketplace}", base_url, app_key, app_secret, SIGNING, clock,
                                  MarketplaceUnavailable, MarketplaceRefused, timeout_s)

    @property
    def channel(self) -> str:
        return f"mkt:{self.marketplace}"

    async def push_stock(self, shop: str, units: dict[str, int]) -> dict:
        """What the shop offers now, per SKU (absolute): the marketplace sells no more than that."""
        return await self._http.call("PUT", f"/v1/shops/{shop}/stock",
                                     {"items": [{"sku": s, "stock": max(n, 0)} for s, n in sorted(units.items())]})

    async def push_prices(self, shop: str, prices: dict[str, tuple[int, str]]) -> dict:
        """Each SKU's price in fen and its name, as the marketplace shows them."""
        return await self._http.call("PUT", f"/v1/shops/{shop}/prices", {"items": [
            {"sku": s, "price_fen": fen, "name": name[:64]} for s, (fen, name) in sorted(prices.items())]})

    async def confirm(self, order_id: str) -> dict:
        return await self._http.call("POST", f"/v1/orders/{order_id}/confirm", {})

    async def ready(self, order_id: str) -> dict:
        return await self._http.call("POST", f"/v1/orders/{order_id}/ready", {})

    async def reject(self, order_id: str, reason: str) -> dict:
        return await self._http.call("POST", f"/v1/orders/{order_id}/reject", {"reason": reason[:120]})

    async def agree_refund(self, refund_id: str) -> dict:
        return await self._http.call("POST", f"/v1/refunds/{refund_id}/agree", {})

    async def reject_refund(self, refund_id: str, reason: str) -> dict:
        return await self._http.call("POST", f"/v1/refunds/{refund_id}/reject", {"reason": reason[:120]})

    async def part_refund(self, order_id: str, out_refund_no: str, amount_fen: int, reason: str) -> dict:
        """Give part of the order's money back to its customer (a line the store could not pack); once per
        `out_refund_no`."""
        return await self._http.call("POST", f"/v1/orders/{order_id}/part-refund", {
            "out_refund_no": out_refund_no, "amount_fen": amount_fen, "reason": reason[:120]})

    async def order(self, order_id: str) -> dict:
        return await self._http.call("GET", f"/v1/orders/{order_id}")

    def read_webhook(self, headers, body: bytes) -> Webhook:
        """A verified webhook, or BadCallback (401: not signed by the marketplace or stale; 400: malformed)."""
        data = self._http.verified(headers, body, WEBHOOK_BODY_MAX_BYTES)
        try:
            return parse_webhook(data)
        except (ValueError, TypeError) as exc:
            raise BadCallback(400, f"webhook: {exc}") from None

    async def close(self) -> None:
        await self._http.close()


def marketplaces_from_env(clock) -> list[HttpMarketplace]:
    """The marketplace named by FRESHMESH_MARKETPLACE_URL (the simulated one in the demo), with
    FRESHMESH_MARKETPLACE_ID (its id in the channel `mkt:<id>`), FRESHMESH_MARKETPLACE_APP_KEY and
    FRESHMESH_MARKETPLACE_APP_SECRET; none when the URL is not set."""
    url = os.environ.get("FRESHMESH_MARKETPLACE_URL")
    if not url:
        return []
    names = ("FRESHMESH_MARKETPLACE_ID", "FRESHMESH_MARKETPLACE_APP_KEY", "FRESHMESH_MARKETPLACE_APP_SECRET")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:  # refuse to start rather than believe webhooks nobody can check
        raise RuntimeError(f"FRESHMESH_MARKETPLACE_URL is set but {', '.join(missing)} is not")
    return [HttpMarketplace(os.environ[names[0]], url, os.environ[names[1]], os.environ[names[2]], clock)]
