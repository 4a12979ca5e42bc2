"""The cashier's till page (issue 19) in headless Debian chromium against a real box on S030 (simulated continuous
scale over a pseudo-terminal, NATS through a proxy that can cut it) and a real cloud: a packed item typed as a
keyboard-wedge scanner does, a weighed item from the scale by its PLU key, a weighed item's label-scale barcode
(weight embedded), a gold member found by phone (member price shown), a coupon applied from the member panel, cash
with change from the pay panel, and the receipt on screen and printed on the simulated ESC/POS printer (total and
the QR's `GS ( k` read back from its pseudo-terminal; a reprint says REPRINT); then the same sale with the network
cut, which the cashier completes under the offline banner and which reaches the cloud after the cut heals.
Screenshots at 1366x768 and 1024x768 go to the test's tmp dir."""
from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from actors.member_ledger import RecordSpend
from edge.core.returns import DRAWER_KICK
from protocol.barcodes import gs1_check_digit
from simulators.devices import ContinuousScale, ReceiptPrinter, Scanner
from simulators.netcut import NetCut
from tests.integration.harness import customer, eventually, operator_headers, running_cloud
from tests.integration.store_box import WORLD, ServedBox
from tests.integration.test_console import chromium, launch, png_size

pytestmark = pytest.mark.integration
STORE = "S030"
CATALOGUE = json.loads(WORLD.read_text())["catalogue"]
PACKED = [p for p in CATALOGUE if p["unit"] == "piece" and p["gtin"]][-13]
GOLD_VEG = next(p for p in CATALOGUE if p["unit"] == "kg" and p["plu"] and p["member_prices"])
LABELLED = next(p for p in CATALOGUE if p["unit"] == "kg" and p["plu"] and p["sku"] != GOLD_VEG["sku"]
                and p["category"] == "vegetables")
LABEL_G = 750
LABEL = "21" + LABELLED["plu"] + f"{LABEL_G:05d}"  # a label scale's weight-embedded EAN-13 (DEVICES.md)
LABEL += str(gs1_check_digit(LABEL))
VEG_COUPON_RULE = "R0022"  # the default book's 10.00 off vegetables


@pytest_asyncio.fixture(scope="module")
async def till(stack, ray_runtime, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("till")
    async with running_cloud(stack, prefix=f"till{uuid.uuid4().hex[:6]}-") as (services, url):
        proxy = await NetCut("127.0.0.1", int(stack.nats_address.rsplit(":", 1)[1])).start()
        scale, scanner, printer = ContinuousScale(tmp / "scale"), Scanner(tmp / "scanner"), ReceiptPrinter(tmp / "printer")
        served = ServedBox(stack, STORE, tmp / "edge", nats_url=proxy.url,
                           devices={"scale": {"port": scale.path, "protocol": "continuous"},
                                    "scanner": {"port": scanner.path, "lane": "3"},
                                    "printer": {"port": printer.path}})
        box = await served.start()
        try:
            async with httpx.AsyncClient(base_url=url, timeout=20) as http:
                for sku in (PACKED["sku"], GOLD_VEG["sku"], LABELLED["sku"]):
                    await box.actor.ask("receive", sku=sku, qty=50_000)
                yield services, http, box, (scale, scanner, printer), proxy, served.base, tmp
        finally:
            await served.stop()
            await proxy.stop()
            scale.close()
            scanner.close()
            printer.close()


async def gold_member(services, http, box) -> str:
    """A member made gold by the cloud's ledger and known to the store's member cache; their phone."""
    member = await customer(services, http)
    await services.cloud.actors.member_ledger.send(RecordSpend(id=f"test:{uuid.uuid4().hex[:16]}",
                                                               member=member.member_id, amount_fen=600_000))
    view = await services.members.view(member.member_id)
    assert view["level"] == "gold", view
    await services.members.notify_stores(view, stores=[STORE])  # S030 is not a world store: named

    async def cached():
        found = await box.store_db.member(member_id=member.member_id)
        return found is not None and found.level == "gold"
    assert await eventually(cached, timeout_s=20), "the gold member never reached the store's cache"
    return member.phone


async def give_coupon(services, http, phone: str) -> None:
    """One coupon of 10.00 off vegetables in the member's wallet (a definition of this run's own)."""
    op = await operator_headers(services)
    member_id = (await services.members.register(phone))[0]["member_id"]
    definition = f"tillpage-{uuid.uuid4().hex[:8]}"
    r = await http.post("/operator/coupon-definitions", headers=op, json={
        "definition_id": definition, "rule_id": VEG_COUPON_RULE, "name": "10 off veg", "valid_days": 7,
        "per_member_limit": 1})
    assert r.status_code == 201, r.text
    r = await http.post(f"/operator/coupon-definitions/{definition}/issue", headers=op,
                        json={"batch_id": uuid.uuid4().hex, "member_ids": [member_id]})
    assert r.status_code in (200, 201) and len(r.json()["issued"]) == 1, r.text


async def sell(page, scale, phone: str, grams: int, coupon: bool = False, shots: Path | None = None) -> dict:
    """One basket through the page as a cashier does it; what the receipt shows. `coupon`: the member's coupon is
    applied from the member panel (its key, 1); `shots`: the member and pay panels are screenshot there."""
    await page.wait_for_selector("#scan:focus")
    await page.keyboard.type(PACKED["gtin"])  # a keyboard-wedge scanner: digits, then Enter
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f"tr.line[data-sku='{PACKED['sku']}']")
    scale.set_grams(grams)
    await page.wait_for_function(f"document.getElementById('weight')?.textContent === '{grams / 1000:.3f}'")
    await page.wait_for_selector("#stability.ok")
    await page.click(f".cat[data-cat='{GOLD_VEG['category']}']")
    await page.click(f".plu[data-sku='{GOLD_VEG['sku']}']")
    veg = page.locator(f"tr.line[data-sku='{GOLD_VEG['sku']}']")
    await veg.wait_for()
    assert f"{grams / 1000:.3f} kg" in await veg.inner_text()
    await page.keyboard.type(LABEL)  # the label scale's sticker, scanned
    await page.keyboard.press("Enter")
    labelled = page.locator(f"tr.line[data-sku='{LABELLED['sku']}']")
    await labelled.wait_for()
    assert f"{LABEL_G / 1000:.3f} kg" in await labelled.inner_text()
    await page.keyboard.press("F2")
    await page.fill("#member-input", phone)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#mpanel-dialog[open] #mp-card")  # the member panel opens after the lookup
    assert "金卡" in await page.inner_text("#mp-level")  # the level, said in Chinese (edge/till/i18n.py)
    if coupon:
        await page.wait_for_selector("#mpanel-dialog .mp-apply:not([disabled])")
        if shots:
            await page.screenshot(path=str(shots / f"till-member-panel-{page.viewport_size['width']}.png"))
        before = await page.inner_text("#total")
        await page.keyboard.press("1")  # the first coupon's apply key
        await page.wait_for_selector("#mpanel-dialog .mp-coupon.used")
        assert fen(await page.inner_text("#total")) < fen(before), "the coupon saved nothing"
    await page.keyboard.press("Escape")
    await page.wait_for_selector("#mpanel-dialog", state="hidden")
    await page.wait_for_selector("#member-panel")
    assert await veg.locator(".member-price").count() == 1, "the member price is not shown on the weighed line"
    total = await page.inner_text("#total")
    await page.keyboard.press("F4")
    await page.wait_for_selector("#money-pay-dialog[open] #pp-tendered:focus")
    await page.keyboard.type("500")
    await page.wait_for_function("document.getElementById('pp-change').textContent !== '¥0.00'")
    if shots:
        await page.screenshot(path=str(shots / f"till-pay-panel-{page.viewport_size['width']}.png"))
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#receipt-dialog[open] #receipt-no")
    receipt = {"no": await page.inner_text("#receipt-no"), "change": await page.inner_text("#change"),
               "total": total, "text": await page.inner_text("#receipt-body")}
    scale.set_grams(0)
    return receipt


def fen(text: str) -> int:
    return round(float(text.replace("¥", "").strip()) * 100)


async def test_a_cashier_sells_online_and_offline_and_the_offline_sale_reaches_the_cloud(till, stack):
    from playwright.async_api import async_playwright
    services, http, box, (scale, _, printer), proxy, base, tmp = till
    phone = await gold_member(services, http, box)
    await give_coupon(services, http, phone)
    async with async_playwright() as pw:
        browser = await launch(pw, chromium(), tmp)
        page = browser.pages[0] if browser.pages else await browser.new_page()
        await page.set_viewport_size({"width": 1366, "height": 768})
        await page.goto(f"{base}/till/3")
        await page.wait_for_selector("#conn[data-online='yes']")
        printed_before = len(printer.receipts)
        online = await sell(page, scale, phone, 1234, coupon=True, shots=tmp)
        assert fen(online["change"]) == 50_000 - fen(online["total"]) > 0
        assert GOLD_VEG["name"] in online["text"] and PACKED["name"] in online["text"]
        assert LABELLED["name"] in online["text"]
        assert await eventually(lambda: asyncio.sleep(0, result=DRAWER_KICK in bytes(printer.received))), \
            "a cash sale did not open the drawer"
        printed = await asyncio.to_thread(printer.next_receipt, 10.0, printed_before)
        assert printed.qr[0] == f"SALE:{online['no']}" and printed.errors == []  # then the member's survey
        assert "TOTAL" in printed.text and online["total"].replace("¥", "") in printed.text
        assert f"Receipt {online['no']}" in printed.text and "Lane 3" in printed.text
        assert f"{LABEL_G / 1000:.3f} kg" in printed.text and "Paid by cash" in printed.text
        raw = bytes(printer.received)
        assert b"\x1d(k" + (len(f"SALE:{online['no']}") + 3).to_bytes(2, "little") + b"1P0" \
            + f"SALE:{online['no']}".encode() in raw, "the receipt's QR is not stored with GS ( k function 180"
        await page.screenshot(path=str(tmp / "till-receipt-1366.png"))
        await page.keyboard.press("F7")  # reprint
        again = await asyncio.to_thread(printer.next_receipt, 10.0, printed_before + 1)
        assert "REPRINT" in again.text and again.qr[0] == f"SALE:{online['no']}"
        await page.wait_for_function("document.getElementById('reprint-state').textContent.length > 0")
        await page.keyboard.press("Enter")  # the receipt closes; the cart is empty again
        await page.wait_for_selector("#receipt-dialog", state="hidden")
        assert await page.locator("tr.line").count() == 0

        proxy.cut()  # the store's uplink goes down
        await page.wait_for_selector("#conn[data-online='no']", timeout=30_000)
        await page.set_viewport_size({"width": 1024, "height": 768})
        offline = await sell(page, scale, phone, 876, shots=tmp)
        assert fen(offline["change"]) == 50_000 - fen(offline["total"]) > 0
        assert offline["no"] != online["no"] and "离线完成" in offline["text"] and "离线完成" not in online["text"]
        await page.screenshot(path=str(tmp / "till-receipt-offline-1024.png"))
        await page.keyboard.press("Enter")
        await page.wait_for_function("Number(document.getElementById('outbox').textContent) > 0")
        assert "离线" in await page.inner_text("#conn")
        await page.keyboard.type(PACKED["gtin"])
        await page.keyboard.press("Enter")
        await page.wait_for_selector(f"tr.line[data-sku='{PACKED['sku']}']")
        await page.screenshot(path=str(tmp / "till-offline-1024.png"))
        await page.set_viewport_size({"width": 1366, "height": 768})
        await page.screenshot(path=str(tmp / "till-offline-1366.png"))
        await page.keyboard.press("Escape")  # void, with its confirmation
        await page.keyboard.press("Enter")
        await page.wait_for_function("document.querySelectorAll('tr.line').length === 0")
        assert await box.store_db.outbox_depth() > 0

        proxy.heal()
        await page.wait_for_selector("#conn[data-online='yes']", timeout=30_000)
        await page.wait_for_function("document.getElementById('outbox').textContent === '0'", timeout=30_000)
        await browser.close()
    for name in ("till-receipt-1366.png", "till-offline-1366.png", "till-member-panel-1366.png",
                 "till-pay-panel-1366.png"):
        assert png_size(tmp / name) == (1366, 768)
    for name in ("till-receipt-offline-1024.png", "till-offline-1024.png", "till-pay-panel-1024.png"):
        assert png_size(tmp / name) == (1024, 768)

    conn = await asyncpg.connect(stack.database_url)
    try:
        async def in_cloud():  # both receipts, the online one and the one sold offline, are sales the cloud applied
            rows = await conn.fetch("select sale_id from till_sales where sale_id = any($1::text[])",
                                    [online["no"], offline["no"]])
            return {r["sale_id"] for r in rows} == {online["no"], offline["no"]}
        assert await eventually(in_cloud, timeout_s=30), "the offline sale never reached the cloud"
    finally:
        await conn.close()
    print("screenshots:", tmp)


async def test_serial_scans_appear_and_the_keyboard_edits_lines_in_english(till):
    """A scan on the serial scanner reaches the page by the box's events (nobody typed it); + and Del change and
    delete the selected line; Esc asks before voiding; ?lang=en shows English."""
    from playwright.async_api import async_playwright
    services, http, box, (_, scanner, _), proxy, base, tmp = till
    async with async_playwright() as pw:
        browser = await launch(pw, chromium(), tmp / "en")
        page = browser.pages[0] if browser.pages else await browser.new_page()
        await page.goto(f"{base}/till/3?lang=en")
        await page.wait_for_selector("#conn[data-online='yes']")
        assert "Online" in await page.inner_text("#conn") and "Pay" in await page.inner_text("#btn-pay")
        scanner.scan(PACKED["gtin"])
        line = page.locator(f"tr.line[data-sku='{PACKED['sku']}']")
        await line.wait_for()
        await page.keyboard.press("+")
        await page.wait_for_function(f"document.querySelector(\"tr.line[data-sku='{PACKED['sku']}']\").dataset.qty === '2'")
        await page.keyboard.press("Escape")  # asks first: No keeps the sale
        await page.wait_for_selector("#void-dialog[open]")
        assert "Void the whole sale?" in await page.inner_text("#void-dialog")
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#void-dialog", state="hidden")
        assert await page.locator("tr.line").count() == 1
        await page.keyboard.press("Delete")
        await page.wait_for_function("document.querySelectorAll('tr.line').length === 0")
        await page.keyboard.type("1234")  # a code that is no product: the cashier reads why, the cart is as it was
        await page.keyboard.press("Enter")
        await page.wait_for_function("document.getElementById('message').textContent.length > 0")
        assert (await box.actor.ask("cart_view", lane="3"))["lines"] == []
        await browser.close()


async def test_a_stored_value_payment_the_member_cannot_cover_says_why_and_keeps_the_sale(till):
    """F4 then F8 pays by stored value: a member with no balance is refused with the ledger's reason on the page,
    and the cart stays as it was for another way to pay."""
    from playwright.async_api import async_playwright
    services, http, box, _, proxy, base, tmp = till
    phone = await gold_member(services, http, box)
    async with async_playwright() as pw:
        browser = await launch(pw, chromium(), tmp / "sv")
        page = browser.pages[0] if browser.pages else await browser.new_page()
        await page.set_viewport_size({"width": 1366, "height": 768})
        await page.goto(f"{base}/till/4")
        await page.wait_for_selector("#scan:focus")
        await page.keyboard.type(PACKED["gtin"])
        await page.keyboard.press("Enter")
        await page.wait_for_selector(f"tr.line[data-sku='{PACKED['sku']}']")
        await page.keyboard.press("F2")
        await page.fill("#member-input", phone)
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#mpanel-dialog[open]")
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#member-panel")
        await page.keyboard.press("F4")
        await page.wait_for_selector("#money-pay-dialog[open]")
        await page.keyboard.press("F8")
        msg = "#money-pay-dialog .dialog-msg"
        await page.wait_for_function(f"document.querySelector({msg!r}).textContent.length > 0")
        assert "stored value" in await page.inner_text(msg)  # where the cashier is looking
        await page.screenshot(path=str(tmp / "till-stored-value-refused-1366.png"))
        assert await page.locator("#receipt-dialog[open]").count() == 0
        assert len((await box.actor.ask("cart_view", lane="4"))["lines"]) == 1
        await page.keyboard.press("Escape")  # the pay dialog closes; Esc again asks to void, Enter confirms
        await page.wait_for_selector("#money-pay-dialog", state="hidden")
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#void-dialog[open]")
        await page.keyboard.press("Enter")
        await page.wait_for_function("document.querySelectorAll('tr.line').length === 0")
        await browser.close()
