"""Restock events from the stores, on the cloud's side (issue 16 item 7): believed, recorded once, and the trigger
for pre-sale orders waiting for stock.

Guarantees:
- A `RestockAlerted` is believed only for a product of the catalogue and an alert id no other store used; a
  `RestockCleared` only for an alert of the store that sends it (`protocol.restock_messages.judge`). Anything else
  is refused with the reason through the bridge's normal path (dead-lettered, the store told `refused`).
- Recorded in the bridge's transaction with the event ids (`record`): an alert once by its id, a clear once (the
  first clear stands), so a redelivery changes nothing.
- After a batch is applied (`after`), every store whose escrow grew in it (a receiving granted the cloud its
  share) has its waiting pre-sale orders reserved for (`cloud.services.presale`); a failure there is logged and
  left to the pre-sale sweeper, never failing the batch (whose events are applied already).
- A new alert asks the nearest store with a surplus of the SKU for a transfer (`protocol.restock_transfers`,
  `cloud.services.transfers.request_transfer`, origin "restock"), unless a transfer of that SKU to that store is
  still open; the supplier's order covers the rest (`cloud.services.restock` counts what is on its way). A holder's
  stock is its last reported on-hand less what its open online orders still take off its shelf; it keeps its own
  target (never less than its reorder point), so it is never pushed below its point by giving.
- Once per alert: `after` sees only the batch's new events (an alert's event id is applied once, by one bridge), and a
  store has one open alert per SKU. A crash between the commit and `after` loses the ask (not the alert): the
  supplier's suggested order still covers all of it.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from actors.order_router import distance_m
from protocol.messages import EscrowGranted, Message
from protocol.restock_messages import RestockAlerted, RestockCleared, judge
from protocol.restock_transfers import Holder, source

log = logging.getLogger("freshmesh.restock")


class StoreRestock:
    """Held by the bridge: `admit` judges a batch's restock events, `record` writes them, `after` wakes pre-sales."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.presales: Any = None  # set by the services (cloud.wiring): cloud/services/presale.py

    async def admit(self, events: list[Message]) -> dict[str, str]:
        mine = [e for e in events if isinstance(e, (RestockAlerted, RestockCleared))]
        if not mine:
            return {}
        owners = {r["alert_id"]: r["store_id"] for r in await self.cloud.db.fetch(
            "select alert_id, store_id from restock_alerts where alert_id = any($1::text[])",
            [e.alert_id for e in mine])}
        return judge(mine, self.cloud.world.catalogue.by_sku, owners)

    async def record(self, conn, events: list[Message]) -> None:
        alerts = [e for e in events if isinstance(e, RestockAlerted)]
        clears = [e for e in events if isinstance(e, RestockCleared)]
        if alerts:
            await conn.executemany(
                """insert into restock_alerts (alert_id, event_id, store_id, sku, on_hand, owed, reorder_point, target,
                       suggested_qty, raised_ms) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                   on conflict do nothing""",
                [(e.alert_id, e.event_id, e.store_id, e.sku, e.on_hand, e.owed, e.reorder_point, e.target,
                  e.suggested_qty, e.wall_ms) for e in alerts])
        if clears:
            await conn.executemany("update restock_alerts set cleared_ms = $3, cleared_event = $4 where alert_id = $1 "
                                   "and store_id = $2 and cleared_ms is null",
                                   [(e.alert_id, e.store_id, e.wall_ms, e.event_id) for e in clears])

    async def after(self, events: list[Message]) -> None:
        for alert in (e for e in events if isinstance(e, RestockAlerted)):
            try:
                await shortage_transfer(self.cloud, alert)
            except Exception:  # noqa: BLE001 - the alert stands and the supplier's order is suggested anyway
                log.exception("no transfer asked for alert %s", alert.alert_id)
        if self.presales is None:
            return
        for store_id in sorted({e.store_id for e in events if isinstance(e, EscrowGranted)}):
            try:
                await self.presales.allocate(store_id)
            except Exception:  # noqa: BLE001 - see the module's guarantees: the sweeper tries again
                log.exception("pre-sale orders of store %s not reserved for now", store_id)


# Online orders a holder still owes from its shelf: reserved or paid and not yet picked (picking may have begun:
# counting those too only makes the holder keep more, never give away what an order needs). A flash order sold by
# the gate and not yet assigned has {"sale": id} for an allocation: no store's lines.
OWED_SQL = """
    select a.key as store_id, coalesce(sum((x->>'qty')::bigint), 0) as owed
    from orders o, jsonb_each(o.allocation) a,
         jsonb_array_elements(case when jsonb_typeof(a.value) = 'array' then a.value else '[]'::jsonb end) x
    where o.status = any($1::text[]) and x->>'sku' = $2 group by a.key"""
OWING = ("reserved", "paid", "picking")


async def shortage_transfer(cloud, alert: RestockAlerted) -> dict | None:
    """Ask the nearest store with a surplus of the alert's SKU to send some (see the module's guarantees)."""
    from cloud.services.transfers import request_transfer
    product, stores = cloud.world.catalogue.by_sku.get(alert.sku), cloud.world.stores
    short = stores.get(alert.store_id)
    if product is None or short is None or alert.suggested_qty <= 0:
        return None
    open_already = await cloud.db.fetchval(
        """select count(*) from transfers where to_store = $1 and status in ('requested', 'dispatched')
           and lines @> $2::jsonb""", alert.store_id, json.dumps([{"sku": alert.sku}]))
    if open_already:
        return None
    rows = await cloud.db.fetch(
        """select s.store_id, s.on_hand, p.reorder_point, p.target from store_stock s
           left join reorder_points p on p.store_id = s.store_id and p.sku = s.sku
           where s.sku = $1 and s.store_id <> $2 and s.on_hand > 0""", alert.sku, alert.store_id)
    owed = {r["store_id"]: int(r["owed"]) for r in await cloud.db.fetch(OWED_SQL, list(OWING), alert.sku)}
    holders = [Holder(r["store_id"], r["on_hand"] - owed.get(r["store_id"], 0), r["target"],
                      distance_m(short.lat, short.lon, stores[r["store_id"]].lat, stores[r["store_id"]].lon),
                      r["reorder_point"])
               for r in rows if r["store_id"] in stores]
    found = source(holders, alert.suggested_qty, product.weighed)
    if found is None:
        return None
    from_store, qty = found
    return await request_transfer(cloud, from_store, alert.store_id, [{"sku": alert.sku, "qty": qty}],
                                  f"restock alert {alert.alert_id}: {alert.store_id} short of {alert.sku}",
                                  cloud.now_ms(), origin="restock")
