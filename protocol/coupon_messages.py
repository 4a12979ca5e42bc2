"""Coupons at the till, on the wire (issue 17 item 1).

- `CouponHoldRequested` -> `CouponHoldAnswered` (core NATS request/reply on `fm.store.<store>.coupon.hold`, like the
  stored-value hold): the till asks the cloud to reserve a scanned coupon for a lane's cart for a short time; the
  answer names the coupon's promotion rule (what the till prices with) or why not.
- `CouponReleased` (`.coupon.release`): the cart was voided; the hold goes back now (else it lapses).
- `CouponWalletRequested` -> `CouponWalletAnswered` (`fm.store.<store>.coupon.wallet`): the member's coupons usable
  at this store's tills, asked when the member is identified online: the box's snapshot for an offline period.
- `CouponRedeemed` (an edge event, committed with its sale): the till used the code on that sale, online against a
  hold (`hold_id`) or offline from the snapshot. The cloud marks the code redeemed exactly once; a code it finds
  redeemed elsewhere already is a CONFLICT it records and reports (the sale stands: the goods left).
"""
from __future__ import annotations

from typing import ClassVar

from protocol.coupons import CouponCodeError, normalise
from protocol.messages import Message, check_lane
from protocol.promotion_uses import SAVING_FEN_MAX
from protocol.schema import record, require

HOLD_ID_MAX_CHARS = 120
WALLET_MAX = 50  # coupons in one snapshot answer
SUBJECTS_ALL = "fm.store.*.coupon.>"
QUEUE = "coupons"  # the cloud's queue group: any one cloud process answers each request


def store_subject(store_id: str, what: str) -> str:
    return f"fm.store.{store_id}.coupon.{what}"


def _code(code: str, where: str) -> None:
    try:
        require(normalise(code) == code, f"{where}: {code!r} is not in canonical form")
    except CouponCodeError as exc:
        require(False, f"{where}: {exc}")


def _member(member_id: str, where: str) -> None:
    require(0 < len(member_id) <= 64, f"{where}: a member id")


@record
class CouponHoldRequested(Message):
    KIND: ClassVar[str] = "coupon.hold"
    hold_id: str  # the cart's hold: "<lane>:<nonce>", made by the till
    code: str
    member_id: str
    lane: str

    def check(self) -> None:
        require(0 < len(self.hold_id) <= HOLD_ID_MAX_CHARS, "coupon.hold.hold_id: 1..120 characters")
        _code(self.code, "coupon.hold.code")
        _member(self.member_id, "coupon.hold.member_id")
        check_lane(self.lane, "coupon.hold.lane")


@record
class CouponReleased(Message):
    """The lane's cart was voided: the coupon held for it goes back to the member now rather than when it lapses.
    Answered by a `CouponHoldAnswered` (not granted, "released")."""
    KIND: ClassVar[str] = "coupon.release"
    hold_id: str
    code: str

    def check(self) -> None:
        require(0 < len(self.hold_id) <= HOLD_ID_MAX_CHARS, "coupon.release.hold_id: 1..120 characters")
        _code(self.code, "coupon.release.code")


@record
class CouponHoldAnswered(Message):
    KIND: ClassVar[str] = "coupon.hold_answer"
    hold_id: str
    code: str
    granted: bool
    reason: str  # why not ("" when granted)
    rule_id: str  # the coupon's promotion rule ("" when refused)
    expires_ms: int  # the hold lapses then unless a sale names it


@record
class KnownCoupon:
    code: str
    rule_id: str
    valid_from_ms: int
    valid_until_ms: int


@record
class CouponWalletRequested(Message):
    KIND: ClassVar[str] = "coupon.wallet"
    member_id: str

    def check(self) -> None:
        _member(self.member_id, "coupon.wallet.member_id")


@record
class CouponWalletAnswered(Message):
    KIND: ClassVar[str] = "coupon.wallet_answer"
    member_id: str
    coupons: tuple[KnownCoupon, ...]

    def check(self) -> None:
        require(len(self.coupons) <= WALLET_MAX, f"coupon.wallet_answer: at most {WALLET_MAX} coupons")


@record
class CouponRedeemed(Message):
    """The till used `code` on sale `sale_id` of `member_id` (committed with the sale, in one transaction)."""
    KIND: ClassVar[str] = "coupon.redeemed"
    code: str
    sale_id: str
    member_id: str
    lane: str
    hold_id: str  # the cloud's hold it was sold against; "" when sold offline from the snapshot
    offline: bool
    rule_id: str
    saving_fen: int

    def check(self) -> None:
        _code(self.code, "coupon.redeemed.code")
        _member(self.member_id, "coupon.redeemed.member_id")
        check_lane(self.lane, "coupon.redeemed.lane")
        require(0 < len(self.sale_id) <= 64, "coupon.redeemed.sale_id: 1..64 characters")
        require(len(self.hold_id) <= HOLD_ID_MAX_CHARS, "coupon.redeemed.hold_id: at most 120 characters")
        require(self.offline == (self.hold_id == ""), "coupon.redeemed: online names its hold, offline none")
        require(0 <= self.saving_fen <= SAVING_FEN_MAX, f"coupon.redeemed.saving_fen: 0..{SAVING_FEN_MAX}")


EDGE_COUPON_EVENTS: tuple[type[Message], ...] = (CouponRedeemed,)
COUPON_REQUESTS: tuple[type[Message], ...] = (CouponHoldRequested, CouponHoldAnswered, CouponReleased,
                                              CouponWalletRequested, CouponWalletAnswered)
