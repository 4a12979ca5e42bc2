"""Shifts at the till, run in the store actor's mailbox (`StoreActor._shift`, `_sign_in`, `_sign_out`): signing in
and out, the opening float, voids, the cash-up and the close with its report.

Guarantees:
- Every step runs in the actor's one mailbox, so a sale cannot commit between the read a cash-up is worked out from
  and the close that reports it; the close's effects - the cash-up kept (`shift_reports`), the shift closed and
  the `ShiftReported` event for the cloud - commit in one SQLite transaction (the outbox: exactly once).
- A float is taken once per shift, only while its cashier is signed in at the lane; a cash-up or close needs the
  lane's signed-in cashier; a close of a shift that closed meanwhile is refused, never reported twice.
- The figures are the pure `edge.core.cash_up`'s, from the box's own tables (`edge.shifts_db.taken`).
- Every shift the box opens is closed once and reported once (`edge.core.shift_resume`): a restart leaves an open
  shift open (the cashier signs in again with the PIN to continue it); signing out through the lane API, signing in
  over a cashier through it, or the next day's first sign-in closes the shift without a count: the report says
  `uncounted` (counted = expected, unknown; no difference claimed), in the same transaction as the close.
"""
from __future__ import annotations

import json

from edge import shifts_db
from edge.core import cash_up as core
from edge.core import cashiers
from edge.core.outcome import CloseShift, Effect, InsertReturn, InsertSale, Outcome, Publish, Refused
from edge.core.shift_effects import RecordFloat, RecordShiftReport, RecordVoid, ShiftEntry
from edge.core.shift_resume import LeftOpen, plan_sign_in
from protocol.lots import chain_day
from protocol.money import format_fen
from protocol.shift_messages import FLOAT_MAX_FEN, DenominationCount, MethodTotal, ShiftReported


def with_shifts(on_duty: dict, effects: tuple) -> tuple:
    """`effects` with each sale and return made at a lane that has a cashier on duty tagged with that shift, in the
    same transaction (`ShiftEntry`): the cash-up counts them by shift, not by the wall clock."""
    tags = [ShiftEntry("sale" if isinstance(e, InsertSale) else "return",
                       e.sale_id if isinstance(e, InsertSale) else e.return_id, on_duty[e.lane].shift_id)
            for e in effects if isinstance(e, (InsertSale, InsertReturn)) and e.lane in on_duty]
    return (*effects, *tags) if tags else effects


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
            "sales": up.sales, "returns": up.returns, "voids": up.voids, "uncounted": False}


async def sign_in(actor, lane: str, cashier_id: str, pin_ok: bool) -> dict:
    """A cashier signs in at the lane: the shift left open there continues (same cashier, same day) or is closed and
    reported uncounted, and a new one opens (`edge.core.shift_resume`)."""
    now = actor.clock.now_ms()
    duty = actor.on_duty.get(lane)
    outcome, new_duty = cashiers.sign_in(lane, cashier_id, pin_ok, actor.ids.new(), now, None)  # the PIN's verdict
    left = [LeftOpen(s["shift_id"], s["cashier_id"], chain_day(s["opened_ms"]))
            for s in await shifts_db.open_at(actor.db.writer, lane)]
    plan = plan_sign_in(cashier_id, duty, left, chain_day(now))
    if plan.resume is not None:
        actor.on_duty[lane] = cashiers.OnDuty(cashier_id, plan.resume, lane)
        return {"lane": lane, "cashier_id": cashier_id, "shift_id": plan.resume, "resumed": True}
    stamp = actor._stamp()
    effects: list[Effect] = []
    for shift_id in plan.close:
        effects += (await close_uncounted(actor, shift_id, now, stamp))[1]
    effects += outcome.effects
    await actor._execute(Outcome(reply=None, effects=tuple(effects), last_seq=stamp.outcome_seq))
    actor.on_duty[lane] = new_duty
    return {**outcome.reply, "closed_uncounted": list(plan.close)}


async def sign_out(actor, lane: str) -> dict:
    """The lane API's sign-out: the lane's shift (the signed-in cashier's, or one a restart left open) closes,
    reported uncounted; signing out where no shift is open changes nothing."""
    now = actor.clock.now_ms()
    duty = actor.on_duty.get(lane)
    ids = list(dict.fromkeys([*([duty.shift_id] if duty else []),
                              *(s["shift_id"] for s in await shifts_db.open_at(actor.db.writer, lane))]))
    if not ids:
        return {"lane": lane, "signed_out": None}
    stamp = actor._stamp()
    effects: list[Effect] = []
    for shift_id in ids:
        effects += (await close_uncounted(actor, shift_id, now, stamp))[1]
    await actor._execute(Outcome(reply=None, effects=tuple(effects), last_seq=stamp.outcome_seq))
    actor.on_duty.pop(lane, None)
    return {"lane": lane, "signed_out": duty.cashier_id if duty else None, "shift_id": ids[0], "closed_uncounted": ids}


async def close_uncounted(actor, shift_id: str, now: int, stamp) -> tuple[dict, list[Effect]]:
    """The effects closing a shift without a count: its cash-up kept and reported, `uncounted`."""
    shift = await shifts_db.shift(actor.db.writer, shift_id)
    if shift is None or shift["closed_ms"] is not None:
        return {}, []
    got = await shifts_db.taken(actor.db.writer, shift_id)
    up = core.cash_up(shift["float_fen"] or 0, got["sales"], got["refunds"], got["topups_fen"], {}, None, got["voids"])
    return close_effects(shift, up, now, stamp, uncounted=True)


def close_effects(shift: dict, up: core.CashUp, now: int, stamp, uncounted: bool) -> tuple[dict, list[Effect]]:
    """The kept cash-up, the close and the `ShiftReported` event of one shift. Uncounted: nothing was counted, so
    each method's counted figure is its expected one and no difference is claimed (`uncounted: true`)."""
    # the shift's times are the wall clock's: one set back since the opening (edge/core/clock_watch.py) must not
    # make a report that closes before it opened (refused by the message) and so a close that cannot happen
    now = max(now, shift["opened_ms"])
    shown = {**view(shift, up, now, now), "uncounted": uncounted}
    methods = tuple(MethodTotal(method=m.method, expected_fen=m.expected_fen,
                                counted_fen=m.expected_fen if uncounted else m.counted_fen) for m in up.methods)
    if uncounted:
        shown.update(counted=[], counted_fen=up.cash.expected_fen, difference_fen=0,
                     methods=[{**m, "counted_fen": m["expected_fen"], "difference_fen": 0} for m in shown["methods"]])
    event = stamp.make(ShiftReported, shift_id=shift["shift_id"], cashier_id=shift["cashier_id"], lane=shift["lane"],
                       opened_ms=shift["opened_ms"], closed_ms=now, float_fen=up.float_fen,
                       counted=() if uncounted else tuple(DenominationCount(denomination_fen=d, pieces=n)
                                                          for d, n in up.counted if n),
                       methods=methods, difference_fen=0 if uncounted else up.difference_fen, sales=up.sales,
                       returns=up.returns, voids=up.voids, uncounted=uncounted)
    shown["event_id"] = event.event_id
    return shown, [RecordShiftReport(shift["shift_id"], shift["lane"], json.dumps(shown), now),
                   CloseShift(shift["shift_id"], now), Publish(event)]


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
            void = RecordVoid(lane, kw["lines"], now, duty.shift_id if duty else "")
            await actor._execute(Outcome(reply=None, effects=(void,)))
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
    got = await shifts_db.taken(db, duty.shift_id)
    up = core.cash_up(shift["float_fen"] or 0, got["sales"], got["refunds"], got["topups_fen"], kw["counted"],
                      kw.get("confirmed"), got["voids"])
    if not kw.get("close"):
        return view(shift, up, None, now)
    stamp = actor._stamp()
    shown, effects = close_effects(shift, up, now, stamp, uncounted=False)
    await actor._execute(Outcome(reply=None, effects=tuple(effects), last_seq=stamp.outcome_seq))
    actor.on_duty.pop(lane, None)
    return shown
