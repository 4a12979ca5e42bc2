"""Points exchanged for coupons (issue 17.5): the points shop. `GET /points/offers` lists the coupon definitions HQ
gave a points price; `POST /members/{id}/points/exchange {"offer_id"}` (offer_id = the definition's id) buys one.

Guarantees:
- The offers are the coupon definitions with `points_price` > 0 (cloud/services/coupons.py, `POST /operator/
  coupon-definitions`), their rule still a coupon rule of the book, valid now and still issuable (not ended, below
  the total limit; for a signed-in member, below the per-member limit: `protocol.coupons.exchangeable`). There is
  no other list: what HQ defines is what the shop sells.
- The price is the definition's, read when the exchange is made and journaled with it; the client names only the
  definition. An exchange that cannot be made now (not an offer, ended, a limit reached) is refused before any
  points move.
- One exchange per (member, Idempotency-Key): its id derives from them, it is journaled in `points_exchanges`
  before anything moves, a retry answers as the first (the same coupon), and the same key with another body is
  refused (409).
- The price is redeemed once per exchange (`RedeemPoints` under `protocol.points.redeem_id`), refused past the
  member's balance (409 `insufficient points`: nothing is journaled as taken).
- The coupon is issued by the coupons authority (`Coupons.issue_for_points`, wired in cloud/wiring.py) with the
  exchange's id as its issue id: one coupon in the member's wallet however often it is asked. When the issue fails
  (another exchange took the last one meanwhile, the definition ended) the points are given back once
  (`GrantPoints` under `give_back_id`) and the exchange ends `returned`.
- `sweep` finishes an exchange a crash left half-way (asked again with the same ids).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable

from actors.member_ledger import GrantPoints, RedeemPoints
from cloud.services.verdicts import Refusal
from protocol import coupons as cp
from protocol.clock import to_rfc3339
from protocol.errors import ProtocolError
from protocol.money_saga import SAGA_GRACE_MS
from protocol.points import give_back_id, points_value_fen, redeem_id
from protocol.pricing.rules import Coupon as CouponRule

log = logging.getLogger("freshmesh.points")
SWEEP_BATCH_MAX = 100
OFFERS_MAX = 200  # definitions listed in the shop (oldest first)
# issue_coupon(member_id, definition_id, why, issue_id) -> the coupon ({"code", "coupon_id", ...}) or
# CouponIssueFailed: the coupons authority's `issue_for_points`
Issuer = Callable[[str, str, str, str], Awaitable[dict]]


class CouponIssueFailed(Exception):
    """The coupon could not be issued (the definition is closed, out of its total, …): the points go back."""


def exchange_json(row) -> dict:
    body = {"exchange_id": row["exchange_id"], "offer_id": row["offer_id"], "points": row["points"],
            "definition_id": row["definition_id"], "state": row["state"],
            "created_at": to_rfc3339(row["created_ms"])}
    if row["coupon"]:
        body["coupon"] = json.loads(row["coupon"])
        if body["coupon"].get("code"):
            body["code"] = body["coupon"]["code"]  # the code now in the member's wallet
    if row["detail"]:
        body["detail"] = row["detail"]
    return body


def _definition(row) -> cp.Definition:
    return cp.parse_definition(json.loads(row["body"]) if isinstance(row["body"], str) else row["body"])


class PointsExchange:
    def __init__(self, cloud, issue_coupon: Issuer) -> None:
        self.cloud = cloud
        self.issue_coupon = issue_coupon  # the coupons authority's issue_for_points
        self.on_balance_changed: Callable[[str], Awaitable[None]] | None = None

    async def get(self, exchange_id: str):
        return await self.cloud.db.fetchrow("select * from points_exchanges where exchange_id = $1", exchange_id)

    # ---- the shop ---------------------------------------------------------------------------------------------
    def _value(self, definition: cp.Definition) -> dict | None:
        """What the coupon is worth (its rule), or None when its rule is no longer a coupon rule of the book (then
        it is not sold: the coupon could not be used)."""
        rule = self.cloud.world.rule_book.by_id.get(definition.rule_id)
        if not isinstance(rule, CouponRule):
            return None
        return {"amount_off_fen": rule.amount_off_fen, "percent_off_bp": rule.percent_off_bp,
                "min_spend_fen": rule.min_spend_fen}

    async def _held(self, member: str, definition_ids: list[str]) -> dict[str, int]:
        return {r["definition_id"]: r["n"] for r in await self.cloud.db.fetch(
            "select definition_id, count(*) as n from coupons where member_id = $1 and definition_id = any($2::text[]) "
            "group by definition_id", member, definition_ids)}

    async def offers(self, member: str | None = None) -> dict:
        """The definitions points may buy now (for `member`: also below their per-member limit)."""
        now, out = self.cloud.now_ms(), []
        rows = await self.cloud.db.fetch(  # the ended and the sold-out left out here, so they never crowd the page
            """select * from coupon_definitions where (body->>'points_price')::bigint > 0
                 and (coalesce((body->>'valid_until_ms')::bigint, 0) = 0 or (body->>'valid_until_ms')::bigint > $2)
                 and (coalesce((body->>'total_limit')::bigint, 0) = 0 or issued_count < (body->>'total_limit')::bigint)
               order by created_ms, definition_id limit $1""", OFFERS_MAX, now)
        held = await self._held(member, [r["definition_id"] for r in rows]) if member else {}
        for row in rows:
            try:
                d = _definition(row)
            except ProtocolError:  # a body stored by an older version that no longer parses: not sold
                continue
            value = self._value(d)
            if value is None or cp.exchangeable(d, held.get(d.definition_id, 0) if member else None,
                                                row["issued_count"], now):
                continue
            offer = {"offer_id": d.definition_id, "definition_id": d.definition_id, "points": d.points_price,
                     "worth_fen": points_value_fen(d.points_price), "title": d.name, "value": value,
                     "channels": list(d.channels), "stores": list(d.stores),
                     "valid_until": to_rfc3339(d.valid_until_ms) if d.valid_until_ms else None,
                     "valid_days": d.valid_days or None}
            if d.total_limit:
                offer["left"] = d.total_limit - row["issued_count"]
            out.append(offer)
        return {"offers": out}

    async def _offer(self, member: str, offer_id: str) -> cp.Definition:
        """The definition an exchange buys, checked before any points move; a Refusal saying why not."""
        row = await self.cloud.db.fetchrow("select * from coupon_definitions where definition_id = $1", offer_id)
        try:
            definition = _definition(row) if row is not None else None
        except ProtocolError:  # a body stored by an older version that no longer parses: not sold
            definition = None
        if definition is None or definition.points_price <= 0:
            raise Refusal("invalid", f"offer_id: no offer {offer_id!r} (the id of a coupon definition in "
                                     "GET /points/offers)")
        if self._value(definition) is None:
            raise Refusal("coupon", f"offer {offer_id}: its promotion is no longer in the promotion book",
                          offer_id=offer_id, reason="its promotion is no longer in the promotion book")
        held = (await self._held(member, [offer_id])).get(offer_id, 0)
        reason = cp.exchangeable(definition, held, row["issued_count"], self.cloud.now_ms())
        if reason:
            raise Refusal("coupon", f"offer {offer_id}: {reason}; no points were taken", offer_id=offer_id,
                          reason=reason)
        return definition

    async def exchange(self, member: str, offer_id: str, key: str, digest: bytes) -> dict:
        exchange_id = "px-" + hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=12).hexdigest()
        row = await self.get(exchange_id)
        if row is None:  # a new exchange: judged now, at the price the definition says now
            definition = await self._offer(member, offer_id)
            await self.cloud.db.execute(
                """insert into points_exchanges (exchange_id, member_id, offer_id, points, definition_id, request_hash,
                       state, created_ms, updated_ms) values ($1, $2, $3, $4, $5, $6, 'redeeming', $7, $7)
                   on conflict (exchange_id) do nothing""",
                exchange_id, member, offer_id, definition.points_price, definition.definition_id, digest,
                self.cloud.now_ms())
            row = await self.get(exchange_id)
        if bytes(row["request_hash"]) != digest:
            raise Refusal("key_reused", f"Idempotency-Key {key!r} was used for another exchange ({row['offer_id']})")
        row = await self._carry_on(row)
        return self._answer(row)

    def _answer(self, row) -> dict:
        if row["state"] == "refused":
            raise Refusal("payment", row["detail"], exchange_id=row["exchange_id"])
        if row["state"] == "returned":
            raise Refusal("unavailable", f"the coupon could not be issued ({row['detail']}); the points were given "
                                         "back", exchange_id=row["exchange_id"])
        return exchange_json(row)

    async def _carry_on(self, row):
        """The exchange taken as far as it goes: redeemed, then issued or given back."""
        xid, ledger = row["exchange_id"], self.cloud.actors.member_ledger
        if row["state"] == "redeeming":
            result = (await ledger.send(RedeemPoints(id=redeem_id(xid), member=row["member_id"],
                                                     points=row["points"]))).settled
            if result.status != "ok":
                await self._set(xid, "redeeming", "refused", detail=f"{result.reason}: the offer needs {row['points']} "
                                f"points, the member has {result.get('points')}")
                return await self.get(xid)
            await self._set(xid, "redeeming", "redeemed")
            await self._changed(row["member_id"])
            row = await self.get(xid)
        if row["state"] == "redeemed":
            try:
                coupon = await self.issue_coupon(row["member_id"], row["definition_id"], f"points exchange {xid}",
                                                 xid)
            except CouponIssueFailed as failed:
                await self._return(row, str(failed))
            else:
                await self._set(xid, "redeemed", "issued", coupon=json.dumps(coupon))
        return await self.get(xid)

    async def _return(self, row, why: str) -> None:
        result = await self.cloud.actors.member_ledger.send(GrantPoints(
            id=give_back_id(row["exchange_id"]), member=row["member_id"], points=row["points"], why=why[:200]))
        if not result.succeeded:  # stays redeemed: the sweeper tries the issue (and this) again
            log.error("exchange %s: points not given back yet: %s", row["exchange_id"], result.settled.reason)
            return
        if await self._set(row["exchange_id"], "redeemed", "returned", detail=why[:500]):
            await self._changed(row["member_id"])

    async def _set(self, xid: str, was: str, state: str, detail: str | None = None, coupon: str | None = None) -> bool:
        return bool(await self.cloud.db.fetchval(
            "update points_exchanges set state = $3, detail = coalesce($4, detail), coupon = coalesce($5::jsonb, coupon), "
            "updated_ms = $6 where exchange_id = $1 and state = $2 returning 1",
            xid, was, state, detail, coupon, self.cloud.now_ms()))

    async def _changed(self, member: str) -> None:
        if self.on_balance_changed is not None:
            await self.on_balance_changed(member)

    async def list(self, member: str) -> dict:
        rows = await self.cloud.db.fetch("select * from points_exchanges where member_id = $1 "
                                         "order by created_ms desc limit 100", member)
        return {"exchanges": [exchange_json(r) for r in rows]}

    async def sweep(self) -> int:
        """Exchanges a crash or an unanswered ledger left half-way, finished with the same ids."""
        rows = await self.cloud.db.fetch(
            "select * from points_exchanges where state in ('redeeming', 'redeemed') and updated_ms < $1 "
            "order by updated_ms limit $2", self.cloud.now_ms() - SAGA_GRACE_MS, SWEEP_BATCH_MAX)
        for row in rows:
            await self._carry_on(row)
        return len(rows)
