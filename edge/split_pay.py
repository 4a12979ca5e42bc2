"""Paying one till sale by two tenders (issue 19.2): the shell around the StoreActor, as `edge/stored_value.py` is
for a whole stored-value sale. The rules are pure (`edge.core.split_tender`); this module holds the I/O.

1. the actor says who pays how much (`stored_value_quote`: the member and the total; a wallet part needs no member);
2. the split is checked against that total before anything is held (two different methods, a positive part less
   than the total);
3. a stored-value first part is held at the cloud for exactly that part (`Sync.hold`, at most `HOLD_TIMEOUT_MS`); no
   answer in time: the part is spent without the cloud, within the offline allowance (the sale says offline);
4. the actor commits the sale with both tenders in one transaction (`selling.pay`, `PayRequest.first`).
All or nothing: if the actor refuses (the cash tendered is short of the rest, the cart changed, the hold was
refused...) nothing is sold and the hold is released at once - the first tender is given back, never left held
for an open sale (see `edge.core.split_tender`).
A failure after the sale committed (a post-commit step) keeps the hold the sale names and answers the sale
(`edge.hold_release`). A hold asked for in vain (no answer in time) is released by `Sync.hold` itself.
"""
from __future__ import annotations

from edge.core.outcome import Refused
from edge.core.selling import Authorisation
from edge.core.split_tender import Tender, check_split
from edge.hold_release import after_failed_pay
from protocol.messages import HOLD_PREFIX


async def pay(box, lane: str, method: str, tendered_fen: int, first: Tender, points: int = 0) -> dict:
    actor = box.actor
    cart = await actor.ask("cart_view", lane=lane)
    if not cart["lines"]:
        raise Refused(409, "the cart is empty")
    check_split(first, method, cart["total_fen"], bool(points))
    auth, member_id, sync = None, None, box.sync
    if first.method == "stored_value":
        quote = await actor.ask("stored_value_quote", lane=lane)  # 409 without a member
        member_id = quote["member_id"]
        check_split(first, method, quote["total_fen"])
        if actor.online and sync is not None:
            hold_id = HOLD_PREFIX + actor.ids.new()
            answer = await sync.hold(hold_id, member_id, first.amount_fen, lane)
            if answer is not None:
                auth = Authorisation(hold_id, member_id, first.amount_fen, answer.granted, answer.reason)
    try:
        reply: dict = await actor.ask("pay", lane=lane, method=method, tendered_fen=tendered_fen,
                                      authorisation=auth, first=first)
    except Exception as exc:  # nothing was sold: the first tender goes back now, not when its hold lapses; but a
        if auth is not None and auth.granted and member_id is not None and (  # a sale naming it keeps it
                made := await after_failed_pay(box, auth.hold_id, member_id, tendered_fen, exc)) is not None:
            return made
        raise
    if auth is not None:
        reply["hold_id"] = auth.hold_id
    return reply
