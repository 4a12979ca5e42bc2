"""Chain-wide rules both sides must agree on, in one place (the cloud and the store boxes import them from here).

Each is a default a deployment may configure; what matters is that the edge and the cloud start from the same
number and the same derivation.
"""
from __future__ import annotations

import hashlib
import hmac

DEFAULT_ONLINE_RATIO_BP = 4_000  # share of a store's on-hand escrowed for online selling: 40%, per (store, sku)
OFFLINE_FLOOR_LIMIT_FEN = 5_000  # how far below zero a member's stored value may go through offline till spends
CHAIN_UTC_OFFSET_MIN = 480  # the chain's time zone (China, UTC+8): opening hours, "today", time-window promotions
RESERVATION_TTL_MS = 15 * 60 * 1000  # an unpaid online reservation holds its units this long


def member_lookup_key(store_password_text: str, store_id: str) -> bytes:
    """The key of a store's member lookup hashes (its member cache finds a typed phone by this keyed hash, never
    holding the number). Derived from the store's own NATS password - random per store, known only to that store
    box and the cloud's credential book (cloud/store_credentials.py): a stolen box cannot test guesses against
    another store's cache."""
    return hmac.new(store_password_text.encode(), f"member-lookup:{store_id}".encode(), hashlib.sha256).digest()
