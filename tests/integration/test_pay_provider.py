"""The wallet adapter (cloud/services/wallet.py) against the SIMULATED wallet provider (simulators/pay_provider.py)
running as a real service on a free port: signed requests one way, signed answers the other, and the command."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cloud.embedded.process import free_port
from cloud.services import pay_signatures as sig
from cloud.services.wallet import HttpPayProvider, PayRefused, PayUnavailable
from protocol.clock import ReadingClock
from simulators.pay_provider import Settings, serve

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MERCHANT, PROVIDER, API_KEY = sig.new_private_text(), sig.new_private_text(), sig.new_private_text()
MCHID = "m-test"


def settings(**over) -> Settings:
    return Settings(MCHID, sig.public_text(sig.private_key(MERCHANT)), PROVIDER, API_KEY, **over)


def wallet(url: str, merchant: str = MERCHANT, provider: str = PROVIDER, mchid: str = MCHID) -> HttpPayProvider:
    return HttpPayProvider(url, mchid, merchant, sig.public_text(sig.private_key(provider)),
                           "http://127.0.0.1:9/callbacks/pay", ReadingClock(time.time_ns, time.monotonic_ns),
                           api_key=API_KEY)


async def test_create_is_idempotent_query_and_refund_follow_the_payment():
    async with serve(settings(notify_delay_ms=0, refund_delay_ms=0)) as url:
        w = wallet(url)
        try:
            expire = time.time_ns() // 1_000_000 + 60_000
            made = await w.create("topup:a:1", 1_500, "test", expire)
            assert made == await w.create("topup:a:1", 1_500, "test", expire)  # a retry: the same payment
            with pytest.raises(PayRefused) as other:
                await w.create("topup:a:1", 1_600, "test", expire)
            assert other.value.code == "INVALID_REQUEST"
            assert (await w.query("topup:a:1")).state == "NOTPAY"
            assert await w.query("nobody") is None
            with pytest.raises(PayRefused):  # nothing paid: nothing to refund
                await w.refund("refund:a", "topup:a:1", 1_500, 1_500)
            async with httpx.AsyncClient(base_url=url) as app:
                paid = (await app.post(f"/sim/pay/{made['prepay_id']}", json={})).json()
            word = await w.query("topup:a:1")
            assert (word.state, word.amount_fen, word.txn_id, word.mchid) == ("SUCCESS", 1_500, paid["transaction_id"],
                                                                             MCHID)
            with pytest.raises(PayRefused) as too_much:
                await w.refund("refund:a", "topup:a:1", 1_501, 1_500)
            assert too_much.value.code == "PARAM_ERROR"
            first = await w.refund("refund:a", "topup:a:1", 1_500, 1_500)
            assert first.state in ("PROCESSING", "SUCCESS") and first.amount_fen == 1_500
            await asyncio.sleep(0.1)
            assert (await w.query_refund("refund:a")).state == "SUCCESS"
            assert (await w.refund("refund:a", "topup:a:1", 1_500, 1_500)).txn_id == first.txn_id  # once
        finally:
            await w.close()


async def test_unsigned_or_wrongly_signed_requests_and_answers_are_refused():
    async with serve(settings()) as url:
        async with httpx.AsyncClient(base_url=url) as raw:
            r = await raw.post("/v3/pay/transactions/native", json={"mchid": MCHID, "out_trade_no": "x"})
            assert r.status_code == 401 and r.json()["code"] == "SIGN_ERROR"
        impostor = wallet(url, merchant=sig.new_private_text())  # someone without the merchant's key
        with pytest.raises(PayRefused) as refused:
            await impostor.create("charge:x", 100, "x", time.time_ns() // 1_000_000 + 60_000)
        assert refused.value.status == 401
        await impostor.close()
        fooled = wallet(url, provider=sig.new_private_text())  # answers not signed by the provider we trust
        with pytest.raises(PayUnavailable, match="not believed"):
            await fooled.create("charge:y", 100, "y", time.time_ns() // 1_000_000 + 60_000)
        await fooled.close()


async def test_a_payment_past_its_expiry_is_closed_and_cannot_be_paid():
    async with serve(settings()) as url:
        w = wallet(url)
        made = await w.create("charge:late", 300, "late", time.time_ns() // 1_000_000 + 50)
        await asyncio.sleep(0.1)
        assert (await w.query("charge:late")).state == "CLOSED"
        async with httpx.AsyncClient(base_url=url) as app:
            r = await app.post(f"/sim/pay/{made['prepay_id']}", json={})
        assert r.status_code == 409 and r.json()["code"] == "ORDER_CLOSED"
        await w.close()


async def test_failures_are_503_and_nothing_is_kept():
    async with serve(settings(fail_rate=1.0)) as url:
        w = wallet(url)
        with pytest.raises(PayUnavailable):
            await w.create("charge:z", 100, "z", time.time_ns() // 1_000_000 + 60_000)
        await w.close()
        async with httpx.AsyncClient(base_url=url) as raw:
            assert (await raw.get("/health")).json()["payments"] == 0


async def test_freshmesh_sim_pay_runs_in_the_foreground_and_stops_on_sigterm():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "simulators.cli", "sim", "pay", "--port", str(port),
                             "--mchid", MCHID, "--merchant-public-key", sig.public_text(sig.private_key(MERCHANT))],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "FRESHMESH_SIM_PAY_PRIVATE_KEY": PROVIDER,
                                 "FRESHMESH_SIM_PAY_API_KEY": API_KEY})
    try:
        first = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert first.strip() == f"PAY (simulated): http://127.0.0.1:{port}"
        w = wallet(f"http://127.0.0.1:{port}")
        await w.create("charge:cli", 100, "cli", time.time_ns() // 1_000_000 + 60_000)
        await w.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=15)
        assert proc.returncode == 0, out
        assert "PAY (simulated): stopped" in out and "payment charge:cli of 100 fen created" in out
        assert PROVIDER not in out and API_KEY not in out  # the secrets are never printed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_close_gives_up_an_unpaid_payment_and_refuses_a_paid_one():
    async with serve(settings()) as url:
        w = wallet(url)
        expire = time.time_ns() // 1_000_000 + 60_000
        unpaid = await w.create("charge:c1", 100, "c1", expire)
        await w.close_payment("charge:c1")
        assert (await w.query("charge:c1")).state == "CLOSED"
        paid = await w.create("charge:c2", 100, "c2", expire)
        async with httpx.AsyncClient(base_url=url) as app:
            assert (await app.post(f"/sim/pay/{unpaid['prepay_id']}", json={})).status_code == 409
            assert (await app.post(f"/sim/pay/{paid['prepay_id']}", json={})).status_code == 200
        with pytest.raises(PayRefused) as refused:
            await w.close_payment("charge:c2")
        assert refused.value.code == "ORDERPAID"
        await w.close()
