"""Transfers that wait for the sending store's approval (issue 21 item 3): pure, so the cloud's service and its
tests decide the same way.

- A transfer a receiving store's manager asks of another store takes goods off that other store's shelf: it waits
  (`awaiting_approval`) until the sending store's manager or HQ approves it (then it is `requested` and the sending
  store is told to dispatch) or refuses it (`refused`, final; the sending store never hears of it).
- HQ's own request, and routing's (the cloud moving surplus to a shortage), are approved by being made: HQ is the
  approver, and routing only ever takes a store's surplus (`protocol.restock_transfers`).
- A decision is idempotent: the same decision again answers the transfer as it is; the other decision on a decided
  transfer is a conflict naming what was decided.
- Only the sending store's manager or an hq_admin decides; the asking store's manager never approves their own ask.
"""
from __future__ import annotations

from typing import Literal

AWAITING = "awaiting_approval"
DECISIONS = ("approve", "refuse")
Decision = Literal["approve", "refuse"]
DECIDED = {"approve": "requested", "refuse": "refused"}  # decision -> the status it leads to


def initial_status(asker_role: str | None, origin: str) -> str:
    """The status a new transfer starts in: a store manager's ask waits for approval; HQ's and routing's do not."""
    if origin == "hq" and asker_role == "store_manager":
        return AWAITING
    return "requested"


def who_may_decide(role: str, own_store: str | None, from_store: str) -> str | None:
    """None when this operator may approve or refuse a transfer out of `from_store`, else why not."""
    if role == "hq_admin":
        return None
    if role == "store_manager":
        if own_store == from_store:
            return None
        return f"only the sending store's manager ({from_store}) or head office decides this transfer, not a " \
               f"store manager of {own_store}"
    return f"the {role} role may not approve or refuse transfers"


def decide(status: str, decision: str) -> tuple[str, bool]:
    """(the status after `decision`, whether it changed anything) for a transfer now in `status`.
    Raises ValueError with the reason when the decision cannot be taken."""
    if decision not in DECISIONS:
        raise ValueError(f"decision: one of {', '.join(DECISIONS)}")
    after = DECIDED[decision]
    if status == AWAITING:
        return after, True
    if status == after or (decision == "approve" and status in ("dispatched", "received")):
        return status, False  # the same decision again (or approved long since and under way): nothing to do
    if status == "refused":
        raise ValueError("the transfer was refused: it cannot be approved now (ask again)")
    if status == "cancelled":
        raise ValueError("the transfer was cancelled: nothing to decide")
    raise ValueError(f"the transfer is {status}: it was approved already and cannot be refused now")
