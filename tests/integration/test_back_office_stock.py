"""The back office's stock policy and stores pages in headless Chromium against a running cloud and a real store box
(issue 21 Must-show): an HQ admin sets a 70/30 till/online ratio on a SKU with stock at store S072 and the store's
escrow follows to 30% online, in the cloud (`GET /stores/{id}/stock` available_online) and in the box's own
database; a store manager of S072 edits S072's hours and is refused on S073, on the page (read-only, a forced write
answered as a sentence) and by the API (403).

Stores S072 and S073 are this module's own: the test stack provisions their NATS users, and HQ adds them to the
world here through the public `PUT /stores/{id}` (far from the world's stores, so no other order is routed to them).
Screenshots at 1280x800 and 390x844 go to the test's tmp dir."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.lanes import build_lane_app
from tests.integration.harness import OPERATOR_PASSWORD, eventually, operator_headers, running_cloud
from tests.integration.office_browser import DESK, PHONE, office_context, office_sign_in, shot
from tests.integration.test_openapi_live import check

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
BOX, OTHER = "S072", "S073"
RUN = uuid.uuid4().hex[:6]
SKU = [p for p in json.loads(WORLD.read_text())["catalogue"]
       if p["unit"] == "piece" and "online" in p["channels"]][-1]["sku"]
RECEIVED = 100


def store_body(store_id: str, lon: float, **changes) -> dict:
    return {"name": f"Back office {store_id}", "lat": 30.25, "lon": lon, "pickup_radius_m": 3_000,
            "delivery_radius_m": 2_000, "opens": "08:00", "closes": "21:00", "slot_minutes": 60,
            "slot_capacity": 10, "delivery_fee_fen": 600, "free_delivery_from_fen": 5_000, **changes}


@pytest_asyncio.fixture(scope="module")
async def office(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"bos{RUN}-") as (services, url):
        admin = await operator_headers(services)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for store_id, lon in ((BOX, 120.10), (OTHER, 120.30)):
                r = await http.put(f"/stores/{store_id}", json=store_body(store_id, lon), headers=admin)
                assert r.status_code == 200, r.text
                await services.bridge.ensure_store(store_id)
            config = {"store_id": BOX, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                      "nats_url": stack.nats_url, "nats_password": stack.store_credentials(BOX)[1]}
            box = await EdgeBox(config).start()
            try:
                assert await eventually(lambda: _online(box), timeout_s=20)
                yield services, url, http, box, admin
            finally:
                await box.stop()


async def _online(box) -> bool:
    return box.actor.online


async def _account(services, role: str, store_id: str | None = None) -> str:
    name = f"{role.replace('_', '-')}-{RUN}-{uuid.uuid4().hex[:4]}"
    await services.operators.create(name, OPERATOR_PASSWORD, role, store_id, by_name="tests")
    return name


async def test_back_office_hq_sets_a_70_30_ratio_and_the_stores_escrow_follows(office, tmp_path):
    services, url, http, box, admin = office
    await box.actor.ask("receive", sku=SKU, qty=RECEIVED)  # the store's default ratio escrows 40 online

    async def online_units() -> int:
        r = await http.get(f"/stores/{BOX}/stock", params={"sku": SKU})
        return next((s["available_online"] for s in r.json()["stock"] if s["sku"] == SKU), -1)

    async def cloud_has(units: int) -> bool:
        return await online_units() == units

    assert await eventually(lambda: cloud_has(40), timeout_s=20), await online_units()
    hq = await _account(services, "hq_admin")
    for size in (DESK, PHONE):
        async with office_context(size) as (_context, page):
            await office_sign_in(page, url, hq, OPERATOR_PASSWORD, then=f"/office/stock?store={BOX}")
            row = page.locator(f"#stock-table tr[data-sku='{SKU}']")
            assert (await row.locator("[data-field=available_online]").text_content()).strip() in ("40", "30")
            await shot(page, tmp_path, "stock-before", size)
            if size is PHONE:
                break
            await page.select_option("#a-scope", "sku")
            await page.fill("#a-key", SKU)
            await page.fill("#a-till", "70")
            assert await page.input_value("#a-online") == "30"  # the shares follow each other
            async with page.expect_navigation():  # saved ("已保存：70/30"), then the page shows the new ratio
                await page.click("#alloc-save")
            assert (await page.text_content(f"#alloc-table tr[data-key='{SKU}'] [data-field=ratio]")).strip() == "70/30"
            # a bad ratio is said as a sentence, never JSON
            await page.fill("#a-key", "NO-SUCH-SKU")
            await page.fill("#a-online", "30")
            await page.click("#alloc-save")
            await page.wait_for_function("document.getElementById('alloc-msg').textContent.includes('NO-SUCH-SKU')")
            said = await page.text_content("#alloc-msg")
            assert "unknown product" in said and "{" not in said

            assert await eventually(lambda: cloud_has(30), timeout_s=20), await online_units()
            level = await box.store_db.stock_level(SKU)
            assert (level.on_hand, level.escrow) == (RECEIVED, 30)  # the box's own view: 30% online, 70 for the till
            await page.goto(f"{url}/office/stock?store={BOX}")
            assert (await row.locator("[data-field=available_online]").text_content()).strip() == "30"
            assert "70/30" in await row.text_content()
            await shot(page, tmp_path, "stock-after", size)
            await page.goto(f"{url}/office/stock?sku={SKU}&lang=en")  # chain-wide: every store holding the SKU
            assert await page.text_content("h1") == "Stock policy"
            assert await page.locator(f"#stock-table tr[data-sku='{SKU}'][data-store='{BOX}']").count() == 1
    audit = (await http.get("/operator/audit", headers=admin)).json()["entries"]
    assert any(e["action"] == "allocation.set" and e["username"] == hq and SKU in e["target"] for e in audit)


async def test_back_office_store_manager_cannot_edit_another_store(office, tmp_path):
    services, url, http, _box, admin = office
    manager = await _account(services, "store_manager", BOX)
    async with office_context(DESK) as (_context, page):
        await office_sign_in(page, url, manager, OPERATOR_PASSWORD, then=f"/office/stores/{BOX}")
        await page.fill("#closes", "21:30")
        await page.click("#store-save")
        await page.wait_for_function("document.getElementById('store-msg').classList.contains('ok')")
        assert services.cloud.world.stores[BOX].closes == "21:30"
        await shot(page, tmp_path, "own-store", DESK)

        await page.goto(f"{url}/office/stores/{OTHER}")
        note = await page.text_content("#read-only-note")
        assert f"a store manager of {BOX} may not act on store {OTHER}" in note
        assert await page.is_disabled("#store-save") and await page.is_disabled("#closes")
        await shot(page, tmp_path, "other-store", DESK)
        # a page forced writable (or a stale tab): the API refuses, and the refusal is shown as a sentence
        await page.evaluate("() => document.querySelector('#store-form fieldset').disabled = false")
        await page.fill("#closes", "23:00")
        await page.click("#store-save")
        await page.wait_for_function("document.getElementById('store-msg').textContent.length > 0")
        said = await page.text_content("#store-msg")
        assert f"may not act on store {OTHER}" in said and "{" not in said
        assert services.cloud.world.stores[OTHER].closes == "21:00"
        # nor may they see another store's stock figures
        r = await page.goto(f"{url}/office/stock?store={OTHER}")
        assert r is not None and r.status == 403
        assert f"may not act on store {OTHER}" in await page.text_content("main")
    async with office_context(PHONE) as (_context, page):
        await office_sign_in(page, url, manager, OPERATOR_PASSWORD, then="/office/stores")
        await shot(page, tmp_path, "stores", PHONE)
        await page.goto(f"{url}/office/stores/{BOX}?lang=en")
        assert await page.input_value("#closes") == "21:30" and await page.is_enabled("#store-save")
        await page.locator("#store-save").scroll_into_view_if_needed()
        await shot(page, tmp_path, "own-store", PHONE)

    token = (await services.operators.sign_in(manager, OPERATOR_PASSWORD))["token"]
    r = await http.put(f"/stores/{OTHER}", json=store_body(OTHER, 120.30, closes="23:00"),
                       headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and f"may not act on store {OTHER}" in r.json()["detail"]


async def test_back_office_hq_closes_a_store_and_it_is_not_routed_to(office, tmp_path):
    services, url, http, _box, admin = office
    nine_am_local = 1_767_229_200_000  # 2026-01-01 09:00 UTC+8: on both stores' slot grid
    near_other = (30.25, 120.301)

    async def routed() -> list[str]:
        return await services.cloud.actors.router.nearby(*near_other, "delivery", nine_am_local)
    assert OTHER in await routed()
    hq = await _account(services, "hq_admin")
    async with office_context(DESK) as (_context, page):
        await office_sign_in(page, url, hq, OPERATOR_PASSWORD, then=f"/office/stores/{OTHER}")
        await page.uncheck("#open")
        await page.click("#store-save")
        await page.wait_for_function("document.getElementById('store-msg').classList.contains('ok')")
        await page.goto(f"{url}/office/stores")
        assert "已闭店" in await page.text_content(f"#stores-table tr[data-store='{OTHER}']")
        await shot(page, tmp_path, "stores", DESK)
    assert services.cloud.world.stores[OTHER].open is False
    assert OTHER not in await routed()
    listed = {s["store_id"]: s for s in (await http.get("/stores")).json()["stores"]}
    assert listed[OTHER]["open"] is False and listed[BOX]["open"] is True
    # the closed store's own manager edits its hours (the page's box is read-only for them) but cannot reopen it
    manager = await _account(services, "store_manager", OTHER)
    async with office_context(DESK) as (_context, page):
        await office_sign_in(page, url, manager, OPERATOR_PASSWORD, then=f"/office/stores/{OTHER}")
        assert await page.is_disabled("#open") and not await page.is_checked("#open")
        await page.fill("#closes", "20:30")
        await page.click("#store-save")
        await page.wait_for_function("document.getElementById('store-msg').classList.contains('ok')")
    assert services.cloud.world.stores[OTHER].open is False and services.cloud.world.stores[OTHER].closes == "20:30"
    mgr = await operator_headers(services, "store_manager", store_id=OTHER)
    r = await http.put(f"/stores/{OTHER}", json=store_body(OTHER, 120.30, open=True), headers=mgr)
    assert r.status_code == 403 and "store.open_close" in r.json()["detail"], r.text
    assert OTHER not in await routed()
    r = await http.put(f"/stores/{OTHER}", json=store_body(OTHER, 120.30, open=True), headers=admin)
    assert r.status_code == 200 and OTHER in await routed()


async def test_back_office_the_sending_stores_manager_approves_or_refuses_transfers(office, tmp_path):
    services, url, http, box, _admin = office
    asker = await operator_headers(services, "store_manager", store_id=OTHER)
    ask = {"from_store": BOX, "to_store": OTHER, "lines": [{"sku": SKU, "qty": 3}], "reason": "weekend"}
    first = (await http.post("/operator/transfers", json=ask, headers=asker)).json()
    second = (await http.post("/operator/transfers", json={**ask, "reason": "again"}, headers=asker)).json()
    assert (first["status"], second["status"]) == ("awaiting_approval", "awaiting_approval")
    manager = await _account(services, "store_manager", BOX)
    async with office_context(DESK) as (_context, page):
        await office_sign_in(page, url, manager, OPERATOR_PASSWORD, then="/office/stock")
        assert await page.eval_on_selector_all("#f-store option", "os => os.map(o => o.value)") == [BOX]
        card = page.locator(f"#transfers-waiting li[data-transfer='{first['transfer_id']}']")
        assert f"{BOX} → {OTHER}" in await card.text_content()
        await card.scroll_into_view_if_needed()
        await shot(page, tmp_path, "to-approve", DESK)
        async with page.expect_navigation():
            await card.locator("button[value=approve]").click()
        other = page.locator(f"#transfers-waiting li[data-transfer='{second['transfer_id']}']")
        assert await card.count() == 0 and await other.count() == 1
        await other.locator("button[value=refuse]").click()  # no reason: said, and nothing sent
        await page.wait_for_function("document.querySelector('form.decide [role=alert]').textContent.length > 0")
        assert "原因" in await other.locator("[role=alert]").text_content()
        await other.locator("input[name=reason]").fill("we need them ourselves")
        async with page.expect_navigation():
            await other.locator("button[value=refuse]").click()
        assert await page.locator("#transfers-waiting").count() == 0
    doc = (await http.get("/openapi.json")).json()
    listed = await http.get("/transfers", headers=asker)
    again = await http.post(f"/operator/transfers/{first['transfer_id']}/decision", json={"decision": "approve"},
                            headers=await operator_headers(services))  # the same decision again: as it is
    assert again.status_code == 200 and again.json()["status"] == "requested"
    check(doc, "/transfers", "get", listed)  # the answers as the API document says (decided_by, the new statuses)
    check(doc, "/operator/transfers/{transfer_id}/decision", "post", again)
    seen = {t["transfer_id"]: t for t in listed.json()["transfers"]}
    assert (seen[first["transfer_id"]]["status"], seen[first["transfer_id"]]["decided_by"]) == ("requested", manager)
    assert seen[second["transfer_id"]]["status"] == "refused"
    assert seen[second["transfer_id"]]["decision_reason"] == "we need them ourselves"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
        async def to_dispatch() -> set[str]:
            body = (await lane.get("/transfers", params={"status": "to_dispatch"})).json()
            return {t["transfer_id"] for t in body["transfers"]}

        async def approved_arrived() -> bool:
            return first["transfer_id"] in await to_dispatch()
        assert await eventually(approved_arrived, timeout_s=20)  # the approved one reached the sending box
        assert second["transfer_id"] not in await to_dispatch()  # the refused one never did
