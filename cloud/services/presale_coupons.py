"""Coupons on a pre-sale order (issue 17 item 1 with issue 16 item 7): a pre-sale takes `coupons: [codes]` as any
online order does, through the one coupon authority (`cloud/services/coupons.py`).

Guarantees:
- The codes are checked exactly as for an order (`Coupons.check`: the member's, issued or already held for this very
  order, valid online at the pre-sale's store now; another member's, a redeemed or reserved one, one outside its
  channel, store or window are refused with the reason) and each must give its discount on the order as priced
  (`Coupons.unused`), before anything is held.
- The order is priced once, with the coupons and the member's level; capped rules are at 0 (a pre-sale consumes no
  budget: `MemberPricing.with_level`), so a coupon of a budget-capped rule is refused with the reason.
- The codes are reserved for the order all or none (`Coupons.hold`) before its slot is booked; from then on they
  follow the order like any order's (`Coupons.settle`): redeemed when it is paid, issued again when it is rejected,
  expires or is cancelled unpaid, given back when a paid pre-sale is cancelled (by its customer, or ended overdue).
"""
from __future__ import annotations

from typing import Any

from cloud.services.coupons import Accepted
from cloud.services.verdicts import Refusal


async def priced(orders, req, member: str, order_id: str, store: str) -> tuple[dict[str, Any], list[Accepted]]:
    """The pre-sale priced with its accepted coupons, which are now reserved for it; or a Refusal naming the code
    and why (nothing held)."""
    coupons = await orders.coupons.check(req.coupons, member, store, order_id)
    ctx = await orders.member_pricing.with_level(member, orders._context(req, store, coupons))  # noqa: SLF001
    result = orders._price(req, store, ctx)  # noqa: SLF001
    if coupons:
        capped = {b.rule_id for b in ctx.budgets_left}  # each at 0 here: a pre-sale spends no promotion budget
        for c in coupons:
            if c.rule_id in capped and c.rule_id not in result["coupons_used"]:
                reason = "its promotion has a budget, and a pre-sale spends none: order it without this coupon"
                raise Refusal("coupon", f"coupon {c.code}: {reason}", coupon=c.code, reason=reason)
        orders.coupons.unused(coupons, result["coupons_used"])  # each must give its discount
        await orders.coupons.hold(order_id, member, store, coupons)  # all codes or none, atomically
    return result, coupons
