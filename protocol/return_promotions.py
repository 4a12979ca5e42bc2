"""What a return undoes of the promotions its sale or order carried: the rules the cloud and the store boxes compute
identically. Pure: no I/O, no clock (times are passed in).

Coupons redeemed by a till sale (rule 1):
- A FULL return (every line of the sale back) gives the coupon back to its member: `issued` again if the return
  happened within the coupon's validity window (`coupon_back`), else it stays `redeemed` and the reason is recorded
  ("expired on ..."). The cloud is the authority for the coupon's state and applies this once per return event.
- A PARTIAL return keeps the coupon used. What is given back is the returned lines' share of what the customer
  actually paid: the evaluator spreads a coupon's saving over the lines it covered (`_spread`), so the sale's line
  amounts are already net of it, and `protocol.returns` shares out the paid total by those amounts - returns of a
  sale, however split, never give back more than was paid (`refund_lines`).

A till-spend coupon a sale triggered ("spend >= 50 at a till -> a 10-yuan online coupon", rule 2): once the
returns of the sale leave it keeping less than the trigger's minimum (`trigger_holds`), the coupon is voided if it is
still the member's unused (`issued`); one already used (reserved for an order or a cart, or redeemed) cannot be
taken back, so it is reported - an entry the operator sees with the coupon conflicts - never silently lost
(`trigger_outcome`).

Points that paid part of an online order (rule 4): a partial refund gives back points and money in the proportion the
order was paid (`points_split`), computed on the cumulative refunds of the order, so however the refunds are split
neither part ever gives back more than was paid in it, and the refund that brings the order to all of it back gives
back exactly what is left of each.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol.points import points_for_fen, points_value_fen

COUPON_BACK = "coupon_returned"  # a full return: the coupon is the member's again (issued)
COUPON_KEPT_EXPIRED = "coupon_kept_expired"  # a full return after the coupon's window: it stays redeemed
TRIGGER_VOIDED = "trigger_voided"  # the trigger coupon of a sale now under the minimum, unused: voided
TRIGGER_USED = "trigger_used"  # the same, already used: kept by the member, reported to the operator
POINTS_SHORT = "points_short"  # a till return given fewer points than it asked (its receipt printed): no code
EFFECTS = (COUPON_BACK, COUPON_KEPT_EXPIRED, TRIGGER_VOIDED, TRIGGER_USED, POINTS_SHORT)


def coupon_back(valid_until_ms: int, returned_at_ms: int) -> tuple[str, str]:
    """(effect, why) of a full return on a coupon its sale redeemed: back to the wallet while still valid."""
    if returned_at_ms < valid_until_ms:
        return COUPON_BACK, "the sale was returned in full: the coupon is the member's again"
    return COUPON_KEPT_EXPIRED, (f"the sale was returned in full, but the coupon's validity ended at "
                                 f"{valid_until_ms} (epoch ms), before the return: it stays redeemed")


def trigger_holds(total_fen: int, returned_fen: int, min_fen: int) -> bool:
    """Whether what the customer keeps of a till sale (its total less what its returns gave back) still reaches a
    till-spend trigger's minimum."""
    return total_fen - returned_fen >= min_fen


def trigger_outcome(status: str, total_fen: int, returned_fen: int, min_fen: int) -> tuple[str, str] | None:
    """What a return does to a till-spend coupon its sale triggered: None (the sale still qualifies, or the coupon
    is voided already), or (TRIGGER_VOIDED | TRIGGER_USED, why)."""
    if trigger_holds(total_fen, returned_fen, min_fen) or status == "voided":
        return None
    kept = total_fen - returned_fen
    why = (f"the sale's returns leave {kept} fen kept of {total_fen} fen, under the {min_fen} fen the coupon was "
           "given for")
    if status == "issued":
        return TRIGGER_VOIDED, f"{why}: voided unused"
    return TRIGGER_USED, f"{why}, but it was {status} already: the member keeps it; reported"


@dataclass(frozen=True, slots=True)
class PointsPaid:
    """How an online order was paid: its total, and the points that paid part of it (0: none)."""
    total_fen: int
    points: int

    @property
    def points_fen(self) -> int:
        return points_value_fen(self.points)


def points_split(paid: PointsPaid, value_before_fen: int, points_back_before: int, amount_fen: int
                 ) -> tuple[int, int]:
    """(money fen, points) a partial refund worth `amount_fen` gives back. `value_before_fen`: everything the
    order's refunds gave back before (money, and the value of points); `points_back_before`: the points they gave
    back. The points given back in all are the order's points in the proportion of the value given back in all
    (rounded down; all of them once the whole total is back), the rest of the amount is money."""
    if amount_fen <= 0 or paid.points <= 0 or paid.total_fen <= 0:
        return max(amount_fen, 0), 0
    after = min(value_before_fen + amount_fen, paid.total_fen)
    all_points = paid.points if after >= paid.total_fen else paid.points * after // paid.total_fen
    points = max(all_points - points_back_before, 0)
    points = min(points, points_for_fen(amount_fen))  # never worth more than this refund
    return amount_fen - points_value_fen(points), points
