"""The till page's counter work (issue 19, second increment) in headless Debian chromium against a real box on S052
(NATS to a real cloud): the page starts locked; a wrong PIN is refused and the id locks after the limit; a cashier
signs in with the on-screen pad, opens the shift with a float counted by denomination, sells for cash (change
given), returns part of the sale against the receipt's QR text (refunded in cash; a second return past what is left
refused), hands over an online pickup order placed and paid through the cloud API for S052 and picked on the box
(already handed over / unknown codes say so), and closes the shift with a count 1.00 yuan short: the cash-up shows
expected vs counted and -1.00; the shift report reaches the cloud and GET /operator/shifts shows it (a store manager
of another store is refused). Screenshots at 1366x768 and 1024x768 of the sign-in, return and cash-up screens go to
the test's tmp dir.

Isolation: S052 is this module's store (added to the cloud's world through PUT /stores/S052); its products are
sold nowhere else by this module's box; nothing waits in S052's command stream at the end (the one order is
handed over)."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import jsonschema
import pytest
import pytest_asyncio

from edge.cashier_pins import FAILURES_MAX, hash_pin
from protocol.shift_messages import DenominationCount, MethodTotal, ShiftReported
from tests.integration.harness import StoreLink, customer, eventually, operator_headers, running_cloud, top_up
from tests.integration.store_box import WORLD, ServedBox
from tests.integration.test_console import chromium, launch, png_size
from tests.integration.test_console import sign_in as console_sign_in

pytestmark = pytest.mark.integration
STORE, OTHER_STORE = "S052", "S053"
CATALOGUE = json.loads(WORLD.read_text())["catalogue"]
# a packed item priced to the jiao (a drawer counts down to 1 jiao); two of them stay under every spend threshold and
# gift of the default rule book (40.00 and 50.00), so the sale, its return and the count are plain
SOLD = next(p for p in CATALOGUE if p["sku"] == "PAC-SOY-0214")
ONLINE = next(p for p in CATALOGUE if p["unit"] == "piece" and p["sku"].startswith("PAC-") and p["price_fen"] < 2_000
              and set(p["channels"]) == {"online", "offline"} and p["sku"] != SOLD["sku"])
CASHIER, PIN, GUESSED = "c52", "2468", "c52x"
CN = timezone(timedelta(hours=8))


@pytest_asyncio.fixture(scope="module")
async def counter(stack, ray_runtime, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("counter")
    async with running_cloud(stack, prefix=f"ctr{uuid.uuid4().hex[:6]}-") as (services, url):
        hq = await operator_headers(services)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            place = {"name": "FreshMesh Counter", "lat": 31.23, "lon": 121.47, "slot_capacity": 20}
            r = await http.put(f"/stores/{STORE}", json=place, headers=hq)
            assert r.status_code == 200, r.text
            pins = hash_pin(PIN)
            served = ServedBox(stack, STORE, tmp / "edge", cashiers={CASHIER: pins, GUESSED: pins}, show_jin=True)
            box = await served.start()
            try:
                for sku in (SOLD["sku"], ONLINE["sku"]):
                    await box.actor.ask("receive", sku=sku, qty=50)
                assert await eventually(lambda: drained(box), timeout_s=20), "the store's outbox did not drain"
                yield services, http, hq, box, served.base, tmp
            finally:
                await served.stop()


async def drained(box) -> bool:
    return await box.store_db.outbox_depth() == 0


async def paid_pickup_order(services, http, box, sku: str, qty: int) -> dict:
    """A member orders for pickup at S052 through the cloud API and pays by stored value; the order reaches the box."""
    member = await customer(services, http)
    await top_up(services, http, member, 50_000)
    slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=15, minute=0, second=0, microsecond=0).isoformat()
    r = await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": slot,
                                         "items": [{"sku": sku, "qty": qty}]},
                        headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert r.status_code == 201, r.text
    order = r.json()
    paid = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text

    async def arrived():
        return any(o["order_id"] == order["order_id"] for o in (await box.actor.ask("pick_list"))["orders"])
    assert await eventually(arrived, timeout_s=20), "the order to fulfil did not reach the store"
    return paid.json()


async def pick(base: str, order_id: str, sku: str, qty: int) -> None:
    """Picked on the box's back-room API, as the picking tests do."""
    async with httpx.AsyncClient(base_url=base, timeout=20) as lane:
        assert (await lane.post(f"/picking/orders/{order_id}/start")).status_code == 200
        assert (await lane.post(f"/picking/orders/{order_id}/lines/{sku}", json={"qty": qty})).status_code == 200
        done = await lane.post(f"/picking/orders/{order_id}/done")
        assert done.status_code == 200 and done.json()["status"] == "picked", done.text


def fen(text: str) -> int:
    return round(float(text.replace("¥", "").replace("+", "").strip()) * 100)


def drawer(amount_fen: int) -> dict[int, int]:
    """Notes and coins making `amount_fen` (to the jiao), largest first."""
    out = {}
    for d in (10_000, 5_000, 2_000, 1_000, 500, 100, 50, 10):
        out[d], amount_fen = divmod(amount_fen, d)
    assert amount_fen == 0, "a drawer holds whole jiao"
    return out


async def sign_in_by_pad(page, cashier: str, pin: str) -> None:
    await page.fill("#signin-cashier", cashier)
    await page.click("#signin-pin")
    for digit in pin:  # the on-screen number pad, as a touch screen is used
        await page.click(f"#signin-pad .key[data-key='{digit}']")
    await page.keyboard.press("Enter")


async def test_a_cashiers_shift_at_the_till_page_from_sign_in_to_the_cash_up_reported_to_the_cloud(counter, stack):
    from playwright.async_api import async_playwright
    services, http, hq, box, base, tmp = counter
    async with async_playwright() as pw:
        browser = await launch(pw, chromium(), tmp)
        page = browser.pages[0] if browser.pages else await browser.new_page()
        await page.set_viewport_size({"width": 1366, "height": 768})
        await page.goto(f"{base}/till/1")
        await page.wait_for_selector("#signin-dialog[open]")  # locked: nothing sells before a cashier signs in
        assert await page.get_attribute("body", "data-shift") == "locked"
        await page.screenshot(path=str(tmp / "counter-signin-1366.png"))
        await page.set_viewport_size({"width": 1024, "height": 768})
        await page.screenshot(path=str(tmp / "counter-signin-1024.png"))

        # a wrong PIN is refused; after FAILURES_MAX wrong PINs in a row the id is locked: the right PIN is refused too
        for _ in range(FAILURES_MAX):
            await sign_in_by_pad(page, GUESSED, "1111")
            await page.wait_for_function("document.getElementById('signin-msg').textContent.length > 0")
            msg = await page.inner_text("#signin-msg")  # said in Chinese (edge/till/refusals.py), with the rule
            assert "密码错误" in msg and f"{FAILURES_MAX}" in msg, msg
            await page.evaluate("document.getElementById('signin-msg').textContent = ''")
        await sign_in_by_pad(page, GUESSED, PIN)
        await page.wait_for_function("document.getElementById('signin-msg').textContent.includes('密码错误')")
        assert await page.locator("#signin-dialog[open]").count() == 1, "a locked id signed in with the right PIN"

        # the locked page's endpoints take no money either (a basket put on the lane by its JSON API)
        async with httpx.AsyncClient(base_url=base, timeout=20) as lane:
            assert (await lane.post("/lanes/1/scan", json={"code": SOLD["gtin"]})).status_code == 200
            locked = await lane.post("/till/1/pay", json={"method": "cash", "tendered_fen": 10_000})
            assert locked.status_code == 403 and locked.json()["code"] == "signed_out", locked.text
            assert "no cashier is signed in" in locked.json()["detail_en"], locked.text
            assert (await lane.delete("/lanes/1/cart")).status_code == 200
        # the cashier signs in; the float is counted by denomination: 2 x 100 + 5 x 10 = 250.00
        await page.set_viewport_size({"width": 1366, "height": 768})
        await sign_in_by_pad(page, CASHIER, PIN)
        await page.wait_for_selector("#float-dialog[open]")
        await page.click("#float-by summary")
        await page.fill("#float-10000", "2")
        await page.fill("#float-1000", "5")
        assert await page.inner_text("#float-total") == "250.00"
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#float-dialog", state="hidden")
        assert CASHIER in await page.inner_text("#on-duty")
        over = await page.evaluate("""async (cashier) => {
            const r = await fetch('/till/1/shift/sign-in', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                              body: JSON.stringify({cashier_id: cashier, pin: '2468'})});
            return [r.status, (await r.json()).detail_en];
        }""", GUESSED)
        assert over[0] == 409 and "close their shift first" in over[1], over  # no shift ends unreported

        # the store shows jin: a produce key's price per kg is also said per jin (1 jin = 500 g)
        assert "/斤" in await page.inner_text(".plu small >> nth=0")
        # a basket voided (counted in the shift report), then a cash sale of two packs, 100.00 tendered: change given
        await page.wait_for_selector("#scan:focus")
        await page.keyboard.type(SOLD["gtin"])
        await page.keyboard.press("Enter")
        await page.wait_for_selector(f"tr.line[data-sku='{SOLD['sku']}']")
        await page.keyboard.press("Escape")
        await page.keyboard.press("Enter")
        await page.wait_for_function("document.querySelectorAll('tr.line').length === 0")
        await page.wait_for_selector("#scan:focus")
        for _ in range(2):
            await page.keyboard.type(SOLD["gtin"])
            await page.keyboard.press("Enter")
            await page.wait_for_function(f"document.querySelector(\"tr.line[data-sku='{SOLD['sku']}']\")?.dataset.qty "
                                         f"=== '{_ + 1}'")
        total = fen(await page.inner_text("#total"))
        await page.keyboard.press("F4")  # the pay panel (edge/till/money_routes.py)
        await page.wait_for_selector("#money-pay-dialog[open] #pp-tendered:focus")
        await page.keyboard.type("100")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#receipt-dialog[open] #receipt-no")
        sale_id = await page.inner_text("#receipt-no")
        assert fen(await page.inner_text("#change")) == 10_000 - total > 0
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#receipt-dialog", state="hidden")

        # a return of one pack against the receipt's QR text, refunded in cash
        await page.keyboard.press("F7")
        await page.fill("#return-code", f"SALE:{sale_id}")
        await page.keyboard.press("Enter")
        row = page.locator(f"#return-found tr.ret-line[data-sku='{SOLD['sku']}']")
        await row.wait_for()
        assert await row.get_attribute("data-left") == "2"
        await row.locator(".ret-qty").fill("1")
        await page.select_option("#return-reason", "damaged")
        await page.screenshot(path=str(tmp / "counter-return-1366.png"))
        await page.keyboard.press("F7")
        await page.wait_for_selector("#refund-body")
        refund = fen(await page.inner_text("#refund-amount"))
        assert 0 < refund <= total and "现金" in await page.inner_text("#refund-method")
        await page.set_viewport_size({"width": 1024, "height": 768})
        await page.screenshot(path=str(tmp / "counter-return-1024.png"))
        # the same line again, past what is left: refused, saying so
        await page.fill("#return-code", sale_id)
        await page.keyboard.press("Enter")
        await row.wait_for()
        assert await row.get_attribute("data-left") == "1"
        again = await page.evaluate("""async ([sale, sku, rid]) => {
            const r = await fetch('/till/1/return', {method: 'POST', headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({receipt: 'SALE:' + sale, return_id: rid, lines: [{sku, qty: 2}]})});
            return [r.status, (await r.json()).detail_en];
        }""", [sale_id, SOLD["sku"], box.actor.ids.new()])
        assert again[0] == 409 and SOLD["sku"] in again[1], again
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#return-dialog", state="hidden")

        # a pickup: an online order for S052 placed and paid through the cloud, picked on the box, handed over here
        order = await paid_pickup_order(services, http, box, ONLINE["sku"], 1)
        async with httpx.AsyncClient(base_url=base, timeout=20) as lane:  # the store menu's read-only lists
            listed = await lane.get("/till/1/store/picking")
            assert listed.status_code == 200 and order["order_id"] in listed.text
            menu = (await lane.get("/till/1/store")).text
            assert all(f"/till/1/store/{name}" in menu
                       for name in ("picking", "stocktakes", "receivings", "shrinkage", "transfers"))
            assert (await lane.get("/till/1/store/receivings")).status_code == 200
            assert (await lane.get("/till/1/store/shrinkage")).status_code == 200
            assert (await lane.get("/till/1/store/nothing")).status_code == 404
        await pick(base, order["order_id"], ONLINE["sku"], 1)
        await page.keyboard.press("F3")
        await page.fill("#pickup-code", "99999999")
        await page.keyboard.press("Enter")
        await page.wait_for_function("document.querySelector('#pickup-dialog .dialog-msg').textContent.includes("
                                     "'another store')")
        await page.fill("#pickup-code", f"PICKUP:{order['pickup_code']}")  # the ticket's / customer's QR text
        await page.keyboard.press("Enter")
        await page.wait_for_selector(f"#pickup-found[data-order='{order['order_id']}']")
        assert ONLINE["name"] in await page.inner_text("#pickup-order")
        await page.keyboard.press("Enter")  # the hand-over button has the focus
        await page.wait_for_selector("#pickup-found[data-status='picked_up']")
        await page.screenshot(path=str(tmp / "counter-pickup-1366.png"))
        await page.fill("#pickup-code", order["pickup_code"])
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#pickup-found[data-status='picked_up']")
        assert await page.locator("#pickup-go").is_hidden()
        twice = await page.evaluate("""async (code) => {
            const r = await fetch('/till/1/pickup', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                     body: JSON.stringify({code})});
            return [r.status, (await r.json()).detail_en];
        }""", order["pickup_code"])
        assert twice[0] == 409 and "handed over already" in twice[1], twice
        await page.keyboard.press("Escape")

        # closing: the count is 1.00 yuan short of what the drawer should hold
        expected = 25_000 + total - refund
        await page.set_viewport_size({"width": 1366, "height": 768})
        await page.keyboard.press("F10")
        await page.wait_for_selector("#close-dialog[open]")
        for d, n in drawer(expected - 100).items():
            if n:
                await page.fill(f"#close-{d}", str(n))
        await page.keyboard.press("Enter")  # check first
        await page.wait_for_selector("#cash-up-body[data-closed='no']")
        assert fen(await page.inner_text("#cash-up-body tr[data-method='cash'] .expected")) == expected
        assert fen(await page.inner_text("#diff-cash")) == -100
        await page.keyboard.press("F10")  # then close
        await page.wait_for_selector("#cash-up-body[data-closed='yes'] #shift-closed")
        assert "-1.00" in await page.inner_text("#cash-difference")
        assert await page.locator("#cash-difference.off").count() == 1, "a difference is not highlighted"
        await page.screenshot(path=str(tmp / "counter-cashup-1366.png"))
        await page.set_viewport_size({"width": 1024, "height": 768})
        await page.screenshot(path=str(tmp / "counter-cashup-1024.png"))
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#signin-dialog[open]")  # locked again for the next cashier
        await page.goto(f"{base}/till/1/store/stocktakes?lang=en")  # the store menu, in English
        assert "Stocktakes" in await page.inner_text("h2")
        await page.keyboard.press("Escape")  # back to the till, locked
        await page.wait_for_selector("#signin-dialog[open]")
        assert "/斤" not in await page.inner_text(".plu small >> nth=0") and "/jin" in await page.inner_text(
            ".plu small >> nth=0")
        await page.screenshot(path=str(tmp / "counter-signin-en-1024.png"))
        await browser.close()
    for name in ("signin", "return", "cashup"):
        assert png_size(tmp / f"counter-{name}-1366.png") == (1366, 768)
        assert png_size(tmp / f"counter-{name}-1024.png") == (1024, 768)

    async def reported():
        r = await http.get("/operator/shifts", params={"store": STORE}, headers=hq)
        assert r.status_code == 200, r.text
        return next((s for s in r.json()["shifts"] if s["cashier_id"] == CASHIER), None)
    shift = await eventually(reported, timeout_s=30)
    assert shift, "the shift report never reached the cloud"
    doc = (await http.get("/openapi.json")).json()  # the answer is what /openapi.json says it is
    answer = (await http.get("/operator/shifts", params={"store": STORE}, headers=hq)).json()
    jsonschema.validate(answer, {**doc["paths"]["/operator/shifts"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"], "components": doc["components"]})
    assert (shift["float_fen"], shift["expected_fen"], shift["counted_fen"], shift["difference_fen"]) == (
        25_000, expected, expected - 100, -100)
    assert (shift["sales"], shift["returns"], shift["voids"], shift["lane"]) == (1, 1, 1, "1")
    manager = await operator_headers(services, "store_manager", store_id=STORE)
    own = (await http.get("/operator/shifts", headers=manager)).json()
    assert shift["shift_id"] in [s["shift_id"] for s in own["shifts"]] and own["store"] == STORE
    other = await operator_headers(services, "store_manager", store_id=OTHER_STORE)
    refused = await http.get("/operator/shifts", params={"store": STORE}, headers=other)
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    viewer = await operator_headers(services, "viewer")
    assert (await http.get("/operator/shifts", params={"store": STORE}, headers=viewer)).status_code == 200
    bad = await http.get("/operator/shifts", params={"store": STORE, "from": "yesterday"}, headers=hq)
    assert bad.status_code == 422 and "from:" in bad.json()["detail"]

    # the operator console lists it, the difference highlighted (S052's manager signed in through the console's form)
    username = f"ctr-manager-{uuid.uuid4().hex[:6]}"
    await operator_headers(services, "store_manager", store_id=STORE, username=username)
    async with async_playwright() as pw:
        browser = await launch(pw, chromium(), tmp / "console")
        page = browser.pages[0] if browser.pages else await browser.new_page()
        await page.set_viewport_size({"width": 1366, "height": 768})
        await console_sign_in(page, str(http.base_url).rstrip("/"), username)
        row = page.locator(f"#shift-table tr[data-shift='{shift['shift_id']}']")
        await row.wait_for(timeout=30_000)
        assert "-1.00" in await row.inner_text() and await row.locator("td.bad").count() == 1
        await row.scroll_into_view_if_needed()
        await page.screenshot(path=str(tmp / "console-shifts-1366.png"))
        await browser.close()
    print("screenshots:", tmp)


async def test_a_store_reporting_another_stores_shift_is_refused_and_nothing_is_replaced(counter, stack):
    """S053 sends a shift report under the shift id of S052's report (the test above closed that shift): refused and
    dead-lettered with the reason, S052's report stands; S053's report of its own shift is believed."""
    services, http, hq, box, base, tmp = counter
    theirs = await services.cloud.db.fetchrow(
        "select shift_id, difference_fen from shift_reports where store_id = $1 order by closed_ms desc limit 1", STORE)
    assert theirs, "S052's shift report (the test above) is not there"
    async with StoreLink(stack, OTHER_STORE) as link:
        def report(shift_id: str) -> ShiftReported:
            return ShiftReported(**link.next_envelope(), shift_id=shift_id, cashier_id="c53", lane="2", opened_ms=1,
                                 closed_ms=2, float_fen=0, counted=(DenominationCount(denomination_fen=100, pieces=3),),
                                 methods=(MethodTotal(method="cash", expected_fen=300, counted_fen=300),),
                                 difference_fen=0, sales=0, returns=0, voids=0)
        forged, own = report(theirs["shift_id"]), report(link.next_envelope()["event_id"])
        await link.publish(forged)
        await link.publish(own)

        async def dead():
            return await services.cloud.db.fetchval("select reason from dead_letters where reason like $1",
                                                    f"%shift {theirs['shift_id']} was reported already%")
        reason = await eventually(dead, timeout_s=20)
        assert reason and f"store {OTHER_STORE} shift.reported refused" in reason

        async def believed():
            return await services.cloud.db.fetchval("select store_id from shift_reports where shift_id = $1",
                                                    own.shift_id)
        assert await eventually(believed, timeout_s=20) == OTHER_STORE
        await link.commands(want=10, timeout_s=2)  # the cloud's answers to S053: none left waiting in its stream
    row = await services.cloud.db.fetchrow("select store_id, difference_fen from shift_reports where shift_id = $1",
                                           theirs["shift_id"])
    assert (row["store_id"], row["difference_fen"]) == (STORE, theirs["difference_fen"])
