"""Group buying (拼团), the pure part: a group of members buying one group-buy rule's SKU at its group price.

A member opens a group for a `GroupBuy` rule; others join it through its share link within its window. The group
forms when `size` members hold a PAID order in it; it fails when its window closes short. Every decision here is a
pure function of the group as it is now (time passed in), answered with a reason a customer can read:

- `rule_for`: the rule is a group buy, exists, and is in force online at the store now;
- `join_refusal`: joining is refused when the group has formed or failed ("closed"), its window has passed
  ("expired"), the member already holds a place ("already in this group"), or every place is taken ("full");
- `forms`: every place is taken by a paid order while the group is open and its window has not passed;
- `fails`: the window has passed and the group did not form;
- `cancel_refusal`: HQ may cancel a group only while it is open and its window has not passed (a formed group's
  orders went to their stores; a closed one is being ended by the sweeper already);
- `price_basis`: what a member pays in a group (see its docstring: never more than on their own);
- `outcome`: what became of a group, in words an operator reads.

A place is held by a member's order; a place whose order ended unserved (cancelled, expired, rejected) is free again
(the caller counts only live places). The shell (`cloud/services/group_buys.py`) decides under the group's row
lock, so two joiners never both take the last place.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from protocol.clock import to_rfc3339
from protocol.money import format_fen
from protocol.pricing.rules import GroupBuy, RuleBook

GROUP_WINDOW_MS = 24 * 3_600_000  # a group's window when its rule names none (`GroupBuy.window_min`)
GroupStatus = Literal["open", "formed", "failed", "cancelled"]
OPEN: GroupStatus = "open"
FORMED: GroupStatus = "formed"
FAILED: GroupStatus = "failed"
CANCELLED: GroupStatus = "cancelled"  # by HQ while open: its orders cancelled and refunded as a failed group's
STATUSES: tuple[GroupStatus, ...] = (OPEN, FORMED, FAILED, CANCELLED)
ENDED_UNFORMED: tuple[GroupStatus, ...] = (FAILED, CANCELLED)  # every order of the group is cancelled and refunded
JoinRefusalCode = Literal["closed", "expired", "already_member", "full"]


@dataclass(frozen=True, slots=True)
class Seat:
    member_id: str
    order_id: str
    paid: bool


@dataclass(frozen=True, slots=True)
class Group:
    group_id: str
    rule_id: str
    sku: str
    leader_id: str
    size: int
    price_fen: int  # per unit (piece or kg, as the product's list price)
    opened_ms: int
    closes_ms: int
    status: GroupStatus = OPEN
    seats: tuple[Seat, ...] = ()  # live places only: their orders have not ended unserved

    @property
    def remaining(self) -> int:
        return max(self.size - len(self.seats), 0)


@dataclass(frozen=True, slots=True)
class JoinRefused:
    code: JoinRefusalCode
    reason: str


def window_ms(rule: GroupBuy, default_ms: int = GROUP_WINDOW_MS) -> int:
    """The rule's own window, or the chain's default."""
    return rule.window_min * 60_000 if rule.window_min else default_ms


def rule_for(book: RuleBook, rule_id: str, store_id: str, now_ms: int) -> GroupBuy | str:
    """The group-buy rule to open a group for, or why not (a sentence naming the rule)."""
    rule = book.by_id.get(rule_id)
    if rule is None:
        return f"rule_id: no rule {rule_id!r} in the promotion book"
    if not isinstance(rule, GroupBuy):
        return f"rule_id: {rule_id} is a {rule.TYPE} rule, not a group buy"
    active = book.active_rules("online", store_id, now_ms, None).group_buys.get(rule.skus[0], [])
    if rule not in active:
        return f"rule_id: the group buy {rule_id} is not in force online at {store_id} now (its channels, stores or hours)"
    return rule


def open_group(group_id: str, rule: GroupBuy, leader_id: str, now_ms: int, default_window_ms: int) -> Group:
    """A new group, with no places taken yet (the leader joins it like anyone, with their order)."""
    return Group(group_id=group_id, rule_id=rule.id, sku=rule.skus[0], leader_id=leader_id, size=rule.group_size,
                 price_fen=rule.group_price_fen, opened_ms=now_ms, closes_ms=now_ms + window_ms(rule, default_window_ms))


def join_refusal(group: Group, member_id: str, now_ms: int) -> JoinRefused | None:
    """Why `member_id` may not take a place now, or None."""
    if group.status == FORMED:
        return JoinRefused("closed", f"group {group.group_id} has already formed: it takes no more members")
    if group.status == FAILED:
        return JoinRefused("closed", f"group {group.group_id} closed without forming: it takes no more members")
    if group.status == CANCELLED:
        return JoinRefused("closed", f"group {group.group_id} was cancelled by the chain: it takes no more members")
    if now_ms >= group.closes_ms:
        return JoinRefused("expired", f"group {group.group_id}'s window has passed: it takes no more members")
    if any(s.member_id == member_id for s in group.seats):
        return JoinRefused("already_member", f"you are already in this group ({group.group_id}): one place per member")
    if len(group.seats) >= group.size:
        return JoinRefused("full", f"group {group.group_id} is full: all {group.size} places are taken")
    return None


def join(group: Group, seat: Seat, now_ms: int) -> Group | JoinRefused:
    """The group with `seat` taken, or why not."""
    refused = join_refusal(group, seat.member_id, now_ms)
    return refused if refused is not None else replace(group, seats=(*group.seats, seat))


def forms(group: Group, now_ms: int) -> bool:
    """Every place is taken by a paid order, in time."""
    return (group.status == OPEN and now_ms < group.closes_ms and len(group.seats) == group.size
            and all(s.paid for s in group.seats))


def fails(group: Group, now_ms: int) -> bool:
    """The window passed and the group did not form (its orders are then cancelled and refunded)."""
    return group.status == OPEN and now_ms >= group.closes_ms


def masked_name(phone_masked: str | None) -> str:
    """How a member appears on a group's public page: the masked phone the cloud keeps, never more."""
    return phone_masked or "会员"


def cancel_refusal(group: Group, now_ms: int) -> str | None:
    """Why HQ may not cancel the group now, or None. Cancelling a cancelled group is not refused (the shell answers
    it again: an operator's retry)."""
    if group.status == FORMED:
        return (f"group {group.group_id} has formed: its orders went to their stores; cancel those orders one by one "
                "if they must not be served")
    if group.status == FAILED:
        return f"group {group.group_id} closed without forming: its orders are cancelled and refunded already"
    if group.status == OPEN and now_ms >= group.closes_ms:
        return (f"group {group.group_id}'s window closed short: the sweeper is cancelling and refunding its orders "
                "already")
    return None


@dataclass(frozen=True, slots=True)
class PriceBasis:
    """What one member pays per unit in a group, and the sentence that tells them why."""
    basis: Literal["group", "own"]
    unit_fen: int
    group_price_fen: int
    note: str


def price_basis(rule: GroupBuy, group_applied: bool, own_unit_fen: int, own_label: str) -> PriceBasis | None:
    """What a member pays for the group's item: the group price, or their own price when that is at or below it.

    A group is a promise between friends: the member who opened it or shared its link counts on every place. A gold
    member whose own price (`own_unit_fen`: their level's price, else the list price) is already at or below the
    group price would pay more by "joining at the group price", and refusing them would leave their friends a place
    short. A real chain does neither: the group price is never worse than the member's own price. The member takes
    a place like anyone (it counts toward forming; the order is held until the group forms and is cancelled and
    refunded if it fails, like every place) and pays their own price; the order's timeline and the answer say so.

    `group_applied`: the pricing used the group's rule for the order. None when it did not and the member's own
    price is above the group price: then the rule was not in force for the order (its store or hour), which the
    caller reports (`rule_for` names what)."""
    group = rule.group_price_fen
    if group_applied:
        return PriceBasis("group", group, group, f"the group price {format_fen(group)} per unit")
    if own_unit_fen <= group:
        return PriceBasis("own", own_unit_fen, group,
                          f"your {own_label} {format_fen(own_unit_fen)} per unit is at or below the group price "
                          f"{format_fen(group)}: you pay your own price, and your place counts toward the group")
    return None


def outcome(status: str, size: int, joined: int, paid: int, closes_ms: int, formed_ms: int | None,
            ended_ms: int | None, cancelled_by: str | None = None, cancel_reason: str | None = None) -> str:
    """What became of the group (or what it waits for), for operators. `joined`/`paid`: its live places and how
    many of them are paid (a failed group's places as they stood when it closed: ended orders no longer count)."""
    if status == FORMED:
        return f"formed at {to_rfc3339(formed_ms)} with all {size} places paid; its orders went to their stores"
    if status == CANCELLED:
        done = "all refunded" if ended_ms else "being cancelled and refunded"
        return f"cancelled by {cancelled_by or 'HQ'} ({cancel_reason or 'no reason given'}): its orders {done}"
    if status == FAILED:
        done = "all cancelled and refunded" if ended_ms else "being cancelled and refunded"
        return f"failed: its window closed at {to_rfc3339(closes_ms)} short of {size} paid places; its orders {done}"
    return f"open: {joined}/{size} joined, {paid} paid; closes at {to_rfc3339(closes_ms)}"
