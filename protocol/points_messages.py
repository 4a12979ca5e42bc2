"""Points at the till (issue 17.5): the till asks the cloud to hold a member's points before its sale commits (core
NATS request/reply on `fm.store.<id>.pts.<hold|release>`, beside the stored-value holds), and the sale's payment
`points` names the hold, which the cloud captures when the sale arrives.

Registered in `protocol.messages` (REQUESTS), so the one codec decodes them.
"""
from __future__ import annotations

from typing import ClassVar

from protocol.ids import is_id
from protocol.messages import MEMBER_ID_MAX, Message
from protocol.schema import record, require
from protocol.subjects import ROOT, store_root

POINTS_HOLD_PREFIX = "ptshold:"  # + an id made by the till
POINTS_ALL = f"{ROOT}.store.*.pts.>"
POINTS_QUEUE = "points"  # the cloud's queue group: any one cloud process answers each request
POINTS_MAX = 10_000_000


def is_points_hold(text: str) -> bool:
    return text.startswith(POINTS_HOLD_PREFIX) and is_id(text[len(POINTS_HOLD_PREFIX):])


def store_points_subject(store_id: str, what: str) -> str:
    """Where a till asks for a points hold ("hold") or gives one back ("release"): under the store's own root, which
    only that store may publish on (`subjects.store_permissions`)."""
    return f"{store_root(store_id)}.pts.{what}"


def _common(hold_id: str, member_id: str, path: str) -> None:
    require(is_points_hold(hold_id), f"{path}: not a points hold id: {hold_id[:80]!r}")
    require(0 < len(member_id) <= MEMBER_ID_MAX, f"{path}.member_id: 1-{MEMBER_ID_MAX} characters")


@record
class PointsHoldRequested(Message):
    """Set `hold_points` of the member's points aside for a till sale about to commit (redeemed now, given back if the
    sale is not made). Answered by a `PointsHoldAnswered`."""
    KIND: ClassVar[str] = "points.hold"
    points_hold_id: str
    member_id: str
    hold_points: int
    lane: str

    def check(self) -> None:
        _common(self.points_hold_id, self.member_id, "points.hold")
        require(0 < self.hold_points <= POINTS_MAX, f"points.hold.hold_points: 1..{POINTS_MAX}")


@record
class PointsHoldReleased(Message):
    """The till did not sell after all: the held points go back at once."""
    KIND: ClassVar[str] = "points.release"
    points_hold_id: str
    member_id: str

    def check(self) -> None:
        _common(self.points_hold_id, self.member_id, "points.release")


@record
class PointsHoldAnswered(Message):
    """Granted (the points are held until `expires_ms`) or refused with `reason`; `points_balance`: the member's
    points after the hold."""
    KIND: ClassVar[str] = "points.hold_answer"
    points_hold_id: str
    granted: bool
    reason: str
    points_balance: int
    expires_ms: int


POINTS_REQUESTS: tuple[type[Message], ...] = (PointsHoldRequested, PointsHoldReleased, PointsHoldAnswered)
