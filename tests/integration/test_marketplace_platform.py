"""The simulated marketplace as a service of its own, driven through the chain's adapter (real HTTP both ways, no
cloud): signed requests only; the shop sells no more than the stock the merchant pushed; orders pushed to the
merchant as signed webhooks with the platform's own ids, confirmed, packed and delivered by the platform's rider,
rejected or cancelled (their units offered again), timed out when never confirmed; refunds asked and decided;
webhooks resent until the merchant answers 2xx, and sometimes twice. A small receiver started here plays the
merchant, believing only what `HttpMarketplace.read_webhook` believes."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from cloud.embedded.process import free_port
from cloud.services.marketplace_api import HttpMarketplace, MarketplaceRefused, Webhook
from cloud.services.partner_http import BadCallback
from simulators import marketplace
from simulators.sim_http import serving

pytestmark = pytest.mark.integration
KEY, SECRET = "mkt-app-test", "secret-for-the-simulated-marketplace"
SHOP = "S078"
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class Merchant:
    """The chain's webhook endpoint, as far as this test needs: believes a webhook only through the adapter; fails
    the first push of the events named in `fail_first` (the platform must push again)."""

    def __init__(self) -> None:
        self.adapter: HttpMarketplace | None = None
        self.heard: list[Webhook] = []
        self.disbelieved: list[str] = []
        self.fail_first: set[str] = set()

    async def endpoint(self, request):
        assert self.adapter is not None
        try:
            hook = self.adapter.read_webhook(request.headers, await request.body())
        except BadCallback as bad:
            self.disbelieved.append(bad.detail)
            return JSONResponse({"code": "bad"}, status_code=bad.status)
        if hook.event in self.fail_first:
            self.fail_first.discard(hook.event)
            return JSONResponse({"code": "busy"}, status_code=503)
        self.heard.append(hook)
        return JSONResponse({"code": 0})

    async def wait_for(self, event: str, order_id: str, count: int = 1) -> list[Webhook]:
        for _ in range(200):
            found = [h for h in self.heard if h.event == event and h.order_id == order_id]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {event} for {order_id}: heard {[(h.event, h.order_id) for h in self.heard]}")


async def test_a_shop_sells_what_was_pushed_and_orders_travel_as_signed_webhooks():
    merchant = Merchant()
    async with serving(Starlette(routes=[Route("/hook", merchant.endpoint, methods=["POST"])]), 0, "merchant") as cb, \
            httpx.AsyncClient(timeout=10) as customers:
        settings = marketplace.Settings(KEY, SECRET, f"{cb}/hook", rider_delay_ms=50, step_ms=50,
                                        confirm_timeout_ms=1_500, seed=3)
        async with serving(marketplace.build_app(settings), 0, marketplace.LABEL) as url:
            adapter = merchant.adapter = HttpMarketplace("simmkt", url, KEY, SECRET, Clock())
            forged = HttpMarketplace("simmkt", url, KEY, "not-the-secret", Clock())
            try:
                with pytest.raises(MarketplaceRefused) as refused:
                    await forged.push_stock(SHOP, {"A1": 100})
                assert refused.value.status == 401 and refused.value.code == "SIGN_ERROR"
                with pytest.raises(MarketplaceRefused) as refused:
                    await adapter.push_stock(SHOP, {"A1\x00": 1})
                assert refused.value.status == 400 and "sku" in refused.value.message
                await adapter.push_stock(SHOP, {"A1": 3, "B2": 5})
                await adapter.push_prices(SHOP, {"A1": (990, "苹果"), "B2": (450, "香蕉")})
                shown = (await customers.get(f"{url}/sim/shops/{SHOP}/items")).json()["items"]
                assert [(i["sku"], i["stock"], i["price_fen"]) for i in shown] == [("A1", 3, 990), ("B2", 5, 450)]

                # the shop sells no more than it offers
                too_many = await customers.post(f"{url}/sim/orders", json={"shop_id": SHOP,
                                                                          "items": [{"sku": "A1", "qty": 4}]})
                assert too_many.status_code == 409 and too_many.json()["offered"] == {"A1": 3}
                bad = await customers.post(f"{url}/sim/orders", json={"shop_id": SHOP, "items": [{"sku": "A1"}]})
                assert bad.status_code == 400 and "qty" in bad.json()["message"]
                placed = await customers.post(f"{url}/sim/orders", json={
                    "shop_id": SHOP, "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
                    "customer": {"name": "王小明", "phone": "13912345678"}})
                assert placed.status_code == 201, placed.text
                oid = placed.json()["order_id"]
                assert oid.startswith("MK") and placed.json()["total_fen"] == 2 * 990 + 450
                (created,) = await merchant.wait_for("order.created", oid)
                assert created.shop_id == SHOP and created.total_fen == 2430
                assert [(x.sku, x.qty, x.price_fen) for x in created.lines] == [("A1", 2, 990), ("B2", 1, 450)]
                assert created.customer == {"name": "王**", "phone": "139****5678"}  # masked by the platform
                assert (await adapter.order(oid))["status"] == "created"

                # confirmed, packed: the platform's rider collects and delivers it; a refund asked and agreed
                merchant.fail_first = {"order.picked_up"}  # the merchant was down once: pushed again
                with pytest.raises(MarketplaceRefused) as refused:
                    await adapter.ready(oid)
                assert refused.value.status == 409  # packed before taking it: refused
                assert (await adapter.confirm(oid))["status"] == "confirmed"
                assert (await adapter.ready(oid))["status"] == "ready"
                await merchant.wait_for("order.picked_up", oid)
                await merchant.wait_for("order.delivered", oid)
                refund = await customers.post(f"{url}/sim/orders/{oid}/refund",
                                              json={"items": [{"sku": "A1", "qty": 1}], "reason": "bruised"})
                assert refund.status_code == 201 and refund.json()["amount_fen"] == 990
                (asked,) = await merchant.wait_for("refund.requested", oid)
                assert (asked.refund_id, asked.amount_fen, asked.reason) == (refund.json()["refund_id"], 990, "bruised")
                assert (await adapter.agree_refund(asked.refund_id))["status"] == "agreed"
                (decided,) = await merchant.wait_for("refund.decided", oid)
                assert decided.status == "agreed"

                # cancelled by its customer, rejected by the merchant, never confirmed: each units offered again
                ids = []
                for _ in range(3):
                    r = await customers.post(f"{url}/sim/orders", json={"shop_id": SHOP,
                                                                        "items": [{"sku": "B2", "qty": 1}]})
                    assert r.status_code == 201, r.text
                    ids.append(r.json()["order_id"])
                assert (await customers.post(f"{url}/sim/orders/{ids[0]}/cancel")).status_code == 200
                await adapter.reject(ids[1], "out of stock at the store")
                reasons = {}
                for oid_ in ids:
                    (cancelled,) = await merchant.wait_for("order.cancelled", oid_)
                    reasons[oid_] = cancelled.reason
                assert reasons == {ids[0]: "customer_cancelled", ids[1]: "merchant_rejected",
                                   ids[2]: "merchant_timeout"}
                shown = {i["sku"]: i["stock"] for i in (await customers.get(f"{url}/sim/shops/{SHOP}/items")).json()
                         ["items"]}
                assert shown == {"A1": 1, "B2": 4}  # 5 - the delivered one; the three ended ones back
                with pytest.raises(MarketplaceRefused):
                    await adapter.confirm(ids[2])  # too late: the platform cancelled it

                market = await customers.get(f"{url}/sim/webhooks", params={"order_id": oid})
                answers = [status for _, status in market.json()["answers"]]
                assert answers.count(503) == 1 and answers.count(200) == len(market.json()["webhooks"])
                assert merchant.disbelieved == []
            finally:
                await adapter.close()
                await forged.close()


async def test_webhooks_are_sometimes_sent_twice_with_the_same_id_and_forged_ones_are_not_believed():
    merchant = Merchant()
    async with serving(Starlette(routes=[Route("/hook", merchant.endpoint, methods=["POST"])]), 0, "merchant") as cb, \
            httpx.AsyncClient(timeout=10) as client:
        settings = marketplace.Settings(KEY, SECRET, f"{cb}/hook", duplicate_rate=1.0, delay_ms=20, seed=5)
        async with serving(marketplace.build_app(settings), 0, marketplace.LABEL) as url:
            adapter = merchant.adapter = HttpMarketplace("simmkt", url, KEY, SECRET, Clock())
            try:
                await adapter.push_stock(SHOP, {"A1": 2})
                oid = (await client.post(f"{url}/sim/orders", json={"shop_id": SHOP, "items": [
                    {"sku": "A1", "qty": 1}]})).json()["order_id"]
                twice = await merchant.wait_for("order.created", oid, count=2)
                assert twice[0].event_id == twice[1].event_id  # the merchant tells a duplicate by its id
                # a webhook not signed with the app secret, or malformed, is not believed
                forged = await client.post(f"{cb}/hook", json={"event": "order.cancelled", "event_id": "x",
                                                              "order_id": oid, "at_ms": 1})
                assert forged.status_code == 401
                raw = b'{"event":"order.created","event_id":"e1","at_ms":1,"order":{"order_id":"MK1"}}'
                headers = marketplace.SIGNING.signed_headers(KEY, SECRET, int(time.time()), "n1", raw)
                malformed = await client.post(f"{cb}/hook", content=raw, headers=headers)
                assert malformed.status_code == 400
                assert any("signature" in d for d in merchant.disbelieved)
                assert any("shop_id" in d for d in merchant.disbelieved), merchant.disbelieved
            finally:
                await adapter.close()


async def test_freshmesh_sim_marketplace_runs_in_the_foreground_and_stops_on_sigterm():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "simulators.cli", "sim", "marketplace", "--port", str(port),
                             "--callback-url", "http://127.0.0.1:9/hook"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "FRESHMESH_MARKETPLACE_APP_KEY": KEY,
                                 "FRESHMESH_MARKETPLACE_APP_SECRET": SECRET})
    try:
        first = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert first.strip() == f"{marketplace.LABEL}: http://127.0.0.1:{port}"
        adapter = HttpMarketplace("simmkt", f"http://127.0.0.1:{port}", KEY, SECRET, Clock())
        assert (await adapter.push_stock(SHOP, {"A1": 7}))["updated"] == 1
        await adapter.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=15)
        assert proc.returncode == 0, out
        assert SECRET not in out  # the secret is never printed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
