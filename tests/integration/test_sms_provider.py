"""The SMS adapter (cloud/services/sms.py) against the SIMULATED SMS provider (simulators/sms_provider.py) running as
a real service on a free port: real HTTP both ways, delivery receipts into a small receiver started here."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cloud.embedded.process import free_port
from cloud.services.sms import (
    SEND_ATTEMPTS_MAX,
    HttpSmsProvider,
    SmsUnavailable,
    parse_delivery,
    sign,
    signed_headers,
    verify_headers,
)
from protocol.clock import ManualClock, ReadingClock
from simulators import sms_provider
from simulators.sms_provider import serve, start_in_thread

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "acct-test", "sms-test-secret"
PHONE = "13812345678"


def clock() -> ReadingClock:
    return ReadingClock(time.time_ns, time.monotonic_ns)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextlib.asynccontextmanager
async def adapter(url: str, key: str = KEY, secret: str = SECRET, wall=None, **limits):
    sms = HttpSmsProvider(url, key, secret, wall or clock(), **limits)
    try:
        yield sms
    finally:
        await sms.close()


async def get_json(url: str, path: str, key: str | None = KEY, **params) -> tuple[int, dict]:
    async with httpx.AsyncClient() as client:
        response = await client.get(url + path, params=params, headers={"X-Sms-Key": key} if key else {})
    return response.status_code, response.json()


async def messages_to(url: str, phone: str) -> list[dict]:
    status, body = await get_json(url, "/v1/messages", to=phone)
    assert status == 200, body
    assert body["provider"] == "simulated"
    return body["messages"]


async def eventually(check, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.02)


async def raw_post(url: str, body: bytes, key: str | None = KEY, secret: str = SECRET, stamp: int | None = None,
                   signature: str | None = None) -> httpx.Response:
    stamp = now_ms() if stamp is None else stamp
    headers = {"Content-Type": "application/json", **signed_headers(secret, stamp, body)}
    if signature is not None:
        headers["X-Sms-Signature"] = signature
    if key is not None:
        headers["X-Sms-Key"] = key
    async with httpx.AsyncClient() as client:
        return await client.post(url + "/v1/messages", content=body, headers=headers)


def message(message_id: str = "m-1", to: str = PHONE, text: str = "FreshMesh code 123456") -> bytes:
    return json.dumps({"message_id": message_id, "to": to, "text": text}).encode()


class Receiver:
    """Where receipts go: a Starlette app under uvicorn on a free port; answers 503 to the first `fail_first`."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first, self.received, self.answered_ok = fail_first, [], 0

    async def receipt(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        if self.fail_first > 0:
            self.fail_first -= 1
            return Response(status_code=503)
        self.answered_ok += 1
        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def running(self):
        port = free_port()
        app = Starlette(routes=[Route("/sms/receipts", self.receipt, methods=["POST"])])
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            assert not task.done(), "the receipt receiver did not start"
            await asyncio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}/sms/receipts"
        finally:
            server.should_exit = True
            await task


# ---- sending -------------------------------------------------------------------------------------------------------
async def test_send_and_read_back():
    with start_in_thread(key=KEY, secret=SECRET, delay_ms=20) as provider:
        async with adapter(provider.url) as sms:
            await sms.send(PHONE, "FreshMesh code 123456", "m-1")
            await sms.send(PHONE, "FreshMesh code 654321", "m-2")
            await sms.send("+8613900000000", "someone else", "m-3")
        got = await messages_to(provider.url, PHONE)
        assert [(m["message_id"], m["text"], m["provider"]) for m in got] == [
            ("m-1", "FreshMesh code 123456", "simulated"), ("m-2", "FreshMesh code 654321", "simulated")]
        assert all(m["to"] == PHONE and m["at_ms"] > 0 for m in got)
        delivered = await eventually(
            lambda: _all_delivered(provider.url, PHONE))
        assert delivered, "no callback URL: messages still become delivered after delay_ms"
        assert [m["message_id"] for m in await messages_to(provider.url, "+8613900000000")] == ["m-3"]
        assert await messages_to(provider.url, "13700000000") == []


async def _all_delivered(url: str, phone: str) -> bool:
    got = await messages_to(url, phone)
    return bool(got) and all(m["status"] == "delivered" and m["delivered_at_ms"] >= m["at_ms"] for m in got)


async def test_a_retried_send_is_stored_once():
    with start_in_thread(key=KEY, secret=SECRET) as provider:
        async with adapter(provider.url) as sms:
            await sms.send(PHONE, "code 111111", "otp-1")
            await sms.send(PHONE, "code 111111", "otp-1")  # the retry of a send whose answer was lost
        first = await raw_post(provider.url, message("otp-2", text="code 222222"))
        again = await raw_post(provider.url, message("otp-2", text="code 222222"))
        assert (first.status_code, again.status_code) == (202, 200)
        assert first.json() == again.json() == {"message_id": "otp-2", "provider": "simulated", "status": "accepted"}
        assert [m["message_id"] for m in await messages_to(provider.url, PHONE)] == ["otp-1", "otp-2"]
        _, health = await get_json(provider.url, "/health")
        assert (health["accepted"], health["duplicates"], health["provider"]) == (2, 2, "simulated")

        async with adapter(provider.url) as sms:  # the same id for another message: refused at once, not retried
            with pytest.raises(SmsUnavailable, match="already used") as refused:
                await sms.send(PHONE, "code 999999", "otp-1")
        assert (refused.value.status, refused.value.attempts) == (409, 1)
        assert len(await messages_to(provider.url, PHONE)) == 2


async def test_the_store_is_bounded_oldest_dropped(monkeypatch):
    monkeypatch.setattr(sms_provider, "MESSAGES_KEPT_MAX", 3)
    with start_in_thread(key=KEY, secret=SECRET) as provider:
        async with adapter(provider.url) as sms:
            for i in range(4):
                await sms.send(PHONE, f"code {i}", f"m-{i}")
            await sms.send("13911112222", "other", "m-4")
        assert [m["message_id"] for m in await messages_to(provider.url, PHONE)] == ["m-2", "m-3"]
        _, health = await get_json(provider.url, "/health")
        assert health["messages_kept"] == 3


async def test_always_failing_provider_gives_up_after_bounded_retries():
    with start_in_thread(key=KEY, secret=SECRET, fail_rate=1.0, seed=1) as provider:
        started = time.monotonic()
        async with adapter(provider.url) as sms:  # the adapter's own limits and backoff
            with pytest.raises(SmsUnavailable, match=f"after {SEND_ATTEMPTS_MAX} attempts") as gave_up:
                await sms.send(PHONE, "code 123456", "m-1")
        assert time.monotonic() - started < 30
        assert (gave_up.value.status, gave_up.value.attempts) == (503, SEND_ATTEMPTS_MAX)
        assert "simulated failure" in str(gave_up.value)
        _, health = await get_json(provider.url, "/health")
        assert (health["unavailable"], health["accepted"]) == (SEND_ATTEMPTS_MAX, 0)
        assert await messages_to(provider.url, PHONE) == []


async def test_unreachable_provider_gives_up():
    async with adapter(f"http://127.0.0.1:{free_port()}", attempts_max=3, backoff_first_s=0.01) as sms:
        with pytest.raises(SmsUnavailable, match="after 3 attempts") as gave_up:
            await sms.send(PHONE, "code 123456", "m-1")
    assert (gave_up.value.status, gave_up.value.attempts) == (None, 3)
    assert "ConnectError" in str(gave_up.value)


async def test_sends_get_through_a_flaky_provider():
    with start_in_thread(key=KEY, secret=SECRET, fail_rate=0.5, seed=7) as provider:
        async with adapter(provider.url, attempts_max=12, backoff_first_s=0.005) as sms:
            for i in range(20):
                await sms.send(PHONE, f"code {i:06d}", f"flaky-{i}")
        assert [m["message_id"] for m in await messages_to(provider.url, PHONE)] == [f"flaky-{i}" for i in range(20)]
        _, health = await get_json(provider.url, "/health")
        assert health["accepted"] == 20 and health["unavailable"] > 0  # retries happened, each message kept once


# ---- refusals ------------------------------------------------------------------------------------------------------
async def test_wrong_key_or_signature_is_401():
    with start_in_thread(key=KEY, secret=SECRET) as provider:
        url, body = provider.url, message()
        cases = {
            "no key": await raw_post(url, body, key=None),
            "wrong key": await raw_post(url, body, key="acct-other"),
            "wrong secret": await raw_post(url, body, secret="not-the-secret"),
            "tampered": await raw_post(url, body, signature=sign(SECRET, now_ms(), message(text="other"))),
            "stale": await raw_post(url, body, stamp=now_ms() - 600_000),
            "future": await raw_post(url, body, stamp=now_ms() + 600_000),
        }
        for case, response in cases.items():
            assert response.status_code == 401, case
            assert response.headers["content-type"].startswith("application/problem+json"), case
            problem = response.json()
            assert (problem["status"], problem["provider"]) == (401, "simulated"), case
            assert problem["detail"], case
        assert "X-Sms-Key" in cases["wrong key"].json()["detail"]
        assert "X-Sms-Signature" in cases["wrong secret"].json()["detail"]
        assert "X-Sms-Timestamp" in cases["stale"].json()["detail"]
        assert (await get_json(url, "/v1/messages", key=None, to=PHONE))[0] == 401
        assert (await get_json(url, "/v1/messages", key="acct-other", to=PHONE))[0] == 401

        for sms_args in ({"secret": "not-the-secret"}, {"key": "acct-other"},
                         {"wall": ManualClock(now_ms=now_ms() - 3_600_000)}):
            async with adapter(url, **sms_args) as sms:  # refused at once, no retries
                with pytest.raises(SmsUnavailable, match="refused") as refused:
                    await sms.send(PHONE, "code 123456", "m-1")
            assert (refused.value.status, refused.value.attempts) == (401, 1)
        _, health = await get_json(url, "/health")
        assert health["accepted"] == 0 and health["refused"] == len(cases) + 3


async def test_bad_bodies_are_400_413_422():
    with start_in_thread(key=KEY, secret=SECRET) as provider:
        url = provider.url
        assert (await raw_post(url, b"{not json")).status_code == 400
        assert (await raw_post(url, b"[]")).status_code == 400
        assert (await raw_post(url, b"x" * 20_000)).status_code == 413
        for body, field in [(message(to="12345"), "to"), (message(to="1381234567a"), "to"),
                            (message(text=""), "text"), (message(text="x" * 501), "text"),
                            (message(message_id=""), "message_id"), (message(message_id="has space"), "message_id"),
                            (json.dumps({"message_id": "m", "to": PHONE}).encode(), "text")]:
            response = await raw_post(url, body)
            assert response.status_code == 422, body
            assert response.json()["detail"].startswith(f"{field}:"), response.json()
        async with adapter(url) as sms:
            with pytest.raises(SmsUnavailable, match="to: not a phone number") as refused:
                await sms.send("not-a-phone", "code", "m-1")
        assert refused.value.status == 422
        assert (await get_json(url, "/v1/messages"))[0] == 400
        assert await messages_to(url, PHONE) == []


# ---- delivery receipts ---------------------------------------------------------------------------------------------
async def test_receipts_arrive_signed_and_sometimes_twice():
    receiver = Receiver()
    async with receiver.running() as callback_url:
        with start_in_thread(key=KEY, secret=SECRET, callback_url=callback_url, delay_ms=20,
                             duplicate_rate=1.0, seed=3) as provider:
            async with adapter(provider.url) as sms:
                for i in range(3):
                    await sms.send(PHONE, f"code {i}", f"r-{i}")

            async def six():
                return len(receiver.received) >= 6
            assert await eventually(six), receiver.received
            await asyncio.sleep(0.1)  # nothing more than the two copies each
            _, health = await get_json(provider.url, "/health")
    assert len(receiver.received) == 6
    receipts = []
    for headers, body in receiver.received:
        assert verify_headers(SECRET, {"X-Sms-Timestamp": headers["x-sms-timestamp"],
                                       "X-Sms-Signature": headers["x-sms-signature"]}, body, now_ms())
        assert not verify_headers("other-secret", {"X-Sms-Timestamp": headers["x-sms-timestamp"],
                                                   "X-Sms-Signature": headers["x-sms-signature"]}, body, now_ms())
        assert "x-sms-key" not in headers  # the key is for requests to the provider
        receipt = parse_delivery(body)
        assert receipt["status"] == "delivered" and receipt["at_ms"] > 0
        assert json.loads(body)["provider"] == "simulated"
        receipts.append(receipt["message_id"])
    assert sorted(receipts) == ["r-0", "r-0", "r-1", "r-1", "r-2", "r-2"]
    assert (health["receipts_sent"], health["receipts_failed"]) == (6, 0)


async def test_a_failing_callback_is_retried():
    receiver = Receiver(fail_first=2)
    async with receiver.running() as callback_url:
        async with serve(key=KEY, secret=SECRET, callback_url=callback_url, delay_ms=0) as url:  # in this loop
            async with adapter(url) as sms:
                await sms.send(PHONE, "code 123456", "retry-1")

            async def answered():
                return receiver.answered_ok >= 1
            assert await eventually(answered)
            _, health = await get_json(url, "/health")
    assert len(receiver.received) == 3  # two 503s, then taken
    assert {parse_delivery(body)["message_id"] for _, body in receiver.received} == {"retry-1"}
    assert (health["receipts_sent"], health["receipts_failed"]) == (1, 0)


async def test_a_dead_callback_does_not_hold_up_sends():
    dead = f"http://127.0.0.1:{free_port()}/receipts"
    with start_in_thread(key=KEY, secret=SECRET, callback_url=dead, delay_ms=0) as provider:
        async with adapter(provider.url, attempts_max=1) as sms:
            for i in range(5):
                await sms.send(PHONE, f"code {i}", f"d-{i}")  # accepted while receipts fail in the background

        async def gave_up():
            return (await get_json(provider.url, "/health"))[1]["receipts_failed"] == 5
        assert await eventually(gave_up)
        assert len(await messages_to(provider.url, PHONE)) == 5


# ---- the command ---------------------------------------------------------------------------------------------------
async def test_freshmesh_sim_sms_runs_in_the_foreground_and_stops_on_sigterm():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "simulators.cli", "sim", "sms", "--port", str(port),
                             "--key", KEY, "--secret", SECRET, "--delay-ms", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert first.strip() == f"SMS (simulated): http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}"
        async with adapter(url) as sms:
            await sms.send(PHONE, "code 123456", "cli-1")
        assert [m["text"] for m in await messages_to(url, PHONE)] == ["code 123456"]
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=15)
        assert proc.returncode == 0, out
        assert "SMS (simulated): stopped" in out
        assert "SMS (simulated): accepted cli-1 to 138****5678" in out  # the phone masked, the code never logged
        assert "123456" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
