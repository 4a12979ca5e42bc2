"""What the cloud believes of a store's shift report (`ShiftReported`), in `protocol.store_facts`' style: a store
is believed only about its own shifts. The bridge has already checked that the event came on the store's own
subject; here a report is refused when its shift id is already the report of another event (this store's or
another's: one report per shift, never merged or replaced), or when the cloud knows the shift as another store's
(a cash top-up taken in that shift was reported by another store). Its arithmetic is the message's own check
(`protocol.shift_messages`). Pure: the shell passes in what it recorded.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from protocol.messages import Message
from protocol.shift_messages import ShiftReported


def judge_shift_reports(events: Iterable[Message], reported: Mapping[str, tuple[str, str]],
                        shift_stores: Mapping[str, frozenset[str]]) -> dict[str, str]:
    """event id -> why, for each `ShiftReported` not believed. `reported`: shift id -> (store, event id) of the report
    already kept; `shift_stores`: shift id -> the stores whose cash top-ups named that shift."""
    seen = dict(reported)
    refused: dict[str, str] = {}
    for e in events:
        if not isinstance(e, ShiftReported):
            continue
        first = seen.get(e.shift_id)
        others = sorted(shift_stores.get(e.shift_id, frozenset()) - {e.store_id})
        reason = ""
        if first is not None and first[1] != e.event_id:
            reason = f"shift {e.shift_id} was reported already (event {first[1]} of store {first[0]})"
        elif others:
            reason = f"shift {e.shift_id} is a shift of store {others[0]} (its cash top-ups say so), not of {e.store_id}"
        if reason:
            refused[e.event_id] = f"store {e.store_id} {e.KIND} refused: {reason}"
        else:
            seen[e.shift_id] = (e.store_id, e.event_id)
    return refused
