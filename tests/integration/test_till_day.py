"""A cashier's day at the till page on S061 (issue 19, third increment), in headless Debian chromium against a real
box (NATS to a real cloud), at 1366x768 and 1024x768:
- the page is locked until a cashier signs in: a scan through the page's endpoint is refused (403, said in Chinese,
  with its stable code and the English sentence beside it);
- a sale: a packed item and a label-scale (weight-embedded) item, jin shown in the cart by the server and on the
  receipt with the price per jin, paid cash with change; the Chinese screens (sale, pay panel, receipt, cash-up)
  show no English word besides product and rule names, units and key names;
- a member registered at the till with a name: shown masked (张*), the member strip counts the member's coupons
  from the box's snapshot; the name is sealed in the cloud, in the member's export, gone after erasure;
- the box restarts with the shift open: the page is locked again, the same cashier signs in with the PIN and the
  same shift continues (its float, its sale); the cash-up shows the change given as its own line;
- the cashier signs out through the lane API: the shift's report reaches the cloud marked uncounted.

Isolation: S061 is this module's store (its bridge consumer made by `ensure_store`, not a world store); the
coupon definition is this run's own and issues one coupon only; the box's stream is drained at the end."""
from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest
import pytest_asyncio

from edge.cashier_pins import hash_pin
from protocol.barcodes import gs1_check_digit
from tests.integration.harness import customer, eventually, new_mobile, operator_headers, running_cloud
from tests.integration.store_box import WORLD, ServedBox
from tests.integration.test_console import chromium, launch, png_size
from tests.integration.test_till_counter import sign_in_by_pad

pytestmark = pytest.mark.integration
STORE = "S061"
CATALOGUE = json.loads(WORLD.read_text())["catalogue"]
PACKED = [p for p in CATALOGUE if p["unit"] == "piece" and p["gtin"] and not p["member_prices"]][-7]
LABELLED = [p for p in CATALOGUE if p["unit"] == "kg" and p["plu"]][-3]
LABEL_G = 750
LABEL = "21" + LABELLED["plu"] + f"{LABEL_G:05d}"  # a label scale's weight-embedded EAN-13
LABEL += str(gs1_check_digit(LABEL))
CASHIER, PIN = "c61", "6161"
RUN = uuid.uuid4().hex[:6]
# words a Chinese till may show in Latin letters: units, key names, the brand, the language switch
ALLOWED = {"kg", "FreshMesh", "Enter", "Esc", "Del", "English", "Backspace"}


@pytest_asyncio.fixture(scope="module")
async def day(stack, ray_runtime, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tillday")
    async with running_cloud(stack, prefix=f"day{RUN}-") as (services, url):
        await services.bridge.ensure_store(STORE)  # its events' consumer (S061 is not a world store)
        store = ServedBox(stack, STORE, tmp / "edge", cashiers={CASHIER: hash_pin(PIN)}, show_jin=True)
        box = await store.start()
        try:
            for sku in (PACKED["sku"], LABELLED["sku"]):
                await box.actor.ask("receive", sku=sku, qty=50_000)
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                yield services, http, store, tmp
            assert await eventually(lambda: drained(store.box), timeout_s=20), "the store's outbox did not drain"
        finally:
            await store.stop()


async def drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


def english_words(text: str, names: set[str]) -> list[str]:
    """Latin-letter words in `text` that are not product or rule names (the chain's data), units or key names;
    ids mixing letters and digits are not words."""
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " ")
    words = re.findall(r"(?<![A-Za-z0-9_-])[A-Za-z]{2,}(?![A-Za-z0-9_-])", text)
    return [w for w in words if w not in ALLOWED]


async def visible_text(page, selector: str) -> str:
    return await page.eval_on_selector(selector, "e => e.innerText")


async def test_a_cashiers_day_locked_sold_registered_restarted_and_signed_out_uncounted(day, stack):
    from playwright.async_api import async_playwright
    services, http, store, tmp = day
    box = store.box
    names = {p["name"] for p in CATALOGUE} | {r.name for r in box.actor.books.rule_book.by_id.values()}
    op = await operator_headers(services)
    r = await http.post("/operator/coupon-definitions", headers=op, json={
        "definition_id": f"welcome-day-{RUN}", "rule_id": "R0022", "name": "Welcome: 10 off vegetables",
        "valid_days": 30, "per_member_limit": 1, "on_registration": True, "total_limit": 1})
    assert r.status_code == 201, r.text
    async with async_playwright() as pw:
        browser = await launch(pw, chromium(), tmp)
        page = browser.pages[0] if browser.pages else await browser.new_page()
        await page.set_viewport_size({"width": 1366, "height": 768})
        await page.goto(f"{store.base}/till/1")

        # locked: the sign-in screen, and the page's own scan endpoint refuses (said in Chinese, code beside it)
        await page.wait_for_selector("#signin-dialog[open]")
        refused = await page.evaluate("""async (code) => {
            const r = await fetch('/till/1/scan', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                   body: JSON.stringify({code})});
            return [r.status, await r.json()];
        }""", PACKED["gtin"])
        assert refused[0] == 403 and refused[1]["code"] == "signed_out", refused
        assert "尚无收银员登录" in refused[1]["detail"] and "no cashier" in refused[1]["detail_en"], refused
        assert (await box.actor.ask("cart_view", lane="1"))["lines"] == []  # nothing reached the cart
        async with httpx.AsyncClient(base_url=store.base, timeout=20) as lane:  # the JSON lane API: English, as ever
            api = await lane.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 1})  # locked there too
            assert api.status_code == 403 and "no cashier" in api.json()["detail"] and "code" not in api.json()

        # the cashier signs in on the pad; the float: 100.00
        await sign_in_by_pad(page, CASHIER, PIN)
        await page.wait_for_selector("#float-dialog[open]")
        await page.fill("#float-amount", "100.00")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#float-dialog", state="hidden")
        shift_id = (await box.actor.ask("shift", action="state", lane="1"))["shift_id"]

        # a packed item and a label-scale item: the cart says jin (server-rendered) and the price per jin
        for code in (PACKED["gtin"], LABEL):
            await page.wait_for_selector("#scan:focus")
            await page.keyboard.type(code)
            await page.keyboard.press("Enter")
        weighed = page.locator(f"tr.line[data-sku='{LABELLED['sku']}']")
        await weighed.wait_for()
        assert await page.locator("tr.line").count() == 2
        jin_text = await weighed.locator(".jin").inner_text()
        per_jin = f"¥{(LABELLED['price_fen'] + 1) // 2 // 100}.{(LABELLED['price_fen'] + 1) // 2 % 100:02d}/斤"
        assert "1.500 斤" in jin_text and per_jin in jin_text, jin_text
        async with httpx.AsyncClient(base_url=store.base, timeout=20) as plain:  # no script ran: the server's HTML
            assert "1.500 斤" in (await plain.get("/till/1")).text, "jin is not in the server-rendered cart"

        # a member registered here, with a name: masked on screen; the strip counts their coupon
        phone = new_mobile()
        await page.keyboard.press("F2")
        await page.wait_for_selector("#member-dialog[open]")
        await page.keyboard.press("F6")
        await page.wait_for_selector("#register-dialog[open] #register-phone:focus")
        await page.keyboard.type(phone)
        await page.fill("#register-name", "张三")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#mpanel-dialog[open] #mp-card")
        assert await page.inner_text("#mp-name") == "张*" and "张三" not in await visible_text(page, "#mpanel")
        member_id = await page.get_attribute("#mp-card", "data-member")
        assert await page.locator("#mpanel .mp-coupon").count() == 0  # the new-member coupon waits for the phone
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#mpanel-dialog", state="hidden")
        assert (await customer(services, http, phone=phone)).member_id == member_id  # proven online by its code
        await page.keyboard.press("F2")  # looked up again: the coupon the proof issued is in the panel
        await page.wait_for_selector("#member-dialog[open]")
        await page.fill("#member-input", phone)
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#mpanel-dialog[open] #mpanel .mp-apply")
        await page.screenshot(path=str(tmp / "day-member-1366.png"))
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#mpanel-dialog", state="hidden")
        await page.wait_for_selector("#member-panel #m-coupons")
        assert await page.inner_text("#m-coupons") == "1", "the member strip does not count the member's coupon"
        assert not re.search("[A-Za-z]", await page.inner_text("#member-panel .m-level"))  # the level, in Chinese

        # the sale screen and the pay panel in Chinese: no English besides names, units and keys
        await page.screenshot(path=str(tmp / "day-sale-1366.png"))
        await page.set_viewport_size({"width": 1024, "height": 768})
        await page.screenshot(path=str(tmp / "day-sale-1024.png"))
        assert english_words(await visible_text(page, "main"), names) == []
        await page.keyboard.press("F4")
        await page.wait_for_selector("#money-pay-dialog[open] #pp-tendered:focus")
        assert english_words(await visible_text(page, "#money-pay-dialog"), names) == []
        await page.screenshot(path=str(tmp / "day-pay-1024.png"))
        await page.set_viewport_size({"width": 1366, "height": 768})
        await page.screenshot(path=str(tmp / "day-pay-1366.png"))
        total = (await box.actor.ask("cart_view", lane="1"))["total_fen"]
        tendered = (total // 10_000 + 1) * 10_000  # the next 100 yuan note
        await page.keyboard.type(f"{tendered // 100}.00")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#receipt-dialog[open] #receipt-no")
        receipt = await visible_text(page, "#receipt-body")
        assert "1.500 斤" in receipt and per_jin in receipt, receipt  # the receipt says jin and the price per jin
        assert f"{(tendered - total) // 100}.{(tendered - total) % 100:02d}" in await page.inner_text("#change")
        assert english_words(receipt, names) == []
        await page.screenshot(path=str(tmp / "day-receipt-1366.png"))
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#receipt-dialog", state="hidden")
        await browser.close()

    # the member's name: sealed in the cloud, in their export, gone with erasure
    row = await services.cloud.db.fetchrow("select name_sealed, name_masked from members where member_id = $1",
                                           member_id)
    assert row["name_masked"] == "张*" and "张三".encode() not in bytes(row["name_sealed"])
    exported = await services.members.export(member_id)
    assert (exported["name"], exported["name_masked"]) == ("张三", "张*")
    await services.members.erase(member_id)
    row = await services.cloud.db.fetchrow("select name_sealed, name_masked from members where member_id = $1",
                                           member_id)
    assert (row["name_sealed"], row["name_masked"]) == (None, None)
    assert (await services.members.export(member_id))["name"] is None

    # the box restarts with the shift open: locked again; the same cashier signs in and the shift continues
    assert await eventually(lambda: drained(store.box), timeout_s=20)
    await store.stop()
    box = await store.start()
    async with async_playwright() as pw:
        browser = await launch(pw, chromium(), tmp / "after")
        page = browser.pages[0] if browser.pages else await browser.new_page()
        await page.set_viewport_size({"width": 1366, "height": 768})
        await page.goto(f"{store.base}/till/1")
        await page.wait_for_selector("#signin-dialog[open]")
        await page.screenshot(path=str(tmp / "day-restarted-1366.png"))
        await sign_in_by_pad(page, CASHIER, PIN)
        await page.wait_for_selector("#signin-dialog", state="hidden")
        assert await page.locator("#float-dialog[open]").count() == 0  # the shift has its float: it continues
        state = await box.actor.ask("shift", action="state", lane="1")
        assert (state["shift_id"], state["float_fen"]) == (shift_id, 10_000)

        # the cash-up (checked, not closed): float + tendered - change, change its own line, in Chinese
        await page.keyboard.press("F10")
        await page.wait_for_selector("#close-dialog[open]")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#cash-up-body[data-closed='no']")
        cash_up = await visible_text(page, "#cash-up-body")
        assert "找零" in cash_up and f"{tendered // 100}.00" in cash_up, cash_up
        expected = await page.inner_text("#cash-up-body tr[data-method='cash'] .expected")
        assert expected.strip() == f"{(10_000 + total) // 100}.{(10_000 + total) % 100:02d}", expected
        assert english_words(cash_up, names) == []
        await page.screenshot(path=str(tmp / "day-cashup-1366.png"))
        await page.set_viewport_size({"width": 1024, "height": 768})
        await page.screenshot(path=str(tmp / "day-cashup-1024.png"))
        await browser.close()

    # signed out through the lane API: the shift is reported to the cloud, uncounted
    async with httpx.AsyncClient(base_url=store.base, timeout=20) as lane:
        out = (await lane.delete("/lanes/1/cashier")).json()
        assert out["signed_out"] == CASHIER and out["closed_uncounted"] == [shift_id], out

    async def reported():
        r = await http.get("/operator/shifts", params={"store": STORE}, headers=op)
        assert r.status_code == 200, r.text
        return next((s for s in r.json()["shifts"] if s["shift_id"] == shift_id), None)
    shift = await eventually(reported, timeout_s=30)
    assert shift, "the shift signed out through the lane API never reached the cloud"
    assert shift["uncounted"] is True and shift["sales"] == 1 and shift["difference_fen"] == 0
    assert shift["expected_fen"] == shift["counted_fen"] == 10_000 + total
    for name in ("sale", "cashup"):
        assert png_size(tmp / f"day-{name}-1366.png") == (1366, 768)
        assert png_size(tmp / f"day-{name}-1024.png") == (1024, 768)
