"""Local services booking (issue 21 item 7) against a real cloud (PostgreSQL, Ray, NATS from the harness): the
store's manager defines its services, staff and hours through the operator API; customers book through the public
API and the mall; PostgreSQL decides races for a staff member's time; the store's day schedule (operator API and the
back office's page) shows the bookings. Browser: a customer books in the mall at phone size, the store manager's
back-office schedule shows the booking, and a second customer booking the same time is refused with the mall's
sentence. Screenshots at 390x844 and 1280x800 go to the test's tmp dir.

S076 is this module's own store (added to the cloud's world through PUT /stores/S076, far from every other store);
nothing here sends a cloud->store message."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio

from protocol import service_slots as core
from tests.integration.harness import OPERATOR_PASSWORD, customer, operator_headers, running_cloud
from tests.integration.office_browser import DESK, PHONE, office_context, office_sign_in, shot
from tests.integration.test_mall_buy import browser_sign_in, member_id_of
from tests.integration.test_openapi_live import check

pytestmark = pytest.mark.integration
STORE = "S076"
RUN = uuid.uuid4().hex[:6]
BOOK_KNIFE_STAFF = 1
ALL_WEEK = [{"weekday": d, "opens": "09:00", "closes": "18:00"} for d in range(1, 8)]
BOOK = {
    "staff": [{"staff_id": "T1", "name": "王师傅"}, {"staff_id": "T2", "name": "李师傅"},
              {"staff_id": "T3", "name": "张师傅"}],
    "services": [
        {"service_id": "KNIFE", "name": "磨刀", "name_en": "Knife sharpening", "duration_min": 30, "price_fen": 1000,
         "staff": ["T1"]},
        {"service_id": "FISH", "name": "杀鱼去鳞", "name_en": "Fish cleaning", "duration_min": 15, "price_fen": 0,
         "staff": ["T2", "T3"]},
        {"service_id": "SETUP", "name": "上门安装", "name_en": "Home delivery setup", "duration_min": 60,
         "price_fen": 5000, "staff": ["T1"]},
    ],
    "schedule": ALL_WEEK,
}
BOOK_KNIFE = {**BOOK["services"][0], "staff": BOOK_KNIFE_STAFF}  # as GET /stores/{id}/services says it


def tomorrow_at(services, hhmm: str, days: int = 1) -> str:
    """A start on a later store day (China time), as RFC 3339."""
    day = core.store_day(services.cloud.now_ms()) + timedelta(days=days)
    return _rfc(core.day_start_ms(day) + core.minutes(hhmm) * core.MINUTE_MS)


def _rfc(ms: int) -> str:
    from protocol.clock import to_rfc3339
    return to_rfc3339(ms)


def day_of(start: str) -> str:
    from protocol.clock import parse_rfc3339
    return core.store_day(parse_rfc3339(start)).isoformat()


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"svc{RUN}-") as (services, url):
        hq = await operator_headers(services)
        manager = f"mgr-svc-{RUN}"
        await services.operators.create(manager, OPERATOR_PASSWORD, "store_manager", STORE, by_name="tests")
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            r = await http.put(f"/stores/{STORE}", headers=hq, json={
                "name": "Services test S076", "lat": 30.7000, "lon": 120.9000, "opens": "08:00", "closes": "20:00"})
            assert r.status_code == 200, r.text
            mgr = {"Authorization": "Bearer " + (await services.operators.sign_in(manager, OPERATOR_PASSWORD))["token"]}
            r = await http.put(f"/operator/stores/{STORE}/services", headers=mgr, json=BOOK)
            assert r.status_code == 200, r.text
            yield services, url, http, hq, mgr, manager


async def book(http, member, service_id: str, start: str, booking_id: str | None = None) -> httpx.Response:
    return await http.post("/bookings", headers=member.headers, json={
        "booking_id": booking_id or f"B{uuid.uuid4().hex}", "store_id": STORE, "service_id": service_id,
        "start": start})


async def test_the_book_is_the_store_manager_s_and_a_wrong_one_is_refused_naming_what(cloud):
    services, _, http, hq, mgr, manager = cloud
    offered = (await http.get(f"/stores/{STORE}/services")).json()
    assert [s["service_id"] for s in offered["services"]] == ["KNIFE", "FISH", "SETUP"]
    assert offered["pay_at"] == "store" and offered["services"][1]["staff"] == 2
    other = await operator_headers(services, "store_manager", "S001")
    r = await http.put(f"/operator/stores/{STORE}/services", headers=other, json=BOOK)
    assert r.status_code == 403 and "may not act on store S076" in r.json()["detail"]
    viewer = await operator_headers(services, "viewer")
    assert (await http.put(f"/operator/stores/{STORE}/services", headers=viewer, json=BOOK)).status_code == 403
    wrong = {**BOOK, "services": [{**BOOK["services"][0], "staff": ["T9"]}]}
    r = await http.put(f"/operator/stores/{STORE}/services", headers=mgr, json=wrong)
    assert r.status_code == 422 and r.json()["detail"] == "service KNIFE: staff T9 not in the staff list"
    again = await http.put(f"/operator/stores/{STORE}/services", headers=mgr, json=BOOK)  # unchanged: same version
    assert again.status_code == 200 and again.json()["version"] == 1
    audit = await services.cloud.db.fetch("select username from operator_audit where action = 'services.book' and "
                                          "target = $1", STORE)
    assert [a["username"] for a in audit] == [manager]


async def test_a_race_of_two_bookings_for_the_last_free_staff_member_books_exactly_one(cloud):
    services, _, http, _, mgr, _ = cloud
    a, b = await customer(services, http), await customer(services, http)
    for hhmm in ("12:00", "13:00", "14:00", "11:00"):  # several rounds: each a race for T1's time, one winner
        start = tomorrow_at(services, hhmm)
        answers = await asyncio.gather(book(http, a, "KNIFE", start), book(http, b, "KNIFE", start))
        assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
        refused = next(r for r in answers if r.status_code == 409).json()
        assert refused["reason"] == "taken" and refused["type"] == "/problems/slot"
    for x in (a, b):  # the rounds' bookings other than 11:00 given back (a member holds at most 5 ahead)
        for held in (await http.get(f"/members/{x.member_id}/bookings", headers=x.headers)).json()["bookings"]:
            if not held["local_start"].endswith("11:00"):
                assert (await http.post(f"/bookings/{held['booking_id']}/cancel", headers=x.headers)).status_code == 200
    # SETUP is given by the same staff member: 10:45-11:45 overlaps the knife booking, 11:30 does not
    assert (await book(http, a, "SETUP", tomorrow_at(services, "10:45"))).status_code == 409
    assert (await book(http, a, "SETUP", tomorrow_at(services, "11:30"))).status_code == 201
    # two staff give FISH: three racing customers, exactly two booked, on different staff
    c = await customer(services, http)
    fish = tomorrow_at(services, "15:00")
    answers = await asyncio.gather(*(book(http, m, "FISH", fish) for m in (a, b, c)))
    made = [r.json() for r in answers if r.status_code == 201]
    assert len(made) == 2 and {m["staff_id"] for m in made} == {"T2", "T3"}, [r.text for r in answers]
    slots = (await http.get(f"/stores/{STORE}/services/FISH/slots", params={"date": day_of(fish)})).json()["slots"]
    assert fish not in [s["start"] for s in slots]
    day = (await http.get(f"/operator/stores/{STORE}/schedule", params={"date": day_of(start)}, headers=mgr)).json()
    t1 = next(s for s in day["staff"] if s["staff_id"] == "T1")
    booked = [(x["service_id"], x["local_start"][11:]) for x in t1["bookings"] if x["status"] == "booked"]
    assert booked == [("KNIFE", "11:00"), ("SETUP", "11:30")]
    assert sum(x["status"] == "cancelled" for x in t1["bookings"]) == 3  # the rounds' given back, marked
    held = await services.cloud.db.fetch("select c.staff_id, c.cell_ms, b.status from service_cells c join "
                                         "service_bookings b using (booking_id) where c.store_id = $1", STORE)
    assert held and all(h["status"] == "booked" for h in held)  # a cancelled booking holds no time


async def test_a_booking_is_idempotent_by_its_id_and_cancelled_by_its_member_or_the_store_only(cloud):
    services, _, http, hq, mgr, _ = cloud
    a, b = await customer(services, http), await customer(services, http)
    start, booking_id = tomorrow_at(services, "09:00", days=2), f"B{uuid.uuid4().hex}"
    first = await book(http, a, "KNIFE", start, booking_id)
    assert first.status_code == 201, first.text
    again = await book(http, a, "KNIFE", start, booking_id)
    assert again.status_code == 200 and again.json() == first.json()
    reused = await book(http, a, "KNIFE", tomorrow_at(services, "09:30", days=2), booking_id)
    assert reused.status_code == 409 and reused.json()["type"] == "/problems/idempotency-key-reused"
    mine = (await http.get(f"/members/{a.member_id}/bookings", headers=a.headers)).json()["bookings"]
    assert [x["booking_id"] for x in mine] == [booking_id]
    assert (await http.get(f"/members/{a.member_id}/bookings", headers=b.headers)).status_code == 404
    assert (await http.post(f"/bookings/{booking_id}/cancel", headers=b.headers)).status_code == 404
    other = await operator_headers(services, "store_manager", "S001")
    assert (await http.post(f"/bookings/{booking_id}/cancel", headers=other)).status_code == 403
    off = await http.post(f"/bookings/{booking_id}/cancel", headers=a.headers)
    assert off.status_code == 200 and off.json()["status"] == "cancelled" and off.json()["cancelled_by"] == "member"
    assert (await http.post(f"/bookings/{booking_id}/cancel", headers=a.headers)).json() == off.json()
    retaken = await book(http, b, "KNIFE", start)  # the time is free again
    assert retaken.status_code == 201, retaken.text
    by_store = await http.post(f"/bookings/{retaken.json()['booking_id']}/cancel", headers=mgr)
    assert by_store.status_code == 200 and by_store.json()["cancelled_by"].startswith("mgr-svc-")
    too_soon = await book(http, a, "KNIFE", _rfc(services.cloud.now_ms() + 60_000))
    assert too_soon.status_code == 409 and too_soon.json()["reason"] == "not_offered"
    closed = await book(http, a, "KNIFE", tomorrow_at(services, "17:45", days=2))  # would run past 18:00
    assert closed.status_code == 409 and "past closing" in closed.json()["detail"]
    for n in range(5):  # one member holds at most 5 bookings ahead
        assert (await book(http, a, "FISH", tomorrow_at(services, f"1{n}:15", days=5))).status_code == 201
    sixth = await book(http, a, "FISH", tomorrow_at(services, "16:15", days=5))
    assert sixth.status_code == 403 and sixth.json()["reason"] == "too_many", sixth.text
    unknown = await http.post("/bookings", headers=a.headers, json={"booking_id": "B" + "x" * 10, "store_id": STORE,
                                                                     "service_id": "NOPE", "start": start})
    assert unknown.status_code == 404


async def choose_store(page, url: str) -> None:
    await page.goto(f"{url}/mall/stores/{STORE}/choose")


async def test_back_office_schedule_shows_a_mall_booking_and_a_second_booking_of_the_slot_is_refused(cloud, tmp_path):
    services, url, http, _, _, manager = cloud
    start = tomorrow_at(services, "14:00", days=3)
    day = day_of(start)
    async with office_context(PHONE) as (_context, page):
        await browser_sign_in(page, services, http, url, f"13{uuid.uuid4().int % 10**9:09d}")
        await choose_store(page, url)
        await page.goto(f"{url}/mall/services")
        await page.click('li[data-service="KNIFE"] a')
        await page.wait_for_url(f"{url}/mall/services/KNIFE")
        await page.goto(f"{url}/mall/services/KNIFE?date={day}")
        await shot(page, tmp_path, "mall-service", PHONE)
        await page.check(f'input[name="start"][value="{start}"]')
        await page.click("#book")
        await page.wait_for_selector("#booked:not([hidden])")
        said = await page.text_content("#booked")
        assert "预约成功" in said and f"{day} 14:00" in said
        await shot(page, tmp_path, "mall-booked", PHONE)
        member = await member_id_of(page)
        await page.goto(f"{url}/mall/bookings")
        await page.wait_for_selector('li[data-status="booked"]')
        await shot(page, tmp_path, "mall-bookings", PHONE)

    # a second customer had the same page open (the time still offered) and books it: refused with the sentence
    async with office_context(PHONE) as (_context, page):
        await browser_sign_in(page, services, http, url, f"13{uuid.uuid4().int % 10**9:09d}")
        await choose_store(page, url)
        await page.goto(f"{url}/mall/services/KNIFE?date={day}")
        assert await page.locator(f'input[name="start"][value="{start}"]').count() == 0  # gone from a fresh page
        # the stale page: the same form as it was before the first booking
        await page.evaluate("""([start, day]) => {
            const fs = document.getElementById('times');
            const l = document.createElement('label');
            l.innerHTML = '<input type="radio" name="start" value="' + start + '" data-local="' + day + ' 14:00"> 14:00';
            fs.appendChild(l); document.getElementById('book').disabled = false; }""", [start, day])
        await page.check(f'input[name="start"][value="{start}"]')
        await page.click("#book")
        await page.wait_for_function("document.getElementById('book-msg').textContent.length > 0")
        said = await page.text_content("#book-msg")
        assert said == "这个时间刚刚被别人约走了，请选择其他时间", said
        await shot(page, tmp_path, "mall-taken", PHONE)

    for size in (DESK, PHONE):
        async with office_context(size) as (_context, page):
            await office_sign_in(page, url, manager, OPERATOR_PASSWORD, then=f"/office/services?date={day}")
            row = page.locator('[data-staff="T1"] tr[data-status="booked"]')
            assert await row.count() == 1
            text = await row.text_content()
            assert "14:00–14:30" in text and "磨刀" in text and member in text
            await shot(page, tmp_path, "office-schedule", size)
            await page.evaluate("document.getElementById('h-book').scrollIntoView()")
            await shot(page, tmp_path, "office-book", size)
            if size is DESK:  # the editor: a wrong duration is said as the API's sentence, a right one is saved
                fish = page.locator("#service-rows tbody tr").nth(1)
                await fish.locator("[name=duration_min]").fill("20")
                await page.click("#save-book")
                await page.wait_for_function("document.getElementById('book-alert').textContent.length > 0")
                assert "service FISH: duration_min must be a multiple of 15" in await page.text_content("#book-alert")
                await fish.locator("[name=duration_min]").fill("45")
                await fish.locator("[name=price]").fill("2.5")
                await page.click("#save-book")
                await page.wait_for_function("document.getElementById('book-alert').textContent.includes('2')")
                assert "已保存" in await page.text_content("#book-alert")
                saved = (await http.get(f"/stores/{STORE}/services")).json()
                assert saved["version"] == 2 and saved["services"][1]["duration_min"] == 45
                assert saved["services"][1]["price_fen"] == 250 and saved["services"][0] == BOOK_KNIFE
            await page.goto(f"{url}/office/services?store=S001")  # another store's schedule: the page says why not
            assert "may not act on store S001" in await page.text_content("main")


async def test_every_booking_answer_is_the_one_openapi_describes(cloud):
    services, _, http, _, mgr, _ = cloud
    doc = (await http.get("/openapi.json")).json()
    a = await customer(services, http)
    start = tomorrow_at(services, "16:00", days=4)
    check(doc, "/stores/{store_id}/services", "get", await http.get(f"/stores/{STORE}/services"))
    check(doc, "/stores/{store_id}/services/{service_id}/slots", "get",
          await http.get(f"/stores/{STORE}/services/FISH/slots", params={"date": day_of(start)}))
    made = await book(http, a, "FISH", start)
    check(doc, "/bookings", "post", made)
    check(doc, "/members/{member_id}/bookings", "get",
          await http.get(f"/members/{a.member_id}/bookings", headers=a.headers))
    check(doc, "/operator/stores/{store_id}/services", "get",
          await http.get(f"/operator/stores/{STORE}/services", headers=mgr))
    check(doc, "/operator/stores/{store_id}/schedule", "get",
          await http.get(f"/operator/stores/{STORE}/schedule", params={"date": day_of(start)}, headers=mgr))
    check(doc, "/bookings/{booking_id}/cancel", "post",
          await http.post(f"/bookings/{made.json()['booking_id']}/cancel", headers=a.headers))
