"""Points as money and the satisfaction survey's token: the rules both the cloud and the store boxes compute.

- Points pay part of an online order or a till sale at `REDEEM_POINTS_PER_YUAN` (policy): their value in fen is
  `points_value_fen`; they may cover at most `POINTS_MAX_SHARE_BP` of the total, the rest is paid another way
  (`points_refusal` says why a split is refused).
- The points part's ledger ids derive from what it pays for (`redeem_id`, `give_back_id`): a replayed payment
  redeems once, and a redemption is given back once.
- A survey token names the store and the sale and is signed by that store's survey key (`survey_key`, derived
  from the store's own NATS password, which only that box and the cloud's credential book know): a box can sign
  only for its own store id, and the cloud grants points only for a sale of that store it has recorded with a
  member (so a store cannot mint tokens for another store's sales, nor for sales it never reported).
Pure: no I/O, no clock.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

from protocol.money import format_fen
from protocol.policy import POINTS_MAX_SHARE_BP, REDEEM_POINTS_PER_YUAN

POINTS_MAX_PER_PAYMENT = 10_000_000  # a sanity bound on one request's points (100,000 yuan)
TOKEN_MAC_BYTES = 16
TOKEN_FIELD_MAX_CHARS = 64


def points_value_fen(points: int) -> int:
    """What `points` are worth in fen when redeemed (rounded down: a fraction of a fen is never paid out)."""
    return points * 100 // REDEEM_POINTS_PER_YUAN


def points_for_fen(value_fen: int) -> int:
    """The points a points payment of `value_fen` stands for (the inverse of `points_value_fen`)."""
    return value_fen * REDEEM_POINTS_PER_YUAN // 100


def points_cap(total_fen: int) -> int:
    """The most points that may pay towards `total_fen` (their value within the share points may cover)."""
    max_fen = total_fen * POINTS_MAX_SHARE_BP // 10_000
    return max_fen * REDEEM_POINTS_PER_YUAN // 100


def points_refusal(total_fen: int, points: int, balance: int | None = None) -> str | None:
    """Why paying `points` towards a total of `total_fen` is refused, or None when it may go ahead. `balance`:
    the member's points when known (the ledger decides in the end)."""
    if points <= 0 or points > POINTS_MAX_PER_PAYMENT:
        return f"points: must be a whole number from 1 to {POINTS_MAX_PER_PAYMENT}, not {points}"
    if points % (REDEEM_POINTS_PER_YUAN // 100 or 1):
        return f"points: must be a multiple of {REDEEM_POINTS_PER_YUAN // 100}"
    cap = points_cap(total_fen)
    if points > cap:
        return (f"points: {points} points ({format_fen(points_value_fen(points))}) would pay more than "
                f"{POINTS_MAX_SHARE_BP // 100}% of the total {format_fen(total_fen)}: at most {cap} points")
    if balance is not None and points > balance:
        return f"insufficient points: {points} asked, the member has {balance}"
    return None


def redeem_id(paid_for: str, attempt: int = 1) -> str:
    """The ledger transfer id of the points part paying `paid_for` (an order, a till sale, an exchange)."""
    return f"pts:{paid_for}" if attempt <= 1 else f"pts:{paid_for}#{attempt}"


def give_back_id(paid_for: str, attempt: int = 1) -> str:
    """The ledger transfer id giving that redemption back (the order ended unserved, the other method failed)."""
    return f"pts-back:{paid_for}" if attempt <= 1 else f"pts-back:{paid_for}#{attempt}"


# ---- the survey's token ----------------------------------------------------------------------------------------
def survey_key(store_password_text: str, store_id: str) -> bytes:
    """The key a store box signs its receipts' survey tokens with; the cloud derives the same from its credential
    book (as `policy.member_lookup_key`, with another purpose)."""
    return hmac.new(store_password_text.encode(), f"survey:{store_id}".encode(), hashlib.sha256).digest()


def _mac(key: bytes, store_id: str, sale_id: str) -> str:
    digest = hmac.new(key, f"survey-token\x00{store_id}\x00{sale_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:TOKEN_MAC_BYTES]).decode().rstrip("=")


def _ok_field(text: str) -> bool:
    return 0 < len(text) <= TOKEN_FIELD_MAX_CHARS and all(c.isalnum() or c in "-_" for c in text)


def survey_token(key: bytes, store_id: str, sale_id: str) -> str:
    """`<store>.<sale>.<mac>`: URL-safe, one per sale (the sale is what is answered once)."""
    if not (_ok_field(store_id) and _ok_field(sale_id)):
        raise ValueError(f"survey token: store and sale ids must be short and URL-safe ({store_id!r}, {sale_id!r})")
    return f"{store_id}.{sale_id}.{_mac(key, store_id, sale_id)}"


def token_parts(token: str) -> tuple[str, str, str] | None:
    """(store, sale, mac) of a well-formed token, None otherwise (checked before any key is looked up)."""
    parts = token.split(".")
    if len(parts) != 3 or not (_ok_field(parts[0]) and _ok_field(parts[1])) or not parts[2]:
        return None
    return parts[0], parts[1], parts[2]


def token_valid(key: bytes, token: str) -> bool:
    """Whether `token` was signed with `key` (the store's survey key) for the store and sale it names."""
    parts = token_parts(token)
    return parts is not None and hmac.compare_digest(parts[2], _mac(key, parts[0], parts[1]))
