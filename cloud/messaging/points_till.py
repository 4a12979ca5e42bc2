"""Points at the tills, on the cloud's side: points holds asked for over NATS request/reply, and what the bridge does
with a till sale's points payment.

Guarantees:
- A hold (`PointsHoldRequested`, its id made by the till) redeems the member's points at once (`RedeemPoints` under
  the hold id: refused past the balance, so online till sales never take points the member does not have), and is
  journaled in `till_points`; a hold id belongs to the store that asked first (another store naming it is refused).
  Answered only on the asking store's own inbox, only for a store asking on its own subject (as stored value).
- A hold is captured once, by a sale of its own store, member and points (`apply_sale_points`). A hold the till
  releases, or nobody captures within `HOLD_TTL_MS`, gives its points back once (`GrantPoints` under
  `give_back_id(hold)`, `sweep`).
- A points payment without a valid hold (the till was offline or had no answer; or its hold lapsed, was released or
  belongs to another store) is a claim: the sale is a fact and is recorded, but the member gives only what the
  cloud believes: at most what they have, and within what is left of that store's offline allowance for them
  (`OFFLINE_POINTS_ALLOWANCE` per member and store over the last day). The rest is the store's (kept as
  `points - believed` on the claim, logged), never the member's. Each claim is decided once (journaled `claiming`
  with its decision before the ledger is asked, so a redelivery repeats the same redemption id and amount).
"""
from __future__ import annotations

import logging

from actors.member_ledger import GrantPoints, RedeemPoints
from cloud.messaging.store_desk import StoreDesk
from protocol.messages import SaleCommitted
from protocol.money_saga import SAGA_GRACE_MS
from protocol.points import give_back_id, points_for_fen
from protocol.points_messages import (
    POINTS_ALL,
    POINTS_QUEUE,
    PointsHoldAnswered,
    PointsHoldReleased,
    PointsHoldRequested,
    is_points_hold,
)
from protocol.policy import HOLD_TTL_MS, OFFLINE_POINTS_ALLOWANCE, OFFLINE_POINTS_WINDOW_MS

REQUESTS_IN_FLIGHT_MAX = 1_000
ALLOWANCE_WINDOW_MS = OFFLINE_POINTS_WINDOW_MS
SWEEP_BATCH_MAX = 100
log = logging.getLogger("freshmesh.points")


class PointsDesk(StoreDesk):
    """Answers the tills' points hold and release requests (`fm.store.*.pts.>`, queue group `points`)."""

    subject = POINTS_ALL
    queue = POINTS_QUEUE
    kinds = (PointsHoldRequested, PointsHoldReleased)
    in_flight_max = REQUESTS_IN_FLIGHT_MAX
    log = log
    what = "points"
    kind_name = "points"
    stats_keys = ("holds", "granted", "releases")

    def reference(self, request) -> str:
        return request.points_hold_id

    async def decide(self, request, store_id: str) -> PointsHoldAnswered:
        if isinstance(request, PointsHoldReleased):
            self.stats["releases"] += 1
            return await release(self.cloud, request)
        self.stats["holds"] += 1
        answer = await hold(self.cloud, request)
        self.stats["granted"] += answer.granted
        return answer


def _answer(cloud, request, granted: bool, reason: str, balance: int, expires_ms: int = 0) -> PointsHoldAnswered:
    return PointsHoldAnswered(event_id=cloud.ids.new(), store_id=request.store_id, seq=0, wall_ms=cloud.now_ms(),
                              mono_ms=cloud.clock.monotonic_ms(), points_hold_id=request.points_hold_id, granted=granted,
                              reason=reason, points_balance=balance, expires_ms=expires_ms)


async def _row(cloud, reference: str):
    return await cloud.db.fetchrow("select * from till_points where reference = $1", reference)


async def hold(cloud, request: PointsHoldRequested) -> PointsHoldAnswered:
    now = cloud.now_ms()
    await cloud.db.execute(
        """insert into till_points (reference, store_id, member_id, points, believed, state, expires_ms, created_ms,
               updated_ms) values ($1, $2, $3, $4, $4, 'holding', $5, $6, $6) on conflict (reference) do nothing""",
        request.points_hold_id, request.store_id, request.member_id, request.hold_points, now + HOLD_TTL_MS, now)
    row = await _row(cloud, request.points_hold_id)
    if (row["store_id"], row["member_id"], row["points"]) != (request.store_id, request.member_id, request.hold_points):
        return _answer(cloud, request, False, f"points hold {request.points_hold_id} was asked for otherwise before", 0)
    if row["state"] == "holding":
        result = (await cloud.actors.member_ledger.send(RedeemPoints(id=request.points_hold_id, member=request.member_id,
                                                                     points=request.hold_points))).settled
        state = "held" if result.status == "ok" else "refused"
        detail = None if state == "held" else (f"insufficient points: {request.hold_points} asked, the member has "
                                               f"{result.get('points', 0)}" if result.reason == "insufficient points"
                                               else f"points hold refused: {result.reason or result.status}")
        await cloud.db.execute("update till_points set state = $2, detail = $3, updated_ms = $4 "
                               "where reference = $1 and state = 'holding'", request.points_hold_id, state, detail, now)
        row = await _row(cloud, request.points_hold_id)
    balance = (await cloud.actors.member_ledger.member(request.member_id, now))["points"]
    granted = row["state"] in ("held", "captured")
    return _answer(cloud, request, granted, "" if granted else (row["detail"] or row["state"]), balance,
                   row["expires_ms"] or 0)


async def _give_back(cloud, row, state: str, why: str) -> bool:
    result = await cloud.actors.member_ledger.send(GrantPoints(id=give_back_id(row["reference"]),
                                                               member=row["member_id"], points=row["points"], why=why))
    if not result.succeeded:
        log.error("points hold %s not given back yet: %s", row["reference"], result.settled.reason)
        return False
    return bool(await cloud.db.fetchval("update till_points set state = $2, detail = $3, updated_ms = $4 "
                                        "where reference = $1 and state = 'held' returning 1", row["reference"], state,
                                        why, cloud.now_ms()))


async def release(cloud, request: PointsHoldReleased) -> PointsHoldAnswered:
    row = await _row(cloud, request.points_hold_id)
    if row is not None and row["store_id"] == request.store_id and row["state"] == "held":
        await _give_back(cloud, row, "released", f"released by store {request.store_id}")
    balance = (await cloud.actors.member_ledger.member(request.member_id, cloud.now_ms()))["points"]
    return _answer(cloud, request, False, "released", balance)


async def apply_sale_points(cloud, event: SaleCommitted) -> int:
    """The sale's points payments: each captures its hold, or is a claim believed within the store's allowance and
    the member's points. Returns the points taken from the member for this sale (now or before: a redelivery)."""
    taken = 0
    paid = [p for p in event.payments if p.method == "points"]
    for i, p in enumerate(paid):
        points = points_for_fen(p.amount_fen)
        if is_points_hold(p.reference):
            captured = await cloud.db.fetchval(
                """update till_points set state = 'captured', sale_id = $2, updated_ms = $3 where reference = $1
                   and state = 'held' and store_id = $4 and member_id = $5 and points = $6 returning points""",
                p.reference, event.sale_id, cloud.now_ms(), event.store_id, event.member_id, points)
            row = await _row(cloud, p.reference)
            if captured or (row is not None and row["state"] == "captured" and row["sale_id"] == event.sale_id):
                taken += points
                continue
        taken += await _claim(cloud, event, i, points, p.reference)
    return taken


async def _claim(cloud, event: SaleCommitted, i: int, points: int, named: str) -> int:
    """A points payment without a valid hold: believed within the store's offline allowance and the member's
    points; decided once, journaled before the ledger is asked."""
    reference, now = f"claim:{event.event_id}:{i}", cloud.now_ms()
    row = await _row(cloud, reference)
    if row is None:
        used = await cloud.db.fetchval(
            "select coalesce(sum(believed), 0)::bigint from till_points where store_id = $1 and member_id = $2 "
            "and state in ('claiming', 'claimed') and created_ms > $3", event.store_id, event.member_id,
            now - ALLOWANCE_WINDOW_MS)
        has = (await cloud.actors.member_ledger.member(event.member_id, now))["points"]
        believed = max(0, min(points, OFFLINE_POINTS_ALLOWANCE - used, has))
        why = (f"store {event.store_id} claimed {points} points of member {event.member_id} for sale {event.sale_id} "
               f"without a valid hold ({named[:80] or 'none'}): believed {believed} (the member has {has}, "
               f"{max(OFFLINE_POINTS_ALLOWANCE - used, 0)} left of the store's offline allowance)")
        await cloud.db.execute(
            """insert into till_points (reference, store_id, member_id, sale_id, points, believed, state, detail,
                   created_ms, updated_ms) values ($1, $2, $3, $4, $5, $6, 'claiming', $7, $8, $8)
               on conflict (reference) do nothing""",
            reference, event.store_id, event.member_id, event.sale_id, points, believed, why, now)
        row = await _row(cloud, reference)
        if row["believed"] < row["points"]:
            log.error("%s: %d points are the store's", why, row["points"] - row["believed"])
    if row["state"] == "claiming":
        if row["believed"]:
            result = (await cloud.actors.member_ledger.send(RedeemPoints(
                id=f"pts:{reference}", member=row["member_id"], points=row["believed"]))).settled
            if result.status != "ok":  # spent meanwhile (a race with another redemption): nothing taken
                await cloud.db.execute("update till_points set believed = 0, detail = detail || $2 where reference = $1",
                                       reference, f"; the ledger refused: {result.reason}")
        await cloud.db.execute("update till_points set state = 'claimed', updated_ms = $2 where reference = $1 "
                               "and state = 'claiming'", reference, cloud.now_ms())
        row = await _row(cloud, reference)
    return int(row["believed"])


async def sweep(cloud) -> int:
    """Holds nobody captured within their TTL give their points back; claims a crash left half-way are finished."""
    now = cloud.now_ms()
    rows = await cloud.db.fetch("select * from till_points where (state = 'held' and expires_ms < $1) or "
                                "(state in ('holding', 'claiming') and updated_ms < $2) order by updated_ms limit $3",
                                now, now - SAGA_GRACE_MS, SWEEP_BATCH_MAX)
    for row in rows:
        if row["state"] == "held":
            await _give_back(cloud, row, "lapsed", "not captured by a sale in time")
        elif row["state"] == "holding":  # the request died before the ledger answered: ask it again, then lapse
            result = (await cloud.actors.member_ledger.send(RedeemPoints(
                id=row["reference"], member=row["member_id"], points=row["points"]))).settled
            await cloud.db.execute("update till_points set state = $2, updated_ms = $3 where reference = $1 and "
                                   "state = 'holding'", row["reference"], "held" if result.status == "ok" else "refused",
                                   now)
        else:
            event_id, i = row["reference"].split(":")[1], int(row["reference"].split(":")[2])
            log.warning("points claim %s (event %s #%d) finished by the sweeper", row["reference"], event_id, i)
            if row["believed"]:
                await cloud.actors.member_ledger.send(RedeemPoints(id=f"pts:{row['reference']}",
                                                                   member=row["member_id"], points=row["believed"]))
            await cloud.db.execute("update till_points set state = 'claimed', updated_ms = $2 where reference = $1 "
                                   "and state = 'claiming'", row["reference"], now)
    return len(rows)
