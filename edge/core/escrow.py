"""Escrow at the edge (DESIGN.md section 3), as pure arithmetic.

The store holds `on_hand`; it grants the cloud an online share (`escrow`), sized by the channel ratio when stock
is received. The till may always sell (the customer is at the counter): when it sells past its offline share
(`on_hand < escrow`), the store asks the cloud to give back the difference; the cloud returns what is not reserved.
"""
from __future__ import annotations

from protocol.policy import DEFAULT_ONLINE_RATIO_BP


def grant_after_receiving(on_hand: int, escrow: int, ratio_bp: int = DEFAULT_ONLINE_RATIO_BP) -> int:
    """Units to grant so that the cloud holds its share of what is on hand now (never negative)."""
    return max(on_hand * ratio_bp // 10_000 - escrow, 0)


def reclaim_needed(on_hand: int, escrow: int) -> int:
    """Units the till sold out of the cloud's share, to be asked back."""
    return max(escrow - max(on_hand, 0), 0)


def offline_sellable(on_hand: int, escrow: int) -> int:
    return max(on_hand - escrow, 0)


# ---- lending to the cloud (it asks when an online order is short of escrow) ----------------------------------
# What the till keeps when the cloud borrows from its offline share: at least this many units, and at least this
# share of on-hand, beyond what open carts at the lanes already hold (the customer at the counter comes first).
TILL_KEEP_MIN_UNITS = 5
TILL_KEEP_BP = 1_000  # 10% of on-hand


def till_keeps(on_hand: int, in_carts: int = 0, keep_min: int = TILL_KEEP_MIN_UNITS, keep_bp: int = TILL_KEEP_BP) -> int:
    """Units of the offline share the till never lends: the safety floor plus what lanes are ringing up now."""
    return max(keep_min, -(-max(on_hand, 0) * keep_bp // 10_000)) + max(in_carts, 0)


def lendable(on_hand: int, escrow: int, ratio_bp: int, in_carts: int = 0) -> int:
    """Units the store can lend the cloud now: its offline share down to the till's floor. A ratio of 0 means HQ
    takes the SKU off line at this store: nothing is lent."""
    if ratio_bp <= 0:
        return 0
    return max(on_hand - escrow - till_keeps(on_hand, in_carts), 0)


def lend(asked: int, on_hand: int, escrow: int, ratio_bp: int, in_carts: int = 0) -> int:
    """Units granted for a borrow of `asked`: all of it if the offline share allows, else what it allows (0: none)."""
    return min(max(asked, 0), lendable(on_hand, escrow, ratio_bp, in_carts))


def rebalance(on_hand: int, escrow: int, ratio_bp: int) -> int:
    """After HQ changes the ratio: positive, units to grant so the cloud holds its new share; negative, units to ask
    back because the cloud holds more than its new share (it returns only what is not reserved)."""
    target = max(on_hand, 0) * ratio_bp // 10_000
    return target - escrow


def ratio_for(sku: str, category: str | None, by_sku: dict[str, int], by_category: dict[str, int],
              default_bp: int = DEFAULT_ONLINE_RATIO_BP) -> int:
    """The ratio HQ set for this SKU, else for its category, else the box's default."""
    if sku in by_sku:
        return by_sku[sku]
    if category is not None and category in by_category:
        return by_category[category]
    return default_bp
