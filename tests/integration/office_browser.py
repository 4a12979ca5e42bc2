"""The back office in headless Chromium, for the back-office browser tests: a browser context at a desk's size
(1280x800) or a phone's (390x844), signing in through the office's own form as an operator does, screenshots that
also check nothing runs off the side of the screen."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tests.integration.test_console import chromium, png_size

DESK, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}


@contextlib.asynccontextmanager
async def office_context(size: dict | None = None, locale: str = "zh-CN") -> AsyncIterator:
    """A fresh browser context (its own cookies and session storage): yields (context, page)."""
    from playwright.async_api import async_playwright
    size = size or DESK
    phone = size["width"] < 600
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), headless=True,
                                           args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                                 "--disable-background-networking"])
        try:
            context = await browser.new_context(viewport=size, device_scale_factor=1, is_mobile=phone,
                                                has_touch=phone, locale=locale)
            yield context, await context.new_page()
        finally:
            await browser.close()


async def office_sign_in(page, url: str, username: str, password: str, then: str = "/office") -> None:
    """Open `then`, be sent to the sign-in form, sign in through it, and land back on `then`."""
    await page.goto(f"{url}{then}")
    await page.wait_for_selector("#signin-form")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#signin-submit")
    await page.wait_for_url(f"{url}{then}")


async def no_overflow(page, width: int) -> None:
    scroll = await page.evaluate("() => document.scrollingElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll} px wide on a {width} px screen"


async def shot(page, folder, name: str, size: dict) -> None:
    """A screenshot `name-WxH.png` in `folder` (a test's tmp dir: never committed), and no sideways scrolling."""
    path = folder / f"{name}-{size['width']}x{size['height']}.png"
    await page.screenshot(path=str(path), full_page=False)
    assert png_size(path)[0] >= size["width"]
    await no_overflow(page, size["width"])
