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
Top-ups (`cloud/services/top_ups.py`) are credited to the ledger under the movement id as its transfer id, before
the movement is marked done: a crash between the two is finished by the next notification or query, and the
ledger applies the credit once. Movements left `requested` are asked about again by `money_resolver.py`.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from actors.member_ledger import RecordSpend, Refund, Spend, TopUp
from cloud.services.extra_charges import (
    charge_extra,
    extras_done,
    extras_requested,
    refund_late_extras,
    settle_requested,
)
from cloud.services.points_pay import points_part_fen
from cloud.services.top_ups import TopUps
from cloud.services.verdicts import Refusal
from cloud.services.wallet import BadNotification, HttpPayProvider, PayRefused, PayUnavailable
from protocol.clock import to_rfc3339
from protocol.money_saga import (
    PAID_STATUSES,
    Movement,
    ProviderWord,
    attempt_name,
    charge_id,
    judge_payment,
    judge_refund,
    may_refund,
    part_refund_id,
    refund_id,
    return_id,
    to_return,
)
from protocol.payments import ONLINE_METHODS

TOP_UP_EXPIRE_MS = 15 * 60_000  # a top-up's provider payment closes if not paid within this
log = logging.getLogger("freshmesh.payments")


def movement(row) -> Movement:
    return Movement(movement_id=row["movement_id"], kind=row["kind"], method=row["method"],
                    amount_fen=row["amount_fen"], state=row["state"], updated_ms=row["updated_ms"],
                    provider_txn_id=row["provider_txn_id"])


def out_no(row) -> str:
    """The provider's name for a movement (out_trade_no / out_refund_no): its id, tagged with the attempt after a
    failed one (a closed provider payment cannot be paid again)."""
    return attempt_name(row["movement_id"], row["attempt"])


def ledger_charge_id(row) -> str:
    if row["movement_id"] != charge_id(row["order_id"]):  # an extra charge (`extra_charges.py`): its own id
        return row["movement_id"]
    return attempt_name(f"sv:{row['order_id']}", row["attempt"])


def _refund_target(refund, charge) -> tuple[str, int]:
    """(out_trade_no, its total) of the provider payment a refund gives back: the order's charge, or for a stray
    payment's return the payment it names (in its `pay`)."""
    if refund["pay"]:
        target = json.loads(refund["pay"])
        return target["out_trade_no"], target["total_fen"]
    return out_no(charge), charge["amount_fen"]


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
        self.top_ups = TopUps(self)  # stored value bought online (`cloud/services/top_ups.py`)

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

    async def touch(self, movement_id: str, detail: str | None = None) -> None:
        """The movement was looked at now (the resolver asks again only after a grace), with what was learnt."""
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
        # points may pay part of the order (`points_pay.py`): the charge is for the rest
        amount = order["total_fen"] - await points_part_fen(self.cloud.db, order_id)
        row = await self.begin(mid, "charge", order_id, order["member_id"], method, amount)
        if row["state"] == "failed":  # tried before and refused: a new attempt (a new ledger id / out_trade_no)
            await self.cloud.db.execute(
                "update money_movements set state = 'requested', method = $2, attempt = attempt + 1, pay = null, "
                "detail = null, updated_ms = $3, amount_fen = $4 where movement_id = $1 and state = 'failed'", mid,
                method, self.cloud.now_ms(), amount)
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
            await self.spend_stored_value(row)
        elif not row["pay"]:
            await self.create_payment(row, f"FreshMesh order {order_id}", order["expires_ms"])
        return await self.get(mid)

    async def _give_up(self, row):
        """Close a wallet charge nobody paid (the movement ends `failed`); one that was paid meanwhile is credited
        instead (it ends `done`). A stored-value charge in flight is left alone (its ledger call decides it)."""
        if row["method"] != "wallet_sim" or self.wallet is None:
            return row
        # Asked and closed even when no `pay` is recorded yet: another request's create may be in flight (its `pay`
        # not written yet), and a payment left open could still be paid. 404: nothing was created (yet); should the
        # create land later, its `pay` is not written onto the next attempt, and money paid into it is returned.
        try:
            word = await self.wallet.query(out_no(row))
            if word is not None and word.state == "SUCCESS":
                await self.apply_word(word, is_refund=False)
                return await self.get(row["movement_id"])
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

    async def spend_stored_value(self, row) -> None:
        """A stored-value charge movement carried out: the ledger's spend settles it done, or failed with why."""
        ledger = self.cloud.actors.member_ledger
        result = (await ledger.send(Spend(id=ledger_charge_id(row), member=row["member_id"],
                                          amount_fen=row["amount_fen"]))).settled
        if result.status == "ok":
            await self.settle(row["movement_id"], "done")
        else:
            await self.settle(row["movement_id"], "failed", detail=f"{result.reason} (balance "
                              f"{result.get('stored_value_fen')} fen, order {row['amount_fen']} fen)")

    async def create_payment(self, row, description: str, expire_ms: int | None) -> None:
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
        # only onto the attempt this payment was created for: a create that was slow while the customer paid another
        # way must not hand the newer attempt an old, closed payment code
        await self.cloud.db.execute("update money_movements set pay = $2 where movement_id = $1 and attempt = $3 "
                                    "and state = 'requested'", row["movement_id"], json.dumps(pay), row["attempt"])

    async def record_spend(self, order) -> None:
        """A wallet-paid order still earns points and counts towards the level (stored value does in its Spend)."""
        charge = await self.get(charge_id(order["order_id"]))
        # (on what the wallet paid: a part paid in points earns none, `points_pay.py`)
        if charge is not None and charge["method"] == "wallet_sim" and order["member_id"] and charge["amount_fen"]:
            await self.cloud.actors.member_ledger.send(RecordSpend(id=f"spend:{order['order_id']}",
                                                                   member=order["member_id"],
                                                                   amount_fen=charge["amount_fen"]))

    async def refund(self, order_id: str):
        """Give back the order's charge if it is done (journaled first); the refund movement, or None when there
        is nothing to give back. Safe to call any number of times."""
        charge = await self.get(charge_id(order_id))
        if charge is None or charge["state"] != "done":
            return None
        try:  # extras in flight decided first, so the refund counts what they took
            await settle_requested(self, order_id)
        except Exception:  # noqa: BLE001 - the ledger did not answer: the refund waits (below) and the sweeper retries
            log.exception("order %s: extra charges in flight not decided yet", order_id)
        row = await self._begin_refund(order_id, charge)
        if row is None:
            return None
        if row["state"] == "requested":
            await self.give_back(row, charge)
        await refund_late_extras(self, order_id)  # one done after the refund was journaled
        return await self.get(row["movement_id"])

    async def _begin_refund(self, order_id: str, charge):
        """The refund journaled, only if the order has ended unserved (or was refunded whole), decided under the
        order's row lock: two completions racing (a retry and the sweeper) must not refund the order the other one
        just made paid. The ended statuses are final, so once journaled the refund stays right. It gives back what
        the parts refunded before (a picked weight, a return) left of the charge."""
        async with self.cloud.db.acquire() as conn, conn.transaction():
            status = await conn.fetchval("select status from orders where order_id = $1 for update", order_id)
            if not may_refund(status):
                log.info("order %s is %s: its charge is not refunded", order_id, status)
                return None
            if await conn.fetchval("select 1 from money_movements where movement_id = $1", refund_id(order_id)):
                return await self.get(refund_id(order_id))  # journaled before: as it is
            if pending := await extras_requested(conn, order_id):
                # an extra still undecided (its Spend may yet land): counting it now or not could both be wrong;
                # the sweeper asks again once the resolver has decided it (no new extra can start: the order ended)
                log.warning("order %s: full refund waits for extra charges in flight %s", order_id,
                            [r["movement_id"] for r in pending])
                return None
            before = await self._parts_refunded(conn, order_id)
            await conn.execute(
                """insert into money_movements (movement_id, kind, order_id, member_id, method, amount_fen, state,
                       created_ms, updated_ms)
                   values ($1, 'refund', $2, $3, $4, $5, 'requested', $6, $6) on conflict (movement_id) do nothing""",
                refund_id(order_id), order_id, charge["member_id"], charge["method"],
                max(charge["amount_fen"] + await extras_done(conn, order_id) - before, 0), self.cloud.now_ms())
        return await self.get(refund_id(order_id))

    @staticmethod
    async def _parts_refunded(conn, order_id: str) -> int:
        """What the order's partial refunds give back (done, or still on their way: never counted twice)."""
        return await conn.fetchval(
            "select coalesce(sum(amount_fen), 0)::bigint from money_movements where order_id = $1 and kind = 'refund' "
            "and movement_id like $2 and state <> 'failed'", order_id, part_refund_id(order_id, "%"))

    async def refund_part(self, order_id: str, part: str, amount_fen: int, reason: str):
        """Give back `amount_fen` of the order's charge for one reason (`part`: a picked weight, a short line, a
        return, an after-sales request), journaled first as `refund:<order>:<part>`, the way the charge was paid.
        Refused (Refusal) when the order is not paid or the parts would give back more than was charged; the same
        part again answers its first movement (a retry, a duplicate event). The order's `refunded_fen` follows."""
        if amount_fen <= 0:
            raise Refusal("invalid", f"refund of order {order_id} ({part}): amount must be positive, not {amount_fen}")
        charge = await self.get(charge_id(order_id))
        mid = part_refund_id(order_id, part)
        if await self.get(mid) is None:
            if charge is None or charge["state"] != "done":
                raise Refusal("order_state", f"order {order_id} has no payment to refund")
            async with self.cloud.db.acquire() as conn, conn.transaction():
                status = await conn.fetchval("select status from orders where order_id = $1 for update", order_id)
                await self.journal_part(conn, order_id, status, charge, part, amount_fen, reason)
        return await self.finish_part(order_id, part, charge)

    async def journal_part(self, conn, order_id: str, status: str, charge, part: str, amount_fen: int,
                           reason: str) -> bool:
        """`refund_part`'s journaling, in the caller's transaction, which holds the order's row lock (`status`: the
        order's status read under it): a caller that judged what to refund under the lock journals it before anyone
        else can judge. Whether this call journaled it (False: the same part was journaled before)."""
        if amount_fen <= 0:
            raise Refusal("invalid", f"refund of order {order_id} ({part}): amount must be positive, not {amount_fen}")
        if charge is None or charge["state"] != "done":
            raise Refusal("order_state", f"order {order_id} has no payment to refund")
        if status not in PAID_STATUSES:
            raise Refusal("order_state", f"order {order_id} is {status}; only a paid order is refunded in part")
        mid = part_refund_id(order_id, part)
        if await conn.fetchval("select 1 from money_movements where movement_id = $1", mid):
            return False
        before = await self._parts_refunded(conn, order_id)
        charged = charge["amount_fen"] + await extras_done(conn, order_id)
        if before + amount_fen > charged:
            raise Refusal("invalid", f"refund of order {order_id} ({part}): {amount_fen} fen would give back "
                                     f"more than the {charged} fen charged ({before} fen refunded already)")
        made = await conn.fetchval(
            """insert into money_movements (movement_id, kind, order_id, member_id, method, amount_fen, state,
                   detail, created_ms, updated_ms)
               values ($1, 'refund', $2, $3, $4, $5, 'requested', $6, $7, $7) on conflict do nothing
               returning movement_id""",
            mid, order_id, charge["member_id"], charge["method"], amount_fen, reason[:500], self.cloud.now_ms())
        if made is None:  # a concurrent retry journaled it first: its refunded_fen is counted already
            return False
        await conn.execute("update orders set refunded_fen = refunded_fen + $2 where order_id = $1",
                           order_id, amount_fen)
        return True

    async def finish_part(self, order_id: str, part: str, charge=None):
        """Carry out a journaled part refund (after the journaling transaction committed); its movement."""
        mid = part_refund_id(order_id, part)
        charge = charge if charge is not None else await self.get(charge_id(order_id))
        row = await self.get(mid)
        if row["state"] == "requested":
            await self.give_back(row, charge)
        return await self.get(mid)

    async def give_back(self, row, charge) -> None:
        """A refund movement carried out the way its charge was paid: the ledger for stored value, the provider for
        the wallet (`charge`: that payment's movement)."""
        mid = row["movement_id"]
        if row["amount_fen"] == 0:
            await self.settle(mid, "done")
        elif row["method"] == "marketplace":  # the platform refunds its customer: we never held the money
            await self.settle(mid, "done")  # (a part we give back is asked of it: marketplace_orders.py)
        elif row["method"] == "stored_value":
            result = await self.cloud.actors.member_ledger.send(Refund(id=mid, member=row["member_id"],
                                                                       amount_fen=row["amount_fen"]))
            if not result.succeeded:  # stays requested: the sweeper asks again (an `exists` answers the first result)
                log.error("stored-value refund %s not applied: %s", mid, result.settled.reason)
                await self.touch(mid, f"the ledger answered {result.settled.status}: {result.settled.reason}")
                return
            await self.settle(mid, "done")
            if self.on_balance_changed is not None:
                await self.on_balance_changed(row["member_id"])
        else:
            assert self.wallet is not None, "a wallet charge needs the wallet to refund it"
            trade_no, total_fen = _refund_target(row, charge)
            try:
                word = await self.wallet.refund(out_no(row), trade_no, row["amount_fen"], total_fen)
            except PayUnavailable as exc:  # stays requested: the sweeper asks again
                log.warning("wallet refund %s not requested yet: %s", mid, exc)
                await self.touch(mid)
                return
            except PayRefused as refused:
                await self.settle(mid, "failed", detail=f"the wallet provider refused the refund: {refused}")
                log.error("wallet refund %s refused: %s", mid, refused)
                return
            await self._apply_refund_word(row, word)

    async def charge_extra(self, order_id: str, part: str, amount_fen: int, reason: str):
        """Charge the order `amount_fen` more (`charge:<order>:<part>`): `cloud/services/extra_charges.py`."""
        return await charge_extra(self, order_id, part, amount_fen, reason)

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
        named = row = await self.get(mid)
        if row is not None and str(row["attempt"]) != (attempt or "1"):
            row = None  # an earlier attempt's name: not the payment we are waiting for
        assert self.wallet is not None
        if is_refund:
            verdict, why = judge_refund(movement(row) if row else None, word, self.wallet.mchid)
            if verdict in ("credit", "not_paid") and row is not None:
                await self._apply_refund_word(row, word)
            elif row is not None and verdict not in ("duplicate",):
                await self.touch(mid, f"{verdict}: {why}")
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
            await self.touch(mid, f"{verdict}: {why}")
        if to_return(verdict, word, self.wallet.mchid):  # money in that nothing credits: give it back
            await self._return_stray(word, named)
        return verdict, why

    async def _return_stray(self, word: ProviderWord, named) -> None:
        """Refund a provider payment no movement credits (`to_return`), through the provider, once per transaction
        (`return:<txn>`, journaled first; the sweeper finishes it like any refund, `/audit` names it until done).
        Only on the provider's own query answer: a notification is signed, but the query also says the payment
        is still there to refund."""
        assert self.wallet is not None
        if await self.get(return_id(word.txn_id)) is not None:
            return  # already being given back
        try:
            confirmed = await self.wallet.query(word.out_no)
        except (PayUnavailable, PayRefused) as exc:  # the provider notifies again; its next word tries again
            log.error("stray payment %s (%s) not confirmed yet: %s", word.out_no, word.txn_id, exc)
            return
        if confirmed is None or confirmed.state != "SUCCESS" or confirmed.txn_id != word.txn_id:
            log.error("stray payment %s (%s): the provider does not confirm it (%s)", word.out_no, word.txn_id,
                      confirmed.state if confirmed else "unknown")
            return
        mid = return_id(word.txn_id)
        log.error("payment %s (%s, %d fen) credits nothing: giving it back as %s", word.out_no, word.txn_id,
                  confirmed.amount_fen, mid)
        await self.begin(mid, "refund", named["order_id"] if named else None, named["member_id"] if named else None,
                         "wallet_sim", confirmed.amount_fen)
        await self.cloud.db.execute("update money_movements set pay = $2 where movement_id = $1 and pay is null", mid,
                                    json.dumps({"out_trade_no": word.out_no, "total_fen": confirmed.amount_fen}))
        row = await self.get(mid)
        if row["state"] == "requested":
            await self.give_back(row, None)

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
        if word.state == "SUCCESS":  # also after it was seen failed: the provider's last word is that it is done
            await self.settle(row["movement_id"], "done", txn=word.txn_id, from_states=("requested", "failed"))
        elif word.state in ("ABNORMAL", "CLOSED"):
            await self.settle(row["movement_id"], "failed", txn=word.txn_id or None,
                              detail=f"the wallet provider's refund ended {word.state}")
            log.error("wallet refund %s ended %s: the money was not given back", row["movement_id"], word.state)
        else:
            await self.touch(row["movement_id"])  # PROCESSING: the notification (or a later query) finishes it
