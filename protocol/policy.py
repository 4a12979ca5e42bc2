"""Chain-wide rules both sides must agree on, in one place (the cloud and the store boxes import them from here).

Each is a default a deployment may configure; what matters is that the edge and the cloud start from the same
number and the same derivation.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime, timedelta, timezone

DEFAULT_ONLINE_RATIO_BP = 4_000  # share of a store's on-hand escrowed for online selling: 40%, per (store, sku)
# The per-member offline allowance: what a store may let a member spend from stored value without the cloud's hold
# (offline, or the hold request timed out), counted over that store's unsettled offline spends, and how far below
# the balance the store knows those spends may go. The cloud takes the same number as the most a store's offline
# spends may take a member below zero; beyond it the spend is recorded and flagged as a violation.
OFFLINE_ALLOWANCE_FEN = 5_000
# coupons a store's tills may take while they cannot reach the cloud, per chain business day (reconciled on reconnect;
# a coupon found used elsewhere is a reported conflict): at most this many, giving at most this much in all
OFFLINE_COUPONS_PER_DAY = 20
OFFLINE_COUPON_FEN_PER_DAY = 20_000
HOLD_TTL_MS = 2 * 60 * 1000  # a stored-value hold the till never captured (a voided sale, a dead box) lapses then
HOLD_TIMEOUT_MS = 1_500  # how long a till waits for the cloud's hold before it sells offline (within the allowance)
# Cash top-ups at the tills of one store in one chain day: more is refused (by the till, and by the cloud, which
# believes a store about its own cash only up to this).
STORE_CASH_TOPUP_DAY_CAP_FEN = 2_000_000
CASH_TOPUP_MAX_FEN = 200_000  # one cash top-up at a till
CHAIN_UTC_OFFSET_MIN = 480  # the chain's time zone (China, UTC+8): opening hours, "today", time-window promotions
RESERVATION_TTL_MS = 15 * 60 * 1000  # an unpaid online reservation holds its units this long


def member_lookup_key(store_password_text: str, store_id: str) -> bytes:
    """The key of a store's member lookup hashes (its member cache finds a typed phone by this keyed hash, never
    holding the number). Derived from the store's own NATS password - random per store, known only to that store
    box and the cloud's credential book (cloud/store_credentials.py): a stolen box cannot test guesses against
    another store's cache."""
    return hmac.new(store_password_text.encode(), f"member-lookup:{store_id}".encode(), hashlib.sha256).digest()


def chain_day(at_ms: int, utc_offset_min: int = CHAIN_UTC_OFFSET_MIN) -> date:
    """The chain's calendar day at `at_ms` (epoch ms), in its time zone: what "today" means for daily limits."""
    return datetime.fromtimestamp(at_ms / 1000, timezone(timedelta(minutes=utc_offset_min))).date()


def chain_day_start_ms(at_ms: int, utc_offset_min: int = CHAIN_UTC_OFFSET_MIN) -> int:
    """The epoch ms at which the chain's day holding `at_ms` began (midnight in the chain's time zone)."""
    day_ms, offset_ms = 24 * 3600 * 1000, utc_offset_min * 60 * 1000
    return (at_ms + offset_ms) // day_ms * day_ms - offset_ms
# Points as money (issue 17.5): what a point is worth when redeemed, and how much of a payment points may cover.
# 100 points = 1 yuan, so one point is worth one fen; points are earned at 1 per yuan spent (1% back).
REDEEM_POINTS_PER_YUAN = 100
POINTS_MAX_SHARE_BP = 5_000  # points pay at most 50% of an order or a till sale; the rest in another method
SURVEY_POINTS = 50  # a satisfaction survey answered once after a till sale
# Points at a till without the cloud's hold (offline, or no answer in time): what one store may let one member pay
# in points in a day (OFFLINE_POINTS_WINDOW_MS), believed by the cloud only up to this and the member's balance
# (the rest is the store's).
OFFLINE_POINTS_ALLOWANCE = 2_000
OFFLINE_POINTS_WINDOW_MS = 24 * 3600 * 1000  # the allowance counts a store's points taken without a hold this long
