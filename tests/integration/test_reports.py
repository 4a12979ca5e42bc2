"""HQ's chain reports (issue 21 build 5) over the real stack: till sales, write-offs and stock sent by stores S067
and S068 as their boxes would (StoreLink, through the bridge), an online order placed and paid through the API (and
one cancelled unpaid, which never counts), a flash sale bought and paid; then every report's figures checked against
what was made, the CSV, and who may see which store.

Stores S067 and S068 are this module's own (provisioned by the test stack, used by no other module). Sales are made
today (a recent day: refreshed when read) and 10 days ago (a settled day: refreshed once)."""
from __future__ import annotations

import csv
import io
import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from cloud.services import report_rollup
from protocol.messages import EscrowGranted, OrderToFulfil, Payment, Quantity, SaleCommitted, SaleLine, StockMoved
from protocol.policy import chain_day
from protocol.promotion_uses import RuleUse
from tests.integration.harness import (
    OPERATOR_PASSWORD,
    StoreLink,
    customer,
    eventually,
    operator_headers,
    pay_by_wallet,
    running_cloud,
)
from tests.integration.office_browser import DESK, PHONE, office_context, office_sign_in, shot

pytestmark = pytest.mark.integration
RECENT_STALE_MS = report_rollup.RECENT_STALE_MS
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE, OTHER = "S067", "S068"
FRUIT, SEAFOOD, MEAT = "FRU-FUJI-0057", "SEA-SHRIMP-0144", "MEA-BEEF-0115"  # sold by the kg
ONLINE_SKU, LOST_SKU = "PAC-SESAME-0229", "PAC-STEAME-0226"  # packed, by the piece
DAY_MS = 86_400_000
CN = timezone(timedelta(hours=8))


def _slot() -> str:
    """Tomorrow at 11:00 in the chain's zone: on every store's slot grid, within opening hours."""
    day = datetime.now(CN) + timedelta(days=1)
    return day.replace(hour=11, minute=0, second=0, microsecond=0).isoformat()


class Made:
    """What this module made, to compute each report's figures from."""

    def __init__(self) -> None:
        self.sales: list[dict] = []  # {store, day, member, lines: [(sku, unit, amount, fen)], total, promotions}
        self.online: dict = {}
        self.lost_fen = self.lost_cost_fen = 0
        self.flash: dict = {}


async def sell(link: StoreLink, made: Made, days_ago: int, member: str | None, lines: list[tuple[str, str, int, int]],
               promotions: tuple[RuleUse, ...] = ()) -> None:
    env = link.next_envelope()
    env["wall_ms"] = time.time_ns() // 1_000_000 - days_ago * DAY_MS - 60_000  # never "in the future" of the cloud
    total = sum(fen for *_, fen in lines)
    sale_id = f"rep-{uuid.uuid4().hex[:12]}"
    await link.publish(SaleCommitted(
        **env, sale_id=sale_id, lane="1", total_fen=total, member_id=member, offline=days_ago > 0,
        lines=tuple(SaleLine(sku=sku, quantity=Quantity(amount=n, unit=unit), amount_fen=fen)
                    for sku, unit, n, fen in lines),
        payments=(Payment(method="cash", amount_fen=total, reference=""),), promotions=promotions))
    made.sales.append({"store": link.store_id, "day": chain_day(env["wall_ms"]).isoformat(), "member": member,
                       "lines": lines, "total": total, "promotions": promotions})


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime):
    async with running_cloud(stack, prefix=f"rep{uuid.uuid4().hex[:6]}-") as (services, url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            made = await make_history(services, http, stack)
            # today's figures are at most RECENT_STALE_MS old (another module's report may have just refreshed
            # today's rows): the reports are read once they show every sale made here, as HQ would see them
            hq = await operator_headers(services)
            want = sum(s["total"] for s in made.sales) + made.online["fen"]

            async def caught_up() -> bool:
                answer = await get(http, "channel-split", hq, group_by="store")
                rows = {r["key"]: r for r in answer["rows"]}
                return sum(rows[s]["sales_fen"] for s in (STORE, OTHER) if s in rows) == want
            assert await eventually(caught_up, timeout_s=RECENT_STALE_MS / 1000 + 15, every_s=1.0), \
                "the reports never showed today's sales"
            yield services, http, url, made


async def open_stores(http, hq: dict) -> None:
    """S067 and S068 opened by HQ (PUT /stores/{id}), as FreshMesh #1 is but a little further out."""
    first = json.loads(WORLD.read_text())["stores"][0]
    for n, store in enumerate((STORE, OTHER), start=1):
        body = {k: v for k, v in first.items() if k != "store_id"}
        body.update(name=f"Reports #{n}", lat=first["lat"] + 0.01 * n, lon=first["lon"] + 0.01 * n)
        r = await http.put(f"/stores/{store}", json=body, headers=hq)
        assert r.status_code == 200, r.text


async def make_history(services, http, stack) -> Made:
    made = Made()
    hq = await operator_headers(services)
    await open_stores(http, hq)
    a, b = await customer(services, http), await customer(services, http)
    deal = RuleUse(rule_id="R0009", saving_fen=389)
    async with StoreLink(stack, STORE) as link:
        await sell(link, made, 0, a.member_id, [(FRUIT, "g", 500, 1_000), (LOST_SKU, "piece", 1, 500)], (deal,))
        await sell(link, made, 0, None, [(FRUIT, "g", 250, 800)])
        await sell(link, made, 10, a.member_id, [(SEAFOOD, "g", 300, 2_000)])
        # the online SKU received and its escrow granted to the cloud; the write-off SKU received, 2 expired
        for sku, qty in ((ONLINE_SKU, 20), (LOST_SKU, 10)):
            await link.publish(StockMoved(**link.next_envelope(), sku=sku, delta=qty, reason="receiving",
                                          shrinkage_reason="", on_hand_after=qty, reference=""))
        await link.publish(EscrowGranted(**link.next_envelope(), sku=ONLINE_SKU, qty=10, escrow_after=10))
        await link.publish(StockMoved(**link.next_envelope(), sku=LOST_SKU, delta=-2, reason="shrinkage",
                                      shrinkage_reason="expired", on_hand_after=8, reference=""))
    product = services.cloud.world.catalogue.get(LOST_SKU)
    made.lost_fen = 2 * product.price_fen
    made.lost_cost_fen = 2 * product.cost_fen
    async with StoreLink(stack, OTHER) as link:
        await sell(link, made, 0, None, [(MEAT, "g", 400, 700)])

    seen: list[str] = []

    async def granted():
        r = await http.get(f"/stores/{STORE}/stock")
        seen.append(r.text[:300])
        return r.status_code == 200 and any(x["sku"] == ONLINE_SKU and x["escrow"] >= 10 for x in r.json()["stock"])
    assert await eventually(granted, timeout_s=30), f"the escrow never reached the cloud: {seen[-1:]}"
    body = {"fulfilment": "pickup", "store_id": STORE, "slot_start": _slot(), "items": [{"sku": ONLINE_SKU, "qty": 2}]}
    r = await http.post("/orders", json=body, headers={"Idempotency-Key": uuid.uuid4().hex, **b.headers})
    assert r.status_code == 201, r.text
    order = r.json()
    await pay_by_wallet(services, http, b, order["order_id"])
    made.online = {"order_id": order["order_id"], "member": b.member_id, "fen": sum(x["amount_fen"] for x in order["lines"]),
                   "day": chain_day(time.time_ns() // 1_000_000).isoformat()}
    r = await http.post("/orders", json={**body, "items": [{"sku": ONLINE_SKU, "qty": 1}]},
                        headers={"Idempotency-Key": uuid.uuid4().hex, **b.headers})
    assert r.status_code == 201, r.text
    assert (await http.post(f"/orders/{r.json()['order_id']}/cancel", headers=b.headers)).status_code == 200
    async with StoreLink(stack, STORE) as link:  # leave no pick order of ours for a later module's box
        await link.commands(want=10_000, timeout_s=10,
                            until=lambda c: isinstance(c, OrderToFulfil) and c.order_id == order["order_id"])
    # a flash sale held by no store, one unit bought and paid
    now = datetime.now(UTC)
    sale = {"sku": ONLINE_SKU, "quantity": 7, "price_fen": 990, "per_member_limit": 2, "rate_per_s": 100,
            "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()}
    r = await http.post("/flash-sales", json=sale, headers=hq)
    assert r.status_code == 201, r.text
    sale_id = r.json()["sale_id"]
    flash_pass = (await http.post("/auth/passes", headers=a.headers)).json()["pass"]
    r = await http.post(f"/flash-sales/{sale_id}/orders", json={},
                        headers={"Idempotency-Key": uuid.uuid4().hex, "Authorization": f"Bearer {flash_pass}"})
    assert r.status_code == 201, r.text
    await pay_by_wallet(services, http, a, r.json()["order_id"])
    made.flash = {"sale_id": sale_id, "quantity": 7, "fen": 990}

    async def applied():
        n = await services.cloud.db.fetchval("select count(*) from till_sales where store_id = any($1)", [STORE, OTHER])
        lost = await services.cloud.db.fetchval("select count(*) from loss_lines where store_id = $1", STORE)
        return n == len(made.sales) and lost == 1
    assert await eventually(applied, timeout_s=20), "the bridge did not apply every sale and write-off"
    return made


def span() -> dict[str, str]:
    today = chain_day(time.time_ns() // 1_000_000)
    return {"from": (today - timedelta(days=12)).isoformat(), "to": today.isoformat()}


async def get(http, name: str, headers: dict, **params) -> dict:
    r = await http.get(f"/operator/reports/{name}", params={**span(), **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def store_sales(made: Made, store: str) -> list[dict]:
    return [s for s in made.sales if s["store"] == store]


async def test_channel_split_by_day_and_category_is_what_the_stores_sold(world):
    services, http, _, made = world
    viewer = await operator_headers(services, "viewer")
    answer = await get(http, "channel-split", viewer, store=STORE)
    rows = {r["key"]: r for r in answer["rows"]}
    expected: dict[str, dict] = {}
    for s in store_sales(made, STORE):
        e = expected.setdefault(s["day"], {"till_tickets": 0, "till_sales_fen": 0, "online_tickets": 0,
                                           "online_sales_fen": 0})
        e["till_tickets"] += 1
        e["till_sales_fen"] += s["total"]
    e = expected.setdefault(made.online["day"], {"till_tickets": 0, "till_sales_fen": 0, "online_tickets": 0,
                                                 "online_sales_fen": 0})
    e["online_tickets"] += 1  # the paid order only: the cancelled one was never a sale
    e["online_sales_fen"] += made.online["fen"]
    assert {k: {c: r[c] for c in e} for k, r in rows.items()} == expected
    today = rows[made.online["day"]]
    assert today["online_share_bp"] == (today["online_sales_fen"] * 10_000 * 2 + today["sales_fen"]) // (
        2 * today["sales_fen"])
    assert answer["totals"]["sales_fen"] == sum(s["total"] for s in store_sales(made, STORE)) + made.online["fen"]
    # one category: the fruit lines only (two tickets today at STORE)
    fruit = await get(http, "channel-split", viewer, store=STORE, category="fruit")
    assert [(r["till_tickets"], r["till_sales_fen"], r["online_tickets"]) for r in fruit["rows"]] == [(2, 1_800, 0)]
    by_store = {r["key"]: r for r in (await get(http, "channel-split", viewer, group_by="store"))["rows"]}
    assert by_store[OTHER]["till_sales_fen"] == 700 and by_store[OTHER]["online_tickets"] == 0


async def test_store_kpis_count_tickets_items_online_share_and_shrinkage(world):
    services, http, _, made = world
    hq = await operator_headers(services)
    rows = {r["key"]: r for r in (await get(http, "store-kpis", hq))["rows"]}
    mine = rows[STORE]
    sales = sum(s["total"] for s in store_sales(made, STORE)) + made.online["fen"]
    items = sum(n if unit == "piece" else 1 for s in store_sales(made, STORE) for _, unit, n, _ in s["lines"]) + 2
    assert (mine["sales_fen"], mine["tickets"], mine["items"]) == (sales, 4, items)
    assert mine["avg_ticket_fen"] == (sales * 2 + 4) // 8
    assert mine["items_per_ticket"] == round(items / 4, 2)
    assert mine["shrinkage_at_price_fen"] == made.lost_fen
    assert mine["shrinkage_rate_bp"] == (made.lost_fen * 20_000 + sales) // (2 * sales)
    assert (rows[OTHER]["sales_fen"], rows[OTHER]["tickets"], rows[OTHER]["shrinkage_at_price_fen"]) == (700, 1, 0)


async def test_member_contribution_splits_members_and_non_members_across_channels(world):
    services, http, _, made = world
    hq = await operator_headers(services)
    rows = {(r["level"], r["segment"]): r for r in (await get(http, "member-contribution", hq, store=STORE))["rows"]}
    member_till = [s for s in store_sales(made, STORE) if s["member"]]
    regular = rows[("regular", "none")]  # new members: the base level, not yet placed in a segment
    assert (regular["till_tickets"], regular["till_sales_fen"]) == (len(member_till), sum(s["total"] for s in member_till))
    assert (regular["online_tickets"], regular["online_sales_fen"]) == (1, made.online["fen"])
    guest = rows[("non_member", "none")]
    assert (guest["till_tickets"], guest["till_sales_fen"], guest["online_tickets"]) == (1, 800, 0)
    assert sum(r["sales_share_bp"] for r in rows.values()) in (9_999, 10_000, 10_001)


async def test_promotion_effect_compares_the_baskets_with_a_rule_against_the_rest(world):
    services, http, _, made = world
    hq = await operator_headers(services)
    answer = await get(http, "promotion-effect", hq, store=STORE)
    row = next(r for r in answer["rows"] if r["rule_id"] == "R0009")
    with_deal = [s for s in store_sales(made, STORE) if s["promotions"]]
    baskets = len(store_sales(made, STORE)) + 1  # and the paid online order
    everything = sum(s["total"] for s in store_sales(made, STORE)) + made.online["fen"]
    assert (row["uses"], row["discount_fen"], row["sales_with_fen"]) == (1, 389, with_deal[0]["total"])
    assert (row["baskets_without"], row["sales_without_fen"]) == (baskets - 1, everything - with_deal[0]["total"])
    by_channel = await get(http, "promotion-effect", hq, store=STORE, group_by="rule_channel")
    assert [(r["channel"], r["uses"]) for r in by_channel["rows"] if r["rule_id"] == "R0009"] == [("till", 1)]


async def test_shrinkage_values_the_write_offs_at_cost_and_price(world):
    services, http, _, made = world
    manager = await operator_headers(services, "store_manager", store_id=STORE)
    answer = await get(http, "shrinkage", manager)  # a store manager: their own store without naming it
    assert answer["store"] == STORE
    expired = next(r for r in answer["rows"] if r["key"] == "expired")
    assert (expired["lines"], expired["pieces"], expired["value_at_price_fen"], expired["value_at_cost_fen"]) == (
        1, 2, made.lost_fen, made.lost_cost_fen)
    packed = await get(http, "shrinkage", manager, group_by="category", category="packed")
    assert [(r["key"], r["value_at_price_fen"]) for r in packed["rows"]] == [("packed", made.lost_fen)]


async def test_flash_sales_report_the_units_sold_and_paid(world):
    services, http, _, made = world
    hq = await operator_headers(services)
    rows = {r["sale_id"]: r for r in (await get(http, "flash-sales", hq))["rows"]}
    mine = rows[made.flash["sale_id"]]
    assert (mine["quantity"], mine["orders"], mine["units_sold"], mine["sales_fen"], mine["members"]) == (
        7, 1, 1, made.flash["fen"], 1)
    assert mine["sell_through_bp"] == 1_429


async def test_csv_has_the_same_rows_by_format_or_by_accept(world):
    services, http, _, made = world
    hq = await operator_headers(services)
    answer = await get(http, "store-kpis", hq, store=STORE)
    for how in ({"params": {**span(), "store": STORE, "format": "csv"}, "headers": hq},
                {"params": {**span(), "store": STORE}, "headers": {**hq, "Accept": "text/csv"}}):
        r = await http.get("/operator/reports/store-kpis", **how)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        table = list(csv.DictReader(io.StringIO(r.text)))
        assert list(table[0]) == answer["columns"]
        assert [int(t["sales_fen"]) for t in table] == [answer["rows"][0]["sales_fen"], answer["totals"]["sales_fen"]]
        assert table[-1]["key"] == "total"


async def test_who_may_see_which_store_and_what_a_wrong_query_answers(world):
    services, http, _, _ = world
    manager = await operator_headers(services, "store_manager", store_id=STORE)
    r = await http.get("/operator/reports/channel-split", params={**span(), "store": OTHER}, headers=manager)
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    mine = await get(http, "store-kpis", manager)
    assert [r["key"] for r in mine["rows"]] == [STORE]
    assert (await http.get("/operator/reports/store-kpis", params=span())).status_code == 401
    viewer = await operator_headers(services, "viewer")
    assert {STORE, OTHER} <= {r["key"] for r in (await get(http, "store-kpis", viewer))["rows"]}
    cases = [({"from": "2026-13-01", "to": "2026-01-02"}, 422, "from: a day"),
             ({**span(), "group_by": "planet"}, 422, "group_by: one of"),
             ({**span(), "store": "S999"}, 404, "no store S999"),
             ({**span(), "category": "toys"}, 422, "category: no product"),
             ({"from": "2024-01-01", "to": date.today().isoformat()}, 422, "at most 366 days")]
    for params, status, words in cases:
        r = await http.get("/operator/reports/channel-split", params=params, headers=viewer)
        assert r.status_code == status and words in r.json()["detail"], (params, r.text)


@pytest.mark.parametrize("size", [DESK, PHONE], ids=["desk", "phone"])
async def test_back_office_reports_page_picks_a_range_and_shows_the_chart_and_figures(world, size, tmp_path):
    services, _, url, made = world
    username = f"hq-reports-{uuid.uuid4().hex[:6]}"
    await services.operators.create(username, OPERATOR_PASSWORD, "hq_admin", None, by_name="tests")
    today = chain_day(time.time_ns() // 1_000_000)
    mine = store_sales(made, STORE)
    total_fen = sum(s["total"] for s in mine) + made.online["fen"]
    days = {s["day"] for s in mine} | {made.online["day"]}
    async with office_context(size) as (context, page):
        await office_sign_in(page, url, username, OPERATOR_PASSWORD, then="/office/reports")
        assert await page.get_attribute("nav.areas a[aria-current=page]", "href") == "/office/reports"
        await page.select_option("#store", STORE)
        await page.fill("#from", (today - timedelta(days=12)).isoformat())
        await page.fill("#to", today.isoformat())
        await page.click("#show")
        await page.wait_for_selector("#report-chart svg")
        assert f"store={STORE}" in page.url
        bars = await page.eval_on_selector_all("#report-chart g.bar", "gs => gs.map(g => g.dataset.key)")
        assert len(bars) == 13 and days <= set(bars)  # a bar per day of the range (0 where nothing sold)
        total = await page.text_content("#report-total td[data-col=sales_fen]")
        assert total.strip() == f"{total_fen / 100:.2f}"
        await shot(page, tmp_path, "reports-channels", size)

        await page.select_option("#report", "store-kpis")  # picking another report shows it at once
        await page.wait_for_url(lambda u: "report=store-kpis" in u)
        await page.wait_for_selector("#report-chart svg")
        shrinkage = await page.text_content("#report-table tbody tr:first-child td[data-col=shrinkage_at_price_fen]")
        assert shrinkage.strip() == f"{made.lost_fen / 100:.2f}"
        await shot(page, tmp_path, "reports-kpis", size)
        await page.locator("#report-table").scroll_into_view_if_needed()
        await shot(page, tmp_path, "reports-table", size)

        href = await page.get_attribute("#csv", "href")
        download = await context.request.get(f"{url}{href}")
        assert download.status == 200 and download.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(await download.text())))
        assert [r["key"] for r in table] == [STORE, "total"] and int(table[0]["sales_fen"]) == total_fen


async def test_back_office_reports_a_store_manager_sees_only_their_store(world):
    services, _, url, _ = world
    username = f"mgr-reports-{uuid.uuid4().hex[:6]}"
    await services.operators.create(username, OPERATOR_PASSWORD, "store_manager", OTHER, by_name="tests")
    async with office_context() as (_context, page):
        await office_sign_in(page, url, username, OPERATOR_PASSWORD, then="/office/reports")
        assert await page.eval_on_selector_all("#store option", "os => os.map(o => o.value)") == [OTHER]
        assert "0.00" not in await page.text_content("#report-total td[data-col=till_sales_fen]")
        answer = await page.goto(f"{url}/office/reports?store={STORE}")
        assert answer.status == 403
        assert "S067" in await page.text_content("main") and "{" not in await page.text_content("main")


async def test_a_sale_that_arrives_after_its_day_settled_reopens_the_day(world, stack):
    """An offline store's backlog reaches the cloud days late: the day it was sold on was already settled (refreshed
    once, then only read), yet the report counts the sale once it arrived (migration 50's marks), not never."""
    services, http, _, _ = world
    hq = await operator_headers(services)
    day = (chain_day(time.time_ns() // 1_000_000) - timedelta(days=9)).isoformat()

    async def other_on(day_: str) -> int:
        answer = await get(http, "channel-split", hq, store=OTHER)
        return next((r["till_sales_fen"] for r in answer["rows"] if r["key"] == day_), 0)
    before = await other_on(day)  # the report settles that day now, if nothing had yet
    settled = await services.cloud.db.fetchval("select refreshed_ms from report_days where day = $1",
                                               date.fromisoformat(day))
    assert settled is not None
    late = Made()
    async with StoreLink(stack, OTHER) as link:
        await sell(link, late, 9, None, [(MEAT, "g", 300, 1_234)])
    assert late.sales[0]["day"] == day

    async def counted() -> bool:
        return await other_on(day) == before + 1_234
    assert await eventually(counted, timeout_s=20), "the late sale never reached its settled day's report"
