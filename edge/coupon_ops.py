"""The StoreActor's coupon operations (issue 17 item 1), run in its mailbox like every other change of a lane's cart
(`StoreActor._coupon` hands them here): the loads they need from the store database, then the pure decision in
`edge.core.coupons`. The network is asked by the shell (`edge/coupons.py`), before, never in here."""
from __future__ import annotations

from typing import Any

from edge import coupons_db
from edge.core import coupons
from edge.core.cart import price
from edge.core.coupons import ReplaceSnapshot
from edge.core.outcome import Refused
from protocol.coupon_messages import CouponHoldAnswered, KnownCoupon
from protocol.lots import chain_day


async def run(actor, action: str, **kw):
    return await _ACTIONS[action](actor, **kw)


async def _member_of(actor, lane: str) -> str:
    cart = actor._cart(lane, keep=False)
    if cart.member is None:
        raise Refused(409, "identify the member first: a coupon belongs to a member")
    return cart.member.member_id


async def _add_online(actor, lane: str, code: str, answer: CouponHoldAnswered, member_id: str) -> dict:
    cart = actor._cart(lane)
    if cart.member is None or cart.member.member_id != member_id:
        raise Refused(409, "the member changed while the cloud held the coupon: scan it again")
    cart.coupons.append(coupons.online(cart.coupons, code, answer))
    return actor._priced(lane)


async def _add_offline(actor, lane: str, code: str) -> dict:
    member_id = await _member_of(actor, lane)
    cart, db, now = actor._cart(lane), actor.db.writer, actor.clock.now_ms()
    taken = coupons.offline(cart.coupons, code, await coupons_db.known(db, member_id, code),
                            await coupons_db.redeemed_here(db, code),
                            await coupons_db.offline_use(db, chain_day(now)), now)
    cart.coupons.append(taken)
    return actor._priced(lane)


async def _snapshot(actor, member_id: str, known: tuple[KnownCoupon, ...]) -> int:
    await actor.db.apply([ReplaceSnapshot(member_id, known, actor.clock.now_ms())])
    return len(known)


async def _check_pay(actor, lane: str) -> list[tuple[str, str]]:
    """Before a sale with coupons taken offline: what they give stays within the day's allowance. Answers the
    (code, hold id) of the cloud's holds the sale will not redeem (their rule did not apply): given back once it is
    sold."""
    cart = actor._cart(lane, keep=False)
    if not cart.coupons or not cart.lines:
        return []
    now = actor.clock.now_ms()
    priced = price(cart, actor.books, actor.store_id, now)
    if any(c.offline for c in cart.coupons):
        coupons.check_allowance(cart.coupons, priced, await coupons_db.offline_use(actor.db.writer, chain_day(now)))
    return coupons.unused_holds(cart.coupons, priced)


def member_changed(actor, cart, member) -> None:
    """The lane's cart is now `member`'s: another member's coupons leave it, and their holds are to go back."""
    if cart.member is not None and cart.member.member_id != member.member_id:
        actor.coupon_releases += [(c.code, c.hold_id) for c in cart.coupons if c.hold_id]
        cart.coupons.clear()  # coupons are the member's: another member's sale does not take them
    cart.member = member


async def _to_release(actor) -> list[tuple[str, str]]:
    """The holds to give back (a member changed, a sale did not use them), handed to the shell once."""
    taken, actor.coupon_releases = actor.coupon_releases, []
    return taken


async def _held(actor, lane: str) -> list[tuple[str, str]]:
    """(code, hold id) of the coupons the cloud holds for the lane's cart (what a void gives back)."""
    return [(c.code, c.hold_id) for c in actor._cart(lane, keep=False).coupons if c.hold_id]


_ACTIONS: dict[str, Any] = {"held": _held, "member_of": _member_of, "add_online": _add_online, "add_offline": _add_offline,
                            "snapshot": _snapshot, "check_pay": _check_pay, "to_release": _to_release}
