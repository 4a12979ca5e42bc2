"""Messages of restock (issue 16 item 7), registered in `protocol.messages`' lists.

- `ReorderPointsSet` (cloud -> store, on the store's own JetStream consumer): HQ's reorder points and targets for
  some SKUs of this store, each with its version (growing per store and SKU): the store keeps only the newest.
- `RestockAlerted` (edge -> cloud, on the event path): the store's projected stock of a SKU (on hand less what it
  owes online orders still to pick) fell below its reorder point; raised once per crossing.
- `RestockCleared` (edge -> cloud): that alert's SKU is back at or above its point (a receiving, a return, a count).
"""
from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import ClassVar

from protocol.ids import is_id
from protocol.messages import SKU_RE, Message
from protocol.restock import ITEMS_MAX, POINT_MAX, check_point
from protocol.schema import record, require


@record
class ReorderPoint:
    sku: str
    reorder_point: int
    target: int
    version: int

    def __post_init__(self) -> None:
        require(bool(SKU_RE.match(self.sku)), f"reorder point: invalid sku {self.sku[:60]!r}")
        why = check_point(self.reorder_point, self.target, f"reorder point {self.sku}")
        require(not why, why)
        require(self.version > 0, f"reorder point {self.sku}: version must be positive")


@record
class ReorderPointsSet(Message):
    KIND: ClassVar[str] = "restock.points"
    points: tuple[ReorderPoint, ...]

    def check(self) -> None:
        require(0 < len(self.points) <= ITEMS_MAX, f"restock.points: 1..{ITEMS_MAX} points")
        require(len({p.sku for p in self.points}) == len(self.points), "restock.points: each sku once")


def _check_qty(kind: str, name: str, value: int, low: int) -> None:
    require(low <= value <= POINT_MAX, f"{kind}.{name}: {low}..{POINT_MAX}")


@record
class RestockAlerted(Message):
    """`alert_id` is made by the store (the cloud keeps one alert per id); `projected` = `on_hand` - `owed`."""
    KIND: ClassVar[str] = "restock.alerted"
    alert_id: str
    sku: str
    on_hand: int
    owed: int  # units of online orders the store has still to pick
    reorder_point: int
    target: int
    suggested_qty: int

    def check(self) -> None:
        require(is_id(self.alert_id), f"restock.alerted.alert_id: not an id: {self.alert_id[:60]!r}")
        require(bool(SKU_RE.match(self.sku)), f"restock.alerted.sku: invalid sku {self.sku[:60]!r}")
        _check_qty(self.KIND, "on_hand", self.on_hand, -POINT_MAX)  # a till sale may take it below 0
        _check_qty(self.KIND, "owed", self.owed, 0)
        for name in ("reorder_point", "target", "suggested_qty"):
            _check_qty(self.KIND, name, getattr(self, name), 0)
        require(self.on_hand - self.owed < self.reorder_point,
                "restock.alerted: the projected stock (on_hand - owed) is not below the reorder point")

    @property
    def projected(self) -> int:
        return self.on_hand - self.owed


@record
class RestockCleared(Message):
    KIND: ClassVar[str] = "restock.cleared"
    alert_id: str
    sku: str
    on_hand: int
    owed: int

    def check(self) -> None:
        require(is_id(self.alert_id), f"restock.cleared.alert_id: not an id: {self.alert_id[:60]!r}")
        require(bool(SKU_RE.match(self.sku)), f"restock.cleared.sku: invalid sku {self.sku[:60]!r}")
        _check_qty(self.KIND, "on_hand", self.on_hand, -POINT_MAX)
        _check_qty(self.KIND, "owed", self.owed, 0)


def judge(events: Iterable[Message], known_skus: Container[str], alert_stores: Mapping[str, str]) -> dict[str, str]:
    """event id -> why the cloud does not believe it, for a batch's restock events (`protocol.store_facts` style):
    a store is believed about restock of products that exist, and clears only its own alerts (`alert_stores`:
    alert id -> the store that raised it, as known before the batch; alerts raised in the batch count too)."""
    refused: dict[str, str] = {}
    owners = dict(alert_stores)
    for e in events:
        if isinstance(e, RestockAlerted):
            if e.sku not in known_skus:
                refused[e.event_id] = f"store {e.store_id} restock.alerted refused: unknown product {e.sku}"
            elif owners.setdefault(e.alert_id, e.store_id) != e.store_id:
                refused[e.event_id] = (f"store {e.store_id} restock.alerted refused: alert {e.alert_id} is store "
                                       f"{owners[e.alert_id]}'s")
        elif isinstance(e, RestockCleared):
            owner = owners.get(e.alert_id)
            if owner is not None and owner != e.store_id:
                refused[e.event_id] = (f"store {e.store_id} restock.cleared refused: alert {e.alert_id} is store "
                                       f"{owner}'s to clear")
    return refused
