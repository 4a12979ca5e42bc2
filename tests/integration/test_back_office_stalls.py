"""Market stalls end to end (issue 21.6), against one running cloud and a real EdgeBox at S074 hosting two stalls
(fish on lane 5, tea on lane 6); S075 hosts a third stall and plays a store that claims other stores' stalls.

- Each stall lane sells its own stall's goods; another stall's product, or the store's own, is refused at the lane
  (403, saying whose it is), and a stall's product is refused on the store's own lane. The cloud records each sale
  with its stall.
- A stall owner sees only their stall: its sales and settlement (JSON and CSV: till sales, commission, fixed fee,
  payout), never the other stall's (403 naming both), and changes only their stall's products' prices.
- In the back office (headless Chromium, 1280x800 and 390x844) the stall owner sees their stall's sales and
  settlement and not the other stall's; HQ sees and creates stalls.
- A store is not believed about another store's stall, nor a stall's sale of goods that are not the stall's.
- The stall's shop in the mall lists its products only.
"""
from __future__ import annotations

import csv
import io
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.messages import Payment, Quantity, SaleCommitted, SaleLine
from protocol.policy import chain_day
from tests.faults.test_poison_events import refused_acks
from tests.integration.harness import OPERATOR_PASSWORD, StoreLink, eventually, operator_headers, running_cloud
from tests.integration.office_browser import DESK, PHONE, office_context, office_sign_in, shot

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
BOX, OTHER = "S074", "S075"
RUN = uuid.uuid4().hex[:6]
FISH, TEA, VEG = f"fish{RUN}", f"tea{RUN}", f"veg{RUN}"
FISH_SKU, TEA_SKU, VEG_SKU = f"STL-FISH-{RUN}", f"STL-TEA-{RUN}", f"STL-VEG-{RUN}"
FISH_OWNER, TEA_OWNER = f"fish-owner-{RUN}", f"tea-owner-{RUN}"


def ean13(first12: str) -> str:
    odd, even = sum(int(d) for d in first12[0::2]), sum(int(d) for d in first12[1::2])
    return first12 + str((10 - (odd + 3 * even) % 10) % 10)


GTIN = {FISH_SKU: ean13(f"697401{int(RUN, 16) % 1_000_000:06d}"),
        TEA_SKU: ean13(f"697402{int(RUN, 16) % 1_000_000:06d}"),
        VEG_SKU: ean13(f"697503{int(RUN, 16) % 1_000_000:06d}")}


def stall_products() -> list[dict]:
    def product(sku, name, category, price, stall):
        return {"sku": sku, "name": name, "category": category, "unit": "piece", "price_fen": price,
                "gtin": GTIN[sku], "stall": stall}
    return [product(FISH_SKU, "Stall carp", "seafood", 2_000, FISH), product(TEA_SKU, "Stall oolong", "packed", 5_000, TEA),
            product(VEG_SKU, "Stall greens", "vegetables", 800, VEG)]


def store_piece() -> dict:
    return next(p for p in json.loads(WORLD.read_text())["catalogue"] if p["unit"] == "piece" and p["gtin"])


def today() -> str:
    return str(chain_day(int(time.time() * 1000)))


async def signed_in(services, username: str) -> dict[str, str]:
    session = await services.operators.sign_in(username, OPERATOR_PASSWORD)
    return {"Authorization": f"Bearer {session['token']}"}


@pytest_asyncio.fixture(scope="module")
async def market(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"stl{RUN}-") as (services, url):
        admin = await operator_headers(services)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for store_id, lat in ((BOX, 45.0), (OTHER, 45.5)):  # far from the world's stores: no order goes there
                r = await http.put(f"/stores/{store_id}", headers=admin,
                                   json={"name": f"FreshMesh Market {store_id}", "lat": lat, "lon": 90.0,
                                         "slot_capacity": 1})
                assert r.status_code == 200, r.text
                await services.bridge.ensure_store(store_id)
            products = (await http.get("/products")).json()["products"]
            r = await http.put("/products", headers=admin, json={"products": products + stall_products()})
            assert r.status_code == 200, r.text
            for stall_id, store_id, name, bp, fee in ((FISH, BOX, "Wang's fish", 800, 50_000),
                                                      (TEA, BOX, "Li's tea", 1_000, 30_000),
                                                      (VEG, OTHER, "Zhao's greens", 500, 10_000)):
                body = {"stall_id": stall_id, "store_id": store_id, "name": name, "owner": name.split("'")[0],
                        "commission_bp": bp, "monthly_fee_fen": fee}
                r = await http.post("/operator/stalls", headers=admin, json=body)
                assert r.status_code == 201, r.text
            await services.operators.create(FISH_OWNER, OPERATOR_PASSWORD, "stall_owner", BOX, by_name="tests",
                                            stall_id=FISH)
            r = await http.post("/operators", headers=admin, json={  # through the API, as HQ makes one
                "username": TEA_OWNER, "password": OPERATOR_PASSWORD, "role": "stall_owner", "store_id": BOX,
                "stall_id": TEA})
            assert r.status_code == 201, r.text
            config = {"store_id": BOX, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                      "nats_url": stack.nats_address,
                      "nats_password": stack.store_credentials(BOX)[1], "self_checkout_lanes": ["*"],
                      "stall_lanes": {"5": FISH, "6": TEA}}
            box = await EdgeBox(config).start()
            try:
                async def has_stall_goods():
                    catalogue = box.actor.books.catalogue
                    return catalogue is not None and FISH_SKU in catalogue and TEA_SKU in catalogue
                assert await eventually(has_stall_goods, timeout_s=30), "the stalls' products never reached the box"
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                             base_url="http://lane") as lane:
                    yield {"services": services, "url": url, "http": http, "admin": admin, "box": box, "lane": lane}
            finally:
                await box.stop()


async def sell(lane, lane_id: str, gtin: str) -> dict:
    r = await lane.post(f"/lanes/{lane_id}/scan", json={"code": gtin})
    assert r.status_code == 200, r.text
    r = await lane.post(f"/lanes/{lane_id}/pay", json={"method": "cash", "tendered_fen": 100_000})
    assert r.status_code == 201, r.text
    return r.json()


@pytest_asyncio.fixture(scope="module")
async def sales(market) -> dict[str, dict]:
    """One sale on each stall's lane (stall -> the sale), recorded in the cloud with its stall: every test that
    reads them gets them, whichever runs first."""
    lane, services = market["lane"], market["services"]
    made = {FISH: await sell(lane, "5", GTIN[FISH_SKU]), TEA: await sell(lane, "6", GTIN[TEA_SKU])}

    async def recorded():
        rows = await services.cloud.db.fetch("select sale_id, stall_id from till_sales where sale_id = any($1::text[])",
                                             [made[FISH]["sale_id"], made[TEA]["sale_id"]])
        return {r["sale_id"]: r["stall_id"] for r in rows} if len(rows) == 2 else None
    market["stalls_of"] = await eventually(recorded, timeout_s=20)
    return made


async def test_each_stall_lane_sells_its_own_goods_and_refuses_others(market, sales):
    lane = market["lane"]
    assert market["stalls_of"] == {sales[FISH]["sale_id"]: FISH, sales[TEA]["sale_id"]: TEA}

    r = await lane.post("/lanes/5/scan", json={"code": GTIN[TEA_SKU]})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == f"lane 5 is stall {FISH}'s: it sells only that stall's products, not stall {TEA}'s " \
                                 f"{TEA_SKU}"
    r = await lane.post("/lanes/5/scan", json={"code": store_piece()["gtin"]})
    assert r.status_code == 403 and f"not the store's {store_piece()['sku']}" in r.json()["detail"]
    r = await lane.post("/lanes/1/scan", json={"code": GTIN[FISH_SKU]})
    assert r.status_code == 403 and "sell it on that stall's lane, not on store lane 1" in r.json()["detail"]
    assert (await lane.get("/lanes/5/cart")).json()["lines"] == []  # nothing refused was added


async def test_a_stall_owner_sees_only_their_stall_s_sales_and_settlement(market, sales):
    http, services = market["http"], market["services"]
    owner = await signed_in(services, FISH_OWNER)
    day, first = today(), today()[:8] + "01"
    listed = (await http.get("/operator/stalls", headers=owner)).json()["stalls"]
    assert [s["stall_id"] for s in listed] == [FISH]

    listed_sales = (await http.get(f"/operator/stalls/{FISH}/sales?from={day}&to={day}", headers=owner)).json()
    assert [s["sale_id"] for s in listed_sales["till_sales"]] == [sales[FISH]["sale_id"]]
    total = sales[FISH]["total_fen"]
    r = await http.get(f"/operator/stalls/{FISH}/settlement?from={first}&to={day}", headers=owner)
    assert r.status_code == 200, r.text
    s = r.json()
    commission = (total * 800 + 5_000) // 10_000
    assert (s["till_sales_fen"], s["online_sales_fen"], s["sales_fen"]) == (total, 0, total)
    assert (s["commission_fen"], s["months_charged"], s["fixed_fees_fen"]) == (commission, 1, 50_000)
    assert s["payout_fen"] == total - commission - 50_000
    r = await http.get(f"/operator/stalls/{FISH}/settlement?from={first}&to={day}&format=csv", headers=owner)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 1 and int(rows[0]["payout_fen"]) == s["payout_fen"] and rows[0]["stall_id"] == FISH

    for path in (f"/operator/stalls/{TEA}", f"/operator/stalls/{TEA}/sales?from={day}&to={day}",
                 f"/operator/stalls/{TEA}/settlement?from={day}&to={day}"):
        r = await http.get(path, headers=owner)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["detail"] == f"{FISH_OWNER}: a stall owner of {FISH} may not see or change stall {TEA}"
    stores = await http.get("/stores", headers=owner)  # the public list: a stall owner sees no store's figures
    assert stores.status_code == 200 and "till_sales_fen" not in stores.text
    r = await http.get(f"/operator/stalls/{FISH}/settlement?from={day}&to=yesterday", headers=owner)
    assert r.status_code == 422 and "to: a day YYYY-MM-DD" in r.json()["detail"]

    hq = (await http.get(f"/operator/stalls?store_id={BOX}", headers=market["admin"])).json()["stalls"]
    assert [s["stall_id"] for s in hq] == sorted([FISH, TEA])


async def test_a_stall_owner_changes_only_their_stall_s_products(market):
    http, services, box = market["http"], market["services"], market["box"]
    owner = await signed_in(services, FISH_OWNER)
    r = await http.put(f"/operator/stalls/{FISH}/products/{FISH_SKU}", headers=owner, json={"price_fen": 2_200})
    assert r.status_code == 200, r.text
    assert next(p for p in (await http.get("/products")).json()["products"] if p["sku"] == FISH_SKU)["price_fen"] == 2_200

    async def at_the_till():
        return box.actor.books.catalogue.get(FISH_SKU).price_fen == 2_200
    assert await eventually(at_the_till, timeout_s=20), "the new price never reached the stall's till"
    r = await http.put(f"/operator/stalls/{FISH}/products/{TEA_SKU}", headers=owner, json={"price_fen": 1})
    assert r.status_code == 403 and f"{TEA_SKU} is not a product of stall {FISH}" in r.json()["detail"]
    r = await http.put(f"/operator/stalls/{TEA}/products/{TEA_SKU}", headers=owner, json={"price_fen": 1})
    assert r.status_code == 403 and f"may not see or change stall {TEA}" in r.json()["detail"]
    r = await http.put(f"/operator/stalls/{FISH}/products/{store_piece()['sku']}", headers=owner, json={"price_fen": 1})
    assert r.status_code == 403
    r = await http.put(f"/operator/stalls/{FISH}/products/{FISH_SKU}", headers=owner, json={"price_fen": 0})
    assert r.status_code == 422 and "price_fen" in r.json()["detail"]
    assert (await http.put("/products", headers=owner, json={"products": []})).status_code == 403
    audit = (await http.get("/operator/audit?limit=20", headers=market["admin"])).json()["entries"]
    change = next(e for e in audit if e["username"] == FISH_OWNER)
    assert change["action"] == "catalogue.change" and change["after"]["products"][FISH_SKU]["price_fen"] == 2_200


@pytest.mark.parametrize("size", [DESK, PHONE], ids=["desk", "phone"])
async def test_back_office_stall_owner_sees_only_their_stall_sales_and_settlement(market, sales, size, tmp_path):
    url = market["url"]
    async with office_context(size) as (_context, page):
        await office_sign_in(page, url, FISH_OWNER, OPERATOR_PASSWORD, then=f"/office/stalls/{FISH}")
        body = await page.text_content("main")
        assert sales[FISH]["sale_id"] in body and sales[TEA]["sale_id"] not in body
        assert await page.locator(f"#sales tr[data-sale='{sales[FISH]['sale_id']}']").count() == 1
        settlement = await page.text_content("#settlement")
        assert "¥500.00" in settlement  # the monthly fee, once (this month began in the period)
        assert TEA_SKU not in body and FISH_SKU in body and "{" not in body
        await shot(page, tmp_path, "stall-owner", size)

        await page.goto(f"{url}/office/stalls")  # their list is their own stall
        await page.wait_for_url(f"{url}/office/stalls/{FISH}")
        r = await page.goto(f"{url}/office/stalls/{TEA}")
        assert r is not None and r.status == 403
        assert f"a stall owner of {FISH} may not see or change stall {TEA}" in await page.text_content("main")
        await shot(page, tmp_path, "other-stall-refused", size)


async def test_back_office_hq_lists_stalls_and_creates_one(market, tmp_path):
    url, services = market["url"], market["services"]
    admin = f"hq-stalls-{RUN}"
    await services.operators.create(admin, OPERATOR_PASSWORD, "hq_admin", None, by_name="tests")
    async with office_context(DESK) as (_context, page):
        await office_sign_in(page, url, admin, OPERATOR_PASSWORD, then="/office/stalls")
        assert await page.locator(f"#stalls tr[data-stall='{FISH}']").count() == 1
        await page.fill("#stall_id", f"bad id {RUN}")
        await page.select_option("#store_id", BOX)
        await page.fill("#name", "Flowers")
        await page.fill("#owner", "Sun")
        await page.fill("#commission", "6.5")
        await page.fill("#monthly_fee", "200")
        await page.click("#create-stall [type=submit]")
        await page.wait_for_function("document.querySelector('#create-stall [role=alert]').textContent.length > 0")
        said = await page.text_content("#create-stall [role=alert]")
        assert "stall_id" in said and "{" not in said
        await page.fill("#stall_id", f"flowers{RUN}")
        await page.click("#create-stall [type=submit]")
        await page.wait_for_url(f"{url}/office/stalls/flowers{RUN}")
        await shot(page, tmp_path, "hq-created", DESK)
    stall = await services.cloud.db.fetchrow("select * from stalls where stall_id = $1", f"flowers{RUN}")
    assert (stall["commission_bp"], stall["monthly_fee_fen"], stall["store_id"]) == (650, 20_000, BOX)


async def test_the_stall_s_shop_in_the_mall_lists_its_products_only(market):
    http = market["http"]
    r = await http.get(f"/mall/stalls/{FISH}")
    assert r.status_code == 200 and "Stall carp" in r.text and "Stall oolong" not in r.text
    assert (await http.get(f"/mall/stalls/nostall{RUN}")).status_code == 404


def stall_sale(link: StoreLink, stall: str, sku: str) -> SaleCommitted:
    return SaleCommitted(**link.next_envelope(), sale_id=f"STL{uuid.uuid4().hex[:20]}", lane="7",
                         lines=(SaleLine(sku=sku, quantity=Quantity.pieces(1), amount_fen=800),), total_fen=800,
                         payments=(Payment(method="cash", amount_fen=800, reference=""),), member_id=None,
                         offline=False, stall=stall)


async def test_a_store_is_not_believed_about_another_store_s_stall_and_its_paid_sales_are_never_lost(market, stack):
    """A claim on S074's stall from S075 is refused; a sale whose lines are not its stall's (the box's catalogue
    was older) stands as the box sold it: its money was taken, so stock, money and figures stay whole."""
    services = market["services"]
    async with StoreLink(stack, OTHER) as other:
        theirs = stall_sale(other, FISH, FISH_SKU)  # S074's stall, claimed by S075
        foreign = stall_sale(other, VEG, FISH_SKU)  # its own stall selling S074's fish stall's goods
        unstalled = stall_sale(other, "", VEG_SKU)  # a stall's goods on the store's own till
        good = stall_sale(other, VEG, VEG_SKU)
        for message in (theirs, foreign, unstalled, good):
            await other.publish(message)

        async def applied():
            return await services.cloud.db.fetchval("select count(*) from till_sales where sale_id = any($1::text[])",
                                                    [good.sale_id, foreign.sale_id, unstalled.sale_id]) == 3
        assert await eventually(applied, timeout_s=20)
        told = await refused_acks(other, {theirs.event_id})
    assert f"names stall {FISH}, a stall of {BOX}, not of {OTHER}" in told[theirs.event_id]
    rows = {r["sale_id"]: r["stall_id"] for r in await services.cloud.db.fetch(
        "select sale_id, stall_id from till_sales where sale_id = any($1::text[])",
        [theirs.sale_id, foreign.sale_id, unstalled.sale_id, good.sale_id])}
    assert rows == {good.sale_id: VEG, foreign.sale_id: VEG, unstalled.sale_id: ""}


async def test_a_stall_is_created_once_and_wrong_ones_are_refused_naming_the_field(market):
    http, services, admin = market["http"], market["services"], market["admin"]
    body = {"stall_id": FISH, "store_id": BOX, "name": "Wang's fish", "owner": "Wang", "commission_bp": 800,
            "monthly_fee_fen": 50_000}
    again = await http.post("/operator/stalls", headers=admin, json=body)
    assert again.status_code == 200 and again.json()["stall_id"] == FISH  # the same stall sent again
    r = await http.post("/operator/stalls", headers=admin, json={**body, "name": "Someone else's fish"})
    assert r.status_code == 409 and f"stall_id: {FISH} is another stall already" in r.json()["detail"]
    r = await http.post("/operator/stalls", headers=admin, json={**body, "stall_id": f"x{RUN}", "commission_bp": "8%"})
    assert r.status_code == 422 and "commission_bp" in r.json()["detail"]
    r = await http.post("/operator/stalls", headers=admin, json={**body, "stall_id": f"x{RUN}", "fee": 1})
    assert r.status_code == 422 and "unknown field(s) fee" in r.json()["detail"]
    r = await http.post("/operator/stalls", headers=admin, json={**body, "stall_id": f"x{RUN}", "store_id": "S999"})
    assert r.status_code == 422 and "store_id: no store S999" in r.json()["detail"]
    owner = await signed_in(services, FISH_OWNER)
    r = await http.post("/operator/stalls", headers=owner, json={**body, "stall_id": f"x{RUN}"})
    assert r.status_code == 403
    r = await http.post("/operators", headers=admin, json={"username": f"bad-owner-{RUN}", "password": OPERATOR_PASSWORD,
                                                           "role": "stall_owner", "store_id": OTHER, "stall_id": FISH})
    assert r.status_code == 422 and f"stall {FISH} is at {BOX}, not at store_id {OTHER}" in r.json()["detail"]
    assert await services.cloud.db.fetchval("select count(*) from stalls where stall_id = $1", f"x{RUN}") == 0


async def test_every_stall_answer_is_the_one_openapi_describes(market):
    """The stall endpoints' success answers, live, against /openapi.json (test_openapi_live.py counts on this)."""
    from tests.integration.test_openapi_live import check
    http, services, admin = market["http"], market["services"], market["admin"]
    doc = (await http.get("/openapi.json")).json()
    owner = await signed_in(services, FISH_OWNER)
    day = today()
    span = {"from": day[:8] + "01", "to": day}
    check(doc, "/operator/stalls", "get", await http.get("/operator/stalls", headers=admin))
    check(doc, "/operator/stalls/{stall_id}", "get", await http.get(f"/operator/stalls/{FISH}", headers=owner))
    check(doc, "/operator/stalls/{stall_id}/products", "get",
          await http.get(f"/operator/stalls/{FISH}/products", headers=owner))
    check(doc, "/operator/stalls/{stall_id}/sales", "get",
          await http.get(f"/operator/stalls/{FISH}/sales", params=span, headers=owner))
    check(doc, "/operator/stalls/{stall_id}/settlement", "get",
          await http.get(f"/operator/stalls/{FISH}/settlement", params=span, headers=owner))
    again = {"stall_id": TEA, "store_id": BOX, "name": "Li's tea", "owner": "Li", "commission_bp": 1_000,
             "monthly_fee_fen": 30_000}
    check(doc, "/operator/stalls", "post", await http.post("/operator/stalls", headers=admin, json=again))
    check(doc, "/operator/stalls/{stall_id}/products/{sku}", "put",
          await http.put(f"/operator/stalls/{FISH}/products/{FISH_SKU}", headers=owner, json={"name": "Stall carp"}))
