"""What the simulated partner platforms share (the rider platform, the marketplace): requests from the merchant
checked the way a real platform checks them, signed pushes back to the merchant, and background work that ends with
the service.

- `signed_request`: a body over the size limit is 413, a signature that does not verify under the app secret
  (`protocol/partner_signing.py`) 401, a simulated outage (`fail_rate`) 503, a body that is not a JSON object 400;
  each a `Refused` the platform answers as `{"code", "message", "platform": "simulated"}`.
- `push`: a signed POST to the merchant, resent until answered 2xx (a few tries, backing off); every answer is kept
  in `answers` for the tests to read.
- `spawn`: a background task, cancelled when the service stops (`lifespan`).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from protocol.partner_signing import Scheme, request_signature_payload

PLATFORM = "simulated"
PUSH_ATTEMPTS_MAX = 6
PUSH_BACKOFF_FIRST_S = 0.2
PUSH_TIMEOUT_S = 5.0
log = logging.getLogger("freshmesh.sim.partner")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class PartnerSim:
    """The shared half of a simulated platform; `label` starts its log lines ("RIDERS (simulated)")."""

    def __init__(self, label: str, scheme: Scheme, app_key: str, app_secret: str, fail_rate: float,
                 seed: int | None, body_max_bytes: int, attempts_max: int = PUSH_ATTEMPTS_MAX) -> None:
        self.label, self.scheme, self.app_key, self._secret = label, scheme, app_key, app_secret
        self.fail_rate, self.body_max_bytes, self.attempts_max = fail_rate, body_max_bytes, attempts_max
        self.rng = random.Random(seed)
        self.answers: list[tuple[str, int]] = []  # (push id, the merchant's HTTP status), per push
        self.pushed, self.push_failed, self.refused = 0, 0, 0
        self.tasks: set[asyncio.Task] = set()
        self.client: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.client = httpx.AsyncClient(timeout=PUSH_TIMEOUT_S)
        try:
            yield
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.client.aclose()

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def signed_request(self, request: Request) -> dict:
        body = await request.body()
        if len(body) > self.body_max_bytes:
            raise Refused(413, "PARAM_ERROR", f"body over {self.body_max_bytes} bytes")
        why = self.scheme.verify(self.app_key, self._secret, request.headers,
                                 request_signature_payload(request.method, request.url.path, body), now_ms() // 1000)
        if why is not None:
            raise Refused(401, "SIGN_ERROR", why)
        if self.fail_rate and self.rng.random() < self.fail_rate:
            raise Refused(503, "SYSTEM_ERROR", f"{self.label} is unavailable (simulated failure); retry")
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            raise Refused(400, "PARAM_ERROR", "body is not JSON") from None
        if not isinstance(data, dict):
            raise Refused(400, "PARAM_ERROR", "body must be a JSON object")
        return data

    def answer_refused(self, refused: Refused) -> JSONResponse:
        self.refused += 1
        return JSONResponse({"code": refused.code, "message": refused.message, "platform": PLATFORM},
                            status_code=refused.status)

    async def push(self, url: str, raw: bytes, push_id: str) -> bool:
        """POST the signed body until answered 2xx (a few tries, backing off); False when it never was."""
        assert self.client is not None, "pushes run inside the service's lifespan"
        backoff = PUSH_BACKOFF_FIRST_S
        for _ in range(self.attempts_max):
            headers = self.scheme.signed_headers(self.app_key, self._secret, now_ms() // 1000, secrets.token_hex(12),
                                                 raw)
            try:
                r = await self.client.post(url, content=raw, headers={**headers, "Content-Type": "application/json"})
                self.answers.append((push_id, r.status_code))
                if r.is_success:
                    self.pushed += 1
                    return True
                log.warning("%s: push answered %d: %s", self.label, r.status_code, r.text[:200])
            except httpx.HTTPError as exc:
                log.warning("%s: push failed: %s", self.label, exc)
            await asyncio.sleep(backoff)
            backoff *= 2
        self.push_failed += 1
        return False
