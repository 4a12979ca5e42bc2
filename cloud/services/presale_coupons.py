"""Coupons on a pre-sale order (issue 17 item 1 with issue 16 item 7): a pre-sale takes `coupons: [codes]` as any
online order does, through the one coupon authority (`cloud/services/coupons.py`).

Guarantees:
- The codes are checked exactly as for an order (`Coupons.check`: the member's, issued or already held for this very
  order, valid online at the pre-sale's store now; another member's, a redeemed or reserved one, one outside its
  channel, store or window are refused with the reason) and each must give its discount on the order as priced
  (`Coupons.unused`), before anything is held.
- The order is priced like any order (`MemberPricing.price`): the coupons, the member's level and the chain's
  budget-capped rules, consumed under its order id; a code the real pricing does not use goes back to the wallet
  (`Coupons.release_unused`) and the answer says so.
- The codes are reserved for the order all or none (`Coupons.hold`) before its slot is booked; from then on they
  follow the order like any order's (`Coupons.settle`): redeemed when it is paid, issued again when it is rejected,
  expires or is cancelled unpaid, given back when a paid pre-sale is cancelled (by its customer, or ended overdue).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

from cloud.services.coupons import Accepted
from protocol.pricing.rules import Gift


def no_gifts(orders, req, store: str, coupons) -> Any:
    """A pre-sale's pricing context: the order's, with every gift rule's SKU out. A pre-sale holds no stock until its
    own arrives, so a gift could be neither reserved nor handed over with it (and would consume a capped budget for
    nothing): no gift on a pre-sale, as no "spend more for a gift" hint either."""
    out = tuple(sorted({r.gift_sku for r in orders.cloud.world.rule_book.rules if isinstance(r, Gift)}))
    return dataclasses.replace(orders._context(req, store, coupons), gifts_out=out)  # noqa: SLF001


async def priced(orders, req, member: str, order_id: str, store: str) -> tuple[dict[str, Any], list[Accepted]]:
    """The pre-sale priced with its accepted coupons, which are now reserved for it, and the chain's capped rules
    consumed under its order id, as any order (`Orders.checked_coupons`, `Coupons.hold`, `Orders.price_held`) but
    with no gift (`no_gifts`); or a Refusal naming the code and why (nothing held)."""
    context = functools.partial(no_gifts, orders, req, store)
    coupons = await orders.checked_coupons(req, member, store, order_id, context)
    await orders.coupons.hold(order_id, member, store, coupons)  # all codes or none, atomically
    result, not_applied = await orders.price_held(req, member, order_id, store, coupons, context(coupons))
    if not_applied:
        result["coupons_not_applied"] = not_applied
    let_go = {n["code"] for n in not_applied}
    return result, [c for c in coupons if c.code not in let_go]
