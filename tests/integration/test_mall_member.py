"""The mall's flash-sale, group-buy and member-centre pages in headless Chromium at phone size (390x844), against a
real cloud from the harness (PostgreSQL, NATS, Ray, the simulated SMS and wallet providers). Customers sign in on the
page with the code the simulated SMS provider delivered; every action is a click on the page, which calls the public
API. What is checked is what the system did (orders, prices, balances, coupons) as the public API reads it back.

Isolation: stores S059 (the flash sale's escrow) and S060 (the group buy's pickups) are this module's own, added to
this module's cloud's world only, with their stock granted by a StoreLink (no box pulls their commands: no other
module reads those streams); the group-buy rule GB-MALL2-* and the points offer mall2-* are this module's, the rule
given to this module's cloud only. Screenshots at 390x844 and 1280x800 are saved under the test's tmp dir."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from actors.member_ledger import GrantPoints
from cloud.wiring import load_world_into_router
from cloud.world import World
from protocol import phones
from protocol.messages import EscrowGranted, StockMoved
from simulators.customer_auth import SignedIn
from tests.integration.harness import (
    StoreLink,
    customer,
    eventually,
    operator_headers,
    pay_in_wallet,
    running_cloud,
    top_up,
)
from tests.integration.test_console import chromium

pytestmark = pytest.mark.integration
FLASH_STORE, GROUP_STORE = "S059", "S060"  # this module's own stores
FLASH_SKU, GROUP_SKU = "PAC-NOODLE-0206", "PAC-DUMPLI-0210"
RUN = uuid.uuid4().hex[:6]
GROUP_RULE = f"GB-MALL2-{RUN}"
GROUP_PRICE_FEN, FLASH_PRICE_FEN = 500, 300
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 800}
SHOTS = Path()


def module_world() -> World:
    data = World.load().to_data()
    like = next(s for s in data["stores"] if s["store_id"] == "S002")
    data["stores"] += [dict(like, store_id=FLASH_STORE, name="Mall2 flash store"),
                       dict(like, store_id=GROUP_STORE, name="Mall2 group store")]
    rule = {"type": "group_buy", "id": GROUP_RULE, "name": "拼团 mall2", "skus": [GROUP_SKU],
            "group_price_fen": GROUP_PRICE_FEN, "group_size": 3}
    data["rule_book"] = {**data["rule_book"], "rules": [*data["rule_book"]["rules"], rule]}
    return World.from_data(data)


async def grant(stack, store: str, sku: str, on_hand: int, escrow: int) -> None:
    async with StoreLink(stack, store) as link:
        await link.publish(StockMoved(**link.next_envelope(), sku=sku, delta=on_hand, reason="receiving",
                                      shrinkage_reason="", on_hand_after=on_hand, reference=""))
        await link.publish(EscrowGranted(**link.next_envelope(), sku=sku, qty=escrow, escrow_after=escrow))


@pytest_asyncio.fixture(scope="module")
async def mall(stack, ray_runtime, tmp_path_factory):
    from playwright.async_api import async_playwright
    global SHOTS
    SHOTS = tmp_path_factory.mktemp("mall2-shots")
    async with running_cloud(stack, prefix=f"ml2{RUN}-") as (services, url):
        services.cloud.world = module_world()
        await load_world_into_router(services.cloud)  # S059 and S060: stores the router may plan at
        op = await operator_headers(services)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http, async_playwright() as pw:
            await grant(stack, FLASH_STORE, FLASH_SKU, 10, 4)
            await grant(stack, GROUP_STORE, GROUP_SKU, 50, 20)

            async def escrowed():
                rows = [(await http.get(f"/stores/{s}/stock", params={"sku": k})).json()["stock"]
                        for s, k in ((FLASH_STORE, FLASH_SKU), (GROUP_STORE, GROUP_SKU))]
                return all(r and r[0]["escrow"] > 0 for r in rows)
            assert await eventually(escrowed, timeout_s=30), "the stores' escrow never reached the cloud"
            browser = await pw.chromium.launch(executable_path=chromium(), headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
            try:
                yield services, http, url, op, browser
            finally:
                await browser.close()


async def phone_page(browser, url: str):
    context = await browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True,
                                        base_url=url, accept_downloads=True)
    return context, await context.new_page()


async def sign_in_on_page(services, http, page, phone: str, next_path: str) -> str:
    """The customer signs in on the mall's page with the code the simulated SMS provider delivered; their member."""
    inbox = services.identity.sms.inbox
    e164 = phones.normalise(phone)
    seen = len(await inbox.messages(http, e164))
    await page.goto(f"/mall/signin?next={next_path}")
    await page.fill("#phone", phone)
    await page.click("#send-code")
    code = await inbox.code_after(http, e164, seen)
    await page.fill("#code", code)
    await page.click("#signin-submit")
    await page.wait_for_url(lambda u: "/mall/signin" not in u and u.endswith(next_path))
    return await page.evaluate("localStorage.getItem('mall_member')")


def new_phone() -> str:
    return f"13{uuid.uuid4().int % 10**9:09d}"


async def no_horizontal_scroll(page) -> None:
    width = await page.evaluate("() => document.scrollingElement.scrollWidth")
    wide = await page.evaluate("""(w) => [...document.querySelectorAll('body *')].filter(e => e.offsetParent &&
        e.getBoundingClientRect().right > w).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)""",
                               PHONE["width"])
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen: {wide}"


async def shots(page, name: str) -> None:
    """The page at phone size (checked for no horizontal scroll) and at desktop size, then back to the phone."""
    await no_horizontal_scroll(page)
    await page.evaluate("window.scrollTo(0, 0)")  # a full-page shot of a scrolled page draws the sticky header mid-page
    await page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(SHOTS / f"{name}-1280.png"), full_page=True)
    await page.set_viewport_size(PHONE)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def session_of(page) -> str:
    return await page.evaluate("localStorage.getItem('mall_token')")


# ---- flash sale: bought through the page; a second customer is told it is sold out --------------------------------
async def test_a_flash_sale_is_bought_on_the_page_and_a_second_customer_sees_it_sold_out(mall):
    services, http, url, op, browser = mall
    now = datetime.now(UTC)
    made = await http.post("/flash-sales", headers=op, json={
        "sku": FLASH_SKU, "quantity": 1, "price_fen": FLASH_PRICE_FEN,
        "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
        "per_member_limit": 1, "rate_per_s": 1000, "stores": [FLASH_STORE]})
    assert made.status_code == 201, made.text
    sale = made.json()["sale_id"]

    first_ctx, first = await phone_page(browser, url)
    second_ctx, second = await phone_page(browser, url)
    try:
        buyer = await sign_in_on_page(services, http, first, new_phone(), f"/mall/flash/{sale}")
        await first.wait_for_selector('#sale[data-phase="running"]')
        # the product's letter stays white on its colour (mall2.css's member-centre figures once turned it green)
        assert await first.eval_on_selector(".pic.big", "e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
        await first.wait_for_function("document.getElementById('countdown').textContent.includes(':')")
        assert await first.text_content("#remaining") and not await first.is_disabled("#buy")
        listed = await first.request.get(f"{url}/mall/flash")
        assert f'data-sale="{sale}"' in await listed.text()
        await shots(first, "flash-running")

        await first.click("#buy")
        await first.wait_for_selector("#won:not([hidden])")
        assert await first.is_hidden("#buy")  # won: the attempt is over
        href = await first.get_attribute("#order-link", "href")
        order_id = href.rsplit("/", 1)[-1]
        assert href == f"/mall/orders/{order_id}"
        await first.wait_for_function("document.getElementById('pay-by').textContent.length > 0", timeout=20_000)
        order = (await http.get(f"/orders/{order_id}", headers=bearer(await session_of(first)))).json()
        assert order["member_id"] == buyer and order["total_fen"] == FLASH_PRICE_FEN and order["expires_at"]
        status = (await http.get(f"/flash-sales/{sale}")).json()
        assert (status["sold"], status["remaining"]) == (1, 0)

        await sign_in_on_page(services, http, second, new_phone(), f"/mall/flash/{sale}")
        await second.wait_for_selector('#flash-state[data-state="sold_out"]')
        assert await second.is_disabled("#buy")
        assert "已抢光" in await second.text_content("#flash-state")
        await shots(second, "flash-sold-out")
        # nothing was sold to the second customer
        assert (await http.get(f"/flash-sales/{sale}")).json()["sold"] == 1
    finally:
        await first_ctx.close()
        await second_ctx.close()


async def test_a_throttled_and_a_lost_answer_are_retried_with_the_same_key_and_buy_once(mall):
    """The gate's 429 (Retry-After) and an answer lost on the way back are what a busy sale gives a phone: the page
    retries by itself with the SAME Idempotency-Key, so the member ends with one order, not two."""
    services, http, url, op, browser = mall
    now = datetime.now(UTC)
    made = await http.post("/flash-sales", headers=op, json={
        "sku": FLASH_SKU, "quantity": 2, "price_fen": FLASH_PRICE_FEN,
        "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
        "per_member_limit": 2, "rate_per_s": 1000, "stores": [FLASH_STORE]})
    assert made.status_code == 201, made.text
    sale = made.json()["sale_id"]
    ctx, page = await phone_page(browser, url)
    keys: list[str] = []

    async def busy_then_lost(route):
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:  # what the gate answers a crowd
            await route.fulfill(status=429, headers={"Retry-After": "2", "Content-Type": "application/problem+json"},
                                body=json.dumps({"type": "/problems/throttled", "title": "Too many requests",
                                                 "status": 429, "detail": "too many requests for this sale"}))
        elif len(keys) == 2:  # the order is made, but its answer never reaches the phone
            await route.fetch()
            await route.abort("connectionreset")
        else:
            await route.continue_()
    try:
        await sign_in_on_page(services, http, page, new_phone(), f"/mall/flash/{sale}")
        await page.route(f"**/flash-sales/{sale}/orders", busy_then_lost)
        await page.click("#buy")
        await page.wait_for_selector('#flash-state[data-state="throttled"]')
        assert "秒后自动重试" in await page.text_content("#flash-state")
        await page.wait_for_selector("#won:not([hidden])", timeout=30_000)
        assert len(keys) == 3 and len(set(keys)) == 1, keys
        status = (await http.get(f"/flash-sales/{sale}")).json()
        assert (status["sold"], status["remaining"]) == (1, 1)  # one order for the one attempt
    finally:
        await ctx.close()


# ---- group buy: three browser sessions, one opens and two join by the share link ----------------------------------
async def test_a_group_buy_is_formed_by_three_browser_sessions_at_the_group_price(mall):
    services, http, url, op, browser = mall
    pages = [await phone_page(browser, url) for _ in range(3)]
    try:
        people = []
        for _, page in pages:  # each signs in on the page; stored value to pay with (set-up, not under test)
            phone = new_phone()
            member = await sign_in_on_page(services, http, page, phone, "/mall/me")
            await top_up(services, http, SignedIn(member, await session_of(page), phones.normalise(phone)), 5_000)
            people.append(phone)
        leader_ctx, leader = pages[0]
        await leader.goto(f"/mall/group-buys/{GROUP_RULE}")
        await leader.select_option("#g-store", GROUP_STORE)
        await leader.click("#open-group")
        await leader.wait_for_url("**/mall/groups/*")
        await leader.wait_for_selector("#mine:not([hidden])")
        await leader.wait_for_selector('#mine-status[data-status="reserved"]')
        await leader.click("#pay-group")
        await leader.wait_for_selector('#mine-status[data-status="group_forming"]')
        assert await leader.is_hidden("#pay-group")  # paid: no second payment offered
        share = await leader.input_value("#share-url")
        group_id = share.rsplit("/", 1)[-1]
        assert share == f"{url}/mall/groups/{group_id}" and await leader.locator(".qr svg").count() == 1
        await leader.wait_for_selector('#group-state[data-status="open"]')
        assert "1/3" in await leader.text_content("#group-count") or "1 of 3" in await leader.text_content("#group-count")
        await leader.wait_for_function("document.getElementById('group-countdown').textContent.includes(':')")
        await shots(leader, "group-forming")

        for _, page in pages[1:]:
            await page.goto(share)  # the share link, opened by a signed-in customer
            await page.wait_for_selector("#join-form:not([hidden])")
            await page.select_option("#g-store", GROUP_STORE)
            await page.click("#join-group")
            await page.wait_for_selector('#mine-status[data-status="reserved"]')
            await page.click("#pay-group")
        for _, page in pages:
            await page.wait_for_selector('#group-state[data-status="formed"]', timeout=30_000)
        view = (await http.get(f"/group-buys/{group_id}")).json()
        assert (view["status"], view["joined"], view["remaining"]) == ("formed", 3, 0)
        # every member's page shows their own order confirmed, and the API agrees: the group price, paid
        for _, page in pages:
            order_id = (await page.get_attribute("#mine-link", "href")).rsplit("/", 1)[-1]
            order = (await http.get(f"/orders/{order_id}", headers=bearer(await session_of(page)))).json()
            assert order["total_fen"] == GROUP_PRICE_FEN and order["status"] in ("paid", "picking", "ready"), order
            await page.wait_for_selector('#mine-status:not([data-status="group_forming"])')
        members_text = await leader.text_content("#group-members")
        assert members_text.count("*") >= 3 and all(p[-8:] not in members_text for p in people)  # masked phones only
        await shots(leader, "group-formed")
        # the leader's member centre lists the order with its status and a link to its page
        leader_order = (await leader.get_attribute("#mine-link", "href")).rsplit("/", 1)[-1]
        await leader.goto("/mall/me")
        row = await leader.wait_for_selector(f'#orders li[data-order="{leader_order}"]')
        assert await row.get_attribute("data-status") != "group_forming" and "¥5.00" in await row.text_content()
        assert await leader.get_attribute(f'#orders li[data-order="{leader_order}"] a', "href") == \
            f"/mall/orders/{leader_order}"
    finally:
        for ctx, _ in pages:
            await ctx.close()


# ---- member centre: top-up through the wallet, points for a coupon, coupons, data export ---------------------------
async def test_the_member_tops_up_exchanges_points_for_a_coupon_and_downloads_their_data(mall):
    services, http, url, op, browser = mall
    offer = f"mall2-{RUN}"
    defined = await http.post("/operator/coupon-definitions", headers=op, json={
        "definition_id": offer, "rule_id": "R0025", "name": f"积分券 mall2 {RUN}", "valid_days": 30,
        "channels": ["online"], "points_price": 200})
    assert defined.status_code == 201, defined.text
    ctx, page = await phone_page(browser, url)
    try:
        phone = new_phone()
        member = await sign_in_on_page(services, http, page, phone, "/mall/me")
        granted = await services.cloud.actors.member_ledger.send(GrantPoints(
            id=f"setup:{uuid.uuid4().hex}", member=member, points=500, why="setup"))  # as spending would give them
        assert granted.succeeded
        await page.reload()
        await page.wait_for_function("document.getElementById('points').dataset.points === '500'")
        assert await page.text_content("#balance") == "¥0.00"

        await page.fill("#top-up-amount", "50")
        await page.click("#top-up")
        pending = await page.wait_for_selector("#top-up-pending[data-prepay]")
        assert await pending.is_visible() and await page.get_attribute("#top-up-pending", "data-state") != "done"
        await pay_in_wallet(services, {"prepay_id": await pending.get_attribute("data-prepay")})  # the wallet app
        await page.wait_for_function("document.getElementById('balance').textContent === '¥50.00'", timeout=30_000)
        assert await page.is_hidden("#top-up-pending")
        me = (await http.get(f"/members/{member}", headers=bearer(await session_of(page)))).json()
        assert me["stored_value_fen"] == 5_000

        button = page.locator(f'li[data-offer="{offer}"] button.exchange')
        await button.click()
        await page.wait_for_selector(f'#coupons li.coupon.valid:has-text("mall2 {RUN}")')
        await page.wait_for_function("document.getElementById('points').dataset.points === '300'")
        wallet = (await http.get(f"/members/{member}/coupons", headers=bearer(await session_of(page)))).json()
        assert [c["definition_id"] for c in wallet["coupons"]] == [offer]

        async with page.expect_download() as download_info:
            await page.click("#export")
        download = await download_info.value
        saved = SHOTS / "export.json"
        await download.save_as(str(saved))
        exported = json.loads(saved.read_text())
        assert exported["member_id"] == member and exported["phone"] == phones.normalise(phone)
        assert exported["ledger"]["stored_value_fen"] == 5_000 and exported["ledger"]["points"] == 300

        # the deletion request asks for confirmation, says what happens, and refuses while money is left
        await page.click("#delete")
        assert "不可撤销" in await page.text_content("#delete-what")
        await page.fill("#delete-word", "erase")
        await page.click("#delete-confirm")
        await page.wait_for_function("document.getElementById('delete-msg').textContent.includes('储值余额')")
        assert "stored value" not in await page.text_content("#delete-msg")  # said in Chinese, not the API's English
        assert (await http.get(f"/members/{member}", headers=bearer(await session_of(page)))).status_code == 200
        await page.click("#delete-cancel")
        await shots(page, "member-centre")
    finally:
        await ctx.close()


async def test_a_member_deletes_their_account_after_confirming_and_no_one_reads_anothers_account(mall):
    services, http, url, op, browser = mall
    ctx, page = await phone_page(browser, url)
    try:
        member = await sign_in_on_page(services, http, page, new_phone(), "/mall/me")
        token = await session_of(page)
        other = await customer(services, http)
        for path in ("orders", "personal-data"):  # another member's account answers as an unknown one
            r = await http.get(f"/members/{other.member_id}/{path}", headers=bearer(token))
            assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", r.text
        r = await http.post(f"/members/{other.member_id}/erasure", json={"confirm": "erase"}, headers=bearer(token))
        assert r.status_code == 404
        assert (await http.get(f"/members/{other.member_id}", headers=other.headers)).status_code == 200

        await page.click("#delete")
        await page.fill("#delete-word", "yes")  # not the confirmation word: nothing happens
        await page.click("#delete-confirm")
        await page.wait_for_function("document.getElementById('delete-msg').textContent.includes('erase')")
        assert (await http.get(f"/members/{member}", headers=bearer(token))).status_code == 200
        await page.fill("#delete-word", "erase")
        await page.click("#delete-confirm")
        await page.wait_for_function("document.getElementById('delete-msg').textContent.includes('账户已注销')")
        assert await page.evaluate("localStorage.getItem('mall_token')") is None
        assert (await http.get(f"/members/{member}", headers=bearer(token))).status_code == 401  # every session revoked
        row = await services.cloud.db.fetchrow("select phone_hash, erased_ms from members where member_id = $1", member)
        assert row["phone_hash"] is None and row["erased_ms"] is not None
    finally:
        await ctx.close()
