"""Sending text messages (the sign-in one-time codes) through an SMS provider, and reading its delivery receipts.

This is the adapter shape a real Chinese SMS provider has (Aliyun SMS, Tencent Cloud SMS, …): every API request is
signed with the account's secret and carries the account key, a message is accepted (queued at the carrier) rather
than delivered when the call returns, and the delivery receipt is pushed later, signed the same way, to a callback
URL the account configured. Here the signature is a hex HMAC-SHA256 over `"<timestamp_ms>." + body`, sent as
`X-Sms-Timestamp` (epoch ms) and `X-Sms-Signature` both ways, with `X-Sms-Key` on requests to the provider. A real
provider would get its own request signing and receipt parsing behind the same `send` / `parse_delivery` shape.

The provider FreshMesh runs against by default is `simulators/sms_provider.py`, a **simulated** provider that runs
as its own small HTTP service: it checks the key and signature, dedupes by `message_id`, can refuse a share of
requests with 503 (`fail_rate`), keeps what was "sent" so tests, the demo and simulated customers can read their
codes (`GET /v1/messages?to=`), and pushes signed receipts (sometimes twice) to the callback URL.

Delivery guarantees of `HttpSmsProvider.send`: a message is sent at most once per `message_id` while the provider
remembers it (every retry carries the same id and the provider dedupes), and `send` either returns (the provider
accepted it) or raises `SmsUnavailable` within a bounded time (`SEND_ATTEMPTS_MAX` attempts of at most
`SEND_TIMEOUT_S` each, with doubling backoff between them). A receipt may arrive twice or never; its receiver
dedupes by `message_id` and must not rely on it.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from protocol import phones
from protocol.errors import ProtocolError

TIMESTAMP_HEADER = "X-Sms-Timestamp"
SIGNATURE_HEADER = "X-Sms-Signature"
KEY_HEADER = "X-Sms-Key"
SIGNATURE_TOLERANCE_MS = 300_000  # a signed request older or newer than this is refused (replay, skewed clock)
SEND_ATTEMPTS_MAX = 4  # first try + 3 retries, all with the same message_id
SEND_BACKOFF_FIRST_S = 0.2  # before the 2nd attempt; doubles each time
SEND_BACKOFF_MAX_S = 2.0
SEND_TIMEOUT_S = 3.0  # per attempt: connect, write, read
DETAIL_MAX_CHARS = 300  # of a provider's refusal, quoted in SmsUnavailable
DELIVERY_BODY_MAX_BYTES = 4096
MESSAGE_ID_MAX_CHARS = 128
DELIVERY_STATUSES = ("delivered", "failed")
log = logging.getLogger("freshmesh.sms")



def _scrubbed(text: str, phone: str) -> str:
    """A provider's error text with the number it may echo masked (the text goes to logs and exceptions)."""
    national = phone[1 + len(phones.CHINA_CODE):] if phone.startswith("+" + phones.CHINA_CODE) else phone.lstrip("+")
    for spelling in (phone, phone.lstrip("+"), national):
        if spelling:
            text = text.replace(spelling, phones.masked(phone))
    return text

class SmsUnavailable(RuntimeError):
    """The provider could not take the message (refused it, or did not answer after the bounded retries).

    `status` is the provider's last HTTP status (None when it never answered), `attempts` how many were made."""

    def __init__(self, detail: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(detail)
        self.detail, self.status, self.attempts = detail, status, attempts


class WallClock(Protocol):
    def now_ms(self) -> int: ...


# ---- signatures (pure) ------------------------------------------------------------------------------------------
def sign(secret: str, timestamp_ms: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp_ms>." + body` under `secret`."""
    return hmac.new(secret.encode(), f"{timestamp_ms}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp_ms: int, signature: str, body: bytes, now_ms: int,
           tolerance_ms: int = SIGNATURE_TOLERANCE_MS) -> bool:
    """True when `signature` is `sign(secret, timestamp_ms, body)` and the timestamp is within `tolerance_ms` of
    `now_ms` either way (an old request replayed, or one from a clock far ahead, is refused). The comparison takes
    the same time wherever the signatures differ. Inside the window a replay still verifies: receivers dedupe by
    message_id."""
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or not isinstance(signature, str):
        return False
    if abs(now_ms - timestamp_ms) > tolerance_ms:
        return False
    if not signature.isascii():  # compare_digest refuses non-ASCII str; such a signature is wrong anyway
        return False
    return hmac.compare_digest(sign(secret, timestamp_ms, body), signature.lower())


def signed_headers(secret: str, timestamp_ms: int, body: bytes) -> dict[str, str]:
    """The two signature headers for `body` (add `X-Sms-Key` on requests to the provider)."""
    return {TIMESTAMP_HEADER: str(timestamp_ms), SIGNATURE_HEADER: sign(secret, timestamp_ms, body)}


def verify_headers(secret: str, headers: Mapping[str, str], body: bytes, now_ms: int,
                   tolerance_ms: int = SIGNATURE_TOLERANCE_MS) -> bool:
    """`verify` with the timestamp and signature read from request headers (missing or malformed: False).
    Starlette's and httpx's headers are case-insensitive mappings; a plain dict must use the canonical case."""
    stamp, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if stamp is None or signature is None or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 16:
        return False
    return verify(secret, int(stamp), signature, body, now_ms, tolerance_ms)


# ---- delivery receipts (pure) -----------------------------------------------------------------------------------
def parse_delivery(body: bytes) -> dict:
    """A delivery receipt's body -> `{"message_id": str, "status": "delivered" | "failed", "at_ms": int}`.

    Anything else raises ProtocolError (a ValueError) saying what was wrong. Extra fields are ignored. Check the
    signature (`verify_headers`) before parsing."""
    if len(body) > DELIVERY_BODY_MAX_BYTES:
        raise ProtocolError(f"delivery receipt: {len(body)} bytes, more than {DELIVERY_BODY_MAX_BYTES}")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError("delivery receipt: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"delivery receipt: not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"delivery receipt: a JSON object expected, got {type(data).__name__}")
    message_id, status, at_ms = data.get("message_id"), data.get("status"), data.get("at_ms")
    if not isinstance(message_id, str) or not message_id.strip():
        raise ProtocolError("delivery receipt: message_id must be a non-empty string")
    if len(message_id) > MESSAGE_ID_MAX_CHARS:
        raise ProtocolError(f"delivery receipt: message_id longer than {MESSAGE_ID_MAX_CHARS} characters")
    if status not in DELIVERY_STATUSES:
        raise ProtocolError(f"delivery receipt: status must be one of {', '.join(DELIVERY_STATUSES)}, got {status!r}")
    if isinstance(at_ms, bool) or not isinstance(at_ms, int) or at_ms < 0:
        raise ProtocolError(f"delivery receipt: at_ms must be a non-negative integer (epoch ms), got {at_ms!r}")
    return {"message_id": message_id, "status": status, "at_ms": at_ms}


# ---- the HTTP adapter -------------------------------------------------------------------------------------------
class HttpSmsProvider:
    """Sends through a provider's `POST {base_url}/v1/messages`, signed with the account key and secret.

    5xx answers and connection errors/timeouts are retried with the same message_id (the provider dedupes, so a
    message whose acceptance was lost in transit is not sent twice); a 4xx is the provider refusing this message
    and is not retried. The limits are keyword arguments so a test or a deployment can tighten them."""

    def __init__(self, base_url: str, key: str, secret: str, clock: WallClock, *,
                 attempts_max: int = SEND_ATTEMPTS_MAX, backoff_first_s: float = SEND_BACKOFF_FIRST_S,
                 timeout_s: float = SEND_TIMEOUT_S) -> None:
        if attempts_max < 1:
            raise ValueError("attempts_max must be at least 1")
        self.url = base_url.rstrip("/") + "/v1/messages"
        self.key, self.secret, self.clock = key, secret, clock
        self.attempts_max, self.backoff_first_s = attempts_max, backoff_first_s
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def send(self, to: str, text: str, message_id: str) -> None:
        """Returns once the provider accepted the message (or had already accepted this message_id)."""
        body = json.dumps({"message_id": message_id, "to": to, "text": text}, separators=(",", ":")).encode()
        last, status = "", None
        for attempt in range(1, self.attempts_max + 1):
            if attempt > 1:
                await asyncio.sleep(min(self.backoff_first_s * 2 ** (attempt - 2), SEND_BACKOFF_MAX_S))
            headers = {"Content-Type": "application/json", KEY_HEADER: self.key,
                       **signed_headers(self.secret, self.clock.now_ms(), body)}  # fresh timestamp per attempt
            try:
                response = await self._client.post(self.url, content=body, headers=headers)
            except httpx.TransportError as exc:  # refused, reset, timed out: the message may or may not be in
                last, status = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, None
                log.warning("sms %s: attempt %d/%d: %s", message_id, attempt, self.attempts_max, last)
                continue
            if response.is_success:
                return
            status, last = response.status_code, _scrubbed(_detail(response), to)
            if response.status_code < 500:
                raise SmsUnavailable(f"SMS provider refused message {message_id}: {status} {last}",
                                     status=status, attempts=attempt)
            log.warning("sms %s: attempt %d/%d: %s %s", message_id, attempt, self.attempts_max, status, last)
        raise SmsUnavailable(f"SMS provider unavailable for message {message_id} after {self.attempts_max} "
                             f"attempts; last: {status or ''} {last}".rstrip(), status=status,
                             attempts=self.attempts_max)

    async def close(self) -> None:
        await self._client.aclose()


def _detail(response: httpx.Response) -> str:
    """The provider's own words: a problem+json `detail` when there is one, else the start of the body."""
    try:
        data: Any = response.json()
    except ValueError:  # not JSON (json.JSONDecodeError and UnicodeDecodeError are ValueErrors)
        data = None
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return data["detail"][:DETAIL_MAX_CHARS]
    return response.text[:DETAIL_MAX_CHARS] or response.reason_phrase
