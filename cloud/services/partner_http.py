"""A partner platform's HTTP API as the chain calls it (a rider platform, a marketplace): every request signed under
the app secret (`protocol/partner_signing.py`: timestamp, nonce, method, path and body), every answer read as JSON;
an answer that is not JSON, a 5xx or no answer is the partner's `unavailable` error (try again later), a 4xx its
`refused` error with the partner's code and message. Its callbacks are believed only when signed the same way,
verified on the raw bytes before they are parsed (`verified`)."""
from __future__ import annotations

import json
import secrets
from collections.abc import Callable

import httpx

from protocol.partner_signing import Scheme, request_signature_payload

REQUEST_TIMEOUT_S = 5.0


class BadCallback(ValueError):
    """A callback that must not be believed (`status` 401) or cannot be read (400)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class SignedClient:
    def __init__(self, label: str, base_url: str, app_key: str, app_secret: str, scheme: Scheme, clock,
                 unavailable: Callable[[str], Exception], refused: Callable[[int, str, str], Exception],
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.label, self.base_url, self.app_key, self.scheme, self.clock = (label, base_url.rstrip("/"), app_key,
                                                                           scheme, clock)
        self._secret = app_secret
        self._unavailable, self._refused = unavailable, refused
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def call(self, method: str, path: str, body: dict | None = None) -> dict:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = self.scheme.signed_headers(self.app_key, self._secret, self.clock.now_ms() // 1000,
                                             secrets.token_hex(12), request_signature_payload(method, path, raw))
        headers["Content-Type"] = "application/json"
        try:
            response = await self._client.request(method, self.base_url + path, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise self._unavailable(f"{self.label}: {type(exc).__name__}: {exc}") from None
        try:
            data = response.json()
        except ValueError:
            raise self._unavailable(f"{self.label} answered {response.status_code} without JSON") from None
        if response.status_code >= 500 or not isinstance(data, dict):
            raise self._unavailable(f"{self.label} answered {response.status_code}: {str(data)[:200]}")
        if not response.is_success:
            raise self._refused(response.status_code, str(data.get("code", "")), str(data.get("message", ""))[:300])
        return data

    def verified(self, headers, body: bytes, limit: int) -> dict:
        """The callback's JSON object once its signature verified; BadCallback (401: not signed by the partner or
        stale; 400: too big, or not a JSON object)."""
        if len(body) > limit:
            raise BadCallback(400, f"callback of {len(body)} bytes; at most {limit}")
        why = self.scheme.verify(self.app_key, self._secret, headers, body, self.clock.now_ms() // 1000)
        if why is not None:
            raise BadCallback(401, f"callback signature: {why}")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise BadCallback(400, f"callback: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise BadCallback(400, "callback: a JSON object expected")
        return data

    async def close(self) -> None:
        await self._client.aclose()
