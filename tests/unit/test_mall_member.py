"""The mall's flash-sale, group-buy and member-centre pages rendered by their real routes over a stand-in of the
cloud's services, and the pure pieces they are made of: a sale's phase, the sale list (this deployment's only),
group-buy deals, pickup slots, the QR, the level ladder and benefits, and the own-account endpoints' checks."""
from __future__ import annotations

import json
import re

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from cloud.http.problems import HTTPProblem
from cloud.http.routes.member_self import erasure_refusal, orders_limit
from cloud.mall import flash, groups, i18n, member_centre
from cloud.mall.routes import routes as mall_routes
from cloud.services.verdicts import Refusal
from cloud.world import World

WORLD = World.load()
NOW = 1_764_547_200_000  # 2025-12-01 08:00 in China
PIECE = next(p for p in WORLD.catalogue.by_sku.values() if p.unit == "piece" and "online" in p.channels)
SALE = {"sale_id": "FS1", "sku": PIECE.sku, "quantity": 5, "sold": 2, "remaining": 3, "price_fen": 100,
        "per_member_limit": 1, "starts_at": "2025-12-01T07:59:00+08:00", "ends_at": "2025-12-01T09:00:00+08:00"}
GROUP = {"group_id": "G1", "rule_id": "R0006", "sku": PIECE.sku, "name": PIECE.name, "unit": "piece",
         "group_price_fen": 500, "list_price_fen": PIECE.price_fen, "size": 3, "joined": 1, "remaining": 2,
         "status": "open", "opened_at": "2025-12-01T07:00:00+08:00", "closes_at": "2025-12-02T07:00:00+08:00",
         "formed_at": None, "members": [{"name": "1**8", "leader": True}]}


class Stub:
    """Only what these pages call, answering as the real services do."""

    def __init__(self) -> None:
        self.sales, self.rows = {"FS1": dict(SALE)}, []
        outer = self

        class Cloud:
            world = WORLD

            class shards:
                prefix = "p1-"

            @staticmethod
            def now_ms() -> int:
                return NOW

            class db:
                @staticmethod
                async def fetch(*_a):
                    return outer.rows

        class Flash:
            @staticmethod
            async def status(sale_id):
                if sale_id not in outer.sales:
                    raise Refusal("not_found", f"no flash sale {sale_id}")
                return outer.sales[sale_id]

        class GroupBuys:
            @staticmethod
            async def view(group_id):
                if group_id != "G1":
                    raise Refusal("not_found", f"no group buy {group_id}")
                return GROUP

        class Identity:
            @staticmethod
            async def member_of(token):
                return "M-1" if token == "good-token" else None

        class Members:
            @staticmethod
            async def view(member):
                return {"member_id": member, "stored_value_fen": 0, "points": 0, "level": "gold"}

        self.cloud, self.flash, self.group_buys, self.identity, self.members = Cloud, Flash, GroupBuys, Identity, Members


@pytest.fixture
def mall():
    services = Stub()
    app = Starlette(routes=[Route(p, fn, methods=m) for p, fn, m in mall_routes(services)])
    with TestClient(app, base_url="http://cloud") as client:
        yield client, services


def test_a_sales_phase_for_the_customer():
    assert flash.phase(100, 200, 300, 5) == "not_started"
    assert flash.phase(200, 200, 300, 5) == "running"
    assert flash.phase(250, 200, 300, 0) == "sold_out"
    assert flash.phase(300, 200, 300, 0) == "ended"


def test_the_list_shows_this_deployments_live_sales_running_first():
    def row(sale_id, starts, ends, actors="p1-", sku=PIECE.sku):
        return {"sale_id": sale_id, "config": json.dumps({"sku": sku, "quantity": 3, "price_fen": 100, "starts_ms": starts,
                                                          "ends_ms": ends, "actors": actors})}
    rows = [row("later", NOW + 60_000, NOW + 120_000), row("now", NOW - 1, NOW + 500_000),
            row("soon-over", NOW - 5, NOW + 1_000), row("ended", NOW - 10, NOW), row("other", NOW - 1, NOW + 9, "p2-"),
            row("gone", NOW - 1, NOW + 9, sku="NOPE")]
    shown = flash.listed(rows, NOW, "p1-", WORLD.catalogue)
    assert [s["sale_id"] for s in shown] == ["soon-over", "now", "later"]
    assert [s["running"] for s in shown] == [True, True, False]


def test_the_flash_page_shows_the_sale_its_countdown_and_buy_button_zh_and_en(mall):
    client, services = mall
    zh = client.get("/mall/flash/FS1")
    assert zh.status_code == 200 and "立即抢购" in zh.text and 'data-phase="running"' in zh.text
    assert 'data-remaining="3"' in zh.text and "¥1.00" in zh.text and 'src="/mall/static/flash.js"' in zh.text
    assert not re.search(r'id="buy"[^>]*disabled', zh.text)
    en = client.get("/mall/flash/FS1?lang=en")
    assert "Buy now" in en.text and "limit per member 1" in en.text
    services.sales["FS1"]["remaining"] = 0
    gone = client.get("/mall/flash/FS1?lang=zh")
    assert 'data-phase="sold_out"' in gone.text and "已抢光" in gone.text and re.search(r'id="buy"[^>]*disabled', gone.text)
    missing = client.get("/mall/flash/NOPE")
    assert missing.status_code == 404 and "页面不存在" in missing.text and "no flash sale" not in missing.text


def test_group_deals_slots_and_the_group_page_with_its_share_link_and_qr(mall):
    client, _ = mall
    found = groups.deals(WORLD.rule_data, WORLD.catalogue)
    assert found and all(d["products"] and d["size"] for d in found)
    slots = groups.pickup_slots(NOW, "07:00", "17:00")
    assert slots[0] == "2025-12-02T15:00:00+08:00" and "2025-12-02T18:00:00+08:00" not in slots  # closes at 17
    page = client.get("/mall/groups/G1")
    assert page.status_code == 200 and "<svg" in page.text and 'value="http://cloud/mall/groups/G1"' in page.text
    assert "1**8" in page.text and "团长" in page.text and "参加拼团" in page.text
    assert "拼团中" in page.text and "已参团 1/3 人" in page.text  # shown before the script runs
    GROUP["status"] = "failed"
    try:
        assert "自动原路退回" in client.get("/mall/groups/G1").text
    finally:
        GROUP["status"] = "open"
    assert client.get("/mall/groups/NOPE").status_code == 404
    deal = client.get(f"/mall/group-buys/{found[0]['id']}?lang=en")
    assert deal.status_code == 200 and "Start a group" in deal.text and 'id="g-slot"' in deal.text
    assert client.get("/mall/group-buys").status_code == 200


def test_the_qr_is_an_svg_of_the_text_and_refuses_nothing_or_too_much(mall):
    client, _ = mall
    assert groups.qr_svg("weixin://wxpay/bizpayurl?pr=abc").startswith("<svg")
    r = client.get("/mall/qr.svg", params={"text": "weixin://wxpay/bizpayurl?pr=abc"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")


def test_the_level_ladder_and_a_levels_benefits_come_from_the_book():
    assert [s["level"] for s in member_centre.ladder()] == ["regular", "silver", "gold", "platinum"]
    assert member_centre.ladder()[2]["from_fen"] == 500_000
    gold = member_centre.benefits("gold", WORLD.rule_data, WORLD.catalogue)
    expected = sum(1 for p in WORLD.catalogue.by_sku.values()
                   if "online" in p.channels and p.price_for("gold") < p.price_fen)
    assert gold["member_prices"] == expected > 0 and len(gold["examples"]) <= member_centre.EXAMPLES_MAX
    assert all(e["member_fen"] < e["price_fen"] for e in gold["examples"])
    assert {d["id"] for d in gold["deals"]} == {r["id"] for r in WORLD.rule_data["rules"]
                                                if "gold" in r.get("member_levels", ())}
    assert member_centre.benefits("regular", WORLD.rule_data, WORLD.catalogue)["member_prices"] == 0


def test_the_member_centre_asks_to_sign_in_or_shows_the_members_level(mall):
    client, _ = mall
    out = client.get("/mall/me")
    assert out.status_code == 200 and 'id="mc" class="mc" hidden' in out.text and "/mall/signin?next=/mall/me" in out.text
    client.cookies.set("mall_session", "good-token")
    page = client.get("/mall/me")
    assert 'data-level="gold"' in page.text and "金卡会员" in page.text and 'aria-current="true"' in page.text
    assert "下载我的数据" in page.text and "申请注销账户" in page.text and 'src="/mall/static/member.js"' in page.text


def test_erasure_is_refused_while_an_order_is_open_or_money_is_left_and_limits_are_checked():
    assert "O1" in erasure_refusal(["O1"], 0)
    assert "100 fen" in erasure_refusal([], 100)
    assert erasure_refusal([], 0) is None
    assert orders_limit(None) == 30 and orders_limit("100") == 100
    for bad in ("0", "101", "x", "-1"):
        with pytest.raises(HTTPProblem):
            orders_limit(bad)


def test_every_new_word_is_in_both_languages():
    assert i18n.CATALOGUE["zh"].keys() == i18n.CATALOGUE["en"].keys()
    assert i18n.words("zh")["flash_throttled"].count("{s}") == 1 == i18n.words("en")["flash_throttled"].count("{s}")
