"""The mall's pages rendered by their real routes over a stand-in of the cloud's services (the world file, a session
table of one token, stock rows): languages, the member price for the signed-in member only, availability and
pre-sale, search, stores by distance; and the pure browse views they are made of."""
from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from cloud.mall import shelf
from cloud.mall.routes import routes as mall_routes
from cloud.world import World

WORLD = World.load()
MEMBER_SKU = next(p.sku for p in WORLD.catalogue.by_sku.values() if p.member_prices and "online" in p.channels)
LEVEL = next(p.member_prices[0].level for p in WORLD.catalogue.by_sku.values() if p.sku == MEMBER_SKU)
WEIGHED = next(p for p in WORLD.catalogue.by_sku.values() if p.weighed and "online" in p.channels)


class Stub:
    """Only what the mall's pages call, answering as the real services do."""

    def __init__(self) -> None:
        self.world, self.stock_rows = WORLD, {}
        outer = self

        class Cloud:
            world = WORLD

            @staticmethod
            def now_ms() -> int:
                return 1_764_547_200_000  # 2025-12-01 08:00 in China

            class db:
                @staticmethod
                async def fetch(*_a):
                    return []

        class Identity:
            @staticmethod
            async def member_of(token):
                return "M-1" if token == "good-token" else None

        class Pricing:
            @staticmethod
            async def level(member):
                return LEVEL if member == "M-1" else None

        class Orders:
            member_pricing = Pricing

        class Stock:
            @staticmethod
            async def store_view(store_id, sku=None):
                rows = [r for k, r in outer.stock_rows.items() if sku is None or k == sku]
                return {"store_id": store_id, "stock": rows}

        self.cloud, self.identity, self.orders, self.stock = Cloud, Identity, Orders, Stock


@pytest.fixture
def mall(monkeypatch):
    monkeypatch.setattr("cloud.mall.recent.FRESH_S", 0.0)  # each page reads the stand-in's rows as they are now
    services = Stub()
    app = Starlette(routes=[Route(p, fn, methods=m) for p, fn, m in mall_routes(services)])
    with TestClient(app, base_url="http://cloud") as client:
        yield client, services


def test_home_is_chinese_first_and_english_on_asking_and_remembered(mall):
    client, _ = mall
    zh = client.get("/mall")
    assert zh.status_code == 200 and 'lang="zh-CN"' in zh.text and "蔬菜" in zh.text and "蛋奶" in zh.text
    en = client.get("/mall?lang=en")
    assert 'lang="en"' in en.text and "Meat &amp; poultry" in en.text and en.cookies.get("mall_lang") == "en"
    assert 'lang="en"' in client.get("/mall").text  # the cookie keeps the choice
    assert "/mall/scenes/breakfast" in en.text and "Spend &amp; save" in en.text


def test_member_price_only_for_the_signed_in_members_level(mall):
    client, _ = mall
    anonymous = client.get(f"/mall/products/{MEMBER_SKU}?lang=en")
    assert anonymous.status_code == 200 and "tag member" not in anonymous.text
    client.cookies.set("mall_session", "forged-token")
    assert "tag member" not in client.get(f"/mall/products/{MEMBER_SKU}").text  # a cookie is checked, not believed
    client.cookies.set("mall_session", "good-token")
    assert "tag member" in client.get(f"/mall/products/{MEMBER_SKU}").text


def test_availability_at_the_chosen_store_and_pre_sale_when_out(mall):
    client, services = mall
    page = client.get(f"/mall/products/{WEIGHED.sku}?lang=en")
    assert 'data-state="unknown"' in page.text and "/mall/stores?next=" in page.text
    assert re.search(r'<option value="500" selected>500 g', page.text)  # weighed goods are bought by weight
    client.cookies.set("mall_store", "S002")
    services.stock_rows[WEIGHED.sku] = {"sku": WEIGHED.sku, "available_online": 20_000}
    assert 'data-state="in_stock"' in client.get(f"/mall/products/{WEIGHED.sku}").text
    services.stock_rows[WEIGHED.sku] = {"sku": WEIGHED.sku, "available_online": 0}
    out = client.get(f"/mall/products/{WEIGHED.sku}?lang=en")
    assert 'data-state="presale"' in out.text and "tag pre" in out.text
    client.cookies.set("mall_store", "S999")  # not a store of the chain: as if none was chosen
    assert 'data-state="unknown"' in client.get(f"/mall/products/{WEIGHED.sku}").text


def test_unknown_pages_answer_a_sentence_not_json(mall):
    client, _ = mall
    for path in ("/mall/products/NOPE?lang=en", "/mall/shelves/nope?lang=en", "/mall/scenes/nope?lang=en"):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "Back to the home page" in r.text and "{" not in r.text.split("<main")[1].split("</main>")[0]


def test_search_by_name_plu_and_initials(mall):
    client, _ = mall
    bok = next(p for p in WORLD.catalogue.by_sku.values() if p.name == "Bok choy" and "online" in p.channels)
    assert bok in shelf.search(WORLD.catalogue, "bok")
    assert bok in shelf.search(WORLD.catalogue, "bc")  # initials
    assert bok in shelf.search(WORLD.catalogue, bok.plu)
    assert shelf.search(WORLD.catalogue, "   ") == []
    assert f'data-sku="{bok.sku}"' in client.get("/mall/search?q=bok").text


def test_stores_nearest_first_and_choice_remembered(mall):
    client, _ = mall
    far = WORLD.stores["S005"]
    page = client.get(f"/mall/stores?lat={far.lat}&lon={far.lon}")
    assert page.text.index('data-store="S005"') < min(page.text.index(f'data-store="{s}"') for s in ("S001", "S002"))
    r = client.get("/mall/stores/S003/choose?next=/mall/cart", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/mall/cart" and r.cookies["mall_store"] == "S003"
    evil = client.get("/mall/stores/S003/choose?next=https://evil.example/", follow_redirects=False)
    assert evil.headers["location"] == "/mall"


def test_assets_are_served_and_only_those(mall):
    client, _ = mall
    css = client.get("/mall/static/mall.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/mall/static/..%2Fpages.py").status_code == 404


def test_zones_from_the_promotion_book():
    zones = shelf.zones(WORLD.rule_data, WORLD.catalogue, 8 * 60)
    assert zones["spend_x"] and zones["group_buys"] and zones["time_limited"]
    assert zones["time_limited"][0]["active"]  # active-now deals first (07:00-09:00 deals at 08:00)
    assert all(z["id"] != "MD-GREENS-1900" for k in zones for z in zones[k])  # offline markdowns are not zones


def test_times_are_shown_on_the_stores_clock_and_both_languages_name_every_word():
    from cloud.mall import i18n
    assert i18n.china_time("2026-12-01T00:00:00Z") == "2026-12-01 08:00"
    assert i18n.china_time(None) == ""
    assert i18n.CATALOGUE["zh"].keys() == i18n.CATALOGUE["en"].keys()
    from protocol.order_lifecycle import SHOWN_STATUSES
    assert all(f"status_{s}" in i18n.CATALOGUE["zh"] for s in SHOWN_STATUSES)  # no order status shown raw


async def test_recent_reads_are_reused_for_about_a_second_and_bounded():
    from cloud.mall.recent import Recent
    now = [0.0]
    loads = []

    async def load():
        loads.append(now[0])
        return len(loads)
    recent = Recent(fresh_s=1.0, entries_max=2, clock=lambda: now[0])
    assert await recent.get("a", load) == 1 and await recent.get("a", load) == 1  # one read for both
    now[0] = 1.5
    assert await recent.get("a", load) == 2  # stale: read again
    await recent.get("b", load)
    await recent.get("c", load)
    assert list(recent.entries) == ["b", "c"]  # bounded: the oldest went


async def test_recent_reads_once_for_many_asking_at_the_same_moment():
    import asyncio

    from cloud.mall.recent import Recent
    calls = []
    gate = asyncio.Event()

    async def load():
        calls.append(1)
        await gate.wait()
        return "row"
    recent = Recent()
    waiting = [asyncio.create_task(recent.get("k", load)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == ["row"] * 50 and len(calls) == 1

    async def broken():
        raise RuntimeError("actors busy")
    with pytest.raises(RuntimeError):
        await Recent().get("x", broken)


def test_home_links_every_promotion_zone(mall):
    """Flash sales and group buys have their own pages; time-limited and spend-X zones are on the home itself."""
    client, _ = mall
    home = client.get("/mall").text
    links = dict(re.findall(r'<a href="([^"]+)" data-zone-link="([a-z_]+)"', home))
    assert links == {"/mall/flash": "flash", "/mall/group-buys": "group_buys", "#zone-time-limited": "time_limited",
                     "#zone-spend-x": "spend_x"}
    assert 'id="zone-time-limited"' in home and 'id="zone-spend-x"' in home  # the anchors exist
    rule = shelf.zones(WORLD.rule_data, WORLD.catalogue, 8 * 60)["group_buys"][0]["id"]
    assert f'href="/mall/group-buys/{rule}"' in home  # each group-buy deal opens its page


def test_the_orders_page_reads_the_members_orders_from_the_api_not_the_browser(mall):
    client, _ = mall
    page = client.get("/mall/orders").text
    script = client.get("/mall/static/orders.js").text
    assert "/members/" in script and "/orders?limit=" in script and "mall_orders" not in script
    assert "mall_orders" not in client.get("/mall/static/checkout.js").text  # nothing remembered at placing
    assert '"S001"' in page.split('id="store-names"')[1].split("</script>")[0]  # stores shown by name


def test_error_words_and_problem_tables_come_with_every_page(mall):
    client, _ = mall
    page = client.get("/mall").text
    assert '<script id="problems" type="application/json">' in page and "/problems/slot" in page
