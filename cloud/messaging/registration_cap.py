"""Bounds on the members a store's tills may make (issue 19 review, defect 6), on the cloud's side.

A store box is believed about its own facts; a member account is not one of them. A till may register a customer
standing at the counter, but a store (a stolen box, a scripted lane) must not mint accounts in bulk nor harvest the
new-member coupons with made-up phones. So:

- **A daily cap per store, held in PostgreSQL** (`till_registration_days`, cloud migration 43): one row per
  (store, chain day), taken by an atomic `insert ... on conflict do update ... where registered < cap`, so every cloud
  process (any number of bridges and API front ends) counts against the same figure. Past `TILL_REGISTRATIONS_PER_DAY`
  a registration is refused with the reason; a phone that was registered already takes no slot (its slot is given
  back), so a till looking up a known customer is never refused.
- **New-member coupons wait for the phone to be proven.** A member a till made is recorded in
  `till_registered_members` with no coupons issued. The phone is proven by the member's first sign-in with the
  one-time code sent to it (`POST /auth/sessions`, `cloud.services.identity`): then, once (the row's `proven_ms` is
  set by one atomic update), the new-member coupons are issued as for a member registered online. A till cannot
  prove a phone it typed in; only the phone's owner can.
"""
from __future__ import annotations

import logging

from cloud.services.coupons import issue_on_registration
from protocol import phones
from protocol.errors import ProtocolError
from protocol.lots import chain_day

TILL_REGISTRATIONS_PER_DAY = 200  # a busy store signs up dozens of customers on a good day; hundreds is a harvest
log = logging.getLogger("freshmesh.till_registrations")


async def take_slot(cloud, store_id: str, now_ms: int, cap: int = TILL_REGISTRATIONS_PER_DAY) -> bool:
    """One of the store's registrations today, or False when it has made `cap` already (atomic across processes)."""
    row = await cloud.db.fetchrow(
        """insert into till_registration_days (store_id, day, registered) values ($1, $2, 1)
           on conflict (store_id, day) do update set registered = till_registration_days.registered + 1
           where till_registration_days.registered < $3
           returning registered""", store_id, chain_day(now_ms), cap)
    return row is not None


async def registered_already(cloud, members, phone_text: str) -> bool:
    """The phone is a member's already (a till looking up a known customer past the cap is not refused)."""
    try:
        phone = phones.normalise(phone_text)
    except ProtocolError:
        return False
    return await cloud.db.fetchval("select 1 from members where phone_hash = $1", members.pii.phone_hash(phone)) == 1


async def give_back_slot(cloud, store_id: str, now_ms: int) -> None:
    """The slot of a request that made no member (the phone was registered already, or refused)."""
    await cloud.db.execute("update till_registration_days set registered = registered - 1 "
                           "where store_id = $1 and day = $2 and registered > 0", store_id, chain_day(now_ms))


async def await_proof(cloud, member_id: str, store_id: str, now_ms: int) -> None:
    """A member a till made: its new-member coupons wait for its first sign-in with the one-time code."""
    await cloud.db.execute("insert into till_registered_members (member_id, store_id, registered_ms) "
                           "values ($1, $2, $3) on conflict do nothing", member_id, store_id, now_ms)


async def phone_proven(cloud, member_id: str, now_ms: int) -> list[str]:
    """The member signed in with the one-time code: a till-made member gets its new-member coupons now, once.
    The codes issued ([] for anyone else, or the second time)."""
    row = await cloud.db.fetchrow("update till_registered_members set proven_ms = $2 "
                                  "where member_id = $1 and proven_ms is null returning store_id", member_id, now_ms)
    if row is None:
        return []
    codes = await issue_on_registration(cloud, member_id)
    log.info("member %s (registered at store %s's till) proved the phone: %d new-member coupons", member_id,
             row["store_id"], len(codes))
    return codes
