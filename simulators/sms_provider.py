"""A SIMULATED SMS provider, run as its own small HTTP service (nothing is ever sent to a phone).

It speaks the API `cloud/services/sms.py` (HttpSmsProvider) is written against, the shape real providers such as
Aliyun SMS or Tencent Cloud SMS have: signed requests from an account, "accepted" on the call, a signed delivery
receipt pushed to a callback URL later. Everything it answers says `"provider": "simulated"`, and every log line
starts with "SMS (simulated)".

- `POST /v1/messages` `{"message_id", "to", "text"}` with `X-Sms-Key`, `X-Sms-Timestamp`, `X-Sms-Signature`:
  401 wrong key or signature (or a timestamp outside ±5 min), 400 not JSON, 413 too big, 422 a bad field (phone,
  text, message_id); the same message_id again answers 200 with the first result and is not sent twice (409 if its
  content differs); with probability `fail_rate` 503 and nothing kept; else 202 `{"message_id", "provider":
  "simulated", "status": "accepted"}`. The last `MESSAGES_KEPT_MAX` messages are kept (oldest dropped first, and
  with them their dedup memory).
- `delay_ms` after accepting, the message is "delivered" and, if `callback_url` is set, a signed receipt
  `{"message_id", "status": "delivered", "at_ms", "provider": "simulated"}` is POSTed there (twice with probability
  `duplicate_rate`), retried a few times if the callback fails. Receipts never hold up the request path.
- `GET /v1/messages?to=<phone>` (`X-Sms-Key` required, no signature): the messages sent to that number, newest
  last. This is how tests, the demo and the simulated customers read their one-time codes.
- `GET /health`: `"provider": "simulated"` and counters (accepted, duplicates, unavailable, receipts_sent, …).

Start it:
- `freshmesh sim sms --port P --key K --secret S [--callback-url U] [--fail-rate F] [--delay-ms D]
  [--duplicate-rate R] [--seed N]` (or `python -m simulators.cli sim sms …`): foreground, prints
  `SMS (simulated): http://127.0.0.1:P`, stops cleanly (exit 0) on SIGINT/SIGTERM. `--port 0` takes a free port.
- in a running event loop: `async with serve(key=…, secret=…) as url: …` (a free port unless `port=` is given);
- from synchronous code or another loop: `with start_in_thread(key=…, secret=…) as sms: sms.url` (its own thread
  and event loop; `stop()` or leaving the block stops it).
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import random
import re
import signal
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cloud.services.sms import KEY_HEADER, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_MS, TIMESTAMP_HEADER, signed_headers, verify
from simulators.sim_http import ServiceThread, serving

PROVIDER = "simulated"
MESSAGES_KEPT_MAX = 10_000  # sent messages remembered (for GET and dedup); the oldest is dropped first
REQUEST_BODY_MAX_BYTES = 16_384
TEXT_MAX_CHARS = 500  # a long SMS is split by the carrier; providers cap the whole text around here
MESSAGE_ID_MAX_CHARS = 128
PHONE = re.compile(r"\+?[1-9][0-9]{6,14}")  # E.164 digits, '+' optional: 13812345678, +8613812345678
DEFAULT_DELAY_MS = 200
RECEIPTS_PENDING_MAX = 1_000  # receipts waiting for their delay or a callback retry; past this one is dropped
RECEIPT_ATTEMPTS_MAX = 4
RECEIPT_BACKOFF_FIRST_S = 0.2  # doubles per retry
RECEIPT_TIMEOUT_S = 5.0
PROBLEM = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 409: "Conflict", 413: "Payload too large", 422: "Invalid body",
          503: "Service unavailable"}
log = logging.getLogger("freshmesh.sim.sms")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def masked(phone: str) -> str:
    """A phone as logs may show it (personal data is masked wherever shown): +8613812345678 -> 138****5678."""
    national = phone[3:] if phone.startswith("+86") else phone.lstrip("+")
    return national[:3] + "****" + national[-4:] if len(national) >= 8 else "****"


@dataclass(frozen=True)
class Settings:
    key: str
    secret: str
    callback_url: str | None = None
    fail_rate: float = 0.0
    delay_ms: int = DEFAULT_DELAY_MS
    duplicate_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.key or not self.secret:
            raise ValueError("the simulated SMS provider needs a key and a secret")
        for name in ("fail_rate", "duplicate_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.delay_ms < 0:
            raise ValueError(f"delay_ms must not be negative, got {self.delay_ms}")
        if self.callback_url and not self.callback_url.startswith(("http://", "https://")):
            raise ValueError(f"callback_url must be an http(s) URL, got {self.callback_url!r}")


class Refused(Exception):
    """A request the simulated provider refuses; answered as problem+json."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail

    def response(self) -> JSONResponse:
        body = {"type": "about:blank", "title": TITLES.get(self.status, "Error"), "status": self.status,
                "detail": self.detail, "provider": PROVIDER}
        headers = {"Retry-After": "1"} if self.status == 503 else None
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM, headers=headers)


class SimulatedSmsProvider:
    """The simulated provider's state and its answers. Runs on one event loop: no locks needed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.messages: OrderedDict[str, dict[str, Any]] = OrderedDict()  # by message_id, oldest first
        self.by_phone: dict[str, deque[str]] = {}  # message_ids per phone, oldest first
        self.counts = dict.fromkeys(("accepted", "duplicates", "unavailable", "refused", "receipts_sent",
                                     "receipts_failed", "receipts_dropped"), 0)
        self.pending: set[asyncio.Task] = set()
        self.client: httpx.AsyncClient | None = None

    # ---- lifecycle (the app's lifespan) -----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.client = httpx.AsyncClient(timeout=RECEIPT_TIMEOUT_S)
        try:
            yield
        finally:
            for task in list(self.pending):
                task.cancel()
            await asyncio.gather(*self.pending, return_exceptions=True)
            await self.client.aclose()

    # ---- endpoints --------------------------------------------------------------------------------------------
    async def post_message(self, request: Request) -> JSONResponse:
        try:
            self._check_key(request)
            body = await _read_body(request)
            self._check_signature(request, body)
            message = _parse_message(body)
        except Refused as refused:
            self.counts["refused"] += 1
            log.info("SMS (simulated): refused %s: %s", refused.status, refused.detail)
            return refused.response()
        first = self.messages.get(message["message_id"])
        if first is not None:
            if (first["to"], first["text"]) != (message["to"], message["text"]):
                return Refused(409, f"message_id {message['message_id']} was already used for another message").response()
            self.counts["duplicates"] += 1
            return JSONResponse(_result(first), status_code=200)
        if self.settings.fail_rate and self.rng.random() < self.settings.fail_rate:
            self.counts["unavailable"] += 1
            log.info("SMS (simulated): 503 for %s (fail_rate %.2f)", message["message_id"], self.settings.fail_rate)
            return Refused(503, "the simulated SMS provider is unavailable (simulated failure); retry").response()
        duplicate = bool(self.settings.duplicate_rate) and self.rng.random() < self.settings.duplicate_rate
        record: dict[str, Any] = {**message, "at_ms": now_ms(), "status": "accepted", "delivered_at_ms": None}
        self._keep(record)
        self.counts["accepted"] += 1
        log.info("SMS (simulated): accepted %s to %s", message["message_id"], masked(message["to"]))
        self._schedule_receipt(record, duplicate)
        return JSONResponse(_result(record), status_code=202)

    async def get_messages(self, request: Request) -> JSONResponse:
        try:
            self._check_key(request)
            to = request.query_params.get("to")
            if not to:
                raise Refused(400, "give the phone number: GET /v1/messages?to=<phone>")
            if not PHONE.fullmatch(to):
                raise Refused(422, f"to: not a phone number: {to!r}")
        except Refused as refused:
            return refused.response()
        ids = self.by_phone.get(to, ())
        messages = [_public(self.messages[message_id]) for message_id in ids]
        return JSONResponse({"provider": PROVIDER, "to": to, "messages": messages})

    async def health(self, _request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "provider": PROVIDER, "messages_kept": len(self.messages),
                             "receipts_pending": len(self.pending), **self.counts})

    # ---- checks -----------------------------------------------------------------------------------------------
    def _check_key(self, request: Request) -> None:
        key = request.headers.get(KEY_HEADER)
        if key is None:
            raise Refused(401, f"missing {KEY_HEADER}")
        if not hmac.compare_digest(key.encode(), self.settings.key.encode()):
            raise Refused(401, f"{KEY_HEADER}: unknown account key")

    def _check_signature(self, request: Request, body: bytes) -> None:
        stamp, signature = request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
        if stamp is None or signature is None:
            raise Refused(401, f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 16):
            raise Refused(401, f"{TIMESTAMP_HEADER}: epoch milliseconds expected, got {stamp[:20]!r}")
        now = now_ms()
        if abs(now - int(stamp)) > SIGNATURE_TOLERANCE_MS:
            raise Refused(401, f"{TIMESTAMP_HEADER}: {int(stamp) - now} ms from the provider's clock "
                               f"(allowed ±{SIGNATURE_TOLERANCE_MS} ms)")
        if not verify(self.settings.secret, int(stamp), signature, body, now):
            raise Refused(401, f"{SIGNATURE_HEADER}: does not match the body and timestamp")

    # ---- the store --------------------------------------------------------------------------------------------
    def _keep(self, record: dict[str, Any]) -> None:
        self.messages[record["message_id"]] = record
        self.by_phone.setdefault(record["to"], deque()).append(record["message_id"])
        while len(self.messages) > MESSAGES_KEPT_MAX:
            _, oldest = self.messages.popitem(last=False)
            ids = self.by_phone[oldest["to"]]
            ids.popleft()  # the oldest message overall is the oldest to its phone
            if not ids:
                del self.by_phone[oldest["to"]]

    # ---- delivery receipts ------------------------------------------------------------------------------------
    def _schedule_receipt(self, record: dict[str, Any], duplicate: bool) -> None:
        if len(self.pending) >= RECEIPTS_PENDING_MAX:
            self.counts["receipts_dropped"] += 1
            log.warning("SMS (simulated): %d receipts pending; dropping the one for %s", len(self.pending),
                        record["message_id"])
            return
        task = asyncio.create_task(self._deliver(record, duplicate))
        self.pending.add(task)
        task.add_done_callback(self._receipt_done)

    def _receipt_done(self, task: asyncio.Task) -> None:
        self.pending.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a bug here must not pass in silence
            self.counts["receipts_failed"] += 1
            log.error("SMS (simulated): a receipt failed", exc_info=task.exception())

    async def _deliver(self, record: dict[str, Any], duplicate: bool) -> None:
        await asyncio.sleep(self.settings.delay_ms / 1000)
        record["status"], record["delivered_at_ms"] = "delivered", now_ms()
        if not self.settings.callback_url:
            return
        receipt = {"message_id": record["message_id"], "status": "delivered", "at_ms": record["delivered_at_ms"],
                   "provider": PROVIDER}
        body = json.dumps(receipt, separators=(",", ":")).encode()
        for _ in range(2 if duplicate else 1):  # a real provider's at-least-once push: the receiver dedupes
            await self._push_receipt(body, record["message_id"])

    async def _push_receipt(self, body: bytes, message_id: str) -> None:
        assert self.client is not None and self.settings.callback_url
        for attempt in range(1, RECEIPT_ATTEMPTS_MAX + 1):
            if attempt > 1:
                await asyncio.sleep(RECEIPT_BACKOFF_FIRST_S * 2 ** (attempt - 2))
            headers = {"Content-Type": "application/json", **signed_headers(self.settings.secret, now_ms(), body)}
            try:
                response = await self.client.post(self.settings.callback_url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    self.counts["receipts_sent"] += 1
                    return
                outcome = f"status {response.status_code}"
            log.info("SMS (simulated): receipt for %s, attempt %d/%d: %s", message_id, attempt, RECEIPT_ATTEMPTS_MAX,
                     outcome)
        self.counts["receipts_failed"] += 1
        log.warning("SMS (simulated): gave up the receipt for %s after %d attempts", message_id, RECEIPT_ATTEMPTS_MAX)


def _result(record: dict[str, Any]) -> dict[str, Any]:
    return {"message_id": record["message_id"], "provider": PROVIDER, "status": "accepted"}


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "provider": PROVIDER}


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > REQUEST_BODY_MAX_BYTES:
        raise Refused(413, f"body of {declared} bytes; at most {REQUEST_BODY_MAX_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > REQUEST_BODY_MAX_BYTES:
            raise Refused(413, f"body over {REQUEST_BODY_MAX_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_message(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(400, f"body: not UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise Refused(400, f"body: a JSON object expected, got {type(data).__name__}")
    message_id, to, text = data.get("message_id"), data.get("to"), data.get("text")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MESSAGE_ID_MAX_CHARS or \
            not message_id.isprintable() or any(c.isspace() for c in message_id):
        raise Refused(422, f"message_id: 1 to {MESSAGE_ID_MAX_CHARS} printable characters without spaces")
    if not isinstance(to, str) or not PHONE.fullmatch(to):
        raise Refused(422, f"to: not a phone number (E.164 digits, '+' optional): {to!r}")
    if not isinstance(text, str) or not text.strip():
        raise Refused(422, "text: a non-empty string is required")
    if len(text) > TEXT_MAX_CHARS:
        raise Refused(422, f"text: {len(text)} characters; at most {TEXT_MAX_CHARS}")
    return {"message_id": message_id, "to": to, "text": text}


def build_app(settings: Settings) -> Starlette:
    provider = SimulatedSmsProvider(settings)
    app = Starlette(routes=[Route("/v1/messages", provider.post_message, methods=["POST"]),
                            Route("/v1/messages", provider.get_messages, methods=["GET"]),
                            Route("/health", provider.health, methods=["GET"])],
                    lifespan=provider.lifespan)
    app.state.provider = provider
    return app


# ---- running it (simulators/sim_http.py) -------------------------------------------------------------------------
def _serving(settings: Settings, port: int) -> contextlib.AbstractAsyncContextManager[str]:
    return serving(build_app(settings), port, "SMS (simulated)")


def serve(*, key: str, secret: str, port: int = 0, callback_url: str | None = None, fail_rate: float = 0.0,
          delay_ms: int = DEFAULT_DELAY_MS, duplicate_rate: float = 0.0,
          seed: int | None = None) -> contextlib.AbstractAsyncContextManager[str]:
    """`async with serve(key=…, secret=…) as url:` runs the simulated provider in this event loop (127.0.0.1, a
    free port unless `port` is given) and stops it (pending receipts cancelled) when the block ends."""
    settings = Settings(key, secret, callback_url, fail_rate, delay_ms, duplicate_rate, seed)
    return _serving(settings, port)


class SimulatedSmsThread(ServiceThread):
    """The simulated provider on its own thread and event loop (`start_in_thread`)."""

    def __init__(self, settings: Settings, port: int) -> None:
        super().__init__(lambda: build_app(settings), port, "sms-simulated")
        self.settings = settings


def start_in_thread(*, key: str, secret: str, port: int = 0, callback_url: str | None = None,
                    fail_rate: float = 0.0, delay_ms: int = DEFAULT_DELAY_MS, duplicate_rate: float = 0.0,
                    seed: int | None = None) -> SimulatedSmsThread:
    """Starts the simulated provider on its own thread and event loop and returns once it answers on `.url`;
    `.stop()` (or `with start_in_thread(…) as sms:`) stops it."""
    settings = Settings(key, secret, callback_url, fail_rate, delay_ms, duplicate_rate, seed)
    return SimulatedSmsThread(settings, port).start()


def run(port: int, key: str, secret: str, callback_url: str | None = None, fail_rate: float = 0.0,
        delay_ms: int = DEFAULT_DELAY_MS, duplicate_rate: float = 0.0, seed: int | None = None) -> int:
    """`freshmesh sim sms`: in the foreground until SIGINT/SIGTERM; exit status 0 after a clean stop."""
    settings = Settings(key, secret, callback_url, fail_rate, delay_ms, duplicate_rate, seed)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return asyncio.run(_foreground(settings, port))


async def _foreground(settings: Settings, port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with _serving(settings, port) as url:
        print(f"SMS (simulated): {url}", flush=True)
        print(f"# simulated provider: fail_rate {settings.fail_rate}, delay {settings.delay_ms} ms, duplicate_rate "
              f"{settings.duplicate_rate}, receipts to {settings.callback_url or '(no callback URL)'}; "
              "Ctrl-C stops it", flush=True)
        await stop.wait()
    print("SMS (simulated): stopped", flush=True)
    return 0
