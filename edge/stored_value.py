"""Paying by stored value at a lane: the shell around the StoreActor that asks the cloud for a hold first.

The StoreActor never waits on the network, so the hold is asked for here, between two questions to the actor:
1. the actor says who pays how much (`stored_value_quote`);
2. if the store is online, the cloud's ledger is asked to hold that amount (`Sync.hold`, at most
   `HOLD_TIMEOUT_MS`); no answer in time means the till sells without it, within the offline allowance;
3. the actor pays with the answer (`pay(..., authorisation=)`): a granted hold is named by the sale and captured by
   the cloud; a refused one refuses the sale with the ledger's reason.
If the actor refuses the sale after a hold was granted (the cart changed meanwhile, a lane paid twice at once),
the hold is given back at once; a hold whose sale was never made (the box died) lapses at the cloud.
A failure after the sale committed keeps the hold the sale names, and answers the sale (`edge.hold_release`).
"""
from __future__ import annotations

from edge.core.selling import Authorisation
from edge.hold_release import after_failed_pay
from protocol.messages import HOLD_PREFIX


async def pay(box, lane: str, method: str, tendered_fen: int) -> dict:
    actor = box.actor
    if method != "stored_value":
        return await actor.ask("pay", lane=lane, method=method, tendered_fen=tendered_fen)
    quote = await actor.ask("stored_value_quote", lane=lane)
    sync = box.sync
    auth = None
    if quote["total_fen"] and actor.online and sync is not None:
        hold_id = HOLD_PREFIX + actor.ids.new()
        answer = await sync.hold(hold_id, quote["member_id"], quote["total_fen"], lane)
        if answer is not None:
            auth = Authorisation(hold_id, quote["member_id"], quote["total_fen"], answer.granted, answer.reason)
    try:
        reply: dict = await actor.ask("pay", lane=lane, method=method, tendered_fen=tendered_fen, authorisation=auth)
    except Exception as exc:  # nothing sold (refused, a full disk): the hold goes back now, not when it lapses;
        if auth is not None and auth.granted and (  # but a sale naming it (a step after its commit failed) keeps it
                made := await after_failed_pay(box, auth.hold_id, quote["member_id"], tendered_fen, exc)) is not None:
            return made
        raise
    if auth is not None:
        reply["hold_id"] = auth.hold_id
    return reply
