"""The marketplace's edges without servers: signatures (protocol/partner_signing.py) never raise on hostile headers,
webhooks (cloud/services/marketplace_api.py) are believed only with ids fit for our URLs and keys, and the stock
pusher (cloud/services/marketplace_stock.py) tells the marketplace 0 for what a shop no longer offers and keeps
going past one shop's failure."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from cloud.services.marketplace_api import MarketplaceUnavailable, parse_webhook
from cloud.services.marketplace_stock import MarketplaceStock
from protocol.partner_signing import Scheme

MKT = Scheme("Mkt")
NOW_S = 1_767_225_600


def test_a_signature_verifies_and_hostile_headers_are_refused_with_a_reason_never_an_exception():
    body = b'{"event":"order.created"}'
    good = MKT.signed_headers("app", "secret", NOW_S, "n1", body)
    assert MKT.verify("app", "secret", good, body, NOW_S + 10) is None
    assert "does not verify" in MKT.verify("app", "other", good, body, NOW_S)
    assert "s away" in MKT.verify("app", "secret", good, body, NOW_S + 301)
    assert "not our app" in MKT.verify("other-app", "secret", good, body, NOW_S)
    for name, value in (("Mkt-Signature", "é" * 64), ("Mkt-Timestamp", "١٢٣"), ("Mkt-Nonce", "x" * 65),
                        ("Mkt-Timestamp", "9" * 13)):
        why = MKT.verify("app", "secret", {**good, name: value}, body, NOW_S)
        assert why is not None and "Mkt-" in why, (name, why)
    assert "missing" in MKT.verify("app", "secret", {}, body, NOW_S)


def created(**order) -> dict:
    return {"event": "order.created", "event_id": "e1", "at_ms": 1, "order": {
        "order_id": "MK1", "shop_id": "S001", "total_fen": 990, "items": [{"sku": "A1", "qty": 1, "price_fen": 990}],
        "customer": {"name": "王**", "phone": "139****5678"}, **order}}


def test_a_webhook_is_read_field_by_field_and_ids_must_fit_urls():
    hook = parse_webhook(created())
    assert (hook.order_id, hook.shop_id, hook.total_fen, hook.lines[0].sku, hook.customer["name"]) == \
        ("MK1", "S001", 990, "A1", "王**")
    for bad, why in ((created(order_id="../refunds/R1"), "order_id"), (created(order_id="MK\x001"), "order_id"),
                     (created(order_id=""), "order_id"), (created(items=[]), "items"),
                     (created(items=[{"sku": "A1", "qty": 0, "price_fen": 1}]), "qty"),
                     (created(items=[{"sku": "A\n1", "qty": 1, "price_fen": 1}]), "sku"),
                     (created(total_fen=True), "total_fen"), (created(customer=[1]), "customer"),
                     ({**created(), "event_id": "e 1"}, "event_id"), ({**created(), "event": "order.eaten"}, "event")):
        with pytest.raises(ValueError, match=why):
            parse_webhook(bad)
    cancelled = parse_webhook({"event": "order.cancelled", "event_id": "e2", "at_ms": 2, "order_id": "MK1",
                               "shop_id": "S001", "reason": "customer_cancelled"})
    assert (cancelled.event, cancelled.reason) == ("order.cancelled", "customer_cancelled")


class FakeMarket:
    marketplace, channel = "simmkt", "mkt:simmkt"

    def __init__(self, failing: set[str]) -> None:
        self.stock: dict[str, dict[str, int]] = {}
        self.failing = failing

    async def push_prices(self, shop, prices):
        if shop in self.failing:
            raise MarketplaceUnavailable("down")
        if shop == "S003":
            raise RuntimeError("a bug in one shop's data")

    async def push_stock(self, shop, units):
        self.stock.setdefault(shop, {}).update(units)


def cloud_with(rows: list[dict], units: dict[str, dict[str, int]]):
    product = SimpleNamespace(sku="", category="fruit", name="Apple", price_fen=990, member_prices=(), weighed=False)
    by_sku = {s: SimpleNamespace(**{**vars(product), "sku": s}) for s in ("A1", "B2")}
    by_sku["W9"] = SimpleNamespace(**{**vars(product), "sku": "W9", "weighed": True})  # loose, by weight
    class Catalogue(SimpleNamespace):
        def __contains__(self, sku):
            return sku in by_sku
    catalogue = Catalogue(by_sku=by_sku, prices=[], get=by_sku.__getitem__)

    async def fetch(_sql, _channel):
        return rows

    async def availability(stores, skus, channel):
        assert channel == "mkt:simmkt"
        return {s: {k: units.get(s, {}).get(k, 0) for k in skus} for s in stores}
    return SimpleNamespace(db=SimpleNamespace(fetch=fetch), now_ms=lambda: 0,
                           world=SimpleNamespace(catalogue=catalogue, stores={"S001": 1, "S002": 1, "S003": 1}),
                           actors=SimpleNamespace(stock_pool=SimpleNamespace(availability=availability)))


def test_the_pusher_offers_what_is_shared_zeroes_what_no_longer_is_and_one_shop_never_stops_the_others():
    rows = [{"store_id": "S001", "scope": "sku", "key": "A1"}, {"store_id": "S001", "scope": "sku", "key": "B2"},
            {"store_id": "S002", "scope": "sku", "key": "A1"}, {"store_id": "S003", "scope": "sku", "key": "A1"},
            {"store_id": "S001", "scope": "sku", "key": "W9"}]  # sold by weight: never offered on a marketplace
    market = FakeMarket(failing={"S002"})
    pusher = MarketplaceStock(cloud_with(rows, {"S001": {"A1": 4, "B2": 2}, "S002": {"A1": 1}}), market)
    assert asyncio.run(pusher.push_once(full=True)) == 1  # S002's marketplace is down, S003's data is bad: S001 told
    assert market.stock == {"S001": {"A1": 4, "B2": 2}} and pusher.stats["failed"] == 2
    # B2 is no longer shared at S001: the marketplace is told 0 for it; nothing else changed, nothing else is sent
    rows[:] = [r for r in rows if r["key"] != "B2"]
    market.stock.clear()
    asyncio.run(pusher.push_once())
    assert market.stock == {"S001": {"B2": 0}}
