"""Coupons at a lane, the shell around the StoreActor (issue 17 item 1): `POST /lanes/{lane}/coupon {"code"}`, and a
scanned code that reads as a coupon code (the lane's scan route, the serial scanner) goes the same way.

1. the actor says whose the cart is (a coupon is a member's: identify the member first);
2. online, the cloud is asked to reserve the code for the cart (`CouponHoldRequested`, at most `HOLD_TIMEOUT_MS`);
   its answer (granted with the coupon's rule, or refused with the reason) goes to the actor;
3. no answer (offline, or too slow): the actor decides from the member's coupons the box last heard of, within the
   store's offline allowance (`edge.core.coupons`); the cloud reconciles on reconnect.
When a member is identified online, the box asks the cloud for the member's coupons usable at its tills
(`CouponWalletRequested`) and keeps them: the snapshot an offline period works from.
"""
from __future__ import annotations

import logging

from edge import coupons_db
from edge.cloud_ask import ask_cloud
from protocol.coupon_messages import (
    CouponHoldAnswered,
    CouponHoldRequested,
    CouponReleased,
    CouponWalletAnswered,
    CouponWalletRequested,
    store_subject,
)
from protocol.coupons import looks_like_code, normalise
from protocol.policy import HOLD_TIMEOUT_MS
from protocol.schema import record, require

log = logging.getLogger("freshmesh.edge.coupons")
__all__ = ["give_back", "looks_like_code", "routes", "scan", "snapshot", "void"]


@record
class CouponBody:
    code: str

    def __post_init__(self) -> None:
        require(0 < len(self.code) <= 40, "code: a coupon code (CP...)")


def _envelope(box) -> dict:
    return {"event_id": box.actor.ids.new(), "store_id": box.store_id, "seq": 0, "wall_ms": box.clock.now_ms(),
            "mono_ms": box.clock.monotonic_ms()}


async def _ask(box, what: str, request, answer_cls):
    """The cloud's answer, or None: not connected, no answer in time, or not an answer to this request (a hold's
    or release's answer names its hold id and code, a wallet's its member)."""
    if not box.actor.online:
        return None
    hold_id = getattr(request, "hold_id", None)

    def matches(answer) -> bool:
        if hold_id is None:
            return answer.member_id == request.member_id
        return answer.hold_id == hold_id and answer.code == request.code
    return await ask_cloud(box.sync, store_subject(box.store_id, what), request, answer_cls, matches,
                           timeout_s=HOLD_TIMEOUT_MS / 1000, desk="coupon", what=what,
                           reference=hold_id or request.member_id, log=log)


async def scan(box, lane: str, text: str) -> dict:
    code = normalise(text)  # a garbled code: 422 naming what is wrong (the check character, ...)
    actor = box.actor
    member_id = await actor.ask("coupon", action="member_of", lane=lane)
    hold_id = f"{lane}:{actor.ids.new()}"
    answer = await _ask(box, "hold", CouponHoldRequested(**_envelope(box), hold_id=hold_id, code=code,
                                                         member_id=member_id, lane=lane), CouponHoldAnswered)
    if answer is not None:  # an answer to this hold (`_ask`)
        return await actor.ask("coupon", action="add_online", lane=lane, code=code, answer=answer, member_id=member_id)
    return await actor.ask("coupon", action="add_offline", lane=lane, code=code)


async def void(box, lane: str) -> dict:
    """Void the lane's cart; the coupons the cloud held for it go back to their member now (best effort: a hold
    nobody names lapses anyway)."""
    held = await box.actor.ask("coupon", action="held", lane=lane)
    result = await box.actor.ask("void", lane=lane)
    for code, hold_id in held:
        await _ask(box, "release", CouponReleased(**_envelope(box), hold_id=hold_id, code=code), CouponHoldAnswered)
    return result


async def give_back(box) -> None:
    """The holds the actor let go (another member identified at the lane, a sale that did not use them) go back to
    their member now (best effort: offline, a hold nobody names lapses anyway)."""
    for code, hold_id in await box.actor.ask("coupon", action="to_release"):
        await _ask(box, "release", CouponReleased(**_envelope(box), hold_id=hold_id, code=code), CouponHoldAnswered)


async def snapshot(box, cart: dict) -> None:
    """After the member was identified: their coupons for an offline period (best effort; nothing when offline); the
    previous member's holds, if the lane's member changed, go back. The cart's member then shows the coupons the box
    knows of (`wallet_view`)."""
    await give_back(box)
    member = cart.get("member") or {}
    if not member.get("member_id"):
        return
    answer = await _ask(box, "wallet", CouponWalletRequested(**_envelope(box), member_id=member["member_id"]),
                        CouponWalletAnswered)
    if answer is not None:  # the member's wallet (`_ask`)
        await box.actor.ask("coupon", action="snapshot", member_id=answer.member_id, known=answer.coupons)
    member["coupons"] = await wallet_view(box, member["member_id"], box.actor.clock.now_ms())


async def wallet_view(box, member_id: str, now_ms: int) -> list[dict]:
    """The member's coupons for the till's screen: the box's snapshot less what its tills redeemed, valid now; the
    rule's name and value, valid until, and only the code's last four characters (a code is a bearer instrument:
    the member scans it from their phone)."""
    rows = await coupons_db.usable(box.store_db.reader, member_id, now_ms)
    book = box.actor.books.rule_book
    rules = book.by_id if book is not None else {}
    return [{"code_tail": code[-4:], "rule_id": rule_id, "name": getattr(rules.get(rule_id), "name", rule_id),
             "valid_until_ms": until} for code, rule_id, until in rows]


def routes(box, endpoint) -> list:
    from starlette.routing import Route

    async def coupon(request, body):
        return await scan(box, request.path_params["lane"], body.code)

    return [Route("/lanes/{lane}/coupon", endpoint(coupon, CouponBody), methods=["POST"])]
