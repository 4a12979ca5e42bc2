"""Paying part of a till sale with points: the shell around the StoreActor that asks the cloud for a points hold
first (as `edge/stored_value.py` does for stored value).

1. the actor says who pays how much (`stored_value_quote`: the member and the total; refused without a member);
2. the points asked are checked against the share points may pay (`protocol.points.points_refusal`) before anything
   is held;
3. if the store is online, the cloud is asked to hold them (`fm.store.<id>.pts.hold`, at most `HOLD_TIMEOUT_MS`):
   granted, the sale's points payment names the hold and the cloud captures it; refused, the sale is refused with
   the cloud's reason; no answer in time, the sale pays the points without the cloud, within the offline allowance
   (`selling.points_payment`), and the cloud believes such a claim only within that store's allowance and the
   member's balance (`cloud/messaging/points_till.py`);
4. if the actor refuses the sale after a hold was granted, the hold is given back at once (a hold nobody captures
   lapses at the cloud).
"""
from __future__ import annotations

import json
import logging

from edge.cloud_ask import ask_cloud
from edge.core.outcome import Refused
from edge.core.selling import PointsAuth
from protocol import points
from protocol.points_messages import (
    POINTS_HOLD_PREFIX,
    PointsHoldAnswered,
    PointsHoldReleased,
    PointsHoldRequested,
    store_points_subject,
)
from protocol.policy import HOLD_TIMEOUT_MS
from protocol.policy import OFFLINE_POINTS_WINDOW_MS as ALLOWANCE_WINDOW_MS

log = logging.getLogger("freshmesh.edge.points")


async def pay(box, lane: str, method: str, tendered_fen: int, asked: int) -> dict:
    actor = box.actor
    if method == "stored_value":
        raise Refused(422, "points at the till pay part of a sale paid by cash or wallet_sim, not stored value")
    quote = await actor.ask("stored_value_quote", lane=lane)  # the member and the total (409 without a member)
    why = points.points_refusal(quote["total_fen"], asked)
    if why:
        raise Refused(422, why)
    auth = PointsAuth(asked, offline_used=await offline_points_used(box, quote["member_id"]))
    if actor.online and box.sync is not None:
        hold_id = POINTS_HOLD_PREFIX + actor.ids.new()
        answer = await _ask(box, "hold", PointsHoldRequested(**_envelope(box), points_hold_id=hold_id,
                                                             member_id=quote["member_id"], hold_points=asked, lane=lane))
        if answer is not None:
            auth = PointsAuth(asked, hold_id, quote["member_id"], answer.granted, True, answer.reason,
                              auth.offline_used)
        else:  # no answer in time: should the hold be granted after all, it is given back (the sale goes offline)
            await _ask(box, "release", PointsHoldReleased(**_envelope(box), points_hold_id=hold_id,
                                                          member_id=quote["member_id"]))
    try:
        reply: dict = await actor.ask("pay", lane=lane, method=method, tendered_fen=tendered_fen, points=auth)
    except Exception:  # refused, or the store db could not write (a full disk): nothing was sold
        if auth.granted:  # the held points go back now rather than when the hold lapses
            await _ask(box, "release", PointsHoldReleased(**_envelope(box), points_hold_id=auth.hold_id,
                                                          member_id=auth.member_id))
        raise
    reply["points_paid"] = {"points": asked, "value_fen": points.points_value_fen(asked),
                            "hold_id": auth.hold_id if auth.granted else None, "offline": not auth.granted}
    return reply


async def offline_points_used(box, member_id: str) -> int:
    """Points this store took from the member without the cloud's hold in the last `ALLOWANCE_WINDOW_MS` (as the
    cloud counts its allowance): its sales' points payments not named by a hold."""
    since = box.clock.now_ms() - ALLOWANCE_WINDOW_MS
    rows = await box.store_db._all("select payments from sales where member_id = ? and at_ms > ?",  # noqa: SLF001
                                   (member_id, since))
    return sum(points.points_for_fen(int(fen)) for row in rows for method, fen, reference in json.loads(row[0])
               if method == "points" and not str(reference).startswith(POINTS_HOLD_PREFIX))


def _envelope(box) -> dict:
    return {"event_id": box.actor.ids.new(), "store_id": box.store_id, "seq": 0, "wall_ms": box.clock.now_ms(),
            "mono_ms": box.clock.monotonic_ms()}


async def _ask(box, what: str, request) -> PointsHoldAnswered | None:
    """The cloud's answer, or None: not connected, no answer in time, or an answer that is not one."""
    return await ask_cloud(box.sync, store_points_subject(box.store_id, what), request, PointsHoldAnswered,
                           lambda answer: answer.points_hold_id == request.points_hold_id,
                           timeout_s=HOLD_TIMEOUT_MS / 1000, desk="points", what=what,
                           reference=request.points_hold_id, log=log)
