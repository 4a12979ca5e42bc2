"""Group buys seen and explained, over the real stack: a real store box (S038, this module's own store: SQLite, its
lane API, NATS as its own user) and the cloud (bridge, Ray actors, PostgreSQL, the simulated wallet).

What is checked is what the system did and shows: a gold member whose own price beats the group price takes a place
at their own price (it was cancelled with a misleading message); a held group order shows `group_forming (k/n)` in
its answer, its timeline, the operators' order summary and the console; the operators' list and detail, role by role;
HQ's cancel (audited, every order cancelled and refunded once); and the console's group-buy section in headless
Chromium, with a screenshot.

Isolation: S038 and this module's rules (GB-VIEW-*) and SKUs are used by no other module; the rules are given to
this module's cloud only; every order that reaches S038 is read by this module's box."""
from __future__ import annotations

import os
import re
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from actors.member_ledger import RecordSpend
from cloud.console.snapshot import ConsoleConfig
from cloud.wiring import load_world_into_router
from cloud.world import World
from edge.box import EdgeBox
from protocol.clock import to_rfc3339
from tests.integration.harness import (
    OPERATOR_PASSWORD,
    customer,
    eventually,
    operator_headers,
    running_cloud,
    top_up,
)
from tests.integration.test_console import chromium, launch, png_size

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S038"  # this module's own store (provisioned by the test stack; the world sells nothing there)
CN = timezone(timedelta(hours=8))
GOLD_SKU, HOLD_SKU, CANCEL_SKU, FAIL_SKU = "DAI-CHEESE-0190", "DAI-BUTTER-0194", "DAI-CHEESE-0191", "DAI-BUTTER-0195"
RECEIVED = {GOLD_SKU: 50, HOLD_SKU: 50, CANCEL_SKU: 50, FAIL_SKU: 50}  # 40% of it escrowed online
RULES = [{"type": "group_buy", "id": f"GB-VIEW-{name}", "name": f"Group buy {name}", "skus": [sku],
          "group_price_fen": price, "group_size": size, "stores": [STORE]}
         for name, sku, price, size in (("GOLD", GOLD_SKU, 3000, 3),  # gold price 29.75, list 31.32
                                        ("HOLD", HOLD_SKU, 2900, 3), ("CANCEL", CANCEL_SKU, 1500, 2),
                                        ("FAIL", FAIL_SKU, 2000, 3))]
ADMIN = f"gbv-admin-{uuid.uuid4().hex[:6]}"
OP: dict[str, str] = {}
GROUPS: dict[str, str] = {}  # what the earlier tests left for the console's test: name -> group id


def module_world() -> World:
    data = World.load().to_data()
    data["stores"].append(dict(next(s for s in data["stores"] if s["store_id"] == "S002"), store_id=STORE))
    data["rule_book"] = {**data["rule_book"], "rules": [*data["rule_book"]["rules"], *RULES]}
    return World.from_data(data)


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"gbv{uuid.uuid4().hex[:6]}-") as (services, url):
        services.cloud.world = module_world()
        await load_world_into_router(services.cloud)  # S038 is a store the router may plan pickups at
        services.console_config = ConsoleConfig(tick_s=0.5, business_every_s=1.0, audit_every_s=30.0)
        OP.update(await operator_headers(services, username=ADMIN))
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": stack.nats_url, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        conn = await asyncpg.connect(stack.database_url)  # the shared test database: a store's seqs only grow
        try:
            box.actor.last_seq = max(box.actor.last_seq, await conn.fetchval(
                "select coalesce(max(seq), 0) from edge_events where store_id = $1", STORE) or 0)
        finally:
            await conn.close()
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            assert await eventually(lambda: _online(box), timeout_s=15)
            for sku, qty in RECEIVED.items():
                await box.actor.ask("receive", sku=sku, qty=qty)
            assert await eventually(lambda: _escrowed(http), timeout_s=45), "the escrow never reached the cloud"
            yield services, http, box, url
        await box.stop()


async def _online(box):
    return box.actor.online


async def _escrowed(http):
    for sku, qty in RECEIVED.items():
        r = await http.get(f"/stores/{STORE}/stock", params={"sku": sku})
        found = r.json()["stock"] if r.status_code == 200 else None  # (a 503 while the box is busy: ask again)
        if not found or found[0].get("escrow") != qty * 40 // 100:
            return False
    return True


def slot() -> str:
    return (datetime.now(CN) + timedelta(days=1)).replace(hour=16, minute=0, second=0, microsecond=0).isoformat()


def fields(**extra) -> dict:
    return {"qty": 1, "store_id": STORE, "slot_start": slot(), **extra}


async def open_group(http, member, rule: str) -> httpx.Response:
    return await http.post("/group-buys", json=fields(rule_id=rule),
                           headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})


async def join(http, member, group_id: str) -> httpx.Response:
    return await http.post(f"/group-buys/{group_id}/join", json=fields(),
                           headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})


async def pay(http, member, order_id: str) -> dict:
    r = await http.post(f"/orders/{order_id}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def member_with(services, http, fen: int = 20_000):
    member = await customer(services, http)
    await top_up(services, http, member, fen)
    return member


async def order(http, member, order_id: str) -> dict:
    r = await http.get(f"/orders/{order_id}", headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def balance(http, member) -> int:
    return (await http.get(f"/members/{member.member_id}", headers=member.headers)).json()["stored_value_fen"]


def is_problem(r: httpx.Response, status: int, words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json" and words in r.json()["detail"], r.text


# ---- 3. the group price is never worse than the member's own ---------------------------------------------------------
async def test_a_gold_member_whose_own_price_beats_the_group_price_takes_a_place_at_their_own_price(world):
    services, http, _, _ = world
    gold = await member_with(services, http)
    await services.cloud.actors.member_ledger.send(RecordSpend(id=f"test:{uuid.uuid4().hex[:16]}",
                                                               member=gold.member_id, amount_fen=600_000))
    opened = await open_group(http, gold, "GB-VIEW-GOLD")  # gold 29.75 per unit, the group 30.00
    assert opened.status_code == 201, opened.text  # it was cancelled: "not in force ... (its store or the hour)"
    body = opened.json()
    mine = body["order"]
    # at their own price (other rules of the book may take more off, never the group's 30.00)
    assert mine["status"] == "reserved" and mine["lines"][0]["list_fen"] == 3132 and mine["total_fen"] <= 2975
    assert body["price"]["basis"] == "own" and body["price"]["unit_fen"] == 2975
    assert "your gold member price 29.75 per unit is at or below the group price 30.00" in body["price"]["note"]
    joined = next(s for s in mine["timeline"] if s["event"] == "group_joined")
    assert "gold member price 29.75" in joined["detail"]["price"]
    assert body["group"]["joined"] == 1  # the place counts toward the group
    regular = await member_with(services, http)
    second = await join(http, regular, body["group"]["group_id"])
    assert second.status_code == 201, second.text
    assert second.json()["order"]["total_fen"] <= 3000 and second.json()["price"]["basis"] == "group"
    assert second.json()["price"]["unit_fen"] == 3000
    assert second.json()["group"]["joined"] == 2
    for m, o in ((regular, second.json()["order"]["order_id"]), (gold, mine["order_id"])):
        assert (await http.post(f"/orders/{o}/cancel", headers=m.headers)).status_code == 200
        if m is regular:  # a place freed: the others' timelines say the group is one smaller again
            last = (await order(http, gold, mine["order_id"]))["timeline"][-1]
            assert last["event"] == "group_progress" and (last["detail"]["joined"], last["detail"]["left"]) == (1, True)


# ---- 2. a held order shows as such everywhere ------------------------------------------------------------------------
async def test_a_held_group_order_shows_group_forming_with_its_count_everywhere(world):
    services, http, box, _ = world
    since = services.cloud.now_ms()
    leader, ann, bob = [await member_with(services, http) for _ in range(3)]
    opened = await open_group(http, leader, "GB-VIEW-HOLD")
    assert opened.status_code == 201, opened.text
    gid, first = opened.json()["group"]["group_id"], opened.json()["order"]["order_id"]
    GROUPS["formed"] = gid
    paid = await pay(http, leader, first)
    assert paid["status"] == "group_forming"  # the pay answer: not "paid", it is not going to the store yet
    shown = await order(http, leader, first)
    assert (shown["status"], shown["status_text"]) == ("group_forming", "group forming (1/3)")
    assert shown["group"] == {"group_id": gid, "status": "open", "joined": 1, "size": 3,
                              "closes_at": opened.json()["group"]["closes_at"]}
    second = await join(http, ann, gid)
    await pay(http, ann, second.json()["order"]["order_id"])
    shown = await order(http, leader, first)
    assert shown["status_text"] == "group forming (2/3)"
    steps = shown["timeline"]
    assert next(s for s in steps if s["event"] == "pay")["status"] == "group_forming"
    assert steps[-1]["event"] == "group_progress" and steps[-1]["status_text"] == "group forming (2/3)"
    assert not any(s["status"] == "paid" for s in steps)

    summary = (await http.get("/operator/orders/summary", params={"since": to_rfc3339(since)}, headers=OP)).json()
    listed = next(o for o in summary["open"] if o["order_id"] == first)
    assert (listed["status"], listed["status_text"]) == ("group_forming", "group forming (2/3)")
    assert "held until its group buy forms (2/3 joined" in listed["waiting_for"]

    async def console_counts_it():
        snap = (await http.get("/console/snapshot", headers=OP)).json()
        statuses = {o["status"]: o["count"] for o in ((snap.get("business") or {}).get("orders_by_status") or [])}
        return statuses.get("group_forming", 0) >= 2
    assert await eventually(console_counts_it, timeout_s=15), "the console counts held group orders as paid"

    third = await join(http, bob, gid)
    await pay(http, bob, third.json()["order"]["order_id"])

    async def formed():
        body = await order(http, leader, first)
        return body if body["status"] == "paid" else None
    body = await eventually(formed, timeout_s=15)
    assert body, await order(http, leader, first)
    assert body["status_text"] == "paid" and body["group"]["status"] == "formed"
    assert [s["status"] for s in body["timeline"] if s["event"] in ("group_formed", "sent_to_store")][0] == "paid"

    async def at_the_store():
        return first in {o["order_id"] for o in (await box.actor.ask("pick_list"))["orders"]}
    assert await eventually(at_the_store, timeout_s=15)


# ---- 1. operators: the list, the detail, HQ's cancel -----------------------------------------------------------------
async def test_operators_list_and_read_group_buys_as_their_role_allows(world):
    services, http, _, _ = world
    leader, ann = await member_with(services, http), await member_with(services, http)
    opened = await open_group(http, leader, "GB-VIEW-FAIL")
    gid = opened.json()["group"]["group_id"]
    await pay(http, leader, opened.json()["order"]["order_id"])
    await join(http, ann, gid)  # Ann's order reserved, not paid yet
    GROUPS["open"] = gid
    viewer = await operator_headers(services, "viewer")
    mine = await operator_headers(services, "store_manager", store_id=STORE)
    other = await operator_headers(services, "store_manager", store_id="S001")

    listed = await http.get("/operator/group-buys", params={"status": "open", "item": FAIL_SKU}, headers=viewer)
    assert listed.status_code == 200, listed.text
    row = next(g for g in listed.json()["groups"] if g["group_id"] == gid)
    assert (row["status"], row["joined"], row["paid"], row["needed"], row["size"]) == ("open", 2, 1, 1, 3)
    assert row["group_price_fen"] == 2000 and 0 < row["closes_in_s"] <= 24 * 3600
    assert row["outcome"].startswith("open: 2/3 joined, 1 paid")
    assert all(g["status"] == "open" and g["sku"] == FAIL_SKU for g in listed.json()["groups"])
    assert gid in [g["group_id"] for g in (await http.get("/operator/group-buys", headers=mine)).json()["groups"]]
    assert gid not in [g["group_id"] for g in (await http.get("/operator/group-buys", headers=other)).json()["groups"]]
    is_problem(await http.get("/operator/group-buys", params={"store": STORE}, headers=other), 403, "S001")
    is_problem(await http.get(f"/operator/group-buys/{gid}", headers=other), 403,
               "a store manager of S001 sees its own store's groups only")
    is_problem(await http.get("/operator/group-buys", params={"status": "done"}, headers=viewer), 422,
               "status: one of open, formed, failed, cancelled")
    is_problem(await http.get("/operator/group-buys", params={"item": "NOPE"}, headers=viewer), 422, "item")
    assert (await http.get("/operator/group-buys", headers=leader.headers)).status_code == 401  # a customer
    is_problem(await http.get("/operator/group-buys/G0000", headers=viewer), 404, "no group buy G0000")

    # paged newest first: a page never repeats a group
    first = (await http.get("/operator/group-buys", params={"limit": 1, "store": STORE}, headers=OP)).json()
    second = (await http.get("/operator/group-buys", params={"limit": 1, "store": STORE,
                                                             "before": first["next_before"]}, headers=OP)).json()
    assert first["groups"][0]["group_id"] == gid and second["groups"][0]["group_id"] != gid

    detail = await http.get(f"/operator/group-buys/{gid}", headers=mine)
    assert detail.status_code == 200, detail.text
    d = detail.json()
    assert d["window"]["minutes"] == 24 * 60 and d["cancelled"] is None and d["refunds"] == []
    assert [(m["leader"], m["status"], m["status_text"], m["paid"]) for m in d["members"]] == [
        (True, "group_forming", "group forming (2/3)", True), (False, "reserved", "reserved", False)]
    assert all(re.fullmatch(r"1\d\d\*{4}\d{4}", m["member"]) for m in d["members"]), d["members"]
    text = detail.text
    assert leader.member_id not in text and ann.member_id not in text and leader.phone not in text


async def test_hq_cancels_an_open_group_and_every_order_is_cancelled_and_refunded_once(world):
    services, http, box, _ = world
    leader, ann = await member_with(services, http), await member_with(services, http)
    before = await balance(http, leader)
    opened = await open_group(http, leader, "GB-VIEW-CANCEL")
    gid, mine = opened.json()["group"]["group_id"], opened.json()["order"]["order_id"]
    charged = (await pay(http, leader, mine))["total_fen"]  # at most the group's 15.00 (other rules may apply)
    hers = (await join(http, ann, gid)).json()["order"]["order_id"]  # reserved, unpaid: the group cannot form yet
    assert 0 < charged <= 1500 and await balance(http, leader) == before - charged
    viewer = await operator_headers(services, "viewer")
    manager = await operator_headers(services, "store_manager", store_id=STORE)
    why = {"reason": "supplier recall of this cheese"}
    for headers in (viewer, manager):
        is_problem(await http.post(f"/operator/group-buys/{gid}/cancel", json=why, headers=headers), 403,
                   "group_buys.cancel")
    is_problem(await http.post(f"/operator/group-buys/{gid}/cancel", json={}, headers=OP), 422, "reason")
    is_problem(await http.post("/operator/group-buys/G0000/cancel", json=why, headers=OP), 404, "no group buy")

    cancelled = await http.post(f"/operator/group-buys/{gid}/cancel", json=why, headers=OP)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["cancelled"]["by"] == ADMIN
    assert body["outcome"].startswith(f"cancelled by {ADMIN} (supplier recall of this cheese)")
    GROUPS["cancelled"] = gid

    async def ended():
        orders = [await order(http, leader, mine), await order(http, ann, hers)]
        return orders if all(o["status"] == "cancelled" for o in orders) else None
    both = await eventually(ended, timeout_s=15)
    assert both, [await order(http, leader, mine), await order(http, ann, hers)]
    assert all("cancelled by HQ: supplier recall of this cheese" in str(o["timeline"]) for o in both)
    assert await balance(http, leader) == before  # the money back, once
    again = await http.post(f"/operator/group-buys/{gid}/cancel", json={"reason": "another reason"}, headers=OP)
    assert again.status_code == 200 and again.json()["cancelled"]["reason"] == "supplier recall of this cheese"
    detail = (await http.get(f"/operator/group-buys/{gid}", headers=OP)).json()
    assert [(r["order_id"], r["amount_fen"], r["state"]) for r in detail["refunds"]] == [(mine, charged, "done")]
    assert detail["refunded_fen"] == charged and detail["ended_at"] is not None
    assert [m["status"] for m in detail["members"]] == ["cancelled", "cancelled"]
    refunds = await services.cloud.db.fetchval("select count(*) from money_movements where kind = 'refund' "
                                               "and order_id = any($1::text[])", [mine, hers])
    assert refunds == 1  # the unpaid one had nothing to give back
    audit = (await http.get("/operator/audit", params={"limit": 50}, headers=OP)).json()["entries"]
    entry = next(e for e in audit if e["action"] == "group_buy.cancel" and e["target"] == gid)
    assert entry["username"] == ADMIN and entry["after"]["reason"] == "supplier recall of this cheese"
    assert sorted(entry["after"]["orders"]) == sorted([mine, hers])
    assert sum(e["target"] == gid for e in audit) == 1  # the retry changed nothing, so it is not a second write
    late = await join(http, await member_with(services, http), gid)
    is_problem(late, 409, "cancelled by the chain")
    assert (await http.get(f"/group-buys/{gid}")).json()["status"] == "cancelled"
    assert not {mine, hers} & {o["order_id"] for o in (await box.actor.ask("pick_list"))["orders"]}
    formed = GROUPS.get("formed")
    if formed:
        refused = await http.post(f"/operator/group-buys/{formed}/cancel", json=why, headers=OP)
        is_problem(refused, 409, "has formed")
        assert refused.json()["reason"] == "formed"


# ---- 4. the console's group-buy section in a real browser ------------------------------------------------------------
async def test_the_consoles_group_buy_section_in_chromium(world, tmp_path):
    from playwright.async_api import async_playwright
    services, http, _, url = world
    leader = await member_with(services, http)
    services.group_buys.window_ms = 3_000  # a group that fails now, for the "lately ended" list
    try:
        short = await open_group(http, leader, "GB-VIEW-FAIL")
    finally:
        services.group_buys.window_ms = 24 * 3_600_000
    failing = short.json()["group"]["group_id"]

    async def failed():
        await services.group_buys.sweep_due()
        return (await http.get(f"/group-buys/{failing}")).json()["status"] == "failed"
    assert await eventually(failed, timeout_s=20)
    open_gid = GROUPS["open"]
    async with async_playwright() as pw:
        browser = await launch(pw, chromium(), tmp_path)
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            await page.goto(f"{url}/console")
            await page.evaluate("() => localStorage.removeItem('freshmesh-lang')")  # Chinese first
            await page.reload()
            await page.wait_for_selector("#login-form", state="visible", timeout=10_000)
            await page.fill("#username", ADMIN)
            await page.fill("#password", OPERATOR_PASSWORD)
            await page.click("#sign-in")
            row = f'#gb-open tr[data-group="{open_gid}"]'
            await page.wait_for_selector(row, timeout=20_000)
            assert await page.text_content("#gb-title") == "拼团"
            assert (await page.get_attribute(row, "data-joined"), await page.get_attribute(row, "data-size"),
                    await page.get_attribute(row, "data-needed")) == ("2", "3", "1")
            cells = await page.eval_on_selector_all(f"{row} td", "tds => tds.map(td => td.textContent)")
            assert cells[2] == "拼团中 (2/3)" and cells[3] == "1 人" and cells[5] == "\u00a520.00", cells
            assert re.fullmatch(r"\d+:\d\d:\d\d", cells[4]), cells  # a day's window: h:mm:ss left
            first_left = cells[4]
            await page.wait_for_function(f"""() => document.querySelector('{row} td.countdown').textContent
                                             !== {first_left!r}""", timeout=10_000)  # it counts down
            for name, words in (("formed", "已成团"), ("cancelled", "总部已取消"), ("failed", "未成团")):
                gid = GROUPS.get(name, failing if name == "failed" else None)
                if gid is None:
                    continue
                recent = f'#gb-recent tr[data-group="{gid}"]'
                await page.wait_for_selector(recent, timeout=10_000)
                assert words in await page.text_content(f"{recent} td:nth-child(2)")
            if "cancelled" in GROUPS:  # the outcome in words, on hover
                title = await page.get_attribute(f'#gb-recent tr[data-group="{GROUPS["cancelled"]}"]', "title")
                assert "supplier recall" in title, title
            await page.locator("#group-buys").scroll_into_view_if_needed()
            shot = tmp_path / "group-buys.png"
            await page.screenshot(path=str(shot), full_page=True)
            width, height = png_size(shot)
            assert shot.stat().st_size > 20_000 and width >= 1000 and height >= 600
            section = tmp_path / "group-buys-section.png"
            await page.locator("#group-buys").screenshot(path=str(section))
            await page.click("#sign-out")  # the toggle lives on the sign-in form; sign in again in English
            await page.wait_for_selector("#login-form", state="visible", timeout=5_000)
            await page.click("#lang-toggle")
            await page.fill("#username", ADMIN)
            await page.fill("#password", OPERATOR_PASSWORD)
            await page.click("#sign-in")
            await page.wait_for_selector(row, timeout=20_000)
            await page.wait_for_function("() => document.querySelector('#gb-title').textContent === 'Group buys'",
                                         timeout=10_000)
            cells = await page.eval_on_selector_all(f"{row} td", "tds => tds.map(td => td.textContent)")
            assert cells[2] == "forming (2/3)" and cells[3] == "1", cells
            if os.environ.get("FRESHMESH_GROUPS_SCREENSHOT"):  # keep them to look at
                base = os.environ["FRESHMESH_GROUPS_SCREENSHOT"].removesuffix(".png")
                shutil.copy(shot, f"{base}.png")
                shutil.copy(section, f"{base}-section.png")
        finally:
            await browser.close()
