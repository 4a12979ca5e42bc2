"""A customer signing in as a person would: ask for a code, read it from the phone, send it back.

The "phone" is the SIMULATED SMS provider's outbox (`GET /v1/messages?to=`, `simulators/sms_provider.py`): the
simulated customers, the demo's flash crowd, the load programs and the tests all sign in this way, through the
cloud's real sign-in endpoints and the provider's real delivery path. Works with an httpx.AsyncClient or
`loadtest.http.LeanClients` (absolute URLs, `.json()`, `.status_code`).
"""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from protocol import phones

CODE = re.compile(r"\b(\d{6})\b")
CODE_WAIT_S = 15.0


@dataclass(frozen=True)
class SignedIn:
    member_id: str
    token: str
    phone: str  # E.164

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class SignInFailed(RuntimeError):
    pass


class SimulatedPhones:
    """Reads the codes the simulated SMS provider "sent" (its key is the account's key, as in a provider console)."""

    def __init__(self, sms_url: str, key: str) -> None:
        self.sms_url, self.key = sms_url.rstrip("/"), key

    async def messages(self, http, e164: str) -> list[dict]:
        r = await http.get(f"{self.sms_url}/v1/messages", params={"to": e164}, headers={"X-Sms-Key": self.key})
        if r.status_code != 200:
            raise SignInFailed(f"the simulated SMS provider answered {r.status_code}: {r.text[:200]}")
        return r.json()["messages"]

    async def code_after(self, http, e164: str, seen: int, timeout_s: float = CODE_WAIT_S) -> str:
        """The code in the first message after the `seen` ones already there."""
        deadline = time.monotonic() + timeout_s
        while True:
            messages = await self.messages(http, e164)
            if len(messages) > seen:
                match = CODE.search(messages[-1]["text"])
                if match:
                    return match.group(1)
            if time.monotonic() > deadline:
                raise SignInFailed(f"no code reached {phones.masked(e164)} within {timeout_s} s")
            await asyncio.sleep(0.05)


async def sign_in(http, cloud_url: str, inbox: SimulatedPhones, phone: str, tries: int = 3) -> SignedIn:
    """Sign in (registering if new) with a code sent by SMS; a code refused as unavailable (the provider's simulated
    failures) is asked for again."""
    e164 = phones.normalise(phone)
    seen = len(await inbox.messages(http, e164))  # before the first ask: a code sent for any attempt is newer
    for attempt in range(tries):
        asked = await http.post(f"{cloud_url}/auth/codes", json={"phone": phone})
        if asked.status_code == 503 and attempt + 1 < tries:
            await asyncio.sleep(0.2)
            continue
        # an earlier attempt answered 503 but its code went out after all (a busy box): the cloud refuses another
        # within 30 s, and the code on its way is as good
        sent_before = asked.status_code == 429 and attempt > 0
        if asked.status_code != 202 and not sent_before:
            raise SignInFailed(f"POST /auth/codes answered {asked.status_code}: {asked.text[:200]}")
        code = await inbox.code_after(http, e164, seen)
        signed = await http.post(f"{cloud_url}/auth/sessions", json={"phone": phone, "code": code})
        if signed.status_code != 201:
            raise SignInFailed(f"POST /auth/sessions answered {signed.status_code}: {signed.text[:200]}")
        body = signed.json()
        return SignedIn(body["member_id"], body["token"], e164)
    raise SignInFailed(f"no code could be sent to {phones.masked(e164)} in {tries} tries")


async def flash_pass(http, cloud_url: str, member: SignedIn) -> str:
    """A flash pass for the member (`POST /auth/passes`): what the flash-sale order endpoint takes."""
    r = await http.post(f"{cloud_url}/auth/passes", headers=member.headers)
    if r.status_code != 201:
        raise SignInFailed(f"POST /auth/passes answered {r.status_code}: {r.text[:200]}")
    return r.json()["pass"]
