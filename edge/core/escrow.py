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
