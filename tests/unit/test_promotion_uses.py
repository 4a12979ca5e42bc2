"""Promotion uses: a till sale reports the rules its basket used (edge.core.selling), the message holds them to
shape, and the report's pure parts (cloud.services.promotion_report) partition baskets into with and without."""
from __future__ import annotations

from datetime import date

import pytest

from cloud.messaging.promotion_uses import record_online, record_till
from cloud.services.promotion_report import as_csv, as_html, by_rule, effect_rows, period_ms
from edge.core import selling
from edge.core.cart import Books
from protocol.errors import ProtocolError
from protocol.ids import make_id
from protocol.messages import Payment, Quantity, SaleCommitted, SaleLine
from protocol.pricing import load_rule_book
from protocol.promotion_uses import RuleUse, check_promotions
from tests.unit.test_edge_core import CATALOGUE, NOW, cart_of, envelope, events, stamp, till


def test_a_till_sale_carries_the_rules_its_basket_used():
    book = load_rule_book({"version": 4, "rules": [{"type": "item_discount", "id": "half-milk", "name": "Half milk",
                                                    "skus": ["MILK"], "percent_off_bp": 5_000}]}, CATALOGUE)
    out = selling.pay(cart_of("6901234567892"), Books(CATALOGUE, book), selling.PayRequest("1", "cash", 10**6),
                      till(), make_id(NOW.wall_ms, 1), {}, stamp())
    (sale,) = [e for e in events(out) if isinstance(e, SaleCommitted)]
    (use,) = sale.promotions
    list_fen = CATALOGUE.get("MILK").price_fen
    assert use.rule_id == "half-milk" and use.saving_fen == list_fen - sale.total_fen > 0


def test_promotions_are_held_to_shape():
    with pytest.raises(ProtocolError):
        RuleUse(rule_id="bad id!", saving_fen=1)
    with pytest.raises(ProtocolError):
        RuleUse(rule_id="R1", saving_fen=-1)
    with pytest.raises(ProtocolError, match="named twice"):
        check_promotions((RuleUse(rule_id="R1", saving_fen=1), RuleUse(rule_id="R1", saving_fen=2)))
    check_promotions((RuleUse(rule_id="R1", saving_fen=1), RuleUse(rule_id="member-price:gold", saving_fen=0)))


def test_with_and_without_partition_the_same_baskets():
    totals = [{"channel": "till", "store_id": "S1", "baskets": 10, "sales_fen": 50_000},
              {"channel": "online", "store_id": "S1", "baskets": 4, "sales_fen": 8_000}]
    uses = [{"rule_id": "R1", "name": "", "channel": "till", "store_id": "S1", "uses": 3, "discount_fen": 900,
             "sales_with_fen": 21_000},
            {"rule_id": "R1", "name": "", "channel": "online", "store_id": "S1", "uses": 4, "discount_fen": 400,
             "sales_with_fen": 8_000}]
    rows = effect_rows(totals, uses, {"R1": "Deal"})
    till_row = next(r for r in rows if r["channel"] == "till")
    assert (till_row["baskets_without"], till_row["sales_without_fen"]) == (7, 29_000)
    assert (till_row["avg_basket_with_fen"], till_row["avg_basket_without_fen"]) == (7_000, 29_000 // 7)
    online = next(r for r in rows if r["channel"] == "online")
    assert (online["baskets_without"], online["avg_basket_without_fen"]) == (0, 0)
    (rule,) = by_rule(rows)
    assert rule == {"rule_id": "R1", "name": "Deal", "uses": 7, "discount_fen": 1_300,
                    "uses_by_channel": {"till": 3, "online": 4}}
    assert as_csv({"rows": rows}).splitlines()[1].startswith("R1,Deal,online,S1,4,400")


def test_the_period_is_the_chains_days():
    start, end = period_ms("2026-03-01", "2026-03-01")
    assert end - start == 86_400_000
    midnight_utc = (date(2026, 3, 1) - date(1970, 1, 1)).days * 86_400_000
    assert start == midnight_utc - 8 * 3_600_000  # midnight in China is 16:00 UTC the day before


def test_the_page_shows_the_rows_escaped_and_says_when_coupons_are_not_known():
    rows = effect_rows([{"channel": "till", "store_id": "S1", "baskets": 2, "sales_fen": 300}],
                       [{"rule_id": "R1", "name": "<b>Deal</b>", "channel": "till", "store_id": "S1", "uses": 1,
                         "discount_fen": 50, "sales_with_fen": 100}], {})
    page = as_html({"from": "2026-03-01", "to": "2026-03-02", "store": None, "channel": None, "rows": rows,
                    "campaigns": [], "coupons": {"available": False, "note": "no coupons table"}})
    assert "&lt;b&gt;Deal&lt;/b&gt;" in page and "<b>Deal" not in page
    assert "<td>R1</td>" in page and "no coupons table" in page and "促销效果" in page


class _Recorder:
    """Stands for the database (and its connection) the recorders write to: keeps what each insert was given."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def acquire(self):
        return self

    def transaction(self):
        return self

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    async def fetchval(self, sql: str, *args):
        self.rows.append(args)
        return args[0]

    async def executemany(self, sql: str, rows) -> None:
        if "promotion_baskets" in sql:
            self.rows += list(rows)

    async def execute(self, sql: str, *columns) -> None:
        """One insert of many rows (cloud/messaging/bulk.py: a column per argument): kept as rows, without the
        channel column, in the shape the online insert is given."""
        if "promotion_baskets" in sql:
            for row in zip(*columns, strict=True):
                assert row[1] == "till", row
                self.rows.append(row[:1] + row[2:])


async def test_a_gift_counts_in_list_fen_alike_in_both_channels():
    """The same basket sold at a till and ordered online: 60.00 at list prices, 5.00 off, and a gift worth 8.00.
    Both channels' `list_fen` are the goods at list prices with the gift at its value (list - goods = what the
    rules gave away, as the report's discount_fen sums it): 68.00 in both, 55.00 sold."""
    uses = (RuleUse(rule_id="R1", saving_fen=500), RuleUse(rule_id="G1", saving_fen=800))
    lines = (SaleLine(sku="MILK", quantity=Quantity.pieces(1), amount_fen=5_500),
             SaleLine(sku="GIFT", quantity=Quantity.pieces(1), amount_fen=0))
    sale = SaleCommitted(**envelope(1), sale_id="s1", lane="1", lines=lines, total_fen=5_500,
                         payments=(Payment(method="cash", amount_fen=5_500, reference=""),), member_id=None,
                         offline=False, promotions=uses)
    till_db, online_db = _Recorder(), _Recorder()
    await record_till(till_db, [sale])
    explain = {"subtotal_fen": 6_000, "discount_fen": 500,  # the evaluator's: the gift is no discount of the goods
               "applied": [{"rule_id": "R1", "name": "Deal", "saving_fen": 500},
                           {"rule_id": "G1", "name": "Gift", "saving_fen": 800}]}
    await record_online(online_db, "o1", "S1", None, explain, NOW.wall_ms)
    (till_row,), (online_row,) = till_db.rows, online_db.rows[:1]
    assert (till_row[4], till_row[5]) == (6_800, 5_500)  # list_fen, goods_fen
    assert (online_row[4], online_row[5]) == (6_800, 5_500)
