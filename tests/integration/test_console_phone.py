"""The console for people on call, on a phone (390x844): nothing wider than the screen, a store's state and the
actors' restarts readable; an offline store's last-known values shown as such (greyed, their age, grey device
dots); the backends' health on the page. Store S044 is this module's own."""
from __future__ import annotations

import time
import uuid

import pytest
import pytest_asyncio

from cloud.console.snapshot import ConsoleConfig
from tests.integration.harness import OPERATOR_PASSWORD, StoreLink, operator_headers, running_cloud
from tests.integration.test_console import Heartbeats, chromium, png_size, sign_in

pytestmark = pytest.mark.integration
STORE = "S044"
ADMIN = f"phone-admin-{uuid.uuid4().hex[:6]}"
CONFIG = ConsoleConfig(offline_alert_s=1.0, tick_s=0.5, business_every_s=1.0, audit_every_s=2.0)
PHONE = {"width": 390, "height": 844}


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"ph{uuid.uuid4().hex[:6]}-") as (services, url):
        services.console_config = CONFIG
        await operator_headers(services, username=ADMIN)
        yield services, url


async def _no_horizontal_overflow(page) -> None:
    width = await page.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen"


async def _within_screen(page, selector: str) -> None:
    """Shown (laid out, not hidden), with some text, and inside the screen's width. Read in one go: the page
    re-renders its tables every tick, so a handle taken first may be gone by the time it is measured."""
    box = await page.evaluate("""(sel) => { const e = document.querySelector(sel);
        if (!e || !e.offsetParent) return null; const r = e.getBoundingClientRect();
        return {x: r.x, width: r.width, height: r.height, text: e.textContent}; }""", selector)
    assert box is not None and box["height"] > 0 and box["text"].strip(), f"{selector} is not shown: {box}"
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (selector, box)


async def test_on_a_phone_an_offline_stores_last_values_are_greyed_with_their_age(cloud, stack, tmp_path):
    from playwright.async_api import async_playwright
    services, url = cloud
    async with StoreLink(stack, STORE) as link, async_playwright() as pw:
        beats = Heartbeats(link, {"scale": "ok", "scanner": "ok", "printer": "ok"}).start()
        browser = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium(), headless=True, viewport=PHONE,
            device_scale_factor=2, is_mobile=True, has_touch=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            await sign_in(page, url, ADMIN, OPERATOR_PASSWORD)
            await page.wait_for_selector('#conn[data-status="live"]', timeout=20_000)
            row = f'#stores tr[data-store="{STORE}"]'
            await page.wait_for_selector(f'{row}[data-online="true"]', timeout=20_000)
            await page.wait_for_selector('#actors tr[data-actor]', timeout=20_000)
            await _no_horizontal_overflow(page)
            # the store's state and an actor's restarts are on the screen, not cut off to the right
            await _within_screen(page, f"{row} td.state")
            await _within_screen(page, "#actors tr[data-actor] td.restarts")
            green = await page.eval_on_selector(f'{row} [data-device="scale"] .dot',
                                                "d => getComputedStyle(d).backgroundColor")
            await page.screenshot(path=str(tmp_path / "phone-online.png"), full_page=True)

            # the backends, as the page sees them
            for name in ("nats", "postgres", "bridge", "dead_letters"):
                await page.wait_for_selector(f'#backend-list [data-backend="{name}"][data-ok="true"]', timeout=10_000)
            assert "ms" in await page.text_content('#backend-list [data-backend="postgres"]')

            # the box goes quiet: its last values stay, marked as last-known
            await beats.stop()
            quiet = time.monotonic()
            await page.wait_for_selector(f'{row}[data-status="offline"][data-stale="true"]', timeout=30_000)
            await page.wait_for_function(
                f"""() => /last seen \\d+ s ago/.test(document.querySelector('{row} td.heartbeat').textContent)""",
                timeout=10_000)
            stale_dots = await page.eval_on_selector_all(
                f"{row} .dev", "ds => ds.map(d => [d.dataset.deviceState, "
                               "getComputedStyle(d.querySelector('.dot')).backgroundColor])")
            assert stale_dots and all(state == "stale" for state, _ in stale_dots), stale_dots
            assert all(colour != green for _, colour in stale_dots), (green, stale_dots)  # not green as if live
            # its outbox depth (from its last heartbeat) is shown as of then; it never sent an event, so no lag
            outbox_text = await page.text_content(f"{row} td.outbox")
            assert outbox_text.startswith("0") and "last seen" in outbox_text, outbox_text
            assert (await page.text_content(f"{row} td.lag")).strip() == "-"
            text_colour = await page.eval_on_selector(f"{row} td.outbox", "t => getComputedStyle(t).color")
            assert text_colour == "rgb(107, 114, 128)", text_colour  # greyed (--muted)
            await _no_horizontal_overflow(page)
            await page.eval_on_selector(row, "r => r.scrollIntoView()")
            await page.screenshot(path=str(tmp_path / "phone-offline-screen.png"))  # what the phone's screen shows
            shot = tmp_path / "phone-offline.png"
            await page.screenshot(path=str(shot), full_page=True)
            width, _ = png_size(shot)
            assert width == PHONE["width"] * 2, width  # the full page is exactly the screen wide (scale 2)
            import os
            import shutil
            if os.environ.get("FRESHMESH_CONSOLE_SCREENSHOT_DIR"):  # keep them to look at
                for name in ("phone-online.png", "phone-offline.png", "phone-offline-screen.png"):
                    shutil.copy(tmp_path / name, os.path.join(os.environ["FRESHMESH_CONSOLE_SCREENSHOT_DIR"], name))
            print(f"offline shown {time.monotonic() - quiet:.1f} s after the last heartbeat")
        finally:
            await browser.close()
            if beats.task and not beats.task.done():
                await beats.stop()
