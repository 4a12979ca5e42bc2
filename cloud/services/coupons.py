"""Coupons as issued instruments: the ONE authority for definitions, issued codes and their status.

Guarantees:
- Every status change is one conditional UPDATE on the coupon's row (`... where code = any($1) and status =
  'issued' ...`): two API processes, or a till and the mall, racing for one code can never both win it; the loser
  is told why (`protocol.coupons.redeemable` on the row as it now is).
- Issuing (campaign, operator, registration, till trigger) happens under the definition's row lock, so the
  per-member and total limits hold across processes; every issuing act has a `source` (a batch id, a sale's event
  id, "registration") and a member gets at most one coupon per act, so retries and redeliveries issue once. A
  campaign batch's answer is kept with its id: a retry answers exactly the first answer.
- Only an hq_admin defines and issues (the routes check `rule_book.change`); each act is written with its audit
  entry in the same transaction.
- A member sees only their own coupons; another member's code answers exactly as an unknown one.
- Online: a code presented with an order is checked (member, status, channel, store, window, the rule still in
  the book), reserved for the order atomically with the others (all or none), redeemed when the order is paid,
  released when it is rejected, expires or is cancelled (a paid order cancelled gives its coupon back). `settle`
  does this for one order at each hook and for all orders in the sweeper, so a crash between an order's step and
  its coupon's leaves nothing reserved for ever.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal
from protocol import coupons as cp
from protocol import order_lifecycle as lifecycle
from protocol.clock import to_rfc3339
from protocol.errors import ProtocolError
from protocol.pricing.rules import Coupon as CouponRule

log = logging.getLogger("freshmesh.coupons")
ISSUE_BATCH_MAX = 1000  # members per campaign request
WALLET_MAX = 200  # coupons shown in a wallet, newest first
CONFLICTS_PAGE_MAX = 200
CODES_PER_ORDER_MAX = 5
# a coupon back in its member's wallet (from reserved or redeemed): issued again, as if never held or used; the one
# SET of every "back to issued" UPDATE (online orders, tills' holds, returns)
ISSUED_AGAIN = ("status = 'issued', releases = releases + 1, reserved_for = null, reserved_until_ms = null, "
                "redeemed_by = null, redeemed_ms = null, channel = null, store_id = null")


@dataclass(frozen=True, slots=True)
class Accepted:
    """A code that passed for an order: its promotion rule and whether that rule is for new members only."""
    code: str
    rule_id: str
    new_member_only: bool


def coupon_of(row) -> cp.Coupon:
    body = row["body"] if isinstance(row["body"], dict) else json.loads(row["body"])
    return cp.Coupon(code=row["code"], definition_id=row["definition_id"], member_id=row["member_id"],
                     status=row["status"], valid_from_ms=row["valid_from_ms"], valid_until_ms=row["valid_until_ms"],
                     channels=tuple(body["channels"]), stores=tuple(body.get("stores", ())),
                     reserved_for=row["reserved_for"], redeemed_by=row["redeemed_by"])


def _definition(row) -> cp.Definition:
    return cp.parse_definition(json.loads(row["body"]) if isinstance(row["body"], str) else row["body"])


async def issue_in(conn, definition_id: str, members: list[str], source: str, why: str, by_name: str,
                   now_ms: int) -> tuple[list[dict], dict[str, str]]:
    """Issue one coupon of the definition to each member (inside the caller's transaction): ([{member_id, code}],
    {member: why refused}). Members who already got one from this `source` answer with that one (a retry)."""
    row = await conn.fetchrow("select * from coupon_definitions where definition_id = $1 for update", definition_id)
    if row is None:
        raise Refusal("not_found", f"no coupon definition {definition_id}")
    definition = _definition(row)
    before = {r["member_id"]: r["code"] for r in await conn.fetch(
        "select member_id, code from coupons where definition_id = $1 and source = $2 and member_id = any($3::text[])",
        definition_id, source, members)}
    held = {r["member_id"]: r["n"] for r in await conn.fetch(
        "select member_id, count(*) as n from coupons where definition_id = $1 and member_id = any($2::text[]) "
        "group by member_id", definition_id, members)}
    fresh = [m for m in dict.fromkeys(members) if m not in before]
    to_issue, refused = cp.issue_plan(definition, fresh, held, row["issued_count"], now_ms)
    issued = [{"member_id": m, "code": code} for m, code in before.items()]
    valid_from = max(definition.valid_from_ms, now_ms)
    for member in to_issue:
        code = cp.new_code(secrets.randbits)  # a CSPRNG: codes cannot be guessed
        await conn.execute(
            """insert into coupons (code, definition_id, member_id, status, source, why, issued_by, issued_ms,
                   valid_from_ms, valid_until_ms) values ($1, $2, $3, 'issued', $4, $5, $6, $7, $8, $9)""",
            code, definition_id, member, source, why, by_name, now_ms, valid_from, definition.valid_until(now_ms))
        issued.append({"member_id": member, "code": code})
    if to_issue:
        await conn.execute("update coupon_definitions set issued_count = issued_count + $2 where definition_id = $1",
                           definition_id, len(to_issue))
    return issued, refused


async def issue_on_registration(cloud, member_id: str) -> list[str]:
    """A new member's coupons: one of every definition flagged `on_registration` that may still be issued (called
    by `Members.register` right after the member is made; idempotent: source "registration")."""
    codes: list[str] = []
    for row in await cloud.db.fetch("select definition_id from coupon_definitions where on_registration "
                                    "order by definition_id"):
        async with cloud.db.acquire() as conn, conn.transaction():
            issued, refused = await issue_in(conn, row["definition_id"], [member_id], "registration", "registration",
                                             "registration", cloud.now_ms())
        codes += [i["code"] for i in issued]
        if refused:
            log.info("new member %s not given %s: %s", member_id, row["definition_id"], refused[member_id])
    return codes


class Coupons:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    # ---- operators -------------------------------------------------------------------------------------------
    async def define(self, body: Any, by: Operator) -> tuple[dict, bool]:
        """(the definition, True) when made now; the same body again answers (it, False); another body under a
        taken id is refused (`exists`)."""
        try:
            definition = cp.parse_definition(body)
        except ProtocolError as exc:
            raise Refusal("invalid", str(exc)) from None
        rule = self.cloud.world.rule_book.by_id.get(definition.rule_id)
        if not isinstance(rule, CouponRule):
            what = "is not a coupon rule" if rule is not None else "is not in the promotion book"
            raise Refusal("invalid", f"rule_id: {definition.rule_id!r} {what}")
        unknown = [s for s in definition.stores if s not in self.cloud.world.stores]
        if unknown:
            raise Refusal("invalid", f"stores: unknown store(s) {unknown}")
        now, wire = self.cloud.now_ms(), definition.to_json()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            made = await conn.fetchval(
                """insert into coupon_definitions (definition_id, rule_id, body, on_registration, trigger_min_fen,
                       created_ms, created_by) values ($1, $2, $3, $4, $5, $6, $7)
                   on conflict (definition_id) do nothing returning definition_id""",
                definition.definition_id, definition.rule_id, json.dumps(wire), definition.on_registration,
                definition.trigger.min_fen if definition.trigger else None, now, by.username)
            if made:
                await record(conn, now, by, "coupons.define", f"coupon-definition {definition.definition_id}", None, wire)
            row = await conn.fetchrow("select * from coupon_definitions where definition_id = $1",
                                      definition.definition_id)
        if not made and _definition(row) != definition:
            raise Refusal("exists", f"coupon definition {definition.definition_id} exists with another body")
        return await self._definition_json(row), bool(made)

    async def _definition_json(self, row) -> dict:
        counts = {r["status"]: r["n"] for r in await self.cloud.db.fetch(
            "select status, count(*) as n from coupons where definition_id = $1 group by status", row["definition_id"])}
        return {**_definition(row).to_json(), "issued_count": row["issued_count"],
                "by_status": {s: counts.get(s, 0) for s in cp.STATUSES},
                "created_at": to_rfc3339(row["created_ms"]), "created_by": row["created_by"]}

    async def definitions(self) -> dict:
        rows = await self.cloud.db.fetch("select * from coupon_definitions order by created_ms, definition_id")
        return {"definitions": [await self._definition_json(r) for r in rows]}

    async def issue(self, definition_id: str, body: Any, digest: bytes, by: Operator) -> dict:
        """A campaign (or one member, `why: "operator"`): {"batch_id", "member_ids", "why"?} -> what was issued and
        what was refused and why. Idempotent by the batch id (another body under it: `key_reused`)."""
        if not isinstance(body, dict):
            raise Refusal("invalid", "body: a JSON object")
        batch, members, why = body.get("batch_id"), body.get("member_ids"), body.get("why", "campaign")
        extra = sorted(set(body) - {"batch_id", "member_ids", "why"})
        if extra:
            raise Refusal("invalid", f"unknown field(s) {extra}")
        if not isinstance(batch, str) or not cp.DEFINITION_ID_RE.match(batch):
            raise Refusal("invalid", "batch_id: required, letters, digits and _.:- only, 1-64 chars (a retry "
                                     "with the same batch_id answers the first answer)")
        if (not isinstance(members, list) or not 0 < len(members) <= ISSUE_BATCH_MAX
                or not all(isinstance(m, str) and m for m in members)):
            raise Refusal("invalid", f"member_ids: a list of 1..{ISSUE_BATCH_MAX} member ids")
        if why not in ("campaign", "operator"):
            raise Refusal("invalid", "why: campaign or operator")
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            if await conn.fetchval("select 1 from coupon_definitions where definition_id = $1 for update",
                                   definition_id) is None:
                raise Refusal("not_found", f"no coupon definition {definition_id}")
            done = await conn.fetchrow("select * from coupon_batches where definition_id = $1 and batch_id = $2",
                                       definition_id, batch)
            if done is not None:
                if bytes(done["request_hash"]) != digest:
                    raise Refusal("key_reused", f"batch_id {batch} was already used with other members")
                return json.loads(done["answer"])
            known = {r["member_id"] for r in await conn.fetch(
                "select member_id from members where member_id = any($1::text[]) and erased_ms is null", members)}
            issued, refused = await issue_in(conn, definition_id, [m for m in members if m in known],
                                             f"batch:{batch}", why, by.username, now)
            refused.update({m: "no such member" for m in members if m not in known})
            answer = {"definition_id": definition_id, "batch_id": batch, "issued": issued,
                      "refused": [{"member_id": m, "reason": r} for m, r in refused.items()]}
            await conn.execute("insert into coupon_batches (definition_id, batch_id, request_hash, answer, created_ms) "
                               "values ($1, $2, $3, $4, $5)", definition_id, batch, digest, json.dumps(answer), now)
            await record(conn, now, by, "coupons.issue", f"coupon-definition {definition_id}", None,
                         {"batch_id": batch, "why": why, "issued": len(issued), "refused": len(refused)})
        return answer

    async def issue_to_members(self, definition_id: str, member_ids: list[str], issue_id: str,
                               by: Operator) -> dict:
        """A segment's campaign (cloud/services/segments.py's seam): one coupon each, as a campaign, idempotent by
        `issue_id` (batches of `ISSUE_BATCH_MAX`, each under an id derived from it). {"issued": n, "refused": [...]}."""
        issued, refused = 0, []
        for n, start in enumerate(range(0, len(member_ids), ISSUE_BATCH_MAX)):
            part = member_ids[start:start + ISSUE_BATCH_MAX]
            batch = "seg-" + hashlib.blake2b(f"{issue_id}/{n}".encode(), digest_size=12).hexdigest()
            body = {"batch_id": batch, "member_ids": part, "why": "campaign"}
            digest = hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=16).digest()
            answer = await self.issue(definition_id, body, digest, by)
            issued += len(answer["issued"])
            refused += answer["refused"]
        return {"issued": issued, "refused": refused, "definition_id": definition_id, "issue_id": issue_id}

    async def issue_for_points(self, member_id: str, definition_id: str, why: str, issue_id: str) -> dict:
        """The points exchange's seam (`cloud/services/points_exchange.py`, `PointsExchange.issue_coupon`): one coupon
        of the definition into the member's wallet, once per `issue_id` (a retry answers the same coupon); a
        definition that cannot issue raises its `CouponIssueFailed` with the reason, so the points go back."""
        from cloud.services.points_exchange import CouponIssueFailed  # the points part's: only needed here
        try:
            async with self.cloud.db.acquire() as conn, conn.transaction():
                issued, refused = await issue_in(conn, definition_id, [member_id], f"points:{issue_id}", "points",
                                                 "points exchange", self.cloud.now_ms())
        except Refusal as refusal:  # no such definition
            raise CouponIssueFailed(refusal.detail) from None
        if refused:
            raise CouponIssueFailed(f"coupon definition {definition_id}: {refused[member_id]}")
        return {"coupon_id": issued[0]["code"], "code": issued[0]["code"], "definition_id": definition_id,
                "member_id": member_id, "why": why, "state": "issued"}

    def rules(self) -> dict:
        """The promotion book's coupon rules: what a definition may grant."""
        return {"rules": [{"rule_id": r.id, "name": r.name, "amount_off_fen": r.amount_off_fen,
                           "percent_off_bp": r.percent_off_bp, "min_spend_fen": r.min_spend_fen,
                           "new_member_only": r.new_member_only, "skus": list(r.skus),
                           "categories": list(r.categories), "channels": list(r.channels)}
                          for r in self.cloud.world.rule_book.rules if isinstance(r, CouponRule)]}

    async def conflict_count(self) -> int:
        return await self.cloud.db.fetchval("select count(*) from coupon_conflicts")

    async def conflicts(self, limit: int = 100) -> dict:
        rows = await self.cloud.db.fetch("select * from coupon_conflicts order by conflict_id desc limit $1",
                                         max(1, min(limit, CONFLICTS_PAGE_MAX)))
        return {"conflicts": [{"conflict_id": r["conflict_id"], "kind": r["kind"], "code": r["code"],
                               "store_id": r["store_id"], "sale_id": r["sale_id"],
                               "first_redeemed_by": r["first_redeemed_by"], "detail": r["detail"],
                               "at": to_rfc3339(r["wall_ms"])} for r in rows]}

    # ---- the member's wallet -----------------------------------------------------------------------------------
    async def wallet(self, member_id: str) -> dict:
        now, book = self.cloud.now_ms(), self.cloud.world.rule_book
        rows = await self.cloud.db.fetch(
            "select c.*, d.body, d.rule_id from coupons c join coupon_definitions d using (definition_id) "
            "where c.member_id = $1 order by c.issued_ms desc, c.code limit $2", member_id, WALLET_MAX)
        out = []
        for r in rows:
            coupon, body = coupon_of(r), json.loads(r["body"])
            rule = book.by_id.get(r["rule_id"])
            value = ({"amount_off_fen": rule.amount_off_fen, "percent_off_bp": rule.percent_off_bp,
                      "min_spend_fen": rule.min_spend_fen} if isinstance(rule, CouponRule) else None)
            out.append({"code": coupon.code, "name": body["name"], "definition_id": coupon.definition_id,
                        "value": value, "status": cp.status_now(coupon, now), "channels": list(coupon.channels),
                        "stores": list(coupon.stores), "valid_from": to_rfc3339(coupon.valid_from_ms),
                        "valid_until": to_rfc3339(coupon.valid_until_ms), "why": r["why"],
                        "redeemed_by": r["redeemed_by"] if r["status"] == "redeemed" else None})
        return {"member_id": member_id, "coupons": out}

    # ---- online orders -----------------------------------------------------------------------------------------
    async def check(self, texts: tuple[str, ...], member: str, store: str, order_id: str) -> list[Accepted]:
        """The order's codes, each the member's, issued (or already reserved for this very order: a retry), valid
        now online at `store`; else a Refusal naming the code and why. Nothing is changed here."""
        if not texts:
            return []
        if len(texts) > CODES_PER_ORDER_MAX:
            raise Refusal("invalid", f"coupons: at most {CODES_PER_ORDER_MAX} codes per order")
        codes = []
        for text in texts:
            try:
                codes.append(cp.normalise(text))
            except cp.CouponCodeError as exc:
                if isinstance(text, str) and text in self.cloud.world.rule_book.by_id:
                    raise Refusal("invalid", f"coupons: {text!r} is a promotion rule id, not a coupon code: give the "
                                             f"code of a coupon in your wallet ({cp.PREFIX}...)", coupon=text,
                                  reason="not a coupon code") from None
                raise Refusal("invalid", f"coupons: {exc}", coupon=text, reason=str(exc).split(": ", 1)[-1]) from None
        if len(set(codes)) != len(codes):
            raise Refusal("invalid", "coupons: each code once")
        rows = {r["code"]: r for r in await self.cloud.db.fetch(
            "select c.*, d.body, d.rule_id from coupons c join coupon_definitions d using (definition_id) "
            "where c.code = any($1::text[])", codes)}
        now, book, accepted = self.cloud.now_ms(), self.cloud.world.rule_book, []
        for code in codes:
            row = rows.get(code)
            reason = cp.redeemable(coupon_of(row) if row else None, member, "online", store, now, holder=order_id)
            if reason is None and row is not None:
                rule = book.by_id.get(row["rule_id"])
                if not isinstance(rule, CouponRule):
                    reason = "its promotion is no longer in the promotion book"
                elif rule.new_member_only and row["why"] != "registration":
                    reason = "for new members only"
                else:
                    accepted.append(Accepted(code, rule.id, rule.new_member_only))
                    continue
            reason = reason or "no such coupon in your wallet"
            raise Refusal("coupon", f"coupon {code}: {reason}", coupon=code, reason=reason)
        return accepted

    def _why_unused(self, a: Accepted) -> str:
        rule = self.cloud.world.rule_book.by_id[a.rule_id]
        need = f"it needs {rule.min_spend_fen} fen of eligible items" if rule.min_spend_fen else \
            "no eligible items, or another coupon of its kind gives more"
        return f"does not apply to this order ({need})"

    def unused(self, accepted: list[Accepted], used_rules: list[str]) -> None:
        """Refuse a code whose promotion did not apply to the priced order (the customer expects its discount)."""
        for a in accepted:
            if a.rule_id not in used_rules:
                reason = self._why_unused(a)
                raise Refusal("coupon", f"coupon {a.code}: {reason}", coupon=a.code, reason=reason)

    async def release_unused(self, order_id: str, accepted: list[Accepted], used_rules: list[str]) -> list[dict]:
        """After the order's real pricing: the held codes whose promotion it did not use (the preview did, but the
        budgets actually left changed the eligible spend) are let go, back to `issued` (never redeemed with the
        order). Answers [{code, reason}] for the order's answer."""
        unused = [a for a in accepted if a.rule_id not in used_rules]
        if not unused:
            return []
        await self.cloud.db.execute(
            f"update coupons set {ISSUED_AGAIN} where code = any($1::text[]) and status = 'reserved' "  # noqa: S608 - fixed text
            "and reserved_for = $2",
            [a.code for a in unused], order_id)
        notes = [{"code": a.code, "reason": f"{self._why_unused(a)} after the order's budget-capped promotions; "
                                           "it stays in your wallet"} for a in unused]
        log.info("order %s: coupons not applied, let go: %s", order_id, [a.code for a in unused])
        return notes

    async def hold(self, order_id: str, member: str, store: str, accepted: list[Accepted]) -> None:
        """Reserve every accepted code for the order in one statement, or none: a code another order or a till
        took meanwhile is refused with the reason (and this order's others are let go again)."""
        if not accepted:
            return
        codes, now = [a.code for a in accepted], self.cloud.now_ms()
        got = {r["code"] for r in await self.cloud.db.fetch(
            """update coupons set status = 'reserved', reserved_for = $2, reserved_until_ms = null, channel = 'online',
                   store_id = $4
               where code = any($1::text[]) and member_id = $3 and valid_until_ms > $5 and valid_from_ms <= $5
                 and (status = 'issued' or (status = 'reserved' and reserved_for = $2))
               returning code""", codes, order_id, member, store, now)}
        if len(got) == len(codes):
            return
        await self.cloud.db.execute(f"update coupons set {ISSUED_AGAIN} where code = any($1::text[]) "  # noqa: S608 - fixed text
                                    "and status = 'reserved' and reserved_for = $2", list(got), order_id)
        lost = next(c for c in codes if c not in got)
        row = await self.cloud.db.fetchrow("select c.*, d.body from coupons c join coupon_definitions d "
                                           "using (definition_id) where code = $1", lost)
        reason = cp.redeemable(coupon_of(row), member, "online", store, now, holder=order_id) or "taken meanwhile"
        raise Refusal("coupon", f"coupon {lost}: {reason}", coupon=lost, reason=reason)

    async def settle(self, order_id: str | None = None) -> int:
        """Coupons follow their orders: reserved for a paid order -> redeemed; reserved for an order that ended
        unserved -> issued again; redeemed by an order cancelled after payment -> back in the wallet. `order_id`:
        that order only (None: all, the sweeper's round). Answers how many coupons changed."""
        db, now = self.cloud.db, self.cloud.now_ms()
        redeemed = await db.fetch(
            """update coupons c set status = 'redeemed', redeemed_by = o.order_id, redeemed_ms = $3, reserved_for = null
               from orders o where c.status = 'reserved' and c.reserved_for = o.order_id
                 and o.status = any($2::text[]) and ($1::text is null or o.order_id = $1) returning c.code""",
            order_id, list(lifecycle.PAID_STATUSES), now)
        released = await db.fetch(
            f"""update coupons c set {ISSUED_AGAIN}
               from orders o where c.status = 'reserved' and c.reserved_for = o.order_id
                 and o.status = any($2::text[]) and ($1::text is null or o.order_id = $1) returning c.code""",  # noqa: S608 - fixed text
            order_id, list(lifecycle.UNSERVED_STATUSES))
        returned = await db.fetch(
            f"""update coupons c set {ISSUED_AGAIN}
               from orders o where c.status = 'redeemed' and c.redeemed_by = o.order_id and o.status = 'cancelled'
                 and ($1::text is null or o.order_id = $1) returning c.code""", order_id)  # noqa: S608 - fixed text
        lapsed = [] if order_id else await db.fetch(
            f"update coupons set {ISSUED_AGAIN} where status = 'reserved' and reserved_until_ms is not null "  # noqa: S608 - fixed text
            "and reserved_until_ms <= $1 returning code", now)
        return len(redeemed) + len(released) + len(returned) + len(lapsed)

