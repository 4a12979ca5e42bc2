"""Coupons issued by what the stores report (issue 17 item 1): "spend >= 50 at a till -> a 10-yuan online coupon".

Guarantees:
- A till sale with a member (`SaleCommitted`) whose total reaches a definition's `till_spend` trigger issues that
  member one coupon of it, in the bridge's transaction with the sale's event id (`record`), under the source
  `sale:<event id>`: a redelivered sale finds its coupon and issues nothing more; a store never names the coupon,
  so it cannot mint one (the cloud decides from the sale it believes).
- The definition's limits hold here as for a campaign (its row lock); a definition scoped to stores triggers only
  on sales of those stores; a definition whose window ended issues nothing.
"""
from __future__ import annotations

import json
import logging

from cloud.services.coupons import issue_in
from protocol.messages import Message, SaleCommitted

log = logging.getLogger("freshmesh.coupons")


async def record(conn, events: list[Message]) -> None:
    sales = [e for e in events if isinstance(e, SaleCommitted) and e.member_id]
    if not sales:
        return
    triggers = await conn.fetch("select definition_id, trigger_min_fen, body from coupon_definitions "
                                "where trigger_min_fen is not null order by definition_id")
    for sale in sales:
        for t in triggers:
            stores = _stores(t["body"])
            if sale.total_fen < t["trigger_min_fen"] or (stores and sale.store_id not in stores):
                continue
            assert sale.member_id is not None
            _, refused = await issue_in(conn, t["definition_id"], [sale.member_id], f"sale:{sale.event_id}",
                                        "till_spend", f"till:{sale.store_id}", sale.wall_ms)
            if refused:
                log.info("sale %s at %s: no %s coupon (%s)", sale.sale_id, sale.store_id, t["definition_id"],
                         refused[sale.member_id])


def _stores(body) -> list[str]:
    return list((json.loads(body) if isinstance(body, str) else body).get("stores", []))
