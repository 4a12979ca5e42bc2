"""Coupons at the tills, on the cloud's side: the tills' requests over NATS request/reply (`fm.store.*.coupon.>`,
queue group `coupons`: any cloud process answers).

Guarantees:
- A hold request reserves the coupon for the lane's cart (its `hold_id`) for `TILL_HOLD_TTL_MS`, in one conditional
  UPDATE (`... status = 'issued' ...`): a coupon reserved for an order, redeemed, another member's, not valid at the
  till or this store, or outside its window is refused with the reason (`protocol.coupons.redeemable`), and an
  online order racing the till for the same code loses or wins whole. A hold no sale names lapses (the sweeper,
  `Coupons.settle`), back to the wallet.
- A request is answered only on the asking store's own inbox and only for a store asking on its own subject (as
  the stored-value desk: a store cannot make the cloud publish elsewhere). Requests in flight are bounded; past the
  bound the till times out and works offline, within its allowance.
- A wallet request answers the member's issued coupons usable at that store's tills now (at most
  `protocol.coupon_messages.WALLET_MAX`): the box's snapshot for an offline period. A store gets at most
  `WALLETS_PER_STORE_PER_MINUTE` of them a minute (every store knows every member, so the pace is the bound).
"""
from __future__ import annotations

import json
import logging

from cloud.messaging.store_desk import StoreDesk
from cloud.services.coupons import ISSUED_AGAIN, coupon_of
from protocol import coupons as cp
from protocol.coupon_messages import (
    QUEUE,
    SUBJECTS_ALL,
    WALLET_MAX,
    CouponHoldAnswered,
    CouponHoldRequested,
    CouponReleased,
    CouponWalletAnswered,
    CouponWalletRequested,
    KnownCoupon,
)
from protocol.pricing.rules import Coupon as CouponRule

TILL_HOLD_TTL_MS = 10 * 60_000  # a cart's coupon: time enough to finish the sale; it lapses if none names it
REQUESTS_IN_FLIGHT_MAX = 500
WALLETS_PER_STORE_PER_MINUTE = 60  # a till asks once per member identified; past it a store is harvesting wallets
log = logging.getLogger("freshmesh.coupons")


class CouponDesk(StoreDesk):
    """Answers the tills' coupon hold, release and wallet requests (`fm.store.*.coupon.>`, queue group `coupons`)."""

    subject = SUBJECTS_ALL
    queue = QUEUE
    kinds = (CouponHoldRequested, CouponReleased, CouponWalletRequested)
    in_flight_max = REQUESTS_IN_FLIGHT_MAX
    log = log
    what = "coupon"
    kind_name = "coupon"
    stats_keys = ("holds", "granted", "wallets")

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        self.stats["wallets_refused"] = 0
        self._wallets: dict[str, tuple[int, int]] = {}  # store -> (minute, wallet requests answered in it)

    def admit(self, request, store_id: str) -> bool:
        if isinstance(request, CouponWalletRequested) and not self._wallet_allowed(store_id):
            self.stats["wallets_refused"] += 1
            log.warning("store %s asked for more than %d members' coupons a minute: not answered", store_id,
                        WALLETS_PER_STORE_PER_MINUTE)
            return False  # the till times out and works from the snapshot it has
        return True

    async def decide(self, request, store_id: str) -> CouponHoldAnswered | CouponWalletAnswered:
        return await (self.hold(request) if isinstance(request, CouponHoldRequested) else
                      self.release(request) if isinstance(request, CouponReleased) else self.wallet(request))

    def _wallet_allowed(self, store_id: str) -> bool:
        """At most `WALLETS_PER_STORE_PER_MINUTE` wallet snapshots a store per minute (per cloud process): every
        store's member cache holds every member, so a store cannot be limited to its own members; it is limited to
        the pace of its tills identifying them."""
        minute = self.cloud.now_ms() // 60_000
        at, n = self._wallets.get(store_id, (minute, 0))
        n = n if at == minute else 0
        if n >= WALLETS_PER_STORE_PER_MINUTE:
            return False
        if len(self._wallets) > 10_000:
            self._wallets.clear()
        self._wallets[store_id] = (minute, n + 1)
        return True

    def _envelope(self, request) -> dict:
        return {"event_id": self.cloud.ids.new(), "store_id": request.store_id, "seq": 0,
                "wall_ms": self.cloud.now_ms(), "mono_ms": 0}

    async def _row(self, code: str):
        return await self.cloud.db.fetchrow("select c.*, d.body, d.rule_id from coupons c join coupon_definitions d "
                                            "using (definition_id) where c.code = $1", code)

    async def hold(self, request: CouponHoldRequested) -> CouponHoldAnswered:
        self.stats["holds"] += 1
        now, store = self.cloud.now_ms(), request.store_id
        row = await self._row(request.code)
        reason = cp.redeemable(coupon_of(row) if row else None, request.member_id, "offline", store, now,
                               holder=request.hold_id)
        rule = self.cloud.world.rule_book.by_id.get(row["rule_id"]) if row else None
        if reason is None and not isinstance(rule, CouponRule):
            reason = "its promotion is no longer in the promotion book"
        if reason is None:
            held = await self.cloud.db.fetchval(
                """update coupons set status = 'reserved', reserved_for = $2, reserved_until_ms = $5, channel = 'offline',
                       store_id = $4
                   where code = $1 and member_id = $3 and valid_from_ms <= $6 and valid_until_ms > $6
                     and (status = 'issued' or (status = 'reserved' and reserved_for = $2 and channel = 'offline'
                                                and store_id = $4)) returning code""",
                request.code, request.hold_id, request.member_id, store, now + TILL_HOLD_TTL_MS, now)
            if held is None:  # an order or another till took it meanwhile: say what it is now
                row = await self._row(request.code)
                mine = row["channel"] == "offline" and row["store_id"] == store  # a till's hold, not an order's
                reason = cp.redeemable(coupon_of(row), request.member_id, "offline", store, now,
                                       holder=request.hold_id if mine else None) or "taken meanwhile"
        granted = reason is None
        self.stats["granted"] += granted
        return CouponHoldAnswered(**self._envelope(request), hold_id=request.hold_id, code=request.code,
                                  granted=granted, reason=reason or "",
                                  rule_id=rule.id if granted and isinstance(rule, CouponRule) else "",
                                  expires_ms=now + TILL_HOLD_TTL_MS if granted else 0)

    async def release(self, request: CouponReleased) -> CouponHoldAnswered:
        """Only the store's own hold goes back (the hold id and the store both match), and only while it is held."""
        await self.cloud.db.execute(
            f"update coupons set {ISSUED_AGAIN} where code = $1 and status = 'reserved' "  # noqa: S608 - fixed text
            "and reserved_for = $2 and channel = 'offline' and store_id = $3", request.code, request.hold_id,
            request.store_id)
        return CouponHoldAnswered(**self._envelope(request), hold_id=request.hold_id, code=request.code,
                                  granted=False, reason="released", rule_id="", expires_ms=0)

    async def wallet(self, request: CouponWalletRequested) -> CouponWalletAnswered:
        self.stats["wallets"] += 1
        now = self.cloud.now_ms()
        rows = await self.cloud.db.fetch(
            "select c.*, d.body, d.rule_id from coupons c join coupon_definitions d using (definition_id) "
            "where c.member_id = $1 and c.status = 'issued' and c.valid_until_ms > $2 order by c.valid_until_ms",
            request.member_id, now)
        known = []
        for row in rows:
            body = json.loads(row["body"]) if isinstance(row["body"], str) else row["body"]
            stores = body.get("stores") or []
            if "offline" in body["channels"] and (not stores or request.store_id in stores):
                known.append(KnownCoupon(code=row["code"], rule_id=row["rule_id"], valid_from_ms=row["valid_from_ms"],
                                         valid_until_ms=row["valid_until_ms"]))
        return CouponWalletAnswered(**self._envelope(request), member_id=request.member_id,
                                    coupons=tuple(known[:WALLET_MAX]))
