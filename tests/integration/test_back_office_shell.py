"""The back office's front door in headless Chromium against a real cloud: an HQ admin opening a page is sent to
the sign-in form and back, a wrong password is said as a sentence (never JSON), the page names who is signed in and
their role in Chinese or English, a store manager is signed in the same way, signing out ends the session (the
operator API no longer takes its token and the pages send to sign-in again). Screenshots at 1280x800 and 390x844
go to the test's tmp dir."""
from __future__ import annotations

import uuid

import httpx
import pytest
import pytest_asyncio

from tests.integration.harness import OPERATOR_PASSWORD, running_cloud
from tests.integration.office_browser import DESK, PHONE, office_context, office_sign_in, shot

pytestmark = pytest.mark.integration
RUN = uuid.uuid4().hex[:6]


@pytest_asyncio.fixture(scope="module")
async def office(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"office{RUN}-") as (services, url):
        admin, manager = f"hq-shell-{RUN}", f"mgr-shell-{RUN}"
        await services.operators.create(admin, OPERATOR_PASSWORD, "hq_admin", None, by_name="tests")
        await services.operators.create(manager, OPERATOR_PASSWORD, "store_manager", "S001", by_name="tests")
        yield url, admin, manager


@pytest.mark.parametrize("size", [DESK, PHONE], ids=["desk", "phone"])
async def test_back_office_sign_in_home_language_and_sign_out(office, size, tmp_path):
    url, admin, _ = office
    async with office_context(size) as (_context, page):
        await page.goto(f"{url}/office")
        assert page.url.startswith(f"{url}/office/signin?next=/office")
        await page.fill("#username", admin)
        await page.fill("#password", "not-the-password")
        await page.click("#signin-submit")
        await page.wait_for_function("document.getElementById('signin-msg').textContent.length > 0")
        said = await page.text_content("#signin-msg")
        assert "用户名或密码不对" in said and "{" not in said
        await shot(page, tmp_path, "signin-refused", size)

        await page.fill("#password", OPERATOR_PASSWORD)
        await page.click("#signin-submit")
        await page.wait_for_url(f"{url}/office")
        assert f"{admin} · 总部管理员" in await page.text_content("#who")
        assert await page.get_attribute("nav.areas a[aria-current=page]", "href") == "/office"
        await shot(page, tmp_path, "home", size)

        await page.click("header .lang")
        await page.wait_for_url(f"{url}/office?lang=en")
        assert f"{admin} · HQ admin" in await page.text_content("#who")
        await page.goto(f"{url}/office")  # the language is remembered
        assert await page.get_attribute("html", "lang") == "en"

        token = await page.evaluate("() => sessionStorage.getItem('office_token')")
        await page.click("#sign-out")
        await page.wait_for_url(f"{url}/office/signin")
        async with httpx.AsyncClient(base_url=url) as http:
            me = await http.get("/operator/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401
        await page.goto(f"{url}/office")
        assert page.url.startswith(f"{url}/office/signin")


async def test_back_office_a_store_manager_signs_in_and_is_named_with_their_store(office):
    url, _, manager = office
    async with office_context() as (_context, page):
        await office_sign_in(page, url, manager, OPERATOR_PASSWORD)
        assert f"{manager} · 店长 · S001" in await page.text_content("#who")
