"""The mall's flash sales: the list of sales running now and coming up, and one sale's page (live countdown to its
start or end, units left, the buy button and every answer the gate can give).

Guarantees:
- The page shows what `GET /flash-sales/{id}` answers (the same service call), and its script keeps reading that
  public endpoint for the units left; buying is the public `POST /flash-sales/{id}/orders` with a flash pass from
  `POST /auth/passes` (cloud/mall/static/flash.js): no back door.
- One purchase attempt has one Idempotency-Key, made in the browser when the customer presses buy and REUSED for
  every retry of that attempt (429 throttled, honouring Retry-After; a lost answer; a lapsed pass), so a retry can
  never buy twice; the key is dropped only once the gate has given a final answer.
- The list shows only this deployment's sales (a shared database may hold other deployments' sales, whose gates
  this cloud does not run), running first, then upcoming, soonest first.
"""
from __future__ import annotations

import json

from cloud.mall import i18n, shelf
from cloud.mall.pages import lang_of, mall_error, mall_page
from cloud.services.verdicts import Refusal
from protocol.clock import parse_rfc3339, to_rfc3339

LISTED_MAX = 20


def phase(now_ms: int, starts_ms: int, ends_ms: int, remaining: int) -> str:
    """Where a sale is for a customer: not_started, running, sold_out or ended (ended wins over sold out). Pure."""
    if now_ms >= ends_ms:
        return "ended"
    if remaining <= 0:
        return "sold_out"
    return "not_started" if now_ms < starts_ms else "running"


def listed(rows: list[dict], now_ms: int, prefix: str | None, catalogue) -> list[dict]:
    """Sale rows (`{sale_id, config}`) as list entries: this deployment's (`prefix`), not ended, of a product the
    catalogue knows; running first (soonest ending), then upcoming (soonest starting). Pure."""
    out = []
    for row in rows:
        config = row["config"] if isinstance(row["config"], dict) else json.loads(row["config"])
        product = catalogue.by_sku.get(config.get("sku", ""))
        if product is None or config.get("actors", prefix) != prefix or int(config["ends_ms"]) <= now_ms:
            continue
        starts, ends = int(config["starts_ms"]), int(config["ends_ms"])
        out.append({"sale_id": row["sale_id"], "sku": product.sku, "name": product.name,
                    **{k: shelf.tile(product, None)[k] for k in ("colour", "letter")}, "price_fen": config["price_fen"],
                    "list_fen": product.price_fen, "quantity": config["quantity"],
                    "running": starts <= now_ms, "starts_at": to_rfc3339(starts), "ends_at": to_rfc3339(ends),
                    "starts_ms": starts, "ends_ms": ends})
    out.sort(key=lambda s: (not s["running"], s["ends_ms"] if s["running"] else s["starts_ms"]))
    return out[:LISTED_MAX]


def routes(services) -> list[tuple]:
    cloud = services.cloud

    async def flash_list(request):
        now = cloud.now_ms()
        rows = await cloud.db.fetch("select sale_id, config from flash_sales where (config->>'ends_ms')::bigint > $1 "
                                    "order by (config->>'ends_ms')::bigint limit 200", now)
        sales = listed([dict(r) for r in rows], now, cloud.shards.prefix, cloud.world.catalogue)
        return mall_page(request, services, "flash_list.html", {"sales": sales, "now_ms": now}, title=i18n.words(
            lang_of(request))["flash_list"])

    async def flash_page(request):
        sale_id = request.path_params["sale_id"]
        words = i18n.words(lang_of(request))
        try:
            sale = await services.flash.status(sale_id)
        except Refusal as refusal:
            if refusal.kind != "not_found":
                raise
            return mall_error(request, services, 404, words["page_missing"])
        product = cloud.world.catalogue.by_sku.get(sale["sku"])
        if product is None:
            return mall_error(request, services, 404, words["product_missing"])
        starts_ms, ends_ms = parse_rfc3339(sale["starts_at"]), parse_rfc3339(sale["ends_at"])
        return mall_page(request, services, "flash_sale.html", {
            "sale": sale, "p": shelf.tile(product, None), "list_fen": product.price_fen,
            "phase": phase(cloud.now_ms(), starts_ms, ends_ms, sale["remaining"]), "starts_ms": starts_ms,
            "ends_ms": ends_ms, "now_ms": cloud.now_ms()}, title=product.name)

    return [("/mall/flash", flash_list, ["GET"]), ("/mall/flash/{sale_id}", flash_page, ["GET"])]

