"""Points exchanged for coupons (issue 17.5): `POST /members/{id}/points/exchange {"offer_id"}`.

Guarantees:
- One exchange per (member, Idempotency-Key): its id derives from them, it is journaled in `points_exchanges`
  before anything moves, a retry answers as the first, and the same key with another body is refused (409).
- The offer's points are redeemed once per exchange (`RedeemPoints` under `protocol.points.redeem_id`), refused
  past the member's balance (409 `insufficient points`: nothing is journaled as taken).
- The coupon is issued through the seam `issue_coupon` with the exchange's id as its issue id (so the coupons part
  issues once however often it is asked); when the issue fails the points are given back once (`GrantPoints`
  under `give_back_id`) and the exchange ends `returned`.
- `sweep` finishes an exchange a crash left half-way (asked again with the same ids).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from actors.member_ledger import GrantPoints, RedeemPoints
from cloud.services.verdicts import Refusal
from protocol.clock import to_rfc3339
from protocol.money_saga import SAGA_GRACE_MS
from protocol.points import give_back_id, points_value_fen, redeem_id

log = logging.getLogger("freshmesh.points")
# The offers points buy: offer id -> (points, the coupon definition it issues, what the member sees). The coupon
# definitions are the coupons part's (cloud/services/coupons.py); these ids are the ones it is to define.
EXCHANGE_OFFERS: dict[str, dict[str, Any]] = {
    "points-5y": {"points": 600, "definition_id": "points-exchange-5y", "title": "5元优惠券 / 5-yuan coupon"},
    "points-10y": {"points": 1_100, "definition_id": "points-exchange-10y", "title": "10元优惠券 / 10-yuan coupon"},
}
SWEEP_BATCH_MAX = 100


class CouponIssueFailed(Exception):
    """The coupon could not be issued (the definition is closed, out of its total, …): the points go back."""


async def issue_coupon(member_id: str, definition_id: str, why: str, issue_id: str) -> dict:
    """Issue one coupon of `definition_id` into the member's wallet, idempotent by `issue_id`; returns the coupon as
    the coupons part shows it (at least {"coupon_id"}), or raises CouponIssueFailed saying why.

    Filled by the coupons part at merge (cloud/services/coupons.py). Until then the exchange is recorded in
    `points_exchanges` (its `coupon` column) and this answers the coupon that is owed: `coupon_id` is the issue id,
    `state` says it is not in a wallet yet."""
    return {"coupon_id": issue_id, "definition_id": definition_id, "member_id": member_id, "why": why,
            "state": "owed: issued when the coupons part is merged"}


def exchange_json(row) -> dict:
    body = {"exchange_id": row["exchange_id"], "offer_id": row["offer_id"], "points": row["points"],
            "definition_id": row["definition_id"], "state": row["state"],
            "created_at": to_rfc3339(row["created_ms"])}
    if row["coupon"]:
        body["coupon"] = json.loads(row["coupon"])
    if row["detail"]:
        body["detail"] = row["detail"]
    return body


def offers_json() -> list[dict]:
    return [{"offer_id": oid, "points": o["points"], "worth_fen": points_value_fen(o["points"]),
             "definition_id": o["definition_id"], "title": o["title"]} for oid, o in sorted(EXCHANGE_OFFERS.items())]


class PointsExchange:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        # the seam to the coupons part; replaced by its issuer at merge (and by tests that make an issue fail)
        self.issue_coupon: Callable[[str, str, str, str], Awaitable[dict]] = issue_coupon
        self.on_balance_changed: Callable[[str], Awaitable[None]] | None = None

    async def get(self, exchange_id: str):
        return await self.cloud.db.fetchrow("select * from points_exchanges where exchange_id = $1", exchange_id)

    async def exchange(self, member: str, offer_id: str, key: str, digest: bytes) -> dict:
        offer = EXCHANGE_OFFERS.get(offer_id)
        if offer is None:
            raise Refusal("invalid", f"offer_id: no offer {offer_id!r} (one of {sorted(EXCHANGE_OFFERS)})")
        exchange_id = "px-" + hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=12).hexdigest()
        now = self.cloud.now_ms()
        await self.cloud.db.execute(
            """insert into points_exchanges (exchange_id, member_id, offer_id, points, definition_id, request_hash,
                   state, created_ms, updated_ms) values ($1, $2, $3, $4, $5, $6, 'redeeming', $7, $7)
               on conflict (exchange_id) do nothing""",
            exchange_id, member, offer_id, offer["points"], offer["definition_id"], digest, now)
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
