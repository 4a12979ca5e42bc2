"""The HQ reports' pure parts (protocol/reports.py) and the rollup's valuation of losses (no servers)."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from cloud.services import losses, report_rollup
from protocol import reports as rp


def q(name: str, **params: str) -> rp.ReportQuery:
    return rp.parse_query(name, params)


def test_a_query_is_parsed_with_the_reports_default_grouping_and_json():
    got = q("channel-split", **{"from": "2026-01-01", "to": "2026-01-31", "store": "S067"})
    assert (got.start, got.end, got.store, got.category, got.group_by, got.fmt) == (
        date(2026, 1, 1), date(2026, 1, 31), "S067", None, "day", "json")
    assert got.days == 31
    assert q("store-kpis", **{"from": "2026-01-01", "to": "2026-01-01"}).group_by == "store"


def test_csv_is_asked_for_by_format_or_by_the_accept_header():
    assert rp.parse_query("shrinkage", {"from": "2026-01-01", "to": "2026-01-02"}, "text/csv").fmt == "csv"
    assert q("shrinkage", **{"from": "2026-01-01", "to": "2026-01-02", "format": "csv"}).fmt == "csv"


@pytest.mark.parametrize(("name", "params", "named"), [
    ("nope", {"from": "2026-01-01", "to": "2026-01-02"}, "report:"),
    ("channel-split", {"to": "2026-01-02"}, "from and to"),
    ("channel-split", {"from": "2026-1-1", "to": "2026-01-02"}, "from: a day"),
    ("channel-split", {"from": "2026-01-01", "to": "2026-02-30"}, "to: a day"),
    ("channel-split", {"from": "2026-01-02", "to": "2026-01-01"}, "to: 2026-01-01 is before"),
    ("channel-split", {"from": "2025-01-01", "to": "2026-01-02"}, "at most 366 days"),
    ("channel-split", {"from": "2026-01-01", "to": "2026-01-02", "group_by": "rule"}, "group_by: one of day, store"),
    ("member-contribution", {"from": "2026-01-01", "to": "2026-01-02", "category": "fruit"}, "category: the member"),
    ("channel-split", {"from": "2026-01-01", "to": "2026-01-02", "format": "xlsx"}, "format: json or csv"),
    ("channel-split", {"from": "2026-01-01", "to": "2026-01-02", "stores": "S001"}, "stores: not a parameter"),
    ("channel-split", {"from": "2026-01-01", "to": "2026-01-02", "store": "*"}, "store: not a store"),
    ("channel-split", {"from": "2026-01-01", "to": "2026-01-02", "store": "S\x00"}, "store: not a store"),
])
def test_a_wrong_query_is_refused_naming_what_is_wrong(name, params, named):
    with pytest.raises(rp.ReportInputError) as caught:
        rp.parse_query(name, params)
    assert named in str(caught.value)


def test_a_whole_year_of_366_days_is_one_range():
    assert q("flash-sales", **{"from": "2024-01-01", "to": "2024-12-31"}).days == 366


def test_days_are_split_into_settled_and_recent_at_the_settling_age():
    today = date(2026, 6, 10)  # settled: up to 2026-06-07 (3 days after they ended)
    assert rp.split_days(date(2026, 6, 1), date(2026, 6, 10), today) == (
        (date(2026, 6, 1), date(2026, 6, 7)), (date(2026, 6, 8), date(2026, 6, 10)))
    assert rp.split_days(date(2026, 6, 1), date(2026, 6, 5), today) == ((date(2026, 6, 1), date(2026, 6, 5)), None)
    assert rp.split_days(date(2026, 6, 9), date(2026, 6, 9), today) == (None, (date(2026, 6, 9), date(2026, 6, 9)))


def test_ratios_and_averages_round_half_up_and_never_divide_by_zero():
    assert rp.ratio_bp(1, 3) == 3333 and rp.ratio_bp(2, 3) == 6667 and rp.ratio_bp(5, 0) == 0
    assert rp.per(10, 4) == 3 and rp.per(9, 4) == 2 and rp.per(7, 0) == 0
    assert rp.per_2dp(7, 3) == 2.33 and rp.per_2dp(1, 0) == 0.0


def test_store_kpis_are_computed_from_sales_tickets_items_and_losses():
    row = rp.kpi_row("S067", sales_fen=10_000, tickets=4, items=10, online_fen=2_500, returned_fen=300,
                     shrinkage_at_price_fen=150)
    assert row == {"key": "S067", "sales_fen": 10_000, "tickets": 4, "avg_ticket_fen": 2_500, "items": 10,
                   "items_per_ticket": 2.5, "online_share_bp": 2_500, "returned_fen": 300,
                   "shrinkage_at_price_fen": 150, "shrinkage_rate_bp": 150}


def test_channel_rows_add_both_channels_and_give_the_online_share():
    assert rp.channel_row("2026-01-01", 3, 900, 1, 300) == {
        "key": "2026-01-01", "till_tickets": 3, "till_sales_fen": 900, "online_tickets": 1, "online_sales_fen": 300,
        "sales_fen": 1_200, "online_share_bp": 2_500}


def test_member_rows_share_the_sales_of_every_group_biggest_first():
    rows = rp.member_rows([
        {"level": "non_member", "segment": "none", "till_tickets": 2, "till_sales_fen": 1_000, "online_tickets": 0,
         "online_sales_fen": 0},
        {"level": "gold", "segment": "new", "till_tickets": 1, "till_sales_fen": 1_000, "online_tickets": 1,
         "online_sales_fen": 2_000}])
    assert [r["level"] for r in rows] == ["gold", "non_member"]
    assert rows[0]["sales_fen"] == 3_000 and rows[0]["tickets"] == 2 and rows[0]["avg_ticket_fen"] == 1_500
    assert [r["sales_share_bp"] for r in rows] == [7_500, 2_500]


def test_promotion_rows_compare_baskets_with_the_rule_against_the_rest_of_the_channel():
    rows = rp.promotion_rows([{"rule_id": "R1", "channel": "till", "uses": 2, "discount_fen": 100,
                               "sales_with_fen": 3_000}], {"till": (5, 6_000)}, {"R1": "Two for one"})
    assert rows == [{"rule_id": "R1", "name": "Two for one", "channel": "till", "uses": 2, "discount_fen": 100,
                     "sales_with_fen": 3_000, "avg_basket_with_fen": 1_500, "baskets_without": 3,
                     "sales_without_fen": 3_000, "avg_basket_without_fen": 1_000}]


def test_csv_has_the_columns_the_rows_and_the_totals_and_defuses_formulas():
    text = rp.as_csv(["key", "sales_fen"], [{"key": "=cmd()", "sales_fen": 5}, {"key": "S068", "sales_fen": 7}],
                     {"key": "total", "sales_fen": 12})
    assert list(csv.reader(io.StringIO(text))) == [["key", "sales_fen"], ["'=cmd()", "5"], ["S068", "7"],
                                                   ["total", "12"]]


def test_every_report_names_its_columns_and_a_default_grouping():
    for kind in rp.REPORTS.values():
        assert kind.groups and kind.columns and len(set(kind.columns)) == len(kind.columns)


def test_the_rollup_sql_writes_the_same_words_as_the_protocol():
    assert f"'{rp.NON_MEMBER}'" in report_rollup.MEMBERS_SQL and f"'{rp.DEFAULT_LEVEL}'" in report_rollup.MEMBERS_SQL
    assert f"'{rp.NO_SEGMENT}'" in report_rollup.MEMBERS_SQL and f"'{rp.CHAIN}'" in report_rollup.MEMBERS_SQL
    assert f"'{rp.CHAIN}'" in report_rollup.PROMOTIONS_SQL
    assert f"'{report_rollup.NOT_IN_CATALOGUE}'" in report_rollup.LINES_CTE


def test_losses_are_valued_per_lot_and_added_up_per_day_store_category_and_reason():
    products = {"FISH": losses.Priced("seafood", True, 2_000, 5_000), "MILK": losses.Priced("dairy", False, 300, 800)}
    rows = [
        {"day": "2026-01-05", "store_id": "S067", "sku": "FISH", "reason": "expired", "lines": 1, "qty": 500,
         "lot_cost_fen": 3_000},  # its lot cost 30.00 per kg: 500 g = 15.00
        {"day": "2026-01-05", "store_id": "S067", "sku": "FISH", "reason": "expired", "lines": 1, "qty": 250,
         "lot_cost_fen": None},  # no lot cost: the standard 20.00 per kg
        {"day": "2026-01-05", "store_id": "S067", "sku": "MILK", "reason": "damaged", "lines": 1, "qty": 2,
         "lot_cost_fen": None},
        {"day": "2026-01-05", "store_id": "S067", "sku": "GONE", "reason": "damaged", "lines": 1, "qty": 1,
         "lot_cost_fen": None},
        {"day": "2026-01-05", "store_id": "S067", "sku": "MILK", "reason": "markdown", "lines": 3, "given_fen": 90},
    ]
    got = {r[:4]: r[4:] for r in report_rollup.loss_grain(rows, products)}
    d = date(2026, 1, 5)
    assert got[(d, "S067", "seafood", "expired")] == (2, 0, 750, 1_500 + 500, 2_500 + 1_250, 0)
    assert got[(d, "S067", "dairy", "damaged")] == (1, 2, 0, 600, 1_600, 0)
    assert got[(d, "S067", report_rollup.NOT_IN_CATALOGUE, "damaged")] == (1, 0, 0, 0, 0, 1)
    assert got[(d, "S067", "dairy", "markdown")] == (3, 0, 0, 0, 90, 0)


def test_a_chain_day_starts_at_the_chains_midnight():
    assert report_rollup.day_ms(date(1970, 1, 2)) == 86_400_000 - 8 * 3_600_000


def test_a_report_reads_the_named_stores_rows_every_stores_own_rows_or_the_chains():
    from cloud.services.hq_reports import scope
    assert scope("S067", "day", 4) == "store_id = $4"
    assert scope(None, "store", 3) == "($3::text is null and store_id <> '*')"
    assert scope(None, "store_day", 4) == "($4::text is null and store_id <> '*')"
    assert scope(None, "day", 4) == scope(None, "reason", 4) == "($4::text is null and store_id = '*')"


def test_losses_are_added_to_the_chains_rows_too():
    products = {"MILK": losses.Priced("dairy", False, 300, 800)}
    rows = [{"day": "2026-01-05", "store_id": s, "sku": "MILK", "reason": "damaged", "lines": 1, "qty": 1,
             "lot_cost_fen": None} for s in ("S067", "S068")]
    got = {r[:4]: r[4:] for r in report_rollup.loss_grain(rows, products)}
    assert got[(date(2026, 1, 5), rp.CHAIN, "dairy", "damaged")] == (2, 2, 0, 600, 1_600, 0)
    assert got[(date(2026, 1, 5), "S067", "dairy", "damaged")] == (1, 1, 0, 300, 800, 0)
