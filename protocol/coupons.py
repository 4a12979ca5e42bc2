"""Coupons as issued instruments: a DEFINITION (which coupon rule of the promotion book it grants, when, where, how
many), issued CODES held in one member's wallet, and the code's state machine. Pure: no I/O, time passed in.

- A definition names a `coupon` rule of the book (the discount itself: amount or percent off, minimum spend, new
  members only), its validity (a fixed window and/or N days from issue), its channels (online / offline = the
  till), its stores (empty: all), a per-member limit and a total limit (0: none), and how it is issued besides by
  campaign and operator: `on_registration` (a new member's coupon) or a `trigger` (a qualifying till sale). A
  `points_price` > 0 puts it in the points shop: a member buys one with that many points (`exchangeable` says
  whether one may be bought now; the price is the definition's, never the buyer's).
- A code is "CP" + 12 Crockford base32 characters (60 random bits from a CSPRNG: unguessable) + one check
  character (the value mod 37, as Crockford's check symbol; codes whose check would fall outside the 32 plain
  characters are never made, so every code is typeable and fits any 1-D barcode). Every single mistyped character
  and every swap of two neighbours is caught by the check. Input is forgiving as Crockford's: case, spaces and
  hyphens do not matter; I and L read as 1, O as 0.
- The state machine: issued -> reserved (for an order, or a till's cart) -> redeemed; reserved -> issued on
  release; redeemed -> issued only when the very order that redeemed it is cancelled, or the very till sale that
  redeemed it is returned whole within its window (`protocol.return_promotions`); issued -> voided (final) when the
  till sale that triggered it is returned under the trigger's minimum; an issued code is expired past its validity
  (a state computed from time, never stored).
  `redeemable(...)` answers None or the reason in words; the cloud's conditional UPDATEs express the same
  preconditions (cloud/services/coupons.py), and explain a lost race with this function.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from protocol.errors import ProtocolError

Status = Literal["issued", "reserved", "redeemed", "voided"]
# voided: a till-spend coupon taken back unused because its sale's returns left the sale under the trigger's minimum
STATUSES: tuple[Status, ...] = ("issued", "reserved", "redeemed", "voided")
CHANNELS = ("offline", "online")
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_VALUE = {c: i for i, c in enumerate(ALPHABET)} | {"I": 1, "L": 1, "O": 0}
PREFIX = "CP"
BODY_CHARS = 12  # 60 random bits
CODE_CHARS = len(PREFIX) + BODY_CHARS + 1
DEFINITION_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
VALID_DAYS_MAX = 3660
POINTS_PRICE_MAX = 10_000_000  # points: far above any coupon's worth (100 points = 1 yuan), below any overflow
NAME_MAX_CHARS = 80
DAY_MS = 86_400_000
WHY = ("campaign", "registration", "till_spend", "operator", "points")


class CouponCodeError(ProtocolError):
    """A text that is not a well-formed coupon code (the message says what is wrong with it)."""


# ---- codes -------------------------------------------------------------------------------------------------------
def _check_value(body: str) -> int:
    value = 0
    for ch in body:
        value = value * 32 + _VALUE[ch]
    return value % 37


def new_code(random_bits: Callable[[int], int]) -> str:
    """A fresh code from `random_bits(n)` (the cloud passes `secrets.randbits`, a CSPRNG: 60 unguessable bits)."""
    while True:
        value = random_bits(5 * BODY_CHARS)
        body = "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(BODY_CHARS)))
        check = _check_value(body)
        if check < 32:  # the five extra check symbols (*~$=U) are never made: every code is plain characters
            return PREFIX + body + ALPHABET[check]


def normalise(text: str) -> str:
    """The canonical code in `text`, or CouponCodeError naming what is wrong."""
    if not isinstance(text, str):
        raise CouponCodeError("coupon code: must be a string")
    shown = text if len(text) <= 40 else text[:40] + "..."
    raw = re.sub(r"[\s-]", "", text).upper()
    if not raw.startswith(PREFIX):
        raise CouponCodeError(f"coupon code {shown!r}: a coupon code starts with {PREFIX}")
    body = raw[len(PREFIX):]
    if len(raw) != CODE_CHARS:
        raise CouponCodeError(f"coupon code {shown!r}: has {len(raw)} characters; a coupon code has {CODE_CHARS} "
                              f"({PREFIX} and {CODE_CHARS - len(PREFIX)} more)")
    bad = [c for c in body if c not in _VALUE]
    if bad:
        raise CouponCodeError(f"coupon code {shown!r}: character {bad[0]!r} is not used in coupon codes")
    body = "".join(ALPHABET[_VALUE[c]] for c in body)
    if _check_value(body[:-1]) != _VALUE[body[-1]]:
        raise CouponCodeError(f"coupon code {shown!r}: the check character does not match (mistyped?)")
    return PREFIX + body


def looks_like_code(text: str) -> bool:
    """Whether a scanned/typed text is meant as a coupon code (then a bad one is refused as a coupon, not as a
    product barcode): it starts with the prefix and is about the right length."""
    raw = re.sub(r"[\s-]", "", text or "").upper()
    return raw.startswith(PREFIX) and CODE_CHARS - 2 <= len(raw) <= CODE_CHARS + 2


# ---- definitions -------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class TillSpendTrigger:
    """One coupon per till sale with a member whose total reaches `min_fen`."""
    min_fen: int
    channel_issued: str = "online"  # where the coupon it issues is meant to be used (one of the definition's)


@dataclasses.dataclass(frozen=True, slots=True)
class Definition:
    definition_id: str
    rule_id: str  # a `coupon` rule of the promotion book
    name: str
    channels: tuple[str, ...] = CHANNELS
    stores: tuple[str, ...] = ()  # empty: every store
    valid_from_ms: int = 0  # 0: from issue
    valid_until_ms: int = 0  # 0: no fixed end (then valid_days is required)
    valid_days: int = 0  # 0: no per-coupon period (then valid_until_ms is required)
    per_member_limit: int = 1  # coupons of this definition one member may ever be issued
    total_limit: int = 0  # 0: no total limit
    on_registration: bool = False
    trigger: TillSpendTrigger | None = None
    points_price: int = 0  # > 0: members may buy one with this many points (GET /points/offers); 0: not sold

    def valid_until(self, issued_ms: int) -> int:
        """When a coupon issued at `issued_ms` stops being valid (exclusive)."""
        ends = [t for t in (self.valid_until_ms, issued_ms + self.valid_days * DAY_MS if self.valid_days else 0) if t]
        return min(ends)

    def issuable(self, now_ms: int) -> str | None:
        """None when a coupon of this definition may be issued now, else why not."""
        if self.valid_until_ms and now_ms >= self.valid_until_ms:
            return f"coupon definition {self.definition_id} ended (valid until {self.valid_until_ms})"
        return None

    def to_json(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["channels"], body["stores"] = list(self.channels), list(self.stores)
        body["trigger"] = ({"kind": "till_spend", "min_fen": self.trigger.min_fen,
                            "channel_issued": self.trigger.channel_issued} if self.trigger else None)
        return body


def _int(body: Mapping[str, Any], name: str, default: int, low: int, high: int | None = None) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        upper = f"..{high}" if high is not None else " or more"
        raise ProtocolError(f"{name}: an integer {low}{upper}")
    return value


def _strings(body: Mapping[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = body.get(name, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or len(set(value)) != len(value):
        raise ProtocolError(f"{name}: a list of distinct non-empty strings")
    return tuple(value)


def parse_definition(body: Any) -> Definition:
    """A definition from its JSON body; ProtocolError naming the field that is wrong."""
    if not isinstance(body, dict):
        raise ProtocolError("a coupon definition is a JSON object")
    known = {f.name for f in dataclasses.fields(Definition)}
    extra = sorted(set(body) - known)
    if extra:
        raise ProtocolError(f"unknown field(s) {extra}")
    for name in ("definition_id", "rule_id", "name"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise ProtocolError(f"{name}: required, a non-empty string")
    if not DEFINITION_ID_RE.match(body["definition_id"]):
        raise ProtocolError("definition_id: letters, digits and _.:- only, 1-64 chars")
    if len(body["name"]) > NAME_MAX_CHARS:
        raise ProtocolError(f"name: at most {NAME_MAX_CHARS} characters")
    channels = _strings(body, "channels", CHANNELS)
    if not channels or set(channels) - set(CHANNELS):
        raise ProtocolError(f"channels: one or both of {list(CHANNELS)}")
    valid_from, valid_until = _int(body, "valid_from_ms", 0, 0), _int(body, "valid_until_ms", 0, 0)
    valid_days = _int(body, "valid_days", 0, 0, VALID_DAYS_MAX)
    if not valid_until and not valid_days:
        raise ProtocolError("valid_until_ms or valid_days: a coupon must end; give one or both")
    if valid_until and valid_until <= valid_from:
        raise ProtocolError("valid_until_ms: must be after valid_from_ms")
    on_registration = body.get("on_registration", False)
    if not isinstance(on_registration, bool):
        raise ProtocolError("on_registration: true or false")
    trigger = _trigger(body.get("trigger"), channels)
    if trigger and on_registration:
        raise ProtocolError("trigger: a definition is issued on registration or by a trigger, not both")
    return Definition(definition_id=body["definition_id"], rule_id=body["rule_id"], name=body["name"],
                      channels=channels, stores=_strings(body, "stores", ()), valid_from_ms=valid_from,
                      valid_until_ms=valid_until, valid_days=valid_days,
                      per_member_limit=_int(body, "per_member_limit", 1, 1, 1000),
                      total_limit=_int(body, "total_limit", 0, 0), on_registration=on_registration, trigger=trigger,
                      points_price=_int(body, "points_price", 0, 0, POINTS_PRICE_MAX))


def _trigger(value: Any, channels: tuple[str, ...]) -> TillSpendTrigger | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("kind") != "till_spend":
        raise ProtocolError('trigger: {"kind": "till_spend", "min_fen": N, "channel_issued": "online"}')
    extra = sorted(set(value) - {"kind", "min_fen", "channel_issued"})
    if extra:
        raise ProtocolError(f"trigger: unknown field(s) {extra}")
    min_fen = value.get("min_fen")
    if isinstance(min_fen, bool) or not isinstance(min_fen, int) or min_fen <= 0:
        raise ProtocolError("trigger.min_fen: a positive integer (fen)")
    channel = value.get("channel_issued", "online")
    if channel not in channels:
        raise ProtocolError(f"trigger.channel_issued: {channel!r} is not one of the definition's channels {list(channels)}")
    return TillSpendTrigger(min_fen=min_fen, channel_issued=channel)


def definition_from_row(row: Mapping[str, Any]) -> Definition:
    """A definition as stored (its JSON body)."""
    return parse_definition(row)


# ---- issuing -----------------------------------------------------------------------------------------------------
def issue_plan(definition: Definition, member_ids: Iterable[str], held: Mapping[str, int], issued_total: int,
               now_ms: int) -> tuple[list[str], dict[str, str]]:
    """Which members get one coupon now, in order, and why each other is refused. `held`: coupons of this
    definition each member was issued before (any status); `issued_total`: all issued so far. Each member named
    once gets at most one coupon per call (a member named twice counts once)."""
    ended = definition.issuable(now_ms)
    to_issue: list[str] = []
    refused: dict[str, str] = {}
    total = issued_total
    for member in member_ids:
        if member in refused or member in to_issue:
            continue  # named twice: one answer per member
        if ended:
            refused[member] = ended
        elif held.get(member, 0) >= definition.per_member_limit:
            refused[member] = f"already holds {definition.per_member_limit} of this coupon (the per-member limit)"
        elif definition.total_limit and total >= definition.total_limit:
            refused[member] = f"the total limit of {definition.total_limit} coupons is reached"
        else:
            to_issue.append(member)
            total += 1
    return to_issue, refused


def exchangeable(definition: Definition, held: int | None, issued_total: int, now_ms: int) -> str | None:
    """None when a coupon of `definition` may be bought with points now, else why not (the points shop: the offers
    listed, and an exchange checked before any points are taken). `held`: coupons of it the member was issued
    before (None: no member asked, the per-member limit is not judged); `issued_total`: all issued so far."""
    if definition.points_price <= 0:
        return f"coupon definition {definition.definition_id} is not sold for points"
    if now_ms < definition.valid_from_ms:
        return f"coupon definition {definition.definition_id} is not valid yet"
    if held is None:
        if definition.total_limit and issued_total >= definition.total_limit:
            return f"the total limit of {definition.total_limit} coupons is reached"
        return definition.issuable(now_ms)
    _, refused = issue_plan(definition, ["member"], {"member": held}, issued_total, now_ms)
    return refused.get("member")


# ---- the state machine -------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Coupon:
    code: str
    definition_id: str
    member_id: str
    status: str
    valid_from_ms: int
    valid_until_ms: int
    channels: tuple[str, ...]
    stores: tuple[str, ...]
    reserved_for: str | None = None
    redeemed_by: str | None = None


class IllegalStep(ProtocolError):
    pass


STEPS: dict[str, tuple[tuple[str, ...], str]] = {  # step -> (from statuses, to status)
    "reserve": (("issued",), "reserved"),
    "release": (("reserved",), "issued"),
    "redeem": (("reserved",), "redeemed"),  # what was reserved for an order or a cart is used by it
    "redeem_offline": (("issued",), "redeemed"),  # a till offline: taken on its snapshot, no reservation possible
    "return": (("redeemed",), "issued"),  # its paid order was cancelled (or refunded whole): back in the wallet
    "void": (("issued",), "voided"),  # the sale that triggered it was returned under the trigger (final)
}


def step(status: str, name: str) -> str:
    """The status after `name`, or IllegalStep."""
    sources, target = STEPS[name]
    if status not in sources:
        raise IllegalStep(f"a {status} coupon cannot take the step {name!r} (only from {', '.join(sources)})")
    return target


_WHERE = {"online": "online", "offline": "at the till"}


def redeemable(coupon: Coupon | None, member: str | None, channel: str, store: str, now_ms: int,
               holder: str | None = None) -> str | None:
    """None when `member` may use `coupon` now in `channel` at `store`, else the reason in words. `holder`: the
    order or cart asking (a coupon already reserved for it is still redeemable by it: a retry)."""
    if coupon is None or (member is not None and coupon.member_id != member):
        return "no such coupon in your wallet"  # another member's answers as an unknown one: nothing to probe
    if coupon.status == "redeemed":
        return "already redeemed"
    if coupon.status == "voided":
        return "voided: the purchase that earned it was returned"
    if coupon.status == "reserved" and (holder is None or coupon.reserved_for != holder):
        return "already reserved by another order or till"
    if channel not in coupon.channels:
        places = " and ".join(_WHERE[c] for c in coupon.channels)
        return f"not valid {_WHERE.get(channel, channel)} (valid {places} only)"
    if coupon.stores and store not in coupon.stores:
        return f"not valid at store {store}"
    if now_ms < coupon.valid_from_ms:
        return "not valid yet"
    if now_ms >= coupon.valid_until_ms:
        return "expired"
    return None


def status_now(coupon: Coupon, now_ms: int) -> str:
    """The status to show: an issued coupon past its validity shows as expired."""
    if coupon.status == "issued" and now_ms >= coupon.valid_until_ms:
        return "expired"
    return coupon.status
