"""The mall's orders list, checkout slots, after-sales and a failed group buy in headless Chromium at phone size
(390x844), against one real cloud from the harness (PostgreSQL, NATS, Ray, the simulated SMS and wallet providers).
Customers sign in on the page with the code the simulated SMS provider delivered; what is checked is what the system
did, as the public API reads it back.

- A member's order at S065 (one place per slot there), handed over by the store (its own `PickupCompleted`, sent
  by a StoreLink as the box would): the orders page lists it from `GET /members/{id}/orders` (no browser memory),
  the checkout shows its slot full and disabled, the member centre asks for a refund of a line, and the operator's
  approval through the API shows on the page without a reload, with the money back.
- A group buy at S066 whose window (one minute, the shortest a rule may name) closes with one member of three:
  the group page shows it failed and the member's order refunded, and the stored value is whole again.

Isolation: stores S065 and S066 are this module's own, added to this module's cloud's world only, with stock
granted by a StoreLink (no box pulls their commands: no other module reads those streams); the group-buy rule
GB-MALL3-* is given to this module's cloud only. Screenshots at 390x844 and 1280x800 go under the test's tmp dir."""
from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from cloud.wiring import load_world_into_router
from cloud.world import World
from protocol import phones
from protocol.messages import PickupCompleted
from simulators.customer_auth import SignedIn
from tests.integration.harness import StoreLink, eventually, operator_headers, running_cloud, top_up
from tests.integration.test_console import chromium
from tests.integration.test_mall_member import (
    grant,
    new_phone,
    no_horizontal_scroll,
    phone_page,
    session_of,
    sign_in_on_page,
)

pytestmark = pytest.mark.integration
AFTER_STORE, GROUP_STORE = "S065", "S066"  # this module's own stores
AFTER_SKU, GROUP_SKU = "PAC-NOODLE-0207", "PAC-DUMPLI-0211"
RUN = uuid.uuid4().hex[:6]
GROUP_RULE = f"GB-MALL3-{RUN}"
GROUP_PRICE_FEN = 600
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 800}
SHOTS = Path()


def module_world() -> World:
    data = World.load().to_data()
    like = next(s for s in data["stores"] if s["store_id"] == "S002")
    data["stores"] += [dict(like, store_id=AFTER_STORE, name="Mall3 after-sales store", slot_capacity=1),
                       dict(like, store_id=GROUP_STORE, name="Mall3 group store")]
    rule = {"type": "group_buy", "id": GROUP_RULE, "name": "拼团 mall3", "skus": [GROUP_SKU],
            "group_price_fen": GROUP_PRICE_FEN, "group_size": 3, "window_min": 1}
    data["rule_book"] = {**data["rule_book"], "rules": [*data["rule_book"]["rules"], rule]}
    return World.from_data(data)


@pytest_asyncio.fixture(scope="module")
async def mall(stack, ray_runtime, tmp_path_factory):
    from playwright.async_api import async_playwright
    global SHOTS
    SHOTS = tmp_path_factory.mktemp("mall3-shots")
    async with running_cloud(stack, prefix=f"ml3{RUN}-") as (services, url):
        services.cloud.world = module_world()
        await load_world_into_router(services.cloud)  # S065 and S066: stores the router may plan at
        op = await operator_headers(services)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http, async_playwright() as pw:
            await grant(stack, AFTER_STORE, AFTER_SKU, 20, 10)
            await grant(stack, GROUP_STORE, GROUP_SKU, 20, 10)

            async def escrowed():
                rows = [(await http.get(f"/stores/{s}/stock", params={"sku": k})).json()["stock"]
                        for s, k in ((AFTER_STORE, AFTER_SKU), (GROUP_STORE, GROUP_SKU))]
                return all(r and r[0]["escrow"] > 0 for r in rows)
            assert await eventually(escrowed, timeout_s=30), "the stores' escrow never reached the cloud"
            browser = await pw.chromium.launch(executable_path=chromium(), headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
            try:
                yield services, http, url, op, browser, stack
            finally:
                await browser.close()


async def shots(page, name: str) -> None:
    """The page at phone size (checked for no horizontal scroll) and at desktop size, then back to the phone."""
    await no_horizontal_scroll(page)
    await page.evaluate("window.scrollTo(0, 0)")  # a full-page shot of a scrolled page draws the sticky header mid-page
    await page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(SHOTS / f"{name}-1280.png"), full_page=True)
    await page.set_viewport_size(PHONE)


async def signed_in(services, http, page, next_path: str, stored_value_fen: int) -> SignedIn:
    phone = new_phone()
    member = await sign_in_on_page(services, http, page, phone, next_path)
    who = SignedIn(member, await session_of(page), phones.normalise(phone))
    await top_up(services, http, who, stored_value_fen)  # set-up: stored value to pay with
    return who


async def test_orders_list_full_slot_and_an_after_sales_refund_decided_by_the_operator(mall):
    services, http, url, op, browser, stack = mall
    ctx, page = await phone_page(browser, url)
    try:
        who = await signed_in(services, http, page, "/mall/orders", 20_000)
        # the first slot the public cart price offers at S065, with its places (one: S065 takes one order a slot)
        cart = {"fulfilment": "pickup", "store_id": AFTER_STORE, "items": [{"sku": AFTER_SKU, "qty": 2}]}
        priced = (await http.post("/cart/price", json=cart, headers=who.headers)).json()
        slot = priced["slots"][0]
        assert (slot["capacity"], slot["left"], slot["full"]) == (1, 1, False), slot
        placed = []
        for qty in (2, 1):  # two orders: the second is the newest (its own slot, the first one's is full)
            body = {**cart, "items": [{"sku": AFTER_SKU, "qty": qty}], "slot_start": priced["slots"][len(placed)]["start"]}
            r = await http.post("/orders", json=body, headers={**who.headers, "Idempotency-Key": uuid.uuid4().hex})
            assert r.status_code == 201, r.text
            order = r.json()
            paid = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value"}, headers=who.headers)
            assert paid.json()["status"] == "paid", paid.text
            placed.append(order)
        first, newest = placed
        async with StoreLink(stack, AFTER_STORE) as link:  # the store hands the first over at its till
            await link.publish(PickupCompleted(**link.next_envelope(), order_id=first["order_id"],
                                               pickup_code=first["pickup_code"], lane="1"))

        async def picked_up():
            view = (await http.get(f"/orders/{first['order_id']}", headers=who.headers)).json()
            return view["status"] == "picked_up"
        assert await eventually(picked_up, timeout_s=20)

        # the orders page: both, newest first, from the API (this browser placed neither: nothing was remembered)
        assert await page.evaluate("localStorage.getItem('mall_orders')") is None
        await page.goto("/mall/orders")
        await page.wait_for_selector("#order-list li.order-row >> nth=1")
        rows = page.locator("#order-list li.order-row")
        assert [await rows.nth(i).get_attribute("data-order") for i in range(2)] == \
            [newest["order_id"], first["order_id"]]
        top = await rows.nth(1).text_content()
        assert "已取货" in top and f"¥{first['total_fen'] // 100}." in top and "到店自提" in top, top
        assert "Mall3 after-sales store" in top, top
        assert await rows.nth(1).locator("a").get_attribute("href") == f"/mall/orders/{first['order_id']}"
        await shots(page, "orders-list")

        # checkout at S065: the first slot is taken, shown full and disabled with the reason
        await page.evaluate(f"""localStorage.setItem('mall_cart', JSON.stringify([{{sku: '{AFTER_SKU}', qty: 1}}]));
            document.cookie = 'mall_store={AFTER_STORE}; path=/mall'""")
        await page.goto("/mall/checkout")
        await page.wait_for_selector("#slot option", state="attached")
        full = page.locator(f'#slot option[value="{slot["start"]}"]')
        assert await full.get_attribute("disabled") is not None and "已约满" in await full.text_content()
        assert await page.is_visible("#slot-note")
        assert await page.input_value("#slot") != slot["start"]  # a bookable one is chosen instead
        await shots(page, "checkout-slots")
        # delivery there: the fee, the free-delivery threshold and how much more makes it free
        site = services.cloud.world.stores[AFTER_STORE]
        await page.check('input[name="fulfilment"][value="delivery"]')
        await page.fill("#lat", str(site.lat))
        await page.fill("#lon", str(site.lon))
        await page.dispatch_event("#lon", "change")
        await page.wait_for_function("document.getElementById('delivery-terms').textContent.includes('免配送费')")
        terms = await page.text_content("#delivery-terms")
        priced = (await http.post("/cart/price", headers=who.headers, json={
            "fulfilment": "delivery", "location": {"lat": site.lat, "lon": site.lon},
            "items": [{"sku": AFTER_SKU, "qty": 1}]})).json()["delivery"]
        assert f"¥{priced['free_from_fen'] // 100}." in terms and "配送费" in terms, terms
        if priced["missing_for_free_fen"] > 0:
            hint = f"再买 ¥{priced['missing_for_free_fen'] // 100}.{priced['missing_for_free_fen'] % 100:02d} 免配送费"
            await page.wait_for_selector(f'#hints .hint:has-text("{hint}")')

        # after-sales in the member centre: a refund of the handed-over line
        await page.goto("/mall/me")
        await page.click(f'#orders button.ask[data-order="{first["order_id"]}"]')
        await page.fill("#after-reason", "面条包装破了")
        await page.click("#after-send")
        row = await page.wait_for_selector('#after-sales li[data-status="requested"]')
        assert "待处理" in await row.text_content()
        asked = (await http.get(f"/orders/{first['order_id']}/after-sales", headers=who.headers)).json()["requests"]
        assert [(r["status"], r["reason"], r["lines"][0]["sku"]) for r in asked] == \
            [("requested", "面条包装破了", AFTER_SKU)]
        await shots(page, "after-sales-requested")
        assert asked[0]["amount_fen"] > 0
        balance_before = (await http.get(f"/members/{who.member_id}", headers=who.headers)).json()["stored_value_fen"]

        # the operator approves through the API; the page shows it without a reload, and the money is back
        decided = await http.post(f"/operator/after-sales/{asked[0]['request_id']}/approve", headers=op)
        assert decided.status_code == 200 and decided.json()["status"] == "approved", decided.text
        row = await page.wait_for_selector(f'#after-sales li[data-request="{asked[0]["request_id"]}"]'
                                           '[data-status="approved"]', timeout=20_000)
        assert "已同意" in await row.text_content()

        async def refunded():
            me = (await http.get(f"/members/{who.member_id}", headers=who.headers)).json()
            return me["stored_value_fen"] == balance_before + asked[0]["amount_fen"]
        assert await eventually(refunded, timeout_s=20)
        # the member centre follows the decision into the order list and the balance too
        await page.wait_for_selector(f'#orders li[data-order="{first["order_id"]}"][data-status$="refunded"]',
                                     timeout=20_000)
        await page.wait_for_function(f"document.getElementById('balance').dataset.fen === "
                                     f"'{balance_before + asked[0]['amount_fen']}'")
        await shots(page, "after-sales-approved")
    finally:
        await ctx.close()


async def test_a_group_buy_short_of_members_when_its_window_closes_shows_failed_and_refunded(mall):
    services, http, url, op, browser, stack = mall
    ctx, page = await phone_page(browser, url)
    try:
        who = await signed_in(services, http, page, "/mall/me", 2_000)
        await page.goto(f"/mall/group-buys/{GROUP_RULE}")
        await page.select_option("#g-store", GROUP_STORE)
        await page.click("#open-group")
        await page.wait_for_url("**/mall/groups/*")
        await page.wait_for_selector('#mine-status[data-status="reserved"]')
        await page.click("#pay-group")
        await page.wait_for_selector('#mine-status[data-status="group_forming"]')
        group_id = page.url.rsplit("/", 1)[-1]
        order_id = (await page.get_attribute("#mine-link", "href")).rsplit("/", 1)[-1]
        order = (await http.get(f"/orders/{order_id}", headers=who.headers)).json()
        assert 0 < order["total_fen"] <= GROUP_PRICE_FEN, order  # the group price (and the book's other savings)
        me = (await http.get(f"/members/{who.member_id}", headers=who.headers)).json()
        assert me["stored_value_fen"] == 2_000 - order["total_fen"]
        await shots(page, "group-waiting")

        # the one-minute window closes with one member of three: the page shows the group failed, the order refunded
        await page.wait_for_selector('#group-state[data-status="failed"]', timeout=150_000)
        await page.wait_for_selector('#mine-status[data-status="refunded"], #mine-status[data-status="cancelled"]',
                                     timeout=30_000)
        assert "拼团失败" in await page.text_content("#group-state")
        assert "退" in await page.text_content("#group-note") and await page.is_hidden("#pay-group")
        assert await page.is_hidden("#join-form") and await page.is_hidden("#group-clock")
        view = (await http.get(f"/group-buys/{group_id}")).json()
        assert view["status"] == "failed", view  # its places given back with the money
        ended = (await http.get(f"/orders/{order_id}", headers=who.headers)).json()
        assert ended["status"] == await page.get_attribute("#mine-status", "data-status"), ended
        await page.wait_for_selector(f'#mine-status[data-refunded="{order["total_fen"]}"]')
        assert f"退款 ¥{order['total_fen'] // 100}.{order['total_fen'] % 100:02d}" in await page.text_content("#mine-status")
        assert await page.is_hidden(".share")  # a failed group is not shared any more

        async def whole_again():
            return (await http.get(f"/members/{who.member_id}", headers=who.headers)).json()["stored_value_fen"] == 2_000
        assert await eventually(whole_again, timeout_s=30)
        await shots(page, "group-failed")
    finally:
        await ctx.close()
