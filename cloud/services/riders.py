"""The rider-platform adapter: quote a delivery, create it, cancel it, query it, and read the platform's signed
status callbacks - the flow of Dada's open API, Meituan's delivery API and SF same-city (an app key and secret,
signed requests, an order made with our order id as its idempotency key, status pushed to our callback URL).

- `quote` asks what a delivery from the store to the customer would cost (the platform's fee, distance).
- `create` makes the delivery: pickup (the store's name, address, location, contact), drop-off (the customer's
  location), the time slot, the goods' value and weight. The platform dedupes by `origin_id` (our order id) and
  `attempt` (the redispatch is a new try), so a create retried after a timeout answers the same delivery.
- `cancel` withdraws a delivery (our side cancelled the order); `query` reads it when a callback was lost.
- The platform POSTs callbacks to our URL at least once, maybe twice, maybe out of order: `read_callback` believes
  only bodies signed with the app secret (HMAC-SHA256 over timestamp, nonce and body, ±5 min, see
  `protocol/delivery.py`), verified on the raw bytes before they are parsed.
- Every request we send is signed the same way; an answer that is not JSON or is 5xx is `RidersUnavailable`
  (try again later), a 4xx is `RidersRefused` with the platform's code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cloud.services.partner_http import REQUEST_TIMEOUT_S, BadCallback, SignedClient
from protocol import delivery

__all__ = ["BadCallback", "HttpRiderPlatform", "RidersRefused", "RidersUnavailable"]
CALLBACK_BODY_MAX_BYTES = 8_192


class RidersUnavailable(RuntimeError):
    """The platform did not answer, or answered 5xx or not JSON: try again later."""


class RidersRefused(RuntimeError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class Callback:
    callback_id: str
    platform_order_id: str
    origin_id: str  # our order id
    attempt: int
    status: str
    reason: str
    rider_name: str
    rider_phone: str
    lat: float | None
    lon: float | None
    at_ms: int


def _text(data: dict, name: str, limit: int = 64, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise ValueError(f"{name}: a text of 1-{limit} characters expected")
    return value


def parse_callback(data: dict) -> Callback:
    """A callback's body as read after its signature verified; ValueError naming the bad field."""
    if not isinstance(data, dict):
        raise ValueError("a JSON object expected")
    status = _text(data, "status", 32)
    delivery.lifecycle_event(status)  # a status the platform does not have is refused (ProtocolError is a ValueError)
    attempt = data.get("attempt")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 1 <= attempt <= 10:
        raise ValueError("attempt: an integer 1-10 expected")
    rider = data.get("rider") or {}
    position = data.get("position") or {}
    if not isinstance(rider, dict) or not isinstance(position, dict):
        raise ValueError("rider and position: objects expected")
    lat: Any = position.get("lat")
    lon: Any = position.get("lon")
    has_position = lat is not None or lon is not None
    if has_position and not (all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon))
                             and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("position: lat and lon in degrees expected")
    at_ms = data.get("at_ms", 0)
    if isinstance(at_ms, bool) or not isinstance(at_ms, int):
        raise ValueError("at_ms: an integer expected")
    return Callback(callback_id=_text(data, "callback_id"), platform_order_id=_text(data, "platform_order_id"),
                    origin_id=_text(data, "origin_id"), attempt=attempt, status=status,
                    reason=_text(data, "reason", 64, required=False),
                    rider_name=_text(rider, "name", 32, required=False),
                    rider_phone=_text(rider, "phone", 20, required=False),
                    lat=float(lat) if lat is not None else None, lon=float(lon) if lon is not None else None,
                    at_ms=at_ms)


def callback_from_query(view: dict) -> Callback | None:
    """What a `query` answer says as a callback (the sweeper's catch-up when callbacks were lost), or None when
    the platform has nothing to tell yet (`created`) or the answer cannot be read. Its id is made from the delivery
    and the status, so the same answer applied twice is a duplicate on the timeline."""
    status = view.get("status")
    if status not in delivery.STATUSES:
        return None
    pid = str(view.get("platform_order_id", ""))
    try:
        return parse_callback({**view, "callback_id": f"query:{pid}:{status}"[:64], "reason": view.get("reason") or "",
                               "rider": view.get("rider") or {}, "position": view.get("position") or {}})
    except ValueError:  # (the sweeper asks again next time; a callback may have come meanwhile)
        return None


class HttpRiderPlatform:
    """A rider platform over HTTP (the simulated one: `simulators/rider_platform.py`)."""

    name = "riders_sim"

    def __init__(self, base_url: str, app_key: str, app_secret: str, callback_url: str, clock,
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.base_url, self.app_key, self.callback_url, self.clock = base_url.rstrip("/"), app_key, callback_url, clock
        self._http = SignedClient("rider platform", base_url, app_key, app_secret, delivery.RIDERS, clock,
                                  RidersUnavailable, RidersRefused, timeout_s)

    async def quote(self, order: dict) -> dict:
        """{"fee_fen", "distance_m"} for delivering `order` (the body `create` would send)."""
        return await self._call("POST", "/v1/deliveries/quote", order)

    async def create(self, order: dict) -> dict:
        """{"platform_order_id", "status", "fee_fen"}: the delivery made (or the same one made before)."""
        return await self._call("POST", "/v1/deliveries", {**order, "callback_url": self.callback_url})

    async def cancel(self, platform_order_id: str, reason: str) -> dict:
        return await self._call("POST", f"/v1/deliveries/{platform_order_id}/cancel", {"reason": reason[:64]})

    async def query(self, platform_order_id: str) -> dict:
        return await self._call("GET", f"/v1/deliveries/{platform_order_id}")

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        return await self._http.call(method, path, body)

    def read_callback(self, headers, body: bytes) -> Callback:
        """A verified callback, or BadCallback (401: not signed by the platform or stale; 400: malformed)."""
        data = self._http.verified(headers, body, CALLBACK_BODY_MAX_BYTES)
        try:
            return parse_callback(data)
        except (ValueError, TypeError) as exc:
            raise BadCallback(400, f"callback: {exc}") from None

    async def close(self) -> None:
        await self._http.close()


def riders_from_env(clock) -> HttpRiderPlatform | None:
    """The rider platform named by FRESHMESH_RIDERS_URL (the simulated one in the demo and tests), with
    FRESHMESH_RIDERS_APP_KEY, FRESHMESH_RIDERS_APP_SECRET and FRESHMESH_RIDERS_CALLBACK_URL."""
    url = os.environ.get("FRESHMESH_RIDERS_URL")
    if not url:
        return None
    missing = [n for n in ("FRESHMESH_RIDERS_APP_KEY", "FRESHMESH_RIDERS_APP_SECRET", "FRESHMESH_RIDERS_CALLBACK_URL")
               if not os.environ.get(n)]
    if missing:  # refuse to start rather than believe callbacks nobody can check
        raise RuntimeError(f"FRESHMESH_RIDERS_URL is set but {', '.join(missing)} is not")
    return HttpRiderPlatform(url, os.environ["FRESHMESH_RIDERS_APP_KEY"], os.environ["FRESHMESH_RIDERS_APP_SECRET"],
                             os.environ["FRESHMESH_RIDERS_CALLBACK_URL"], clock)
