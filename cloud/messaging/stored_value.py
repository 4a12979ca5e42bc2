"""Stored value at the tills, on the cloud's side: holds asked for over NATS request/reply, and what the bridge does
with a till's stored-value spends and cash top-ups.

Guarantees:
- A hold request is answered by the MemberLedger (`Hold`, its id made by the till): granted only within the
  member's available stored value (the balance less live holds), so online till sales never overdraw. Any cloud
  process answers (a queue group); a request is answered only on the asking store's own inbox, whatever reply
  subject it names (a store cannot make the cloud publish on another store's subjects), and only for a store
  asking on its own subject. Requests in flight are bounded; past the bound the till times out and sells offline,
  within its allowance.
- A till's stored-value spend is applied once (the ledger transfer id derives from the event id): a sale that
  says it was online is a `Capture` of the hold its payment names, one that says offline a `Spend(offline)` at that
  store. Neither is refused here - the goods already left the store, so the sale is recorded in full - but the
  member is debited only what the ledger believes (a valid hold; offline, within the store's allowance) and the
  rest is booked to the store (`sys:disputed:<store>`), a violation `/audit` reports. So no store's say-so takes a
  member more than the offline allowance below zero (`actors.member_ledger`).
- A cash top-up is credited once (transfer id = "cash:" + event id), only for a member that exists (judged with the
  batch's other facts), and only while the store's cash top-ups of the chain day it was taken on (`cash_day`: the
  till's day, bounded) stay within the daily cap; otherwise it is refused with the reason in the bridge's normal
  refused path (dead-lettered, the store told; the rest of its batch applies). The decision is kept in
  `till_topups`, so a redelivery gets the same one.
- After each batch is durable, each store where a member's stored value was spent or cash-topped-up is sent that
  member's new balance (`MemberUpdated`, `NewBalances`), once per batch, with the payments' references in
  `settles`, so it stops counting those spends as unsettled with the same snapshot. Only those stores: the cloud
  does not know which other stores hold a copy of the member, and telling all of them for every till spend (200
  stores x every spend) would fill the cloud-messages stream and slow every store's catch-up. Other stores learn
  the balance with the member's next online top-up or refund (`Members.balance_changed`, all stores) or snapshot;
  until then an offline sale there is bounded by the cloud as any offline spend (`MemberLedger`). Best effort: if
  it fails, the business ack settles the spend and the next snapshot brings the balance.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging

from actors.member_ledger import Capture, Hold, Release, Spend, TopUp
from cloud.messaging.store_desk import StoreDesk
from protocol import subjects
from protocol.messages import CashToppedUp, HoldAnswered, HoldReleased, HoldRequested, SaleCommitted, is_hold_id
from protocol.money import format_fen
from protocol.policy import STORE_CASH_TOPUP_DAY_CAP_FEN
from protocol.store_facts import cash_day

HOLD_REQUESTS_IN_FLIGHT_MAX = 1_000
REFERENCE_SHOWN_MAX = 80  # of a store's payment reference, in a violation's reason
log = logging.getLogger("freshmesh.stored_value")


class HoldDesk(StoreDesk):
    """Answers the tills' hold and release requests (`fm.store.*.sv.>`, queue group `stored_value`)."""

    subject = subjects.STORED_VALUE_ALL
    queue = subjects.STORED_VALUE_QUEUE
    kinds = (HoldRequested, HoldReleased)
    in_flight_max = HOLD_REQUESTS_IN_FLIGHT_MAX
    log = log
    what = "stored-value"
    kind_name = "hold"
    stats_keys = ("holds", "granted", "releases")

    def reference(self, request) -> str:
        return request.hold_id

    async def decide(self, request, store_id: str) -> HoldAnswered:
        return await self._decide(request)

    async def _decide(self, request: HoldRequested | HoldReleased) -> HoldAnswered:
        ledger = self.cloud.actors.member_ledger
        if isinstance(request, HoldReleased):
            self.stats["releases"] += 1
            # the id names the store: another store's release of this hold id (refused) must not be the one
            # remembered for the owner's own
            result = (await ledger.send(Release(id=f"release:{request.store_id}:{request.hold_id}",
                                                member=request.member_id, hold_id=request.hold_id,
                                                store=request.store_id))).settled
            return self._answer_of(request, result, granted=False, reason="released")
        self.stats["holds"] += 1
        result = (await ledger.send(Hold(id=request.hold_id, member=request.member_id, amount_fen=request.amount_fen,
                                         store=request.store_id))).settled
        granted = result.status == "ok"
        self.stats["granted"] += granted
        reason = "" if granted else (result.reason or f"hold refused ({result.status})")
        if reason == "insufficient stored value":
            reason = (f"insufficient stored value: {format_fen(result.get('available_fen', 0))} available, "
                      f"{format_fen(request.amount_fen)} asked")
        return self._answer_of(request, result, granted, reason)

    def _answer_of(self, request, result, granted: bool, reason: str) -> HoldAnswered:
        now = self.cloud.now_ms()
        balance = result.get("stored_value_fen", 0)
        return HoldAnswered(event_id=self.cloud.ids.new(), store_id=request.store_id, seq=0, wall_ms=now,
                            mono_ms=self.cloud.clock.monotonic_ms(), hold_id=request.hold_id, granted=granted,
                            reason=reason, stored_value_fen=balance,
                            available_fen=result.get("available_fen", balance), expires_ms=result.get("expires_ms", 0))


def spend_commands(event: SaleCommitted) -> list[tuple[str, Capture | Spend]]:
    """(payment reference, ledger command) for each stored-value payment of a till sale, ids from the event id."""
    commands: list[tuple[str, Capture | Spend]] = []
    assert event.member_id is not None
    paid = [p for p in event.payments if p.method == "stored_value"]
    for i, p in enumerate(paid):
        transfer = f"sv:{event.event_id}" + (f":{i}" if i else "")
        if event.offline:
            commands.append((p.reference, Spend(id=transfer, member=event.member_id, amount_fen=p.amount_fen,
                                                offline=True, store=event.store_id)))
        else:  # an online spend must capture a hold; whatever it names is checked by the ledger
            hold = p.reference if is_hold_id(p.reference) else (p.reference[:REFERENCE_SHOWN_MAX] or "(none)")
            commands.append((p.reference, Capture(id=transfer, member=event.member_id, hold_id=hold,
                                                  amount_fen=p.amount_fen, store=event.store_id)))
    return commands


async def apply_sale_spends(cloud, event: SaleCommitted) -> tuple[str, ...]:
    """The sale's stored-value payments, captured or spent once; the references the ledger took."""
    ledger = cloud.actors.member_ledger
    taken = []
    for reference, command in spend_commands(event):
        result = (await ledger.send(command)).settled
        if result.status != "ok":  # a malformed command: nothing was recorded; say so loudly
            log.error("stored-value spend %s of store %s not recorded: %s %s", command.id, event.store_id,
                      result.status, result.reason)
            continue
        if result.get("violation"):
            log.error("store %s: untrusted stored-value spend %s of member %s (recorded; %s fen disputed to the "
                      "store, flagged for audit)", event.store_id, command.id, event.member_id,
                      result.get("disputed_fen", 0))
        taken.append(reference)
    return tuple(taken)


async def admit_cash_top_ups(cloud, events: list[CashToppedUp], now_ms: int,
                             day_cap_fen: int = STORE_CASH_TOPUP_DAY_CAP_FEN) -> dict[str, str]:
    """event id -> why, for the batch's cash top-ups the cloud does not believe (past the store's daily cap, an
    erased member): a verdict like `protocol.store_facts.judge`'s, taken with it, so one refused top-up does not
    fail its batch. The others may be applied (`apply_cash_top_up`)."""
    refused = {}
    for event in events:  # in the batch's order: each one's decision counts against the next
        accepted, reason = await _admit_cash(cloud, event, now_ms, day_cap_fen)
        if not accepted:
            refused[event.event_id] = f"store {event.store_id} {event.KIND} refused: {reason}"
    return refused


async def apply_cash_top_up(cloud, event: CashToppedUp) -> None:
    """A cash top-up `admit_cash_top_ups` believed, credited once."""
    await cloud.actors.member_ledger.send(TopUp(id=f"cash:{event.event_id}", member=event.member_id,
                                                amount_fen=event.amount_fen))


async def _admit_cash(cloud, event: CashToppedUp, now: int, day_cap_fen: int) -> tuple[bool, str]:
    """Whether the store's cash top-up is believed, decided once per event under a per-store lock (any number of
    bridge instances) and kept with its reason. It counts against the cap of the day it was taken on (the till's
    day, as the till counted it; `cash_day` bounds it)."""
    day = cash_day(event.wall_ms, now)
    lock = int.from_bytes(hashlib.blake2b(f"cash-topups:{event.store_id}".encode(), digest_size=8).digest(), "big",
                          signed=True)
    async with cloud.db.acquire() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", lock)
        row = await conn.fetchrow("select accepted, reason from till_topups where event_id = $1", event.event_id)
        if row is not None:
            return row["accepted"], row["reason"]
        member = await conn.fetchrow("select erased_ms from members where member_id = $1", event.member_id)
        taken = await conn.fetchval("select coalesce(sum(amount_fen), 0)::bigint from till_topups where store_id = $1 and "
                                    "day = $2 and accepted", event.store_id, day)
        reason = ""
        if member is None or member["erased_ms"] is not None:
            reason = f"cash top-up {event.topup_id}: no member {event.member_id}"
        elif taken + event.amount_fen > day_cap_fen:
            reason = (f"cash top-up {event.topup_id} of {format_fen(event.amount_fen)} at store {event.store_id} "
                      f"would take its cash top-ups on {day.isoformat()} to {format_fen(taken + event.amount_fen)}, "
                      f"past the store's daily cap of {format_fen(day_cap_fen)}")
        await conn.execute("""insert into till_topups (event_id, store_id, day, member_id, amount_fen, cashier_id,
                              shift_id, accepted, reason, received_ms) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
                           event.event_id, event.store_id, day, event.member_id, event.amount_fen, event.cashier_id,
                           event.shift_id, not reason, reason, now)
    return not reason, reason




class NewBalances:
    """The members whose stored value a bridge batch changed, and per store the spends it took: each member's new
    balance goes to the stores where it changed, once per batch (a catch-up after a long cut is thousands of
    spends, of few members), after the batch is durable."""

    TOLD_AT_ONCE = 20

    def __init__(self) -> None:
        self.changed: dict[str, dict[str, list[str]]] = {}  # member -> store -> payment references

    def add(self, member_id: str, store_id: str, references: tuple[str, ...] = ()) -> None:
        self.changed.setdefault(member_id, {}).setdefault(store_id, []).extend(references)

    async def tell(self, members) -> None:
        """Each changed member's new balance to the stores where it changed (best effort: the module's docstring)."""
        changed, self.changed = list(self.changed.items()), {}
        for i in range(0, len(changed), self.TOLD_AT_ONCE):
            await asyncio.gather(*(_tell(members, member_id, {s: tuple(r) for s, r in by_store.items()})
                                   for member_id, by_store in changed[i:i + self.TOLD_AT_ONCE]))


async def _tell(members, member_id: str, settles: dict[str, tuple[str, ...]]) -> None:
    try:
        await members.notify_stores(await members.view(member_id), settles=settles, stores=list(settles))
    except Exception as exc:  # noqa: BLE001 - an unknown member, or NATS away: the ack settles, the next snapshot
        log.warning("member %s: new balance not sent to the stores (%s)", member_id, exc)  # brings the balance
