"""Registering a new member at a till (issue 19.2): the shell that asks the cloud to create the online account
(`protocol.till_member_messages`, answered by `cloud/messaging/till_registrations.py`) and then identifies the
member at the lane.

Guarantees:
- Registration needs the cloud (the account is the one the member signs in to online, and one phone is one member
  chain-wide): offline, or with no answer in time, it is refused with `NeedsCloud`, whose sentence says so and that
  the sale can go on without a member. Nothing is half made at the box: the cache learns the member only from the
  cloud (`MemberUpdated`), as for every other member.
- A retry is harmless: the cloud answers a registered phone with its member (`created` False).
- Once registered, the member is identified at the lane as a lookup by member code would do, as soon as the cloud's
  `MemberUpdated` reaches this box's cache (at most `CACHE_WAIT_S`; it travels the store's command stream); the
  member's coupons (the new-member ones too) are then fetched as for any identified member (`edge.coupons.snapshot`).
"""
from __future__ import annotations

import asyncio
import logging

from edge import coupons
from edge.cloud_ask import ask_cloud
from edge.core.outcome import Refused
from protocol import phones
from protocol.errors import ProtocolError
from protocol.till_member_messages import MemberRegisterAnswered, MemberRegisterRequested, store_register_subject

REGISTER_TIMEOUT_S = 5.0  # registering writes the member and issues coupons at the cloud: slower than a hold
CACHE_WAIT_S = 5.0
CACHE_POLL_S = 0.1
NEEDS_CLOUD = "registering a member needs the cloud, and this box cannot reach it now: the sale can go on without a member"
log = logging.getLogger("freshmesh.edge.register")


class NeedsCloud(Refused):
    def __init__(self, why: str = NEEDS_CLOUD) -> None:
        super().__init__(503, why)


async def register(box, lane: str, phone: str, name: str = "") -> dict:
    """{"member": the cloud's answer (id, code, masked phone and name, created), "cart": the lane's cart with the
    member}. `name`: optional, sent to the cloud (which seals it); the box keeps only the masked answer."""
    try:
        phones.normalise(phone)  # a typo is said at once, online or not
    except ProtocolError as exc:
        raise Refused(422, str(exc)) from None
    actor = box.actor
    if not actor.online or box.sync is None:
        raise NeedsCloud()
    request = MemberRegisterRequested(event_id=actor.ids.new(), store_id=box.store_id, seq=0,
                                      wall_ms=box.clock.now_ms(), mono_ms=box.clock.monotonic_ms(),
                                      register_id=actor.ids.new(), phone=phone, lane=lane, name=name.strip())
    answer = await ask_cloud(box.sync, store_register_subject(box.store_id), request, MemberRegisterAnswered,
                             lambda a: a.register_id == request.register_id, timeout_s=REGISTER_TIMEOUT_S,
                             desk="registration", what="member", reference=request.register_id, log=log)
    if answer is None:
        raise NeedsCloud()
    if not answer.registered:
        raise Refused(422, answer.reason or "the cloud refused the registration")
    cart = await identified(box, lane, answer.member_code)
    member = {"member_id": answer.member_id, "member_code": answer.member_code, "phone": answer.phone_masked,
              "created": answer.created, "name": answer.name_masked}
    return {"member": member, "cart": cart}


async def identified(box, lane: str, member_code: str) -> dict | None:
    """The lane's cart with the member identified, once the cloud's snapshot of them is in the cache; None if it
    has not come within `CACHE_WAIT_S` (the cashier finds them by phone a moment later)."""
    for _ in range(int(CACHE_WAIT_S / CACHE_POLL_S)):
        try:
            cart = await box.actor.ask("member", lane=lane, phone=None, member_code=member_code)
        except Refused as exc:
            if exc.status != 404:
                raise
            await asyncio.sleep(CACHE_POLL_S)
            continue
        await coupons.snapshot(box, cart)
        return cart
    return None
