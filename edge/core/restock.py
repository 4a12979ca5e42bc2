"""Restock at the store, as pure decisions (issue 16 item 7): applying HQ's reorder points, and raising or clearing a
restock alert after the store's stock of a SKU moved.

Guarantees:
- A `ReorderPointsSet` applies once (its event id into the inbox with its effects); each point replaces the one
  kept for its SKU only if its version is newer, so a late, older message never undoes a newer setting.
- After any movement of a SKU, its projected stock (on hand less the units of online orders still to pick here) is
  compared with its point (`protocol.restock.crossing`): one `RestockAlerted` per crossing below, committed with
  the open alert in one transaction (so a crash cannot raise it twice or lose it), and a `RestockCleared` when it
  is back at or above the point. Works with the cloud unreachable: the events wait in the outbox like a sale.
- The check runs after the movement, not in it: the movement's outcome commits in its own transaction first, and
  then the actor (`edge.store_actor.StoreActor._restock`) reads the stock it left and commits the check's outcome
  (alert row and event) in a second transaction right after. A crash (or a failed check) between the two leaves
  the crossing unalerted until the next movement of that SKU (or a new point for it), which checks again from the
  stock as it is then; nothing is raised twice and nothing wrong is raised. Folding the check into the movement's
  transaction would need the stock after the movement's effects while its outcome is still being decided, so it
  is accepted as it is.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge.core.outcome import (
    CloseRestockAlert,
    Effect,
    MarkApplied,
    OpenRestockAlert,
    Outcome,
    Publish,
    SetReorderPoint,
)
from edge.core.state import EventStamp
from protocol.restock import Point, crossing, projected, suggested_qty
from protocol.restock_messages import ReorderPointsSet, RestockAlerted, RestockCleared


@dataclass(frozen=True, slots=True)
class OpenAlert:
    alert_id: str
    sku: str


def apply_points(message: ReorderPointsSet, seen: bool, kept_versions: Mapping[str, int], at_ms: int,
                 store_id: str) -> Outcome:
    """The points newer than those kept (`kept_versions`: sku -> version kept, absent: none)."""
    if seen:
        return Outcome(reply="duplicate")
    mark = MarkApplied(message.event_id, message.KIND, at_ms)
    if message.store_id != store_id:
        return Outcome(reply="applied", effects=(mark,), notes=(f"ignored reorder points for store {message.store_id}",))
    effects: list[Effect] = [mark]
    older = []
    for p in message.points:
        if p.version > kept_versions.get(p.sku, 0):
            effects.append(SetReorderPoint(p.sku, p.reorder_point, p.target, p.version))
        else:
            older.append(f"{p.sku} v{p.version}")
    notes = (f"kept newer reorder points than {', '.join(older)}",) if older else ()
    return Outcome(reply="applied", effects=tuple(effects), notes=notes)


def check(sku: str, on_hand: int, owed: int, point: Point | None, alert: OpenAlert | None, pack: int,
          stamp: EventStamp) -> Outcome | None:
    """The alert to raise or clear for `sku` now, or None (nothing changes)."""
    now = projected(on_hand, owed)
    change = crossing(now, point, alert is not None)
    at_ms = stamp.moment.wall_ms
    if change == "raise" and point is not None:
        suggested = suggested_qty(point.target, now, pack)
        event = stamp.make(RestockAlerted, alert_id=stamp.new_id(), sku=sku, on_hand=on_hand, owed=owed,
                           reorder_point=point.reorder_point, target=point.target, suggested_qty=suggested)
        opened = OpenRestockAlert(event.alert_id, sku, on_hand, owed, point.reorder_point, point.target, suggested,
                                  at_ms)
        return Outcome(reply=event.alert_id, effects=(opened, Publish(event)), last_seq=stamp.outcome_seq)
    if change == "clear" and alert is not None:
        cleared = stamp.make(RestockCleared, alert_id=alert.alert_id, sku=sku, on_hand=on_hand, owed=owed)
        return Outcome(reply=alert.alert_id, effects=(CloseRestockAlert(alert.alert_id, at_ms), Publish(cleared)),
                       last_seq=stamp.outcome_seq)
    return None
