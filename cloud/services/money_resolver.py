"""Finishing what a crash, the request deadline or a lost notification left `requested` in the money journal:
the same movement asked about again under the same id (the MemberLedger answers `exists` with its first result,
the provider answers a query), so it ends `done` or `failed` once. Run by the money sweeper (`OrderSaga.sweep`)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cloud.services.payments import movement, out_no
from cloud.services.wallet import PayRefused, PayUnavailable
from protocol.money_saga import charge_id, due

if TYPE_CHECKING:
    from cloud.services.payments import Payments

QUERY_AFTER_MS = 3_000  # a provider payment pending this long is asked about (its notification may be lost)
NEVER_CREATED_MS = 60_000  # a payment the provider still does not know after this was never created
SWEEP_BATCH = 100
log = logging.getLogger("freshmesh.payments")


class MovementResolver:
    def __init__(self, payments: Payments) -> None:
        self.payments = payments

    async def resolve_due(self) -> int:
        """Ask again about every movement still `requested` past its time: stored value after the saga's grace
        (its request has certainly ended), provider payments after `QUERY_AFTER_MS` (a late notification)."""
        now = self.payments.cloud.now_ms()
        rows = await self.payments.cloud.db.fetch(
            "select * from money_movements where state = 'requested' and updated_ms < $1 order by updated_ms limit $2",
            now - QUERY_AFTER_MS, SWEEP_BATCH)
        for row in rows:
            try:
                await self._resolve(row, now)
            except (PayUnavailable, PayRefused) as exc:
                log.warning("money movement %s not resolved this round: %s", row["movement_id"], exc)
                await self.payments.touch(row["movement_id"])
        return len(rows)

    async def _resolve(self, row, now: int) -> None:
        if row["method"] == "marketplace":  # the platform holds the money: our refund is settled at once, again
            if row["kind"] == "refund" and due(movement(row), now):
                log.warning("refund %s was left half-way: settling it again", row["movement_id"])
                await self.payments.give_back(row, await self.payments.get(charge_id(row["order_id"])))
            return
        if row["method"] == "stored_value" or row["amount_fen"] == 0:
            if not due(movement(row), now):
                return
            if row["kind"] == "charge":
                log.warning("charge %s was left half-way: asking the ledger again", row["movement_id"])
                await self.payments.spend_stored_value(row)
                charged = await self.payments.get(row["movement_id"])
                if charged["state"] == "done" and self.payments.on_charge_done is not None:
                    await self.payments.on_charge_done(row["order_id"])
            elif row["kind"] == "refund":
                log.warning("refund %s was left half-way: refunding again", row["movement_id"])
                await self.payments.give_back(row, await self.payments.get(charge_id(row["order_id"])))
            return
        assert self.payments.wallet is not None, "a wallet movement needs the wallet provider to resolve it"
        if row["kind"] == "refund":
            word = await self.payments.wallet.query_refund(out_no(row))
            if word is None:  # the refund request itself was lost: ask for it again (same out_refund_no)
                await self.payments.give_back(row, await self.payments.get(charge_id(row["order_id"])))
            else:
                await self.payments.apply_word(word, is_refund=True)
            return
        word = await self.payments.wallet.query(out_no(row))
        if word is None:  # never created (the customer was told to retry): nothing came in
            if now - row["created_ms"] > NEVER_CREATED_MS:  # and nobody retried: stop asking (a retry starts anew)
                await self.payments.settle(row["movement_id"], "failed", detail="the provider payment was never created")
            else:
                await self.payments.touch(row["movement_id"])
            return
        verdict, why = await self.payments.apply_word(word, is_refund=False)
        if verdict == "credit":
            log.warning("wallet payment %s credited on a query: its notification was late or lost", word.out_no)
        elif verdict != "not_paid":
            log.error("wallet query for %s: %s (%s)", word.out_no, verdict, why)
        if verdict != "credit":
            await self.payments.touch(row["movement_id"])
