"""Shifts at the till, run in the store actor's mailbox (`StoreActor._shift`): the opening float, voids, the cash-up
and the close with its report.

Guarantees:
- Every step runs in the actor's one mailbox, so a sale cannot commit between the read a cash-up is worked out from
  and the close that reports it; the close's effects - the cash-up kept (`shift_reports`), the shift closed and
  the `ShiftReported` event for the cloud - commit in one SQLite transaction (the outbox: exactly once).
- A float is taken once per shift, only while its cashier is signed in at the lane; a cash-up or close needs the
  lane's signed-in cashier; a close of a shift that closed meanwhile is refused, never reported twice.
- The figures are the pure `edge.core.cash_up`'s, from the box's own tables (`edge.shifts_db.taken`).
"""
from __future__ import annotations

import json

from edge import shifts_db
from edge.core import cash_up as core
from edge.core.outcome import CloseShift, Outcome, Publish, Refused
from edge.core.shift_effects import RecordFloat, RecordShiftReport, RecordVoid
from protocol.money import format_fen
from protocol.shift_messages import FLOAT_MAX_FEN, DenominationCount, MethodTotal, ShiftReported


def view(duty_shift: dict, up: core.CashUp, closed_ms: int | None, now_ms: int) -> dict:
    """The cash-up as the till shows it (and as the box keeps it once closed)."""
    cash = up.cash
    return {"shift_id": duty_shift["shift_id"], "cashier_id": duty_shift["cashier_id"], "lane": duty_shift["lane"],
            "opened_ms": duty_shift["opened_ms"], "closed_ms": closed_ms, "at_ms": now_ms, "closed": closed_ms is not None,
            "float_fen": up.float_fen, "cash_sales_fen": up.cash_sales_fen, "change_fen": up.change_fen,
            "topups_fen": up.topups_fen, "cash_refunds_fen": up.cash_refunds_fen, "change_known": up.change_known,
            "counted": [[d, n] for d, n in up.counted],
            "methods": [{"method": m.method, "expected_fen": m.expected_fen, "counted_fen": m.counted_fen,
                         "difference_fen": m.difference_fen} for m in up.methods],
            "expected_fen": cash.expected_fen, "counted_fen": cash.counted_fen, "difference_fen": up.difference_fen,
            "sales": up.sales, "returns": up.returns, "voids": up.voids}


async def run(actor, action: str, lane: str, **kw) -> dict | None:
    db = actor.db.writer  # the actor's own writes, read back in its mailbox
    duty = actor.on_duty.get(lane)
    now = actor.clock.now_ms()
    if action == "state":
        if duty is None:
            return None
        shift = await shifts_db.shift(db, duty.shift_id)
        return {"cashier_id": duty.cashier_id, "shift_id": duty.shift_id,
                "float_fen": shift["float_fen"] if shift else None}
    if action == "void":
        if kw["lines"] > 0:
            await actor._execute(Outcome(reply=None, effects=(RecordVoid(lane, kw["lines"], now),)))
        return None
    if duty is None:
        raise Refused(403, f"no cashier is signed in at lane {lane}: sign in first")
    shift = await shifts_db.shift(db, duty.shift_id)
    if shift is None or shift["closed_ms"] is not None:
        raise Refused(409, f"shift {duty.shift_id} is closed already")
    if action == "float":
        if shift["float_fen"] is not None:
            raise Refused(409, f"shift {duty.shift_id} has its float already ({format_fen(shift['float_fen'])} yuan)")
        counted = core.check_count(kw["counted"]) if kw["counted"] else ()
        float_fen = core.counted_fen(dict(counted)) if counted else kw["amount_fen"]
        if not 0 <= float_fen <= FLOAT_MAX_FEN:
            raise Refused(422, f"float: 0 to {format_fen(FLOAT_MAX_FEN)} yuan, not {format_fen(float_fen)}")
        await actor._execute(Outcome(reply=None, effects=(RecordFloat(duty.shift_id, float_fen, counted, now),)))
        return {"shift_id": duty.shift_id, "float_fen": float_fen}
    if action != "cash_up":
        raise Refused(404, f"no shift action {action}")
    got = await shifts_db.taken(db, lane, shift["opened_ms"], now, duty.shift_id)
    up = core.cash_up(shift["float_fen"] or 0, got["sales"], got["refunds"], got["topups_fen"], kw["counted"],
                      kw.get("confirmed"), got["voids"])
    if not kw.get("close"):
        return view(shift, up, None, now)
    shown = view(shift, up, now, now)
    stamp = actor._stamp()
    event = stamp.make(ShiftReported, shift_id=duty.shift_id, cashier_id=duty.cashier_id, lane=lane,
                       opened_ms=shift["opened_ms"], closed_ms=now, float_fen=up.float_fen,
                       counted=tuple(DenominationCount(denomination_fen=d, pieces=n) for d, n in up.counted if n),
                       methods=tuple(MethodTotal(method=m.method, expected_fen=m.expected_fen,
                                                 counted_fen=m.counted_fen) for m in up.methods),
                       difference_fen=up.difference_fen, sales=up.sales, returns=up.returns, voids=up.voids)
    effects = (RecordShiftReport(duty.shift_id, lane, json.dumps(shown), now), CloseShift(duty.shift_id, now),
               Publish(event))
    await actor._execute(Outcome(reply=None, effects=effects, last_seq=stamp.outcome_seq))
    actor.on_duty.pop(lane, None)
    return {**shown, "event_id": event.event_id}
