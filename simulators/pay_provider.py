"""A SIMULATED wallet payment provider, run as its own small HTTP service (no real money moves anywhere).

It speaks the API `cloud/services/wallet.py` (HttpPayProvider) is written against, the shape of WeChat Pay API v3
Native payments: every merchant request is signed with the merchant's Ed25519 key (`Authorization:
FRESHMESH-ED25519 …`, 401 otherwise), every answer and notification is signed with the provider's key
(`Pay-Timestamp`, `Pay-Nonce`, `Pay-Signature`), and the outcome of a payment is pushed to the merchant's
`notify_url` at least once. Everything it answers says `"provider": "simulated"`; log lines start "PAY (simulated)".

- `POST /v3/pay/transactions/native` `{"mchid", "out_trade_no", "description", "amount": {"total", "currency"},
  "notify_url", "time_expire_ms"}` -> `{"prepay_id", "code_url"}`; the same out_trade_no again answers the same
  payment (another amount: 400 `INVALID_REQUEST`). With probability `fail_rate` 503 and nothing kept.
- `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=` -> the transaction (`trade_state` NOTPAY |
  SUCCESS | CLOSED (past its expiry, unpaid) | REFUND); 404 `ORDER_NOT_EXIST`.
- `POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close` -> 204: an unpaid payment can no longer be paid
  (400 `ORDERPAID` once paid: refund it instead).
- `POST /v3/refund/domestic/refunds` `{"out_trade_no", "out_refund_no", "amount": {"refund", "total", "currency"},
  "notify_url"}` -> the refund (`status` PROCESSING, SUCCESS after `refund_delay_ms`, then notified);
  `GET /v3/refund/domestic/refunds/{out_refund_no}`.
- `POST /sim/pay/{prepay_id}` (the customer's wallet app: scan the code, confirm) -> `{"transaction_id",
  "trade_state"}`; optional body `{"notify": "send" | "drop" | "twice"}` loses or duplicates that payment's
  notification (tests of late and duplicate notifications). With `auto_pay_ms` set, every payment is paid by
  itself that long after it was created (the demo's simulated customers).
- Notifications `{"id", "create_time", "event_type": "TRANSACTION.SUCCESS" | "REFUND.SUCCESS", "resource_type":
  "plain-resource", "resource": {…}}` are POSTed `notify_delay_ms` after the event, retried a few times until the
  merchant answers 2xx, sent twice with probability `duplicate_rate` and never with `drop_rate` (then only a query
  finds the payment). As WeChat Pay does, `resource` is encrypted (AEAD_AES_256_GCM under the merchant's APIv3 key,
  `resource_type: encrypt-resource`).
- `GET /health`: counters.

Start it: `freshmesh sim pay --port P --mchid M --merchant-public-key K [--auto-pay-ms N] …` with the provider's
private key in FRESHMESH_SIM_PAY_PRIVATE_KEY and the APIv3 key in FRESHMESH_SIM_PAY_API_KEY (prints its URL and
public key); in a loop `async with serve(…)`; from
other code `start_in_thread(…)`.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloud.services import pay_signatures as sig
from simulators.sim_http import ServiceThread, run_in_foreground, serving

PROVIDER = "simulated"
LABEL = "PAY (simulated)"
BODY_MAX_BYTES = 16_384
OUT_NO = re.compile(r"[A-Za-z0-9_:#|*-]{1,64}")
PAYMENTS_KEPT_MAX = 100_000
NOTIFY_ATTEMPTS_MAX = 5
NOTIFY_BACKOFF_FIRST_S = 0.2  # doubles per retry (WeChat Pay's own schedule is 15 s, 15 s, 30 s, 3 min, …)
NOTIFY_TIMEOUT_S = 5.0
log = logging.getLogger("freshmesh.sim.pay")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Settings:
    mchid: str
    merchant_public_key: str
    provider_private_key: str
    api_key: str  # the merchant's APIv3 key: notifications' resources are encrypted under it
    notify_delay_ms: int = 100
    refund_delay_ms: int = 100
    auto_pay_ms: int | None = None
    fail_rate: float = 0.0
    duplicate_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        sig.public_key(self.merchant_public_key)
        sig.private_key(self.provider_private_key)
        sig.api_key(self.api_key)
        for name in ("fail_rate", "duplicate_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class SimulatedPayProvider:
    """The simulated provider's state and answers; one event loop, no locks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.key = sig.private_key(settings.provider_private_key)
        self.merchants = {settings.mchid: sig.public_key(settings.merchant_public_key)}
        self.payments: dict[str, dict[str, Any]] = {}  # by out_trade_no
        self.by_prepay: dict[str, str] = {}
        self.refunds: dict[str, dict[str, Any]] = {}  # by out_refund_no
        self.counts = dict.fromkeys(("created", "paid", "refunds", "unavailable", "refused", "notified",
                                     "notify_failed", "notify_dropped", "notify_duplicated"), 0)
        self.tasks: set[asyncio.Task] = set()
        self.client: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.client = httpx.AsyncClient(timeout=NOTIFY_TIMEOUT_S)
        try:
            yield
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.client.aclose()

    # ---- answers ----------------------------------------------------------------------------------------------
    def _signed(self, body: dict, status: int = 200) -> JSONResponse:
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = sig.signed_headers(self.key, now_ms() // 1000, secrets.token_hex(16), raw)
        return JSONResponse(body, status_code=status, headers=headers)

    @staticmethod
    def _refused(refused: Refused) -> JSONResponse:
        return JSONResponse({"code": refused.code, "message": refused.message, "provider": PROVIDER},
                            status_code=refused.status)

    async def _merchant_request(self, request: Request) -> bytes:
        """The body of a correctly signed merchant request (Refused otherwise)."""
        body = await request.body()
        if len(body) > BODY_MAX_BYTES:
            raise Refused(413, "PARAM_ERROR", f"body over {BODY_MAX_BYTES} bytes")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        mchid = sig.verify_authorization(self.merchants, request.headers.get("authorization"), request.method, path,
                                         body, now_ms() // 1000)
        if mchid is None:
            raise Refused(401, "SIGN_ERROR", "the request's signature does not verify with the merchant's key")
        if self.settings.fail_rate and self.rng.random() < self.settings.fail_rate:
            self.counts["unavailable"] += 1
            raise Refused(503, "SYSTEM_ERROR", "the simulated provider is unavailable (simulated failure); retry")
        return body

    async def create(self, request: Request) -> JSONResponse:
        try:
            data = _json(await self._merchant_request(request))
            out_no, amount = data.get("out_trade_no"), data.get("amount") or {}
            total, currency, notify_url = amount.get("total"), amount.get("currency"), data.get("notify_url")
            if not isinstance(out_no, str) or not OUT_NO.fullmatch(out_no):
                raise Refused(400, "PARAM_ERROR", "out_trade_no: 1-64 of [A-Za-z0-9_:#|*-]")
            if isinstance(total, bool) or not isinstance(total, int) or total <= 0 or currency != "CNY":
                raise Refused(400, "PARAM_ERROR", "amount: a positive integer total in fen, currency CNY")
            if not isinstance(notify_url, str) or not notify_url.startswith(("http://", "https://")):
                raise Refused(400, "PARAM_ERROR", "notify_url: an http(s) URL")
            if data.get("mchid") != self.settings.mchid:
                raise Refused(400, "MCH_NOT_EXISTS", f"mchid {data.get('mchid')!r} is not this merchant")
        except Refused as refused:
            self.counts["refused"] += 1
            return self._refused(refused)
        first = self.payments.get(out_no)
        if first is not None:
            if first["amount"]["total"] != total:
                return self._refused(Refused(400, "INVALID_REQUEST", f"out_trade_no {out_no} exists with another amount"))
            return self._signed({"prepay_id": first["prepay_id"], "code_url": first["code_url"]})
        prepay = "wx" + secrets.token_hex(12)
        expire = data.get("time_expire_ms")
        self.payments[out_no] = {
            "mchid": self.settings.mchid, "out_trade_no": out_no, "description": str(data.get("description", "")),
            "amount": {"total": total, "currency": "CNY"}, "notify_url": notify_url, "prepay_id": prepay,
            "code_url": f"weixin-sim://wxpay/bizpayurl?pr={prepay}", "trade_state": "NOTPAY", "transaction_id": None,
            "expire_ms": expire if isinstance(expire, int) else now_ms() + 2 * 3600_000, "created_ms": now_ms()}
        self.by_prepay[prepay] = out_no
        self.counts["created"] += 1
        log.info("%s: payment %s of %d fen created", LABEL, out_no, total)
        if self.settings.auto_pay_ms is not None:
            self._spawn(self._auto_pay(prepay))
        return self._signed({"prepay_id": prepay, "code_url": self.payments[out_no]["code_url"]})

    async def _named(self, request: Request, records: dict, param: str, code: str, what: str) -> dict:
        """The record a signed merchant request names in its path; Refused when unsigned or unknown."""
        await self._merchant_request(request)
        record = records.get(request.path_params[param])
        if record is None:
            raise Refused(404, code, f"no such {what}")
        return record

    async def query(self, request: Request) -> JSONResponse:
        try:
            payment = await self._named(request, self.payments, "out_trade_no", "ORDER_NOT_EXIST", "payment")
        except Refused as refused:
            return self._refused(refused)
        return self._signed(self._transaction(payment))

    async def close(self, request: Request) -> Response:
        """Close an unpaid payment (the merchant gives up on it): it can no longer be paid. 204, signed."""
        try:
            payment = await self._named(request, self.payments, "out_trade_no", "ORDER_NOT_EXIST", "payment")
        except Refused as refused:
            return self._refused(refused)
        state = self._transaction(payment)["trade_state"]
        if state in ("SUCCESS", "REFUND"):
            return self._refused(Refused(400, "ORDERPAID", "the payment was paid: refund it instead"))
        payment["trade_state"] = "CLOSED"
        headers = sig.signed_headers(self.key, now_ms() // 1000, secrets.token_hex(16), b"")
        return Response(status_code=204, headers=headers)

    async def refund(self, request: Request) -> JSONResponse:
        try:
            data = _json(await self._merchant_request(request))
            out_refund, payment = data.get("out_refund_no"), self.payments.get(str(data.get("out_trade_no")))
            amount = data.get("amount") or {}
            if not isinstance(out_refund, str) or not OUT_NO.fullmatch(out_refund):
                raise Refused(400, "PARAM_ERROR", "out_refund_no: 1-64 of [A-Za-z0-9_:#|*-]")
            if payment is None:
                raise Refused(404, "RESOURCE_NOT_EXISTS", "no such payment")
            if payment["trade_state"] not in ("SUCCESS", "REFUND"):
                raise Refused(400, "INVALID_REQUEST", f"payment is {payment['trade_state']}: nothing to refund")
            refund_fen = amount.get("refund")
            if isinstance(refund_fen, bool) or not isinstance(refund_fen, int) or refund_fen <= 0 or \
                    refund_fen > payment["amount"]["total"] or amount.get("currency") != "CNY":
                raise Refused(400, "PARAM_ERROR", "amount.refund: 1 to the payment's total, in CNY fen")
        except Refused as refused:
            self.counts["refused"] += 1
            return self._refused(refused)
        first = self.refunds.get(out_refund)
        if first is not None:
            return self._signed(first)
        refunded = sum(r["amount"]["refund"] for r in self.refunds.values()
                       if r["out_trade_no"] == payment["out_trade_no"])
        if refunded + refund_fen > payment["amount"]["total"]:
            return self._refused(Refused(400, "NOT_ENOUGH", "refunds would exceed the payment"))
        record = {"mchid": self.settings.mchid, "refund_id": "50" + secrets.token_hex(10), "out_refund_no": out_refund,
                  "out_trade_no": payment["out_trade_no"], "transaction_id": payment["transaction_id"],
                  "status": "PROCESSING", "amount": {"refund": refund_fen, "total": payment["amount"]["total"],
                                                     "currency": "CNY"},
                  "notify_url": data.get("notify_url") or payment["notify_url"]}
        self.refunds[out_refund] = record
        payment["trade_state"] = "REFUND"
        self.counts["refunds"] += 1
        self._spawn(self._finish_refund(record))
        return self._signed(record)

    async def query_refund(self, request: Request) -> JSONResponse:
        try:
            record = await self._named(request, self.refunds, "out_refund_no", "RESOURCE_NOT_EXISTS", "refund")
        except Refused as refused:
            return self._refused(refused)
        return self._signed(record)

    async def customer_pays(self, request: Request) -> JSONResponse:
        """The customer's wallet app pays the payment behind a code (no merchant signature: it is the payer)."""
        out_no = self.by_prepay.get(request.path_params["prepay_id"])
        if out_no is None:
            return self._refused(Refused(404, "ORDER_NOT_EXIST", "no such payment code"))
        raw = await request.body()
        notify = (_json(raw).get("notify") if raw else None) or "send"
        if notify not in ("send", "drop", "twice"):
            return self._refused(Refused(400, "PARAM_ERROR", "notify: send, drop or twice"))
        payment = self.payments[out_no]
        if not self._pay(payment, notify):
            return self._refused(Refused(409, "ORDER_CLOSED", f"payment is {payment['trade_state']}"))
        return JSONResponse({"provider": PROVIDER, **self._transaction(payment)})

    async def health(self, _request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "provider": PROVIDER, "payments": len(self.payments),
                             "pending_notifications": len(self.tasks), **self.counts})

    # ---- the money ------------------------------------------------------------------------------------------
    def _transaction(self, payment: dict) -> dict:
        if payment["trade_state"] == "NOTPAY" and now_ms() > payment["expire_ms"]:
            payment["trade_state"] = "CLOSED"
        keys = ("mchid", "out_trade_no", "transaction_id", "trade_state", "amount")
        return {**{k: payment[k] for k in keys}, "success_time": payment.get("success_time")}

    def _pay(self, payment: dict, notify: str) -> bool:
        """True when paid now or before; False when it can no longer be paid (closed)."""
        state = self._transaction(payment)["trade_state"]
        if state in ("SUCCESS", "REFUND"):
            return True
        if state != "NOTPAY":
            return False
        payment.update(trade_state="SUCCESS", transaction_id="42" + secrets.token_hex(12), success_time=now_ms())
        self.counts["paid"] += 1
        log.info("%s: payment %s paid (%s)", LABEL, payment["out_trade_no"], payment["transaction_id"])
        self._spawn(self._notify(payment["notify_url"], "TRANSACTION.SUCCESS", self._transaction(payment), notify))
        return True

    async def _auto_pay(self, prepay: str) -> None:
        await asyncio.sleep((self.settings.auto_pay_ms or 0) / 1000)
        self._pay(self.payments[self.by_prepay[prepay]], "send")

    async def _finish_refund(self, record: dict) -> None:
        await asyncio.sleep(self.settings.refund_delay_ms / 1000)
        record["status"] = "SUCCESS"
        resource = {k: v for k, v in record.items() if k != "notify_url"} | {"refund_status": "SUCCESS"}
        await self._notify(record["notify_url"], "REFUND.SUCCESS", resource, "send")

    # ---- notifications ----------------------------------------------------------------------------------------
    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: a background step failed", LABEL, exc_info=task.exception())

    async def _notify(self, url: str, event: str, resource: dict, mode: str) -> None:
        if mode == "send" and self.settings.drop_rate and self.rng.random() < self.settings.drop_rate:
            mode = "drop"
        if mode == "send" and self.settings.duplicate_rate and self.rng.random() < self.settings.duplicate_rate:
            mode = "twice"
        if mode == "drop":  # lost: the merchant must query
            self.counts["notify_dropped"] += 1
            return
        await asyncio.sleep(self.settings.notify_delay_ms / 1000)
        kind = "refund" if event.startswith("REFUND.") else "transaction"
        sealed = sig.seal_resource(sig.api_key(self.settings.api_key), resource, secrets.token_hex(6), kind)
        body = json.dumps({"id": str(uuid.uuid4()), "create_time": now_ms(), "event_type": event,
                           "resource_type": "encrypt-resource", "summary": event, "resource": sealed},
                          separators=(",", ":")).encode()
        for _ in range(2 if mode == "twice" else 1):  # at least once: the merchant dedupes
            if mode == "twice":
                self.counts["notify_duplicated"] += 1
            await self._push(url, body)

    async def _push(self, url: str, body: bytes) -> None:
        assert self.client is not None
        for attempt in range(1, NOTIFY_ATTEMPTS_MAX + 1):
            if attempt > 1:
                await asyncio.sleep(NOTIFY_BACKOFF_FIRST_S * 2 ** (attempt - 2))
            headers = {"Content-Type": "application/json",
                       **sig.signed_headers(self.key, now_ms() // 1000, secrets.token_hex(16), body)}
            try:
                response = await self.client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    self.counts["notified"] += 1
                    return
                outcome = f"{response.status_code} {response.text[:200]}"
            log.info("%s: notification attempt %d/%d: %s", LABEL, attempt, NOTIFY_ATTEMPTS_MAX, outcome)
        self.counts["notify_failed"] += 1


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        raise Refused(400, "PARAM_ERROR", "body: not JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "PARAM_ERROR", "body: a JSON object expected")
    return data


def build_app(settings: Settings) -> Starlette:
    provider = SimulatedPayProvider(settings)
    app = Starlette(routes=[
        Route("/v3/pay/transactions/native", provider.create, methods=["POST"]),
        Route("/v3/pay/transactions/out-trade-no/{out_trade_no}", provider.query, methods=["GET"]),
        Route("/v3/pay/transactions/out-trade-no/{out_trade_no}/close", provider.close, methods=["POST"]),
        Route("/v3/refund/domestic/refunds", provider.refund, methods=["POST"]),
        Route("/v3/refund/domestic/refunds/{out_refund_no}", provider.query_refund, methods=["GET"]),
        Route("/sim/pay/{prepay_id}", provider.customer_pays, methods=["POST"]),
        Route("/health", provider.health, methods=["GET"])], lifespan=provider.lifespan)
    app.state.provider = provider
    return app


def start_in_thread(settings: Settings, port: int = 0) -> ServiceThread:
    """The simulated provider on its own thread and event loop; `.url`, `.app.state.provider`, `.stop()`."""
    return ServiceThread(lambda: build_app(settings), port, "pay-simulated").start()


def serve(settings: Settings, port: int = 0) -> contextlib.AbstractAsyncContextManager[str]:
    return serving(build_app(settings), port, LABEL)


def run(settings: Settings, port: int) -> int:
    """`freshmesh sim pay`: in the foreground until SIGINT/SIGTERM; exit status 0 after a clean stop."""
    return run_in_foreground(build_app(settings), port, LABEL, (
        f"# provider public key {sig.public_text(sig.private_key(settings.provider_private_key))}; "
        f"auto-pay {settings.auto_pay_ms} ms, notify delay {settings.notify_delay_ms} ms, fail_rate "
        f"{settings.fail_rate}, duplicate_rate {settings.duplicate_rate}, drop_rate {settings.drop_rate}",))
