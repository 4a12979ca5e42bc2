"""The wallet payment provider adapter: create a payment, query it, refund it, query the refund, and read the
provider's signed notifications - the flow of WeChat Pay API v3 (Native payments) and Alipay's notify/query.

- `create` asks the provider for a payment of `out_trade_no` (our movement id) and answers what the customer needs
  to pay (`code_url`, the QR code a wallet app scans; `prepay_id`). Creating the same out_trade_no again answers the
  same payment (the provider dedupes), so a retry after a timeout is safe.
- The provider tells the outcome by POSTing a signed notification to our notify URL (`TRANSACTION.SUCCESS`,
  `REFUND.SUCCESS`, `REFUND.ABNORMAL`), at least once: it retries until we answer 2xx, and may send it twice.
  `read_notification` verifies the signature on the raw bytes first, then parses; the caller checks amount,
  currency and merchant against its own journal (`protocol.money_saga.judge_payment`) before crediting anything.
- A notification can be late or lost: `query` / `query_refund` ask the provider directly (the sweeper does, for
  payments pending past a few seconds). `close_payment` gives up an unpaid payment (the customer chose another way to pay,
  or cancelled), so that it can no longer be paid.
- Every request is signed with the merchant's private key; every 2xx answer must carry the provider's signature
  (an unsigned or wrongly signed success is treated as forged: `PayUnavailable`).
As WeChat Pay does, the notification's `resource` is encrypted with the merchant's APIv3 key (AES-256-GCM,
`resource_type: encrypt-resource`); it is opened only after the signature verified, and a resource in clear is
refused.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from cloud.services import pay_signatures as sig
from protocol.money_saga import CURRENCY, ProviderWord

REQUEST_TIMEOUT_S = 5.0
NOTIFICATION_BODY_MAX_BYTES = 16_384
PAYMENT_EVENTS = ("TRANSACTION.SUCCESS",)
REFUND_EVENTS = ("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED")
log = logging.getLogger("freshmesh.wallet")


class PayUnavailable(RuntimeError):
    """The provider did not answer, answered 5xx, or answered without a valid signature: try again later."""


class PayRefused(RuntimeError):
    """The provider refused the request (4xx): its code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class BadNotification(ValueError):
    """A notification that must not be believed (bad signature, stale, malformed); `status` is what we answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class Notification:
    notification_id: str
    event_type: str
    word: ProviderWord

    @property
    def is_refund(self) -> bool:
        return self.event_type.startswith("REFUND.")


def payment_word(data: dict) -> ProviderWord:
    """A transaction (query answer or notification resource) as the saga reads it; ValueError when malformed."""
    return _word(data, "out_trade_no", "transaction_id", str(data.get("trade_state", "")), "total", "a transaction")


def refund_word(data: dict) -> ProviderWord:
    """A refund (query answer, refund answer or notification resource); ValueError when malformed."""
    state = str(data.get("refund_status") or data.get("status") or "")  # notifications and answers name it apart
    return _word(data, "out_refund_no", "refund_id", state, "refund", "a refund")


def _word(data: dict, out_no_field: str, txn_field: str, state: str, amount_field: str, what: str) -> ProviderWord:
    """The fields both kinds of word share: a payment and a refund differ only in their names."""
    amount = data.get("amount") or {}
    word = ProviderWord(out_no=str(data.get(out_no_field, "")), txn_id=str(data.get(txn_field) or ""), state=state,
                        amount_fen=_int(amount.get(amount_field)), currency=str(amount.get("currency", "")),
                        mchid=str(data.get("mchid", "")))
    if not word.out_no or not word.state:
        raise ValueError(f"{what} needs {out_no_field} and a state")
    return word


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"an amount in fen must be an integer, got {value!r}")
    return value


class HttpPayProvider:
    """A wallet provider over HTTP (the simulated one: `simulators/pay_provider.py`)."""

    name = "wallet_sim"

    def __init__(self, base_url: str, mchid: str, merchant_key: str, provider_public_key: str, notify_url: str,
                 clock, *, api_key: str, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.base_url, self.mchid, self.notify_url, self.clock = base_url.rstrip("/"), mchid, notify_url, clock
        self._key = sig.private_key(merchant_key)
        self._api_key = sig.api_key(api_key)
        self._provider = sig.public_key(provider_public_key)
        self._client = httpx.AsyncClient(timeout=timeout_s)

    # ---- requests ---------------------------------------------------------------------------------------------
    async def create(self, out_trade_no: str, amount_fen: int, description: str, expire_ms: int) -> dict:
        """{"prepay_id", "code_url"} for a new (or the same earlier) payment."""
        body = {"mchid": self.mchid, "out_trade_no": out_trade_no, "description": description[:127],
                "amount": {"total": amount_fen, "currency": CURRENCY}, "notify_url": self.notify_url,
                "time_expire_ms": expire_ms}
        return await self._call("POST", "/v3/pay/transactions/native", body)

    async def query(self, out_trade_no: str) -> ProviderWord | None:
        """The payment as the provider has it; None when the provider never heard of it."""
        try:
            data = await self._call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={self.mchid}")
        except PayRefused as refused:
            if refused.status == 404:
                return None
            raise
        return payment_word(data)

    async def close_payment(self, out_trade_no: str) -> None:
        """Close an unpaid payment so that it can no longer be paid (PayRefused `ORDERPAID` once it was paid)."""
        await self._call("POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close", {"mchid": self.mchid})

    async def refund(self, out_refund_no: str, out_trade_no: str, amount_fen: int, total_fen: int) -> ProviderWord:
        body = {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "notify_url": self.notify_url,
                "amount": {"refund": amount_fen, "total": total_fen, "currency": CURRENCY}}
        return refund_word(await self._call("POST", "/v3/refund/domestic/refunds", body))

    async def query_refund(self, out_refund_no: str) -> ProviderWord | None:
        try:
            data = await self._call("GET", f"/v3/refund/domestic/refunds/{out_refund_no}")
        except PayRefused as refused:
            if refused.status == 404:
                return None
            raise
        return refund_word(data)

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        now_s = self.clock.now_ms() // 1000
        headers = {"Authorization": sig.authorization(self._key, self.mchid, method, path, now_s, secrets.token_hex(16),
                                                      raw), "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._client.request(method, self.base_url + path, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise PayUnavailable(f"wallet provider: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise PayUnavailable(f"wallet provider answered {response.status_code}")
        try:
            data = {} if response.status_code == 204 else response.json()
        except ValueError:
            raise PayUnavailable(f"wallet provider answered {response.status_code} without JSON") from None
        if not response.is_success:
            raise PayRefused(response.status_code, str(data.get("code", "")), str(data.get("message", ""))[:300])
        why = sig.verify_signed(self._provider, response.headers, response.content, self.clock.now_ms() // 1000)
        if why is not None:  # WeChat Pay: a success without a valid signature is forged or tampered with
            raise PayUnavailable(f"wallet provider answer not believed: {why}")
        return data

    # ---- notifications ----------------------------------------------------------------------------------------
    def read_notification(self, headers, body: bytes) -> Notification:
        """A verified notification, or BadNotification (401: not signed by the provider; 400: malformed)."""
        if len(body) > NOTIFICATION_BODY_MAX_BYTES:
            raise BadNotification(400, f"notification of {len(body)} bytes; at most {NOTIFICATION_BODY_MAX_BYTES}")
        why = sig.verify_signed(self._provider, headers, body, self.clock.now_ms() // 1000)
        if why is not None:
            raise BadNotification(401, f"notification signature: {why}")
        try:
            data = json.loads(body)
            event = str(data["event_type"])
            if data.get("resource_type") != "encrypt-resource" or not isinstance(data.get("resource"), dict):
                raise ValueError("resource must be an encrypt-resource object")
            resource = sig.open_resource(self._api_key, data["resource"])
            if event in PAYMENT_EVENTS:
                word = payment_word(resource)
            elif event in REFUND_EVENTS:
                word = refund_word(resource)
            else:
                raise ValueError(f"unknown event_type {event!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise BadNotification(400, f"notification: {exc}") from None
        return Notification(str(data.get("id", "")), event, word)

    async def close(self) -> None:
        await self._client.aclose()


def wallet_from_env(clock, keys) -> HttpPayProvider | None:
    """The wallet provider named by FRESHMESH_PAY_URL (the simulated one in the demo and tests), with
    FRESHMESH_PAY_MCHID, FRESHMESH_PAY_PROVIDER_PUBLIC_KEY and FRESHMESH_PAY_NOTIFY_URL; the merchant's signing key
    is FRESHMESH_PAY_MERCHANT_KEY and the APIv3 key FRESHMESH_PAY_API_KEY, else each derived from the master secret
    (`KeyRing.pay_merchant_key`, `KeyRing.pay_api_key`)."""
    url = os.environ.get("FRESHMESH_PAY_URL")
    if not url:
        return None
    missing = [name for name in ("FRESHMESH_PAY_PROVIDER_PUBLIC_KEY", "FRESHMESH_PAY_NOTIFY_URL")
               if not os.environ.get(name)]
    if missing:  # refuse to start rather than believe notifications nobody can check
        raise RuntimeError(f"FRESHMESH_PAY_URL is set but {', '.join(missing)} is not")
    merchant = os.environ.get("FRESHMESH_PAY_MERCHANT_KEY") or keys.pay_merchant_key
    try:
        return HttpPayProvider(url, os.environ.get("FRESHMESH_PAY_MCHID", "freshmesh"), merchant,
                               os.environ["FRESHMESH_PAY_PROVIDER_PUBLIC_KEY"], os.environ["FRESHMESH_PAY_NOTIFY_URL"],
                               clock, api_key=os.environ.get("FRESHMESH_PAY_API_KEY") or keys.pay_api_key)
    except ValueError as exc:  # the key's value is never in the message
        raise RuntimeError(f"a FRESHMESH_PAY_* key is not base64 of 32 bytes: {exc}") from None
