"""Stored value bought online: a top-up is a wallet payment, journaled as a `top_up` movement under a name derived
from the customer's Idempotency-Key, and credited to the MemberLedger only on the provider's verified word (which
`Payments.apply_word` applies, like an order's charge). Cash top-ups are taken at a till only."""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from cloud.services.verdicts import Refusal
from protocol.clock import to_rfc3339

if TYPE_CHECKING:
    from cloud.services.payments import Payments


def top_up_json(row, stored_value_fen: int | None = None) -> dict:
    pay = json.loads(row["pay"]) if row["pay"] else None
    body = {"top_up_id": row["movement_id"], "member_id": row["member_id"], "amount_fen": row["amount_fen"],
            "method": row["method"], "simulated": row["method"] == "wallet_sim", "state": row["state"],
            "pay": pay, "provider_txn_id": row["provider_txn_id"], "created_at": to_rfc3339(row["created_ms"])}
    if row["state"] == "failed":
        body["detail"] = row["detail"]
    if stored_value_fen is not None:
        body["stored_value_fen"] = stored_value_fen
    return body


class TopUps:
    def __init__(self, payments: Payments) -> None:
        self.payments = payments

    async def top_up(self, member_id: str, amount_fen: int, method: str, key: str, digest: bytes) -> dict:
        """A top-up through the wallet provider: the movement with what the customer must pay; the stored value is
        credited only when the provider's verified word says it was paid."""
        if method == "cash":
            raise Refusal("forbidden", "method: cash top-ups are taken only at a till, by a signed-in cashier in "
                                       "their shift; online, top up with wallet_sim")
        if method != "wallet_sim":
            raise Refusal("invalid", f"method: {method!r} cannot top up stored value online; use wallet_sim")
        if self.payments.wallet is None:
            raise Refusal("unavailable", "method: wallet_sim: no wallet provider is configured")
        mid = f"topup:{member_id}:{hashlib.blake2b(key.encode(), digest_size=10).hexdigest()}"
        row = await self.payments.begin(mid, "top_up", None, member_id, method, amount_fen, digest)
        if bytes(row["request_hash"] or b"") != digest:
            raise Refusal("key_reused", "Idempotency-Key was already used for a different top-up")
        if row["state"] == "requested" and not row["pay"]:
            await self.payments.create_payment(row, "FreshMesh stored value top-up", None)
            row = await self.payments.get(mid)
        return top_up_json(row)

    async def top_up_view(self, member_id: str, top_up_id: str) -> dict:
        row = await self.payments.get(top_up_id)
        if row is None or row["kind"] != "top_up" or row["member_id"] != member_id:
            raise Refusal("not_found", f"no top-up {top_up_id}")
        return top_up_json(row)
