"""Members registered at a till (issue 19.2), on the cloud's side: the desk answering `MemberRegisterRequested`
(`fm.store.*.reg.member`, queue group `till_registrations`).

Guarantees:
- The member is registered by `cloud.services.members.Members.register`, exactly as the mall registers a phone: one
  account per phone (any spelling of the number), the same account the customer signs in to online, the phone kept
  sealed and found by its keyed hash, every store told (`MemberUpdated`; the asking store always, so this till
  finds the member in its cache at once), and the new-member coupons issued once the phone is proven (below).
- Idempotent by the phone: a retried request (its answer was lost) answers the member made the first time, with
  `created` False; a phone registered earlier (online, or at another till) answers that member.
- The answer carries the member's id, code and masked phone, never the phone in clear; it goes only to the asking
  store's inbox, for a store asking on its own subject (`StoreDesk`).
- A store registers at most `REGISTRATIONS_PER_MIN` members a minute through this process (a token bucket per store):
  past it the request is answered with a refusal saying so (a burst guard; the bound that holds is the daily cap).
- A store registers at most `registration_cap.TILL_REGISTRATIONS_PER_DAY` new members a chain day, counted in
  PostgreSQL (one row per store and day, shared by every cloud process); a till-made member's new-member coupons
  are issued only once the member proves the phone (first sign-in with the one-time code): `registration_cap`.
- A refusal (an invalid phone, the rate, the daily cap) is answered with its reason; the till shows it.
- A name given at the till (optional) is sealed like the phone onto the member the request made (never onto one
  registered before), and answered masked only (`cloud/services/member_names.py`).
"""
from __future__ import annotations

import logging

from cloud.messaging import registration_cap
from cloud.messaging.store_desk import StoreDesk
from cloud.services.member_names import set_name
from cloud.services.members import Members
from cloud.services.verdicts import Refusal
from protocol.rate import TokenBucket
from protocol.till_member_messages import (
    REASON_MAX,
    REGISTER_ALL,
    REGISTER_QUEUE,
    MemberRegisterAnswered,
    MemberRegisterRequested,
)

REQUESTS_IN_FLIGHT_MAX = 200
REGISTRATIONS_PER_MIN = 30  # a busy till signs up a few customers an hour; thirty a minute is a flood, not a queue
REGISTRATIONS_BURST = 10
log = logging.getLogger("freshmesh.till_registrations")


class RegistrationDesk(StoreDesk):
    """Registers members for the tills, through the one registration path of `Members`."""

    subject = REGISTER_ALL
    queue = REGISTER_QUEUE
    kinds = (MemberRegisterRequested,)
    in_flight_max = REQUESTS_IN_FLIGHT_MAX
    log = log
    what = "member registration"
    kind_name = "member registration"
    stats_keys = ("registered", "created", "refused")

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        self.members = Members(cloud)
        self.buckets: dict[str, TokenBucket] = {}

    def reference(self, request) -> str:
        return request.register_id

    def _rate_ok(self, store_id: str) -> bool:
        now = self.cloud.now_ms()
        bucket = self.buckets.setdefault(store_id, TokenBucket(REGISTRATIONS_PER_MIN / 60, REGISTRATIONS_BURST, now))
        bucket.refill(now)
        if not bucket.has(1):
            return False
        bucket.take(1)
        return True

    async def decide(self, request: MemberRegisterRequested, store_id: str) -> MemberRegisterAnswered:
        if not self._rate_ok(store_id):
            self.stats["refused"] += 1
            return self._reply(request, reason=f"store {store_id} registers more than {REGISTRATIONS_PER_MIN} "
                                                 "members a minute: try again in a minute")
        now = self.cloud.now_ms()  # the store's daily cap, one figure for every cloud process (registration_cap)
        slot = await registration_cap.take_slot(self.cloud, store_id, now)
        if not slot and not await registration_cap.registered_already(self.cloud, self.members, request.phone):
            self.stats["refused"] += 1
            return self._reply(request, reason=f"store {store_id} registered {registration_cap.TILL_REGISTRATIONS_PER_DAY}"
                                                " members at its tills today, its daily cap: ask the customer to sign "
                                                "up in the mall app")
        try:
            view, created = await self.members.register(request.phone, coupons=False)  # they wait for the phone
            # the name, sealed like the phone, on the member this request made only (cloud/services/member_names.py)
            name_masked = await set_name(self.cloud.db, self.members.pii, view["member_id"], request.name) \
                if created and request.name else ""
        except Refusal as exc:
            if slot:
                await registration_cap.give_back_slot(self.cloud, store_id, now)
            self.stats["refused"] += 1
            return self._reply(request, reason=str(exc)[:REASON_MAX] or "registration refused")
        if created:  # new-member coupons once the member proves the phone (first sign-in with the one-time code)
            await registration_cap.await_proof(self.cloud, view["member_id"], store_id, now)
        elif slot:  # a known phone takes no slot
            await registration_cap.give_back_slot(self.cloud, store_id, now)
        self.stats["registered"] += 1
        self.stats["created"] += created
        if not created or store_id not in self.cloud.world.stores:
            # the asking till finds the member in its cache at once: a store outside the world's list (register
            # tells only those) or a phone registered before (its snapshot may never have reached this store)
            await self.members.notify_stores(view, stores=[store_id])
        log.info("store %s lane %s: member %s %s", store_id, request.lane, view["member_id"],
                 "registered" if created else "was registered already")
        return self._reply(request, view=view, created=created, name_masked=name_masked)

    def _reply(self, request: MemberRegisterRequested, view: dict | None = None, created: bool = False,
                reason: str = "", name_masked: str = "") -> MemberRegisterAnswered:
        return MemberRegisterAnswered(
            event_id=self.cloud.ids.new(), store_id=request.store_id, seq=0, wall_ms=self.cloud.now_ms(),
            mono_ms=self.cloud.clock.monotonic_ms(), register_id=request.register_id, registered=view is not None,
            created=created, member_id=(view or {}).get("member_id", ""), member_code=(view or {}).get("member_code", ""),
            phone_masked=(view or {}).get("phone", ""), reason=reason, name_masked=name_masked)
