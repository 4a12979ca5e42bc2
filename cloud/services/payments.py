"""Money for online orders: charge and refund, each exactly once.

Stored value goes through the MemberLedger with one transfer id per order (the payment's reference, `sv:<order>`,
and `refund:<order>`), so a retried charge or refund applies once. The wallet is the simulated provider
(`wallet_sim`): it approves, and the spend still earns the member points. The methods and their rules are
`protocol/payments.py`, shared with the till.
"""
from __future__ import annotations

from actors.member_ledger import RecordSpend, Refund, Spend
from cloud.services.verdicts import Refusal
from protocol.payments import ONLINE_METHODS, reference


class Payments:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def charge(self, order_id: str, member: str | None, total_fen: int, method: str) -> dict:
        """The payment record for the order; a Refusal when the member cannot pay this way."""
        ledger = self.cloud.actors.member_ledger
        if method not in ONLINE_METHODS:
            raise Refusal("invalid", f"method: {method!r} is not an online payment method {list(ONLINE_METHODS)}")
        paid = reference(method, order_id)
        if total_fen == 0:  # a basket made free by promotions: nothing to move, in any method
            return {"method": method, "amount_fen": 0, "reference": paid}
        if method == "stored_value":
            if not member:
                raise Refusal("invalid", "method: stored_value needs an order with a member_id")
            result = (await ledger.send(Spend(id=paid, member=member, amount_fen=total_fen))).settled
            if result.status != "ok":
                raise Refusal("payment", f"payment refused: {result.reason} (balance {result.get('stored_value_fen')} "
                                         f"fen, order {total_fen} fen)")
            return {"method": method, "amount_fen": total_fen, "reference": paid}
        # wallet_sim: a simulated wallet provider behind the same adapter shape a real one would have
        if member:
            await ledger.send(RecordSpend(id=f"spend:{order_id}", member=member, amount_fen=total_fen))
        return {"method": "wallet_sim", "simulated": True, "amount_fen": total_fen, "reference": paid}

    async def refund(self, order_id: str, member: str | None, payment: dict | None) -> None:
        """Give back what `charge` took (stored value; the simulated wallet holds nothing to give back)."""
        if payment and payment["method"] == "stored_value" and member:
            await self.cloud.actors.member_ledger.send(Refund(id=f"refund:{order_id}", member=member,
                                                              amount_fen=payment["amount_fen"]))
