"""Customer sign-in through HTTP with the real stack and the simulated SMS provider (its own service): codes by
SMS, one member per number however it is spelled, lock-out after wrong codes, sessions that end, signed receipts."""
from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import pytest_asyncio

from cloud.embedded.process import free_port
from cloud.services.identity import ATTEMPTS_MAX
from cloud.services.sms import HttpSmsProvider, sign
from simulators.sms_provider import start_in_thread
from tests.integration.harness import WallClock, eventually, last_code, new_mobile, running_cloud

pytestmark = pytest.mark.integration
KEY, SECRET = "sim-key", "sim-secret-for-tests"


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    port = free_port()
    with start_in_thread(key=KEY, secret=SECRET, callback_url=f"http://127.0.0.1:{port}/callbacks/sms",
                         delay_ms=20) as sms:
        provider = HttpSmsProvider(sms.url, KEY, SECRET, WallClock())
        async with running_cloud(stack, prefix=f"id{uuid.uuid4().hex[:6]}-", sms=provider, port=port) as (services, url):
            async with httpx.AsyncClient(base_url=url, timeout=20) as http, \
                    httpx.AsyncClient(base_url=sms.url, headers={"X-Sms-Key": KEY}, timeout=5) as inbox:
                yield services, http, inbox


async def test_two_spellings_of_one_phone_sign_in_as_one_member_and_the_session_ends(cloud):
    services, http, inbox = cloud
    mobile = new_mobile()
    spaced = f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}"
    full_width = mobile.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    sent = await http.post("/auth/codes", json={"phone": spaced})
    assert sent.status_code == 202 and sent.json()["phone"] == f"{mobile[:3]}****{mobile[-4:]}"
    first = await http.post("/auth/sessions", json={"phone": full_width, "code": await last_code(inbox, "+86" + mobile)})
    assert first.status_code == 201 and first.json()["registered"] is True, first.text
    token, member = first.json()["token"], first.json()["member_id"]
    me = await http.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["member_id"] == member
    # a third spelling is the same phone too: its code was sent moments ago, so this one waits
    third = await http.post("/auth/codes", json={"phone": f"0086-{mobile}"})
    assert third.status_code == 429 and "wait" in third.json()["detail"]
    assert (await http.delete("/auth/sessions", headers={"Authorization": f"Bearer {token}"})).status_code == 204
    gone = await http.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401 and gone.headers["content-type"].startswith("application/problem+json")
    assert (await http.get("/me")).status_code == 401
    # the session token is stored only as its hash
    stored = await services.cloud.db.fetch("select token_hash from sessions where member_id = $1", member)
    assert stored and all(token.encode() not in bytes(r["token_hash"]) for r in stored)


async def test_wrong_codes_lock_the_phone_even_against_the_right_code(cloud):
    services, http, inbox = cloud
    mobile = new_mobile()
    assert (await http.post("/auth/codes", json={"phone": mobile})).status_code == 202
    right = await last_code(inbox, "+86" + mobile)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    answers = [await http.post("/auth/sessions", json={"phone": mobile, "code": wrong}) for _ in range(ATTEMPTS_MAX)]
    assert [a.status_code for a in answers] == [401] * (ATTEMPTS_MAX - 1) + [429]
    assert "locked" in answers[-1].json()["detail"] and answers[-1].headers["retry-after"]
    late = await http.post("/auth/sessions", json={"phone": mobile, "code": right})
    assert late.status_code == 429 and late.json()["type"] == "/problems/locked"
    assert (await http.post("/auth/codes", json={"phone": mobile})).status_code == 429  # no new code either


async def test_codes_are_rate_limited_and_bad_input_is_named(cloud):
    services, http, inbox = cloud
    mobile = new_mobile()
    assert (await http.post("/auth/codes", json={"phone": mobile})).status_code == 202
    soon = await http.post("/auth/codes", json={"phone": mobile})
    assert soon.status_code == 429 and "wait" in soon.json()["detail"] and soon.headers["retry-after"]
    bad = await http.post("/auth/codes", json={"phone": "138-CALL-ME"})
    assert bad.status_code == 422 and "is not a digit" in bad.json()["detail"]
    short = await http.post("/auth/sessions", json={"phone": mobile, "code": "12"})
    assert short.status_code == 422 and "code" in short.json()["detail"]
    nothing = await http.post("/auth/sessions", json={"phone": new_mobile(), "code": "123456"})
    assert nothing.status_code == 401 and "no valid code" in nothing.json()["detail"]


async def test_delivery_receipts_are_recorded_once_and_unsigned_ones_refused(cloud):
    services, http, inbox = cloud
    mobile = new_mobile()
    assert (await http.post("/auth/codes", json={"phone": mobile})).status_code == 202
    message_id = (await inbox.get("/v1/messages", params={"to": "+86" + mobile})).json()["messages"][-1]["message_id"]

    async def delivered():
        status = await services.cloud.db.fetchval("select status from sms_deliveries where message_id = $1", message_id)
        return status == "delivered"
    assert await eventually(delivered, timeout_s=10)
    body = json.dumps({"message_id": message_id, "status": "failed", "at_ms": 1}).encode()
    forged = await http.post("/callbacks/sms", content=body, headers={"X-Sms-Timestamp": "1", "X-Sms-Signature": "00"})
    assert forged.status_code == 401
    now = WallClock().now_ms()
    stale = await http.post("/callbacks/sms", content=body, headers={"X-Sms-Timestamp": str(now),
                                                                    "X-Sms-Signature": sign(SECRET, now, body)})
    assert stale.status_code == 204  # signed, but older than what was recorded: it does not overwrite it
    await asyncio.sleep(0)
    assert await delivered()
