"""Coupons at the till as pure decisions (issue 17 item 1): what a scanned coupon code does to a lane's cart, and
what a sale with coupons commits.

- Online, the shell has asked the cloud to reserve the code for the cart (`CouponHoldAnswered`): a granted hold
  puts the coupon in the cart with its promotion rule; a refused one is refused with the cloud's reason.
- Offline (no answer), the code must be one of the member's coupons the box last heard of (the snapshot taken when
  the member was identified online), valid now, not redeemed at this store already, and within the store's offline
  allowance for the day (`OFFLINE_COUPONS_PER_DAY` coupons, `OFFLINE_COUPON_FEN_PER_DAY` fen given): the cloud
  reconciles on reconnect and reports a conflict if the code was used elsewhere meanwhile.
- A sale redeems the cart's coupons whose rule the evaluator applied (a coupon whose rule did not apply stays the
  member's): each becomes a `CouponRedeemed` event and a row of this store's redemptions, in the sale's transaction.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.core.outcome import Publish, Refused
from edge.core.state import EventStamp
from protocol.coupon_messages import CouponHoldAnswered, CouponRedeemed, KnownCoupon
from protocol.policy import OFFLINE_COUPON_FEN_PER_DAY, OFFLINE_COUPONS_PER_DAY
from protocol.pricing import PricedBasket

COUPONS_PER_CART_MAX = 5


@dataclass(frozen=True, slots=True)
class CartCoupon:
    code: str
    rule_id: str
    hold_id: str  # the cloud's hold ("" when taken offline)

    @property
    def offline(self) -> bool:
        return not self.hold_id


@dataclass(frozen=True, slots=True)
class OfflineUse:
    """What this store's tills took offline today: coupons and fen given."""
    count: int
    saving_fen: int


@dataclass(frozen=True, slots=True)
class RecordRedemption:
    """A row of this store's coupon redemptions (the offline allowance counts them; a code is redeemed here once)."""
    code: str
    sale_id: str
    member_id: str
    offline: bool
    saving_fen: int
    day: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class ReplaceSnapshot:
    """The member's coupons usable at this store's tills, as the cloud answered now (replaces the earlier ones)."""
    member_id: str
    coupons: tuple[KnownCoupon, ...]
    at_ms: int


def _room(coupons: list[CartCoupon], code: str) -> None:
    if any(c.code == code for c in coupons):
        raise Refused(409, f"coupon {code}: already in this cart")
    if len(coupons) >= COUPONS_PER_CART_MAX:
        raise Refused(409, f"a cart takes at most {COUPONS_PER_CART_MAX} coupons")


def online(coupons: list[CartCoupon], code: str, answer: CouponHoldAnswered) -> CartCoupon:
    _room(coupons, code)
    if not answer.granted:
        raise Refused(409, f"coupon {code}: {answer.reason}")
    return CartCoupon(code, answer.rule_id, answer.hold_id)


def offline(coupons: list[CartCoupon], code: str, known: KnownCoupon | None, redeemed_here: bool, used: OfflineUse,
            now_ms: int) -> CartCoupon:
    """The coupon taken without the cloud, or Refused saying why (the cashier reads it out)."""
    _room(coupons, code)
    if redeemed_here:
        raise Refused(409, f"coupon {code}: already redeemed at this store")
    if known is None:
        raise Refused(409, f"coupon {code}: not among this member's coupons this store knows, and the cloud cannot "
                           "be asked now (offline)")
    if not known.valid_from_ms <= now_ms < known.valid_until_ms:
        raise Refused(409, f"coupon {code}: {'not valid yet' if now_ms < known.valid_from_ms else 'expired'}")
    taken = used.count + sum(1 for c in coupons if c.offline)
    if taken >= OFFLINE_COUPONS_PER_DAY:
        raise Refused(409, f"coupon {code}: this store's offline allowance of {OFFLINE_COUPONS_PER_DAY} coupons a day "
                           "is used up; it can be taken once the cloud is reachable")
    return CartCoupon(code, known.rule_id, "")


def check_allowance(coupons: list[CartCoupon], priced: PricedBasket, used: OfflineUse) -> None:
    """Before an offline-taken coupon is redeemed: what it gives stays within the day's fen allowance."""
    giving = sum(_saving(priced, c.rule_id) for c in coupons if c.offline and c.rule_id in priced.coupons_used)
    if giving and used.saving_fen + giving > OFFLINE_COUPON_FEN_PER_DAY:
        left = max(OFFLINE_COUPON_FEN_PER_DAY - used.saving_fen, 0)
        raise Refused(409, f"coupons taken offline would give {giving} fen, and {left} fen of this store's offline "
                           "coupon allowance is left today: void the sale, or wait for the connection")


def _saving(priced: PricedBasket, rule_id: str) -> int:
    return sum(a.saving_fen for a in priced.applied if a.rule_id == rule_id)


def unused_holds(coupons: list[CartCoupon], priced: PricedBasket) -> list[tuple[str, str]]:
    """(code, hold id) of the cloud's holds a sale of `priced` does not redeem (`redemptions`: one code per applied
    rule): the member's again, released rather than left to lapse."""
    used: set[str] = set()
    unused = []
    for c in coupons:
        if c.rule_id in priced.coupons_used and c.rule_id not in used:
            used.add(c.rule_id)
        elif c.hold_id:
            unused.append((c.code, c.hold_id))
    return unused


def redemptions(coupons: list[CartCoupon], priced: PricedBasket, stamp: EventStamp, sale_id: str, lane: str,
                member_id: str | None, day: str) -> list:
    """The sale's effects for its coupons: each applied one redeemed once (one per rule: the evaluator applies a
    rule once however many codes of it the cart holds)."""
    if member_id is None:
        return []
    effects: list = []
    seen: set[str] = set()
    for c in coupons:
        if c.rule_id not in priced.coupons_used or c.rule_id in seen:
            continue
        seen.add(c.rule_id)
        saving = _saving(priced, c.rule_id)
        effects.append(Publish(stamp.make(CouponRedeemed, code=c.code, sale_id=sale_id, member_id=member_id,
                                          lane=lane, hold_id=c.hold_id, offline=c.offline, rule_id=c.rule_id,
                                          saving_fen=saving)))
        effects.append(RecordRedemption(c.code, sale_id, member_id, c.offline, saving, day, stamp.moment.wall_ms))
    return effects


def cart_coupons_json(coupons: list[CartCoupon], priced: PricedBasket) -> list[dict]:
    return [{"code": c.code, "rule_id": c.rule_id, "offline": c.offline, "applied": c.rule_id in priced.coupons_used,
             "saving_fen": _saving(priced, c.rule_id)} for c in coupons]
