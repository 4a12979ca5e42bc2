"""The store's side of the channel split, as pure decisions: lending the cloud escrow from the offline share when an
online order is short, and applying HQ's allocation ratio.

Guarantees:
- A loan never takes the till below its floor (`escrow.till_keeps`: a minimum, a share of on-hand, and what open
  carts hold), never lends under a ratio of 0 (HQ took the SKU off line here), and lends nothing rather than less
  than the request's least (a part that does not make the order possible would only empty the till's shelf).
- A loan is committed like any grant: the local escrow rises and an `EscrowGranted` goes to the outbox in the one
  SQLite transaction the shell runs for the outcome, marked with the borrow's id (a repeated request lends nothing
  more). The answer names the grant's event id: the cloud applies the grant once, whichever way it comes first.
- An allocation applies once (its event id in the inbox, with the effect) and only if newer than the one kept for
  its SKU or category; the SKUs it changes are rebalanced to the new share at once: a grant up to it, or a reclaim
  of what the cloud holds beyond it (the cloud returns only unreserved units).
"""
from __future__ import annotations

from collections.abc import Mapping

from edge.core import escrow
from edge.core.outcome import ChangeEscrow, Effect, MarkApplied, Outcome, Publish, SetAllocation
from edge.core.state import EventStamp, StockLevel
from protocol.escrow_messages import AllocationSet, EscrowBorrowAnswered, EscrowBorrowRequested
from protocol.messages import EscrowGranted, EscrowReclaimRequested


def _answer(request: EscrowBorrowRequested, stamp: EventStamp, granted: int, grant_event_id: str, on_hand: int,
            escrow_after: int, reason: str) -> EscrowBorrowAnswered:
    # an answer is a reply, not an event of the store's sequence (seq 0, as the tills' hold answers)
    return EscrowBorrowAnswered(event_id=stamp.new_id(), store_id=stamp.store_id, seq=0, wall_ms=stamp.moment.wall_ms,
                                mono_ms=stamp.moment.mono_ms, borrow_id=request.borrow_id, sku=request.sku,
                                asked=request.qty, lent=granted, grant_event_id=grant_event_id, on_hand=on_hand,
                                escrow_after=escrow_after, reason=reason)


def lend(request: EscrowBorrowRequested, seen: bool, known_sku: bool, level: StockLevel, ratio_bp: int,
         in_carts: int, stamp: EventStamp) -> Outcome:
    """The store's answer to a borrow, and the grant it commits (if any)."""
    def refuse(reason: str) -> Outcome:
        return Outcome(reply=_answer(request, stamp, 0, "", level.on_hand, level.escrow, reason))

    if request.store_id != stamp.store_id:
        return refuse(f"a borrow for store {request.store_id}, not this store ({stamp.store_id})")
    if seen:
        return refuse(f"borrow {request.borrow_id} was answered already")
    if not known_sku:
        return refuse(f"unknown product {request.sku}")
    granted = escrow.lend(request.qty, level.on_hand, level.escrow, ratio_bp, in_carts)
    mark = MarkApplied(request.borrow_id, request.KIND, stamp.moment.wall_ms)
    if granted < request.least:  # less than would make the order possible: none (it stays on the till's shelf)
        if ratio_bp <= 0:
            why = "HQ's online ratio for it here is 0"
        else:
            why = (f"{granted} of the {request.least} asked for are beyond the till's floor ({level.on_hand} on hand, "
                   f"{level.escrow} online, the till keeps {escrow.till_keeps(level.on_hand, in_carts)})")
        return Outcome(reply=_answer(request, stamp, 0, "", level.on_hand, level.escrow, f"nothing to lend: {why}"),
                       effects=(mark,))
    after = level.escrow + granted
    grant = stamp.make(EscrowGranted, sku=request.sku, qty=granted, escrow_after=after, loan=True)
    reply = _answer(request, stamp, granted, grant.event_id, level.on_hand, after, "")
    return Outcome(reply=reply, effects=(mark, ChangeEscrow(request.sku, granted), Publish(grant)),
                   last_seq=stamp.outcome_seq)


def apply_allocation(message: AllocationSet, seen: bool, kept_version: int, by_sku: Mapping[str, int],
                     by_category: Mapping[str, int], categories: Mapping[str, str], levels: Mapping[str, StockLevel],
                     default_bp: int, stamp: EventStamp) -> Outcome:
    """`kept_version`: the version kept for the message's (scope, key) (0: none); `categories`: sku -> category of
    the catalogue; `levels`: the store's stock levels (the SKUs it holds)."""
    if seen:
        return Outcome(reply="duplicate")
    mark = MarkApplied(message.event_id, message.KIND, stamp.moment.wall_ms)
    if message.store_id != stamp.store_id:
        return Outcome(reply="applied", effects=(mark,),
                       notes=(f"ignored an allocation for store {message.store_id}",))
    if message.version <= kept_version:
        return Outcome(reply="applied", effects=(mark,),
                       notes=(f"kept allocation {message.scope} {message.key} version {kept_version}: "
                              f"version {message.version} is not newer",))
    sku_ratios, category_ratios = dict(by_sku), dict(by_category)
    (sku_ratios if message.scope == "sku" else category_ratios)[message.key] = message.ratio_bp
    effects: list[Effect] = [mark, SetAllocation(message.scope, message.key, message.ratio_bp, message.version)]
    for sku, level in sorted(levels.items()):
        touched = sku == message.key if message.scope == "sku" else categories.get(sku) == message.key
        if not touched:
            continue
        ratio = escrow.ratio_for(sku, categories.get(sku), sku_ratios, category_ratios, default_bp)
        change = escrow.rebalance(level.on_hand, level.escrow, ratio)
        if change > 0:
            effects += [ChangeEscrow(sku, change),
                        Publish(stamp.make(EscrowGranted, sku=sku, qty=change, escrow_after=level.escrow + change))]
        elif change < 0:
            effects.append(Publish(stamp.make(EscrowReclaimRequested, sku=sku, qty=-change)))
    return Outcome(reply="applied", effects=tuple(effects), last_seq=stamp.outcome_seq)
