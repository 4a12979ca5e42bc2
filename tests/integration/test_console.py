"""The operator console against a running cloud (real Ray, PostgreSQL, NATS): its endpoints over HTTP, and the
page in headless Chromium seeing a store go offline and an actor get killed."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from cloud.console.snapshot import ConsoleConfig
from protocol import codec, subjects
from protocol.messages import DeviceHealth, Heartbeat, Payment, Quantity, SaleCommitted, SaleLine, StockMoved
from protocol.money import weighed_amount_fen
from tests.integration.harness import (
    OPERATOR_PASSWORD,
    StoreLink,
    customer,
    envelope,
    eventually,
    operator_headers,
    running_cloud,
    this_clouds,
    top_up,
)

pytestmark = pytest.mark.integration
OP: dict[str, str] = {}  # an hq_admin's session: filled by the `cloud` fixture once the cloud runs
ADMIN = f"con-admin-{uuid.uuid4().hex[:6]}"
# Short thresholds so the test sees within seconds what production sees within its configured ones.
CONFIG = ConsoleConfig(offline_alert_s=1.0, tick_s=0.5, business_every_s=1.0, audit_every_s=2.0, restart_flag_s=120)


@pytest_asyncio.fixture(scope="module")
async def cloud(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"con{uuid.uuid4().hex[:6]}-") as (services, url):
        services.console_config = CONFIG
        OP.update(await operator_headers(services, username=ADMIN))
        for name in services.cloud.shards.all_stock_pools():  # the pools exist from their first command on
            await services.cloud.actors.calls.info(name)
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            yield services, url, http


class Heartbeats:
    """A store's heartbeats, as its edge box sends them (every `every_s`), until stopped."""

    def __init__(self, link: StoreLink, devices: dict[str, str], every_s: float = 0.5) -> None:
        self.link, self.devices, self.every_s, self.outbox = link, devices, every_s, 0
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            hb = Heartbeat(**envelope(self.link.store_id, 0), outbox_depth=self.outbox, last_event_seq=self.link.seq,
                           last_acked_seq=self.link.seq, last_cloud_message_seq=0, rule_book_version=1,
                           devices=tuple(DeviceHealth(device=d, state=s, detail="") for d, s in self.devices.items()))
            await self.link.nc.publish(subjects.store_heartbeat(self.link.store_id), codec.encode(hb))
            await asyncio.sleep(self.every_s)

    def start(self) -> Heartbeats:
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def till_sale(link: StoreLink, sku: str, fen: int, stored_value_fen: int = 0, member_id: str | None = None):
    payments = tuple(Payment(method=m, amount_fen=a, reference="") for m, a in
                     (("stored_value", stored_value_fen), ("cash", fen - stored_value_fen)) if a)
    line = SaleLine(sku=sku, quantity=Quantity.grams(1000), amount_fen=fen)
    await link.publish(SaleCommitted(**link.next_envelope(), sale_id=f"CON{uuid.uuid4().hex[:16]}", lane="1",
                                     lines=(line,), total_fen=fen, payments=payments, member_id=member_id,
                                     offline=bool(stored_value_fen)))  # no hold: a spend made offline


def key() -> dict:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def snapshot(http) -> dict:
    r = await http.get("/console/snapshot", headers=OP)
    assert r.status_code == 200, r.text
    return r.json()


async def test_console_data_needs_an_operator_session_and_customers_do_not(cloud):
    services, url, http = cloud
    page = await http.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="actors"' in page.text and 'id="stores"' in page.text and "EventSource" in page.text
    assert 'id="login-form"' in page.text and "/operator/sessions" in page.text
    for path in ("/console/snapshot", "/console/stream"):
        missing = await http.get(path)
        assert missing.status_code == 401 and missing.headers["content-type"] == "application/problem+json"
        assert "POST /operator/sessions" in missing.json()["detail"] and "?token=" in missing.json()["detail"]
        wrong = await http.get(path, params={"token": "not-a-session"})
        assert wrong.status_code == 401 and "sign in again" in wrong.json()["detail"]
        assert (await http.get(path, headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await http.get("/console/snapshot", params={"token": OP["Authorization"][7:]})).status_code == 200
    assert (await http.get("/products")).status_code == 200  # a customer's endpoint needs no session


async def test_snapshot_shows_actors_stores_business_and_alerts(cloud, stack):
    services, url, http = cloud
    shards = services.cloud.shards
    product = (await http.get("/products")).json()["products"][0]
    sku = product["sku"]
    before = await snapshot(http)
    till_before = next((s["till_fen"] for s in (before["business"] or {"by_store": []})["by_store"]
                        if s["store_id"] == "S005"), 0)
    sv_before = before["business"]["members"]["stored_value_spent"]["till"]["fen"] if before["business"] else 0
    spoiled_before = next((r["value_fen"] for r in (before["business"] or {"shrinkage": []})["shrinkage"]
                           if r["reason"] == "spoiled"), 0)
    # 2 units written off: pieces at the piece price, or grams at the kg price (the console values, never adds units)
    spoiled_fen = 2 * product["price_fen"] if product["unit"] == "piece" else weighed_amount_fen(2, product["price_fen"])
    now = datetime.now(UTC)
    created = await http.post("/flash-sales", headers=OP, json={
        "sku": sku, "quantity": 10, "price_fen": 990, "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(), "per_member_limit": 1, "rate_per_s": 1000})
    assert created.status_code == 201, created.text
    sale_id = created.json()["sale_id"]
    for _ in range(2):
        fan = await customer(services, http)
        flash_pass = (await http.post("/auth/passes", headers=fan.headers)).json()["pass"]
        r = await http.post(f"/flash-sales/{sale_id}/orders", json={},
                            headers={**key(), "Authorization": f"Bearer {flash_pass}"})
        assert r.status_code == 201, r.text
    signed = await customer(services, http)
    member = signed.member_id
    assert (await top_up(services, http, signed, 5000))["stored_value_fen"] == 5000
    async with StoreLink(stack, "S005") as link:
        beats = Heartbeats(link, {"scale": "ok", "scanner": "ok", "printer": "down"}).start()
        try:
            await till_sale(link, sku, 1234)
            await till_sale(link, sku, 1000, stored_value_fen=700, member_id=member)
            await link.publish(StockMoved(**link.next_envelope(), sku=sku, delta=-2, reason="shrinkage",
                                          shrinkage_reason="spoiled", on_hand_after=5, reference=""))

            async def settled():
                snap = await snapshot(http)
                store = next(s for s in snap["stores"] if s["store_id"] == "S005")
                sales = {s["store_id"]: s for s in (snap["business"] or {"by_store": []})["by_store"]}
                spoiled = next((r for r in snap["business"]["shrinkage"] if r["reason"] == "spoiled"), None)
                ok = (store["online"] and store["device_faults"] == ["printer"]
                      and sales.get("S005", {}).get("till_fen", 0) >= till_before + 2234
                      and snap["business"]["members"]["stored_value_spent"]["till"]["fen"] >= sv_before + 700
                      and spoiled is not None and spoiled["value_fen"] >= spoiled_before + spoiled_fen
                      and any(f["sale_id"] == sale_id and f["sold"] == 2 for f in snap["business"]["flash"])
                      and (snap["business"]["members"]["topups"] or {}).get("fen", 0) >= 5000
                      and snap["audit"] is not None)
                return ok and snap
            snap = await eventually(settled, timeout_s=20)
        finally:
            await beats.stop()
    assert snap, ("the console never showed S005 online with its printer down, its till sales (one partly paid "
                  "with stored value), its shrinkage's value, the flash sale's sold units and the top-up")
    flash = next(f for f in snap["business"]["flash"] if f["sale_id"] == sale_id)
    assert (flash["live"], flash["quantity"], flash["remaining"], flash["rate_per_s"]) == (True, 10, 8, 1000)
    assert shards.flash_sale_name(sale_id) in {a["name"] for a in snap["actors"]}
    actors = {a["name"]: a for a in snap["actors"]}
    expected = shards.all_stock_pools() + [shards.order_router_name(), f"{shards.prefix}store_registry"]
    for name in expected:
        assert actors[name]["state"] == "ALIVE" and actors[name]["health"] == "ok", actors.get(name)
        assert actors[name]["queue"] is not None and actors[name]["node"], actors[name]
    assert (actors[shards.stock_pool_name(sku)]["kind"], actors[shards.order_router_name()]["shard"]) == ("stock_pool", "")
    assert ("device", "S005/printer") in {(a["kind"], a["subject"]) for a in snap["alerts"]}
    assert this_clouds(snap["audit"]["violations"]) == [] and snap["audit"]["actors"] >= len(shards.all_stock_pools())
    ours_ok = "violations" if snap["audit"]["violations"] else "ok"  # (other modules' flash sales: `this_clouds`)
    assert (snap["audit"]["status"], snap["audit"]["unanswered"]) == (ours_ok, []), snap["audit"]
    assert snap["timezone"] == {"utc_offset_minutes": 480, "name": "UTC+08:00"}
    # stores of the world that never sent a heartbeat while the registry has been up past the threshold
    quiet = [s["store_id"] for s in snap["stores"] if s["status"] == "never_seen" and s["missing"]]
    assert quiet and {("store_never_seen", sid) for sid in quiet} <= {(a["kind"], a["subject"]) for a in snap["alerts"]}
    assert [s["rank"] for s in snap["stores"]] == list(range(len(snap["stores"])))
    assert snap["business"]["sales"]["till"]["fen"] >= 1234
    assert {s["store_id"] for s in snap["stores"]} >= set(services.cloud.world.stores)


async def test_stream_sends_snapshots_and_a_client_that_leaves_leaves_nothing_running(cloud):
    services, url, http = cloud
    feed = services.console()
    events = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        async with client.stream("GET", "/console/stream", params={"token": OP["Authorization"][7:]}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            kind = None
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "snapshot":
                    events.append(json.loads(line[6:]))
                    if len(events) == 3:
                        break
            assert feed.watchers == 1
    assert len(events) == 3 and events[0]["at_ms"] < events[-1]["at_ms"]
    assert {"actors", "stores", "business", "alerts", "summary"} <= set(events[-1])

    async def released():
        producers = [t for t in asyncio.all_tasks() if t.get_name() == "console-producer" and not t.done()]
        return feed.watchers == 0 and not producers
    assert await eventually(released, timeout_s=5), "a closed stream left its subscription or producer running"


# ---- the page in a real browser -------------------------------------------------------------------------

def chromium() -> str:
    """Debian's chromium: installed here if missing (CI runs as root); skipped only where it cannot be."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if os.path.exists(path):
        return path
    if os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed and installing it needs root: apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, timeout=900, capture_output=True)
    return shutil.which("chromium") or "/usr/bin/chromium"


def png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


async def sign_in(page, url: str, username: str = ADMIN, password: str = OPERATOR_PASSWORD) -> None:
    """Open the console and sign in through its form, as an operator does."""
    await page.goto(f"{url}/console")
    await page.wait_for_selector("#login-form", state="visible", timeout=10_000)
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#sign-in")


async def launch(pw, browser_path: str, tmp_path):
    return await pw.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=browser_path, headless=True, viewport={"width": 1500, "height": 1100},
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"])


async def test_console_in_chromium_reconnects_after_the_stream_answers_an_http_error(cloud, tmp_path):
    """A 503 (a proxy while the cloud restarts) makes the browser's EventSource give up for good: the page must
    come back by itself, backing off, and then get snapshots from the stream again."""
    from playwright.async_api import async_playwright
    services, url, http = cloud
    browser_path = chromium()
    streams: list[float] = []

    async def stream(route):
        streams.append(time.monotonic())
        if len(streams) <= 2:
            await route.fulfill(status=503, content_type="text/plain", body="restarting")
        else:
            await route.continue_()

    async with async_playwright() as pw:
        browser = await launch(pw, browser_path, tmp_path)
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            await page.route("**/console/stream*", stream)
            await sign_in(page, url)
            deadline = time.monotonic() + 20
            while len(streams) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert len(streams) >= 3, f"the page did not open the stream again after a 503 ({len(streams)} tries)"
            # backing off: the second wait is longer than the first
            assert streams[1] - streams[0] >= 0.8 and streams[2] - streams[1] >= 1.6, streams
            # snapshots flow from the stream again (the page's own check fetches one snapshot per attempt, not more)
            await page.wait_for_selector('#conn[data-status="live"]', timeout=10_000)
            first = int(await page.evaluate("() => document.body.dataset.snapshotAt"))
            await page.wait_for_function(f"() => Number(document.body.dataset.snapshotAt) >= {first + 1500}",
                                         timeout=10_000)
            assert len(streams) == 3, "a working stream is not re-opened"
            assert await page.text_content("#tz") == "UTC+08:00"
            assert await page.get_attribute("#audit-status", "data-status") in ("ok", "incomplete", "violations",
                                                                               "empty", "error")
        finally:
            await browser.close()


async def test_console_in_chromium_sees_a_store_go_offline_and_an_actor_killed(cloud, stack, tmp_path):
    from playwright.async_api import async_playwright
    services, url, http = cloud
    started = time.monotonic()
    victim = services.cloud.shards.all_stock_pools()[0]
    browser_path = chromium()
    async with StoreLink(stack, "S004") as link, async_playwright() as pw:
        beats = Heartbeats(link, {"scale": "ok", "scanner": "ok", "printer": "ok"}).start()
        browser = await launch(pw, browser_path, tmp_path)
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            await sign_in(page, url)
            await page.wait_for_selector('#conn[data-status="live"]', timeout=15_000)
            assert await page.text_content("#who-name") == ADMIN and "token" not in page.url
            await page.wait_for_selector('tr[data-store="S004"][data-online="true"]', timeout=15_000)
            await page.wait_for_selector(f'tr[data-actor="{victim}"][data-state="ALIVE"][data-health="ok"]',
                                         timeout=15_000)
            restarts_before = int(await page.get_attribute(f'tr[data-actor="{victim}"]', "data-restarts"))

            # the store's box goes quiet: offline within the registry's window, then the alert
            await beats.stop()
            went_quiet = time.monotonic()
            await page.wait_for_selector('tr[data-store="S004"][data-online="false"][data-status="offline"]',
                                         timeout=15_000)
            await page.wait_for_selector('#alert-list li[data-alert-kind="store_offline"][data-subject="S004"]',
                                         timeout=10_000)
            offline_seen_s = time.monotonic() - went_quiet

            # kill -9 a stock pool's worker process: Ray restarts it; the console shows it red within seconds
            pid = (await services.cloud.actors.calls.info(victim))["pid"]
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            row = f'tr[data-actor="{victim}"]'
            await page.wait_for_function(
                """([sel, before]) => { const r = document.querySelector(sel);
                     return r && ["dead", "restarting", "restarted"].includes(r.dataset.health)
                            && Number(r.dataset.restarts) > before && r.classList.contains("bad"); }""",
                arg=[row, restarts_before], timeout=10_000)
            kill_seen_s = time.monotonic() - killed
            background = await page.eval_on_selector(row, "r => getComputedStyle(r).backgroundColor")
            red, green, blue = (int(v) for v in background[background.index("(") + 1:-1].split(",")[:3])
            assert red > 200 and red - green > 25 and red - blue > 25, f"the killed actor's row is not red: {background}"
            assert await page.locator(f'#alert-list li[data-subject="{victim}"]').count() == 1
            # recovered: Ray's state is ALIVE again with one more restart (still flagged as recently restarted)
            await page.wait_for_selector(f'{row}[data-state="ALIVE"]', timeout=10_000)

            shot = tmp_path / "console.png"
            await page.screenshot(path=str(shot), full_page=True)
            width, height = png_size(shot)
            assert shot.stat().st_size > 20_000 and width >= 1000 and height >= 600, (shot.stat().st_size, width, height)
            dom = await page.evaluate("""() => ({
                actors: document.querySelectorAll("#actors tbody tr[data-actor]").length,
                stores: document.querySelectorAll("#stores tbody tr[data-store]").length,
                order: [...document.querySelectorAll("#stores tbody tr")].map(r => [r.dataset.store, r.dataset.status]),
                charts: document.querySelectorAll("#business svg").length,
                audit: document.querySelector("#audit-status") !== null,
                conn: document.querySelector("#conn").dataset.status})""")
            assert dom["actors"] >= 4 and dom["stores"] == len(services.cloud.world.stores), dom
            assert dom["charts"] >= 1 and dom["audit"] and dom["conn"] == "live", dom
            statuses = [status for _, status in dom["order"]]
            offline = statuses.count("offline")
            assert statuses[:offline] == ["offline"] * offline and ["S004", "offline"] in dom["order"][:offline], (
                f"worst first: offline stores head the list: {dom['order']}")
            if os.environ.get("FRESHMESH_CONSOLE_SCREENSHOT"):  # keep it to look at
                shutil.copy(shot, os.environ["FRESHMESH_CONSOLE_SCREENSHOT"])
        finally:
            await browser.close()
            if beats.task and not beats.task.done():
                await beats.stop()
    print(f"console: offline shown {offline_seen_s:.1f} s after the last heartbeat, kill shown {kill_seen_s:.1f} s "
          f"after SIGKILL; test took {time.monotonic() - started:.1f} s")


async def test_console_in_chromium_signs_in_shows_who_and_signs_out(cloud, tmp_path):
    """The sign-in form (Chinese first, English a click away): a wrong password is refused without saying more, a
    viewer signs in and sees who and which role, the session lives in this tab's sessionStorage, and signing out
    ends the session on the server too."""
    from playwright.async_api import async_playwright
    services, url, http = cloud
    viewer = f"con-viewer-{uuid.uuid4().hex[:6]}"
    await operator_headers(services, "viewer", username=viewer)
    async with async_playwright() as pw:
        browser = await launch(pw, chromium(), tmp_path)
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            await page.goto(f"{url}/console")
            await page.evaluate("() => localStorage.removeItem('freshmesh-lang')")
            await page.reload()
            await page.wait_for_selector("#login-form", state="visible", timeout=10_000)
            assert await page.text_content("#login h2") == "运营人员登录"
            assert await page.evaluate("() => document.documentElement.lang") == "zh-CN"
            await page.fill("#username", viewer)
            await page.fill("#password", "not-the-password")
            await page.click("#sign-in")
            await page.wait_for_function("() => document.querySelector('#login-why').textContent !== ''")
            assert await page.text_content("#login-why") == "用户名或密码错误。"
            assert "tries left" in await page.text_content("#login-detail")
            await page.screenshot(path=str(tmp_path / "sign-in.png"))
            await page.click("#lang-toggle")
            assert await page.text_content("#login h2") == "Operator sign-in"
            assert await page.text_content("#sign-in") == "Sign in"
            await page.fill("#username", viewer)
            await page.fill("#password", OPERATOR_PASSWORD)
            await page.click("#sign-in")
            await page.wait_for_selector('#conn[data-status="live"]', timeout=15_000)
            assert await page.text_content("#who-name") == viewer
            assert await page.text_content("#who-role") == "viewer"
            assert await page.get_attribute("#who", "data-role") == "viewer"
            token = await page.evaluate("() => sessionStorage.getItem('freshmesh-operator-session')")
            assert token and token not in page.url
            me = await http.get("/operator/me", headers={"Authorization": f"Bearer {token}"})
            assert me.json()["username"] == viewer and me.json()["role"] == "viewer"
            await page.screenshot(path=str(tmp_path / "signed-in.png"))
            if os.environ.get("FRESHMESH_CONSOLE_SCREENSHOT"):  # keep them to look at
                base = os.environ["FRESHMESH_CONSOLE_SCREENSHOT"].removesuffix(".png")
                shutil.copy(tmp_path / "sign-in.png", f"{base}-sign-in.png")
                shutil.copy(tmp_path / "signed-in.png", f"{base}-signed-in.png")
            await page.click("#sign-out")
            await page.wait_for_selector("#login-form", state="visible", timeout=5_000)
            assert await page.text_content("#login-why") == "Signed out."
            assert await page.evaluate("() => sessionStorage.getItem('freshmesh-operator-session')") is None

            async def revoked():
                r = await http.get("/operator/me", headers={"Authorization": f"Bearer {token}"})
                return r.status_code == 401
            assert await eventually(revoked, timeout_s=5), "signing out must end the session on the server"
        finally:
            await browser.close()
