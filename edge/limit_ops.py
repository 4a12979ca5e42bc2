"""Per-member limits at a lane, the shell around the StoreActor (decisions: edge/core/member_limits.py).

1. When a member is identified, the actor loads what this store knows of the member's uses of limited rules (every
   sale here, today's offline ones: edge/budget_db.py) onto the cart: until the cloud answers, the till prices as
   offline (within the offline allowance).
2. Online, the lane asks the cloud's PromotionBudgets for the member's uses (`MemberLimitsRequested` on
   `fm.store.<store>.budget.limits`, at most `HOLD_TIMEOUT_MS`, like the coupon hold); its answer goes onto the cart
   (`answered`) and the cart is priced again. No answer in time: the cart stays offline.
3. Before a sale is paid the store's own counts are read again (another lane may have sold to the member meanwhile).
"""
from __future__ import annotations

import logging
from dataclasses import replace

from edge import budget_db
from edge.cloud_ask import ask_cloud
from protocol.budget_messages import MemberLimitsAnswered, MemberLimitsRequested, limits_subject
from protocol.lots import chain_day
from protocol.policy import HOLD_TIMEOUT_MS

log = logging.getLogger("freshmesh.edge.limits")


async def identified(actor, cart) -> None:
    """The cart's member changed (actor side): this store's counts for them, no cloud answer yet."""
    if cart.member is None:
        cart.limits = None
        return
    cart.limits = await budget_db.member_limits(actor.db.reader, cart.member.member_id,
                                                str(chain_day(actor.clock.now_ms())))


async def refresh(actor, cart) -> None:
    """Before paying (actor side): this store's counts as they are now, the cloud's answer kept."""
    limits = cart.member_limits()
    if limits is not None:
        cart.limits = await budget_db.member_limits(actor.db.reader, limits.member_id,
                                                    str(chain_day(actor.clock.now_ms())), limits.cloud,
                                                    limits.cloud_at_ms)


async def answered(actor, lane: str, answer: MemberLimitsAnswered) -> dict:
    """The cloud's count of the member's uses onto the lane's cart (actor side, op `member_limits`), if the cart
    is still that member's; the cart priced again."""
    cart = actor.carts.get(lane)
    limits = cart.member_limits() if cart is not None else None
    if limits is not None and limits.member_id == answer.member_id:
        # this store's uses from now on are added to the answer's count (edge/core/member_limits.py)
        cart.limits = replace(limits, cloud={u.rule_id: u.uses for u in answer.uses},
                              cloud_at_ms=actor.clock.now_ms(), here_since_cloud={})
    return actor._priced(lane)  # noqa: SLF001 - the actor's own cart view, in its mailbox


async def ask(box, lane: str, cart: dict) -> dict:
    """Online, the cloud's count of the identified member's uses of the book's limited rules (lane shell side);
    the cart as priced with it, or `cart` unchanged (no member, no limited rule, offline, no answer in time)."""
    member = (cart.get("member") or {}).get("member_id")
    book = box.actor.books.rule_book
    rule_ids = tuple(r.id for r in book.rules if r.per_member_limit) if book is not None else ()
    if not member or not rule_ids or not box.actor.online:
        return cart
    request = MemberLimitsRequested(event_id=box.actor.ids.new(), store_id=box.store_id, seq=0,
                                    wall_ms=box.clock.now_ms(), mono_ms=box.clock.monotonic_ms(), member_id=member,
                                    rule_ids=rule_ids[:100])
    answer = await ask_cloud(box.sync, limits_subject(box.store_id), request, MemberLimitsAnswered,
                             lambda a: a.member_id == member, timeout_s=HOLD_TIMEOUT_MS / 1000, desk="limits",
                             what="member uses", reference=member, log=log)
    if answer is None:
        return cart
    fresh: dict = await box.actor.ask("member_limits", lane=lane, answer=answer)
    fresh["member"] = cart.get("member")  # the lane's member view as it was built (coupons added after this)
    return fresh
