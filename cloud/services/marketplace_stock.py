"""What each store offers on a marketplace, kept up to date there: the units of the marketplace's own part of the
store's online escrow (`actors/stock_pool.py`, channels), and the store's price in force.

Guarantees:
- Only SKUs HQ gave the marketplace a share of at the store (`cloud/services/channel_shares.py`) are offered; a share
  set to 0 offers 0, and so does a SKU that is no longer offered there (removed, or moved to another category).
- The marketplace is told the figure the StockPool holds for its channel, never more: what it may sell without
  overselling any other channel. Every `PUSH_EVERY_S` each store's changed figures go in one request (a till sale
  that took units back from the online escrow shows there within about a second), and every `FULL_EVERY_S` all of
  them again (a push lost on the way, or a marketplace that restarted, is repaired).
- Prices go with a SKU's first push and again when they change (a scheduled price coming into force).
- A push that fails is tried again at the next round; one store's failure never holds up the others.
"""
from __future__ import annotations

import asyncio
import logging
import time

from cloud.services.marketplace_api import HttpMarketplace, MarketplaceRefused, MarketplaceUnavailable
from protocol.pricing import price_book

log = logging.getLogger("freshmesh.marketplace")
PUSH_EVERY_S = 0.5
FULL_EVERY_S = 30.0


class MarketplaceStock:
    def __init__(self, cloud, market: HttpMarketplace) -> None:
        self.cloud, self.market = cloud, market
        self.pushed: dict[tuple[str, str], int] = {}  # (store, sku) -> units the marketplace was told
        self.priced: dict[tuple[str, str], int] = {}  # (store, sku) -> price the marketplace was told
        self.stats = {"stock_pushes": 0, "price_pushes": 0, "failed": 0}

    async def offered(self) -> dict[str, list[str]]:
        """store -> the SKUs HQ gave this marketplace a share of there (by SKU or by category)."""
        rows = await self.cloud.db.fetch("select store_id, scope, key from channel_shares where channel = $1",
                                         self.market.channel)
        catalogue = self.cloud.world.catalogue
        out: dict[str, set[str]] = {}
        for r in rows:
            if r["store_id"] not in self.cloud.world.stores:
                continue
            skus = [r["key"]] if r["scope"] == "sku" else [s for s, p in catalogue.by_sku.items()
                                                            if p.category == r["key"]]
            # loose goods sold by weight are not offered: a marketplace sells pieces (packs) at a price each
            out.setdefault(r["store_id"], set()).update(s for s in skus if s in catalogue and not catalogue.get(s).weighed)
        return {store: sorted(skus) for store, skus in out.items()}

    async def push_once(self, full: bool = False) -> int:
        """One round; returns how many stores were told something."""
        offered = await self.offered()
        dropped: dict[str, list[str]] = {}  # offered before, not now: told 0
        for (store, sku), units in self.pushed.items():
            if units and sku not in offered.get(store, ()):
                dropped.setdefault(store, []).append(sku)
        told = 0
        for store in sorted(set(offered) | set(dropped)):
            try:
                told += await self._push_store(store, offered.get(store, []), dropped.get(store, []), full)
            except (MarketplaceUnavailable, MarketplaceRefused) as exc:  # the next round tries again
                self.stats["failed"] += 1
                log.warning("marketplace %s: shop %s not updated: %s", self.market.marketplace, store, exc)
            except Exception:  # one shop's trouble never stops the others: logged, tried again next round
                self.stats["failed"] += 1
                log.exception("marketplace %s: shop %s not updated", self.market.marketplace, store)
        return told

    async def _push_store(self, store: str, skus: list[str], dropped: list[str], full: bool) -> int:
        found = await self.cloud.actors.stock_pool.availability([store], skus, channel=self.market.channel) \
            if skus else {}
        units = {**dict.fromkeys(dropped, 0), **found.get(store, {})}
        changed = {s: units.get(s, 0) for s in [*skus, *dropped]
                   if full or self.pushed.get((store, s)) != units.get(s, 0)}
        prices = self._prices(store, skus)
        repriced = {s: p for s, p in prices.items() if full or self.priced.get((store, s)) != p[0]}
        if repriced:  # before the stock: a SKU is never offered without its price
            await self.market.push_prices(store, repriced)
            self.priced.update({(store, s): p[0] for s, p in repriced.items()})
            self.stats["price_pushes"] += 1
        if changed:
            await self.market.push_stock(store, changed)
            self.pushed.update({(store, s): n for s, n in changed.items()})
            self.stats["stock_pushes"] += 1
        return int(bool(changed or repriced))

    def _prices(self, store: str, skus: list[str]) -> dict[str, tuple[int, str]]:
        catalogue, now = self.cloud.world.catalogue, self.cloud.now_ms()
        out = {}
        for sku in skus:
            product = catalogue.get(sku)
            fen, _ = price_book.in_force(product, [e for e in catalogue.prices if e.sku == sku], store, now)
            out[sku] = (fen, product.name)
        return out

    async def run(self) -> None:
        """Forever: a round every PUSH_EVERY_S, a full one every FULL_EVERY_S (the first one full)."""
        last_full = 0.0
        while True:
            full = time.monotonic() - last_full >= FULL_EVERY_S
            try:
                await self.push_once(full=full)
                if full:
                    last_full = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("marketplace %s: stock round failed: %s", self.market.marketplace, exc)
            await asyncio.sleep(PUSH_EVERY_S)
