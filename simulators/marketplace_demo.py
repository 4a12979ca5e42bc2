"""The demo's marketplace (issue 23): HQ gives the simulated marketplace a share of a store's online escrow of a few
packed goods, through the public API; the marketplace's customers buy what the platform offers (what the cloud
pushed there), and now and then one cancels before the store packs it. The stores' back rooms pick those orders
like the mall's; the platform's rider collects and delivers them.

Counts (into the demo's Counter): `marketplace_shares_set`, `marketplace_orders` (accepted by the platform),
`marketplace_sold_out` (the platform offered fewer units), `marketplace_cancelled` (by its customer),
`marketplace_refused:<status>` (a request the platform or the cloud refused; one never stops the rest).
`summary(db, since_ms)` counts what the cloud made of them, from its database.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter

from loadtest.http import CLIENT_ERRORS, LeanClients

MARKETPLACE = "simmkt"
SHARE_BP = 3_000  # of the store's online escrow of each SKU
SKUS = 4  # packed online goods the marketplace is given a share of
ORDERS_PER_S = 0.5
CANCEL_SHARE = 0.15  # of the platform's orders: its customer cancels before the store packs it


class MarketplaceShoppers:
    """HQ's shares at `store`, then the platform's customers, until `stop`."""

    def __init__(self, cloud_url: str, operator: dict, market_url: str, store: str, skus: list[str],
                 rng: random.Random, counts: Counter, stop: asyncio.Event) -> None:
        self.cloud_url, self.operator, self.market_url = cloud_url, operator, market_url
        self.store, self.skus, self.rng, self.counts, self.stop = store, skus[:SKUS], rng, counts, stop
        self.refusals: dict[str, str] = {}

    async def share(self, http: LeanClients) -> None:
        for sku in self.skus:
            r = await http.put(f"{self.cloud_url}/stores/{self.store}/marketplaces/{MARKETPLACE}/share",
                               json={"sku": sku, "ratio_bp": SHARE_BP}, headers=self.operator)
            self._count(r, "marketplace_shares_set")

    def _count(self, r, ok: str) -> bool:
        if r.status_code < 300:
            self.counts[ok] += 1
            return True
        key = f"marketplace_refused:{r.status_code}"
        self.counts[key] += 1
        self.refusals.setdefault(key, r.text[:300])
        return False

    async def run(self, http: LeanClients) -> None:
        await self.share(http)
        while not self.stop.is_set():
            await asyncio.sleep(self.rng.expovariate(ORDERS_PER_S))
            try:
                await self._one(http)
            except CLIENT_ERRORS as exc:  # the platform is a process of its own: one lost request, the next goes on
                self.counts[f"marketplace_refused:{type(exc).__name__}"] += 1

    async def _one(self, http: LeanClients) -> None:
        items = (await http.get(f"{self.market_url}/sim/shops/{self.store}/items")).json()["items"]
        offered = [i for i in items if i.get("stock", 0) > 0 and i.get("price_fen")]
        if not offered:
            self.counts["marketplace_sold_out"] += 1
            return
        item = self.rng.choice(offered)
        r = await http.post(f"{self.market_url}/sim/orders", json={
            "shop_id": self.store, "items": [{"sku": item["sku"], "qty": self.rng.randint(1, min(2, item["stock"]))}],
            "customer": {"name": "李先生", "phone": f"139{self.rng.randrange(10**8):08d}"}})
        if r.status_code == 409:  # the platform's figure fell meanwhile
            self.counts["marketplace_sold_out"] += 1
            return
        if not self._count(r, "marketplace_orders") or self.rng.random() >= CANCEL_SHARE:
            return
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))  # changes their mind before the store packs it
        cancelled = await http.post(f"{self.market_url}/sim/orders/{r.json()['order_id']}/cancel")
        if cancelled.status_code == 200:
            self.counts["marketplace_cancelled"] += 1
        elif cancelled.status_code != 409:  # 409: packed already, too late (the platform says so)
            self._count(cancelled, "marketplace_cancelled")


async def summary(db, since_ms: int) -> dict:
    """From the cloud's database (an asyncpg connection or pool): the marketplaces' orders since `since_ms` by our
    status (`not_taken`: cancelled on the platform before we took it), and the units their channels hold now."""
    rows = await db.fetch(
        """select coalesce(o.status, 'not_taken') as status, count(*) as n
           from marketplace_orders l left join orders o using (order_id)
           where l.created_ms >= $1 group by 1""", since_ms)
    by_status = {r["status"]: r["n"] for r in rows}
    return {"orders": sum(by_status.values()), "by_status": by_status,
            "delivered": by_status.get("delivered", 0), "rejected": by_status.get("rejected", 0),
            "cancelled": by_status.get("cancelled", 0)}
