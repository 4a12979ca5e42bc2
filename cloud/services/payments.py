"""Money for online orders and top-ups: every movement journaled before it is attempted, each applied once.

The journal is `money_movements` (migration 9; ids and decisions in `protocol/money_saga.py`). A movement is
written `requested` first, then attempted, then set `done` or `failed`; whatever happens in between (a crash, the
request deadline, a frozen actor, a lost notification) the sweeper finds it still `requested` and asks again with
the same id: the MemberLedger answers `exists` with its first result, the provider dedupes by out_trade_no /
out_refund_no and answers a query.

- stored value: the MemberLedger's transfer ids are `sv:<order>` (the charge; `sv:<order>#n` for a retry after a
  refusal, which the ledger remembers) and `refund:<order>`.
- wallet (`wallet_sim`, the simulated provider `simulators/pay_provider.py`, adapter `cloud/services/wallet.py`):
  a charge or a top-up creates a provider payment and answers what the customer must pay; money is counted in
  only on the provider's verified word (a signed notification, or a query's answer), checked for merchant, amount
  and currency, once per movement and provider transaction id. Refunds go back through the provider the same way.
Top-ups are credited to the ledger under the movement id as its transfer id, before the movement is marked done:
a crash between the two is finished by the next notification or query, and the ledger applies the credit once.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable

from actors.member_ledger import RecordSpend, Refund, Spend, TopUp
from cloud.services.verdicts import Refusal
from cloud.services.wallet import BadNotification, HttpPayProvider, PayRefused, PayUnavailable
from protocol.clock import to_rfc3339
from protocol.money_saga import Movement, ProviderWord, charge_id, due, judge_payment, judge_refund, refund_id
from protocol.payments import ONLINE_METHODS

QUERY_AFTER_MS = 3_000  # a provider payment pending this long is asked about (its notification may be lost)
NEVER_CREATED_MS = 60_000  # a payment the provider still does not know after this was never created
TOP_UP_EXPIRE_MS = 15 * 60_000  # a top-up's provider payment closes if not paid within this
SWEEP_BATCH = 100
log = logging.getLogger("freshmesh.payments")


def movement(row) -> Movement:
    return Movement(movement_id=row["movement_id"], kind=row["kind"], method=row["method"],
                    amount_fen=row["amount_fen"], state=row["state"], updated_ms=row["updated_ms"],
                    provider_txn_id=row["provider_txn_id"])


def out_no(row) -> str:
    """The provider's name for a movement (out_trade_no / out_refund_no): its id, tagged with the attempt after a
    failed one (a closed provider payment cannot be paid again)."""
    return row["movement_id"] if row["attempt"] == 1 else f"{row['movement_id']}#{row['attempt']}"


def ledger_charge_id(row) -> str:
    order = row["order_id"]
    return f"sv:{order}" if row["attempt"] == 1 else f"sv:{order}#{row['attempt']}"


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


def payment_json(row) -> dict:
    """An order's payment as `GET /orders/{id}` shows it."""
    body = {"movement_id": row["movement_id"], "method": row["method"], "amount_fen": row["amount_fen"],
            "state": row["state"], "simulated": row["method"] == "wallet_sim"}
    if row["pay"]:
        body["pay"] = json.loads(row["pay"])
    if row["provider_txn_id"]:
        body["provider_txn_id"] = row["provider_txn_id"]
    if row["state"] == "failed":
        body["detail"] = row["detail"]
    return body


class Payments:
    def __init__(self, cloud, wallet: HttpPayProvider | None = None) -> None:
        self.cloud, self.wallet = cloud, wallet
        # set by the services: what happens once an order's charge is done / a member's balance changed
        self.on_charge_done: Callable[[str], Awaitable[None]] | None = None
        self.on_balance_changed: Callable[[str], Awaitable[None]] | None = None

    # ---- the journal ------------------------------------------------------------------------------------------
    async def get(self, movement_id: str):
        return await self.cloud.db.fetchrow("select * from money_movements where movement_id = $1", movement_id)

    async def begin(self, movement_id: str, kind: str, order_id: str | None, member_id: str | None, method: str,
                    amount_fen: int, request_hash: bytes | None = None):
        """The movement, written `requested` now unless it exists (then as it is)."""
        now = self.cloud.now_ms()
        await self.cloud.db.execute(
            """insert into money_movements (movement_id, kind, order_id, member_id, method, amount_fen, state,
                   request_hash, created_ms, updated_ms)
               values ($1, $2, $3, $4, $5, $6, 'requested', $7, $8, $8) on conflict (movement_id) do nothing""",
            movement_id, kind, order_id, member_id, method, amount_fen, request_hash, now)
        return await self.get(movement_id)

    async def settle(self, movement_id: str, state: str, txn: str | None = None, detail: str | None = None,
                     from_states: tuple[str, ...] = ("requested",)) -> bool:
        """Set the outcome once: True when this call moved it out of `from_states`."""
        done = await self.cloud.db.fetchval(
            """update money_movements set state = $2, provider_txn_id = coalesce($3, provider_txn_id),
                   detail = coalesce($4, detail), updated_ms = $5
               where movement_id = $1 and state = any($6::text[]) returning movement_id""",
            movement_id, state, txn, detail, self.cloud.now_ms(), list(from_states))
        return done is not None

    async def _touch(self, movement_id: str, detail: str | None = None) -> None:
        await self.cloud.db.execute("update money_movements set updated_ms = $2, detail = coalesce($3, detail) "
                                    "where movement_id = $1", movement_id, self.cloud.now_ms(), detail)

    # ---- an order's charge and refund ---------------------------------------------------------------------------
    async def charge(self, order, method: str):
        """Charge the order (journaled first): the movement after the attempt - `done`, `failed`, or `requested`
        (a provider payment the customer still has to pay, whose `pay` says how)."""
        if method not in ONLINE_METHODS:
            raise Refusal("invalid", f"method: {method!r} is not an online payment method {list(ONLINE_METHODS)}")
        if method == "stored_value" and not order["member_id"]:
            raise Refusal("invalid", "method: stored_value needs an order with a member_id")
        if method == "wallet_sim" and self.wallet is None:
            raise Refusal("unavailable", "method: wallet_sim: no wallet provider is configured; pay with stored_value")
        order_id, mid = order["order_id"], charge_id(order["order_id"])
        row = await self.begin(mid, "charge", order_id, order["member_id"], method, order["total_fen"])
        if row["state"] == "failed":  # tried before and refused: a new attempt (a new ledger id / out_trade_no)
            await self.cloud.db.execute(
                "update money_movements set state = 'requested', method = $2, attempt = attempt + 1, pay = null, "
                "detail = null, updated_ms = $3 where movement_id = $1 and state = 'failed'", mid, method,
                self.cloud.now_ms())
            row = await self.get(mid)
        if row["state"] == "requested" and row["method"] != method:
            row = await self._give_up(row)  # the customer pays another way: close the wallet payment first
            if row["state"] == "failed":
                return await self.charge(order, method)
            if row["state"] == "requested":
                raise Refusal("payment", f"a {row['method']} payment of order {order_id} is in progress; finish it "
                                         "or retry shortly")
        if row["state"] != "requested":
            return row
        if row["amount_fen"] == 0:  # a basket made free by promotions: nothing to move, in any method
            await self.settle(mid, "done")
        elif method == "stored_value":
            await self._spend(row)
        elif not row["pay"]:
            await self._create_payment(row, f"FreshMesh order {order_id}", order["expires_ms"])
        return await self.get(mid)

    async def _give_up(self, row):
        """Close a wallet charge nobody paid (the movement ends `failed`); one that was paid meanwhile is credited
        instead (it ends `done`). A stored-value charge in flight is left alone (its ledger call decides it)."""
        if row["method"] != "wallet_sim" or self.wallet is None:
            return row
        if row["pay"]:
            word = await self.wallet.query(out_no(row))
            if word is not None and word.state == "SUCCESS":
                await self.apply_word(word, is_refund=False)
                return await self.get(row["movement_id"])
            try:
                await self.wallet.close_payment(out_no(row))
            except PayRefused as refused:
                if refused.code == "ORDERPAID":  # paid in between: the notification (or the sweeper) credits it
                    return await self.get(row["movement_id"])
                if refused.status != 404:
                    raise
            except PayUnavailable as exc:
                raise Refusal("unavailable", f"the wallet payment could not be closed ({exc}); retry") from None
        await self.settle(row["movement_id"], "failed", detail="closed: paid another way, or the order ended")
        return await self.get(row["movement_id"])

    async def close_unpaid(self, order_id: str) -> None:
        """The order ended before it was paid: its wallet payment, if any, can no longer be paid (best effort: the
        provider closes it at the order's expiry anyway, and money that still comes is refunded)."""
        row = await self.get(charge_id(order_id))
        if row is not None and row["state"] == "requested" and row["method"] == "wallet_sim":
            try:
                await self._give_up(row)
            except (Refusal, PayUnavailable, PayRefused) as exc:
                log.warning("wallet payment of order %s not closed: %s", order_id, exc)

    async def _spend(self, row) -> None:
        ledger = self.cloud.actors.member_ledger
        result = (await ledger.send(Spend(id=ledger_charge_id(row), member=row["member_id"],
                                          amount_fen=row["amount_fen"]))).settled
        if result.status == "ok":
            await self.settle(row["movement_id"], "done")
        else:
            await self.settle(row["movement_id"], "failed", detail=f"{result.reason} (balance "
                              f"{result.get('stored_value_fen')} fen, order {row['amount_fen']} fen)")

    async def _create_payment(self, row, description: str, expire_ms: int | None) -> None:
        assert self.wallet is not None
        expire_ms = expire_ms or self.cloud.now_ms() + TOP_UP_EXPIRE_MS
        try:
            made = await self.wallet.create(out_no(row), row["amount_fen"], description, expire_ms)
        except PayUnavailable as exc:  # stays requested with nothing to pay yet: a retry creates the same payment
            log.warning("wallet payment %s not created: %s", row["movement_id"], exc)
            raise Refusal("unavailable", f"the wallet provider could not be reached ({exc}); retry") from None
        except PayRefused as refused:
            await self.settle(row["movement_id"], "failed", detail=f"the wallet provider refused: {refused}")
            return
        pay = {"provider": "wallet_sim (simulated)", "prepay_id": made.get("prepay_id"),
               "code_url": made.get("code_url"), "out_trade_no": out_no(row), "expires_at": to_rfc3339(expire_ms)}
        await self.cloud.db.execute("update money_movements set pay = $2 where movement_id = $1", row["movement_id"],
                                    json.dumps(pay))

    async def record_spend(self, order) -> None:
        """A wallet-paid order still earns points and counts towards the level (stored value does in its Spend)."""
        charge = await self.get(charge_id(order["order_id"]))
        if charge is not None and charge["method"] == "wallet_sim" and order["member_id"] and order["total_fen"]:
            await self.cloud.actors.member_ledger.send(RecordSpend(id=f"spend:{order['order_id']}",
                                                                   member=order["member_id"],
                                                                   amount_fen=order["total_fen"]))

    async def refund(self, order_id: str):
        """Give back the order's charge if it is done (journaled first); the refund movement, or None when there
        is nothing to give back. Safe to call any number of times."""
        charge = await self.get(charge_id(order_id))
        if charge is None or charge["state"] != "done":
            return None
        row = await self.begin(refund_id(order_id), "refund", order_id, charge["member_id"], charge["method"],
                               charge["amount_fen"])
        if row["state"] == "requested":
            await self._do_refund(row, charge)
        return await self.get(row["movement_id"])

    async def _do_refund(self, row, charge) -> None:
        mid = row["movement_id"]
        if row["amount_fen"] == 0:
            await self.settle(mid, "done")
        elif row["method"] == "stored_value":
            await self.cloud.actors.member_ledger.send(Refund(id=mid, member=row["member_id"],
                                                              amount_fen=row["amount_fen"]))
            await self.settle(mid, "done")
            if self.on_balance_changed is not None:
                await self.on_balance_changed(row["member_id"])
        else:
            assert self.wallet is not None, "a wallet charge needs the wallet to refund it"
            try:
                word = await self.wallet.refund(out_no(row), out_no(charge), row["amount_fen"], charge["amount_fen"])
            except PayUnavailable as exc:  # stays requested: the sweeper asks again
                log.warning("wallet refund %s not requested yet: %s", mid, exc)
                await self._touch(mid)
                return
            except PayRefused as refused:
                await self.settle(mid, "failed", detail=f"the wallet provider refused the refund: {refused}")
                log.error("wallet refund %s refused: %s", mid, refused)
                return
            await self._apply_refund_word(row, word)

    # ---- top-ups ------------------------------------------------------------------------------------------------
    async def top_up(self, member_id: str, amount_fen: int, method: str, key: str, digest: bytes) -> dict:
        """A top-up through the wallet provider: the movement with what the customer must pay; the stored value is
        credited only when the provider's verified word says it was paid."""
        if method == "cash":
            raise Refusal("forbidden", "method: cash top-ups are taken only at a till, by a signed-in cashier in "
                                       "their shift; online, top up with wallet_sim")
        if method != "wallet_sim":
            raise Refusal("invalid", f"method: {method!r} cannot top up stored value online; use wallet_sim")
        if self.wallet is None:
            raise Refusal("unavailable", "method: wallet_sim: no wallet provider is configured")
        mid = f"topup:{member_id}:{hashlib.blake2b(key.encode(), digest_size=10).hexdigest()}"
        row = await self.begin(mid, "top_up", None, member_id, method, amount_fen, digest)
        if bytes(row["request_hash"] or b"") != digest:
            raise Refusal("key_reused", "Idempotency-Key was already used for a different top-up")
        if row["state"] == "requested" and not row["pay"]:
            await self._create_payment(row, "FreshMesh stored value top-up", None)
            row = await self.get(mid)
        return top_up_json(row)

    async def top_up_view(self, member_id: str, top_up_id: str) -> dict:
        row = await self.get(top_up_id)
        if row is None or row["kind"] != "top_up" or row["member_id"] != member_id:
            raise Refusal("not_found", f"no top-up {top_up_id}")
        return top_up_json(row)

    # ---- the provider's word: notifications and query answers -------------------------------------------------
    async def notified(self, headers, body: bytes) -> tuple[int, str]:
        """A notification from the wallet provider -> (HTTP status, message). 2xx tells the provider it is handled
        (credited now, or before: a duplicate); anything else is refused and logged, and credits nothing."""
        if self.wallet is None:
            return 404, "no wallet provider is configured"
        try:
            note = self.wallet.read_notification(headers, body)
        except BadNotification as bad:
            log.warning("wallet notification refused (%s): %s", bad.status, bad.detail)
            return bad.status, bad.detail
        verdict, why = await self.apply_word(note.word, note.is_refund)
        if verdict in ("credit", "duplicate", "not_paid"):
            log.info("wallet notification %s %s for %s: %s (%s)", note.notification_id, note.event_type,
                     note.word.out_no, verdict, why)
            return 204, verdict
        log.error("wallet notification %s %s for %s NOT credited: %s (%s)", note.notification_id, note.event_type,
                  note.word.out_no, verdict, why)
        return 400, f"{verdict}: {why}"

    async def apply_word(self, word: ProviderWord, is_refund: bool) -> tuple[str, str]:
        """What the provider said about one of our movements, applied at most once; (verdict, why)."""
        mid, _, attempt = word.out_no.partition("#")
        row = await self.get(mid)
        if row is not None and str(row["attempt"]) != (attempt or "1"):
            row = None  # an earlier attempt's name: not the payment we are waiting for
        assert self.wallet is not None
        if is_refund:
            verdict, why = judge_refund(movement(row) if row else None, word, self.wallet.mchid)
            if verdict in ("credit", "not_paid") and row is not None:
                await self._apply_refund_word(row, word)
            elif row is not None and verdict not in ("duplicate",):
                await self._touch(mid, f"{verdict}: {why}")
            return verdict, why
        verdict, why = judge_payment(movement(row) if row else None, word, self.wallet.mchid)
        if verdict == "credit":  # one provider transaction credits one movement, ever
            other = await self.cloud.db.fetchval("select movement_id from money_movements where provider_txn_id = $1 "
                                                 "and movement_id <> $2", word.txn_id, mid)
            if other is not None:
                verdict, why = "conflict", f"transaction {word.txn_id} already credited {other}"
        if verdict == "credit":
            await self._credit(row, word)
        elif verdict == "not_paid" and word.state in ("CLOSED", "PAYERROR", "REVOKED"):
            await self.settle(mid, "failed", detail=f"the wallet payment ended {word.state} unpaid")
        elif row is not None and verdict in ("wrong_amount", "wrong_merchant", "conflict"):
            await self._touch(mid, f"{verdict}: {why}")
        return verdict, why

    async def _credit(self, row, word: ProviderWord) -> None:
        mid = row["movement_id"]
        if row["kind"] == "top_up":  # the ledger first (idempotent by the movement id), then the journal
            await self.cloud.actors.member_ledger.send(TopUp(id=mid, member=row["member_id"],
                                                             amount_fen=row["amount_fen"]))
        moved = await self.settle(mid, "done", txn=word.txn_id, from_states=("requested", "failed"))
        if not moved:
            return
        if row["kind"] == "top_up" and self.on_balance_changed is not None:
            await self.on_balance_changed(row["member_id"])
        if row["kind"] == "charge" and self.on_charge_done is not None:
            await self.on_charge_done(row["order_id"])

    async def _apply_refund_word(self, row, word: ProviderWord) -> None:
        if word.state == "SUCCESS":
            await self.settle(row["movement_id"], "done", txn=word.txn_id)
        elif word.state in ("ABNORMAL", "CLOSED"):
            await self.settle(row["movement_id"], "failed", txn=word.txn_id or None,
                              detail=f"the wallet provider's refund ended {word.state}")
            log.error("wallet refund %s ended %s: the money was not given back", row["movement_id"], word.state)
        else:
            await self._touch(row["movement_id"])  # PROCESSING: the notification (or a later query) finishes it

    # ---- sweeping: finish what a crash or a lost notification left `requested` ----------------------------------
    async def resolve_due(self) -> int:
        """Ask again about every movement still `requested` past its time: stored value after the saga's grace
        (its request has certainly ended), provider payments after `QUERY_AFTER_MS` (a late notification)."""
        now = self.cloud.now_ms()
        rows = await self.cloud.db.fetch(
            "select * from money_movements where state = 'requested' and updated_ms < $1 order by updated_ms limit $2",
            now - QUERY_AFTER_MS, SWEEP_BATCH)
        for row in rows:
            try:
                await self._resolve(row, now)
            except (PayUnavailable, PayRefused) as exc:
                log.warning("money movement %s not resolved this round: %s", row["movement_id"], exc)
                await self._touch(row["movement_id"])
        return len(rows)

    async def _resolve(self, row, now: int) -> None:
        if row["method"] == "stored_value" or row["amount_fen"] == 0:
            if not due(movement(row), now):
                return
            if row["kind"] == "charge":
                log.warning("charge %s was left half-way: asking the ledger again", row["movement_id"])
                await self._spend(row)
                charged = await self.get(row["movement_id"])
                if charged["state"] == "done" and self.on_charge_done is not None:
                    await self.on_charge_done(row["order_id"])
            elif row["kind"] == "refund":
                log.warning("refund %s was left half-way: refunding again", row["movement_id"])
                await self._do_refund(row, await self.get(charge_id(row["order_id"])))
            return
        assert self.wallet is not None, "a wallet movement needs the wallet provider to resolve it"
        if row["kind"] == "refund":
            word = await self.wallet.query_refund(out_no(row))
            if word is None:  # the refund request itself was lost: ask for it again (same out_refund_no)
                await self._do_refund(row, await self.get(charge_id(row["order_id"])))
            else:
                await self.apply_word(word, is_refund=True)
            return
        word = await self.wallet.query(out_no(row))
        if word is None:  # never created (the customer was told to retry): nothing came in
            if now - row["created_ms"] > NEVER_CREATED_MS:  # and nobody retried: stop asking (a retry starts anew)
                await self.settle(row["movement_id"], "failed", detail="the provider payment was never created")
            else:
                await self._touch(row["movement_id"])
            return
        verdict, why = await self.apply_word(word, is_refund=False)
        if verdict == "credit":
            log.warning("wallet payment %s credited on a query: its notification was late or lost", word.out_no)
        elif verdict != "not_paid":
            log.error("wallet query for %s: %s (%s)", word.out_no, verdict, why)
        if verdict != "credit":
            await self._touch(row["movement_id"])
