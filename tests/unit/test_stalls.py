"""Market stalls' pure rules (issue 21.6): settlement arithmetic, what a stall lane sells, what the cloud believes of
a stall's sale, who sees which stall, and the catalogue's `stall` field on the wire."""
from __future__ import annotations

from datetime import date

import pytest

from edge.core import stall_lanes
from edge.core.outcome import Refused
from protocol import roles
from protocol.errors import ProtocolError
from protocol.pricing.catalogue import Catalogue, Product
from protocol.stalls import (
    Stall,
    commission,
    day_bounds_ms,
    judge_sale,
    lane_refusal,
    lines_off_stall,
    months_starting,
    parse_period,
    settle,
    stall_refusal,
)

D = date.fromisoformat


def catalogue() -> Catalogue:
    return Catalogue([Product(sku="OWN-1", name="apple", category="fruit", unit="piece", price_fen=300),
                      Product(sku="FISH-1", name="carp", category="fish", unit="kg", price_fen=2_800, stall="fish"),
                      Product(sku="TEA-1", name="oolong", category="tea", unit="piece", price_fen=5_000, stall="tea")])


# ---- settlement -------------------------------------------------------------------------------------------------

def test_commission_is_basis_points_rounded_half_up_in_whole_fen():
    assert commission(10_000, 800) == 800
    assert commission(1_234, 1_000) == 123  # 123.4
    assert commission(1_235, 1_000) == 124  # 123.5 rounds up
    assert commission(0, 800) == 0
    assert commission(99, 10_000) == 99


def test_a_month_s_fee_is_charged_once_for_each_month_that_starts_in_the_period():
    assert months_starting(D("2026-11-01"), D("2026-11-30")) == 1
    assert months_starting(D("2026-11-02"), D("2026-11-30")) == 0  # November began before the period
    assert months_starting(D("2026-10-15"), D("2026-12-01")) == 2  # November 1st and December 1st
    assert months_starting(D("2026-01-01"), D("2026-12-31")) == 12
    # back-to-back periods of any lengths charge each month exactly once
    cuts = [("2026-01-01", "2026-01-20"), ("2026-01-21", "2026-03-04"), ("2026-03-05", "2026-12-31")]
    assert sum(months_starting(D(a), D(b)) for a, b in cuts) == 12


def test_settlement_adds_till_and_online_sales_then_takes_commission_and_fees():
    s = settle(till_fen=120_000, online_fen=30_000, commission_bp=800, monthly_fee_fen=50_000,
               first=D("2026-11-01"), last=D("2026-11-30"))
    assert (s.sales_fen, s.commission_fen, s.months_charged, s.fixed_fees_fen) == (150_000, 12_000, 1, 50_000)
    assert s.payout_fen == 150_000 - 12_000 - 50_000


def test_a_stall_that_sold_less_than_its_fees_owes_them():
    s = settle(1_000, 0, 1_000, 50_000, D("2026-12-01"), D("2026-12-31"))
    assert s.payout_fen == 1_000 - 100 - 50_000 < 0


def test_a_period_is_checked_and_its_days_are_whole_chain_days():
    with pytest.raises(ProtocolError, match="to: 2026-11-01 is before from"):
        parse_period("2026-11-02", "2026-11-01")
    with pytest.raises(ProtocolError, match="from: a day"):
        parse_period("yesterday", "2026-11-01")
    with pytest.raises(ProtocolError, match="to: a day"):
        parse_period("2026-11-01", "")
    start, end = day_bounds_ms(D("1970-01-02"), D("1970-01-02"), 480)  # the chain's day in UTC+8
    assert (start, end) == (86_400_000 - 8 * 3_600_000, 2 * 86_400_000 - 8 * 3_600_000)


def test_a_stall_s_fee_rule_is_checked_with_the_field_named():
    Stall(stall_id="fish", store_id="S074", name="Fish", owner="Wang", commission_bp=800, monthly_fee_fen=50_000)
    with pytest.raises(ProtocolError, match="commission_bp"):
        Stall(stall_id="fish", store_id="S074", name="Fish", owner="Wang", commission_bp=10_001, monthly_fee_fen=0)
    with pytest.raises(ProtocolError, match="monthly_fee_fen"):
        Stall(stall_id="fish", store_id="S074", name="Fish", owner="Wang", commission_bp=0, monthly_fee_fen=-1)
    with pytest.raises(ProtocolError, match="stall_id"):
        Stall(stall_id="fish stall!", store_id="S074", name="Fish", owner="Wang", commission_bp=0, monthly_fee_fen=0)
    with pytest.raises(ProtocolError, match="owner"):
        Stall(stall_id="fish", store_id="S074", name="Fish", owner=" ", commission_bp=0, monthly_fee_fen=0)


# ---- lanes and sales ----------------------------------------------------------------------------------------------

def test_a_stall_lane_sells_only_its_stall_s_products_and_a_store_lane_none_of_a_stall_s():
    assert lane_refusal("5", "fish", "FISH-1", "fish") is None
    assert lane_refusal("1", "", "OWN-1", "") is None
    assert "not stall tea's TEA-1" in (lane_refusal("5", "fish", "TEA-1", "tea") or "")
    assert "not the store's OWN-1" in (lane_refusal("5", "fish", "OWN-1", "") or "")
    assert "stall fish's product" in (lane_refusal("1", "", "FISH-1", "fish") or "")


def test_the_till_refuses_another_stall_s_product_on_a_stall_lane_when_scanned_and_when_paid():
    lanes = stall_lanes.parse_config({"5": "fish", "6": "tea"})
    stall_lanes.check_line(lanes, catalogue(), "5", "FISH-1")
    with pytest.raises(Refused) as refused:
        stall_lanes.check_line(lanes, catalogue(), "5", "TEA-1")
    assert refused.value.status == 403 and "lane 5 is stall fish's" in str(refused.value)
    with pytest.raises(Refused):
        stall_lanes.check_line(lanes, catalogue(), "1", "TEA-1")  # a store lane
    with pytest.raises(Refused):
        stall_lanes.check_basket({"6": "tea"}, catalogue(), "6", ["TEA-1", "OWN-1"])
    assert stall_lanes.stall_of(lanes, "6") == "tea" and stall_lanes.stall_of(lanes, "1") == ""


def test_a_box_config_naming_a_bad_stall_is_refused_at_start():
    with pytest.raises(ProtocolError, match=r"stall_lanes\[5\]"):
        stall_lanes.parse_config({"5": "no such stall!"})
    with pytest.raises(ValueError):
        stall_lanes.parse_config(["5"])
    assert stall_lanes.parse_config(None) == {}


def test_the_cloud_believes_a_stall_sale_only_of_that_store_s_stall_and_its_products():
    stalls = {"fish": "S074", "tea": "S074", "veg": "S075"}
    owner = catalogue().stall_of()
    assert judge_sale("S074", "s1", "fish", stalls) == "" and judge_sale("S074", "s2", "", stalls) == ""
    assert "a stall of S075, not of S074" in judge_sale("S074", "s5", "veg", stalls)
    assert "which is no stall" in judge_sale("S074", "s6", "ghost", stalls)
    # lines off their stall are reported, never refused: the box sold by the catalogue it held
    assert lines_off_stall("S074", "s1", "fish", ["FISH-1"], owner) == ""
    assert lines_off_stall("S074", "s2", "", ["OWN-1"], owner) == ""
    assert "sells TEA-1, stall tea's product" in lines_off_stall("S074", "s3", "fish", ["FISH-1", "TEA-1"], owner)
    assert "sells OWN-1, the store's own product" in lines_off_stall("S074", "s4", "fish", ["OWN-1"], owner)
    assert "on the store's own lane s7 sells FISH-1" in lines_off_stall("S074", "s7", "", ["FISH-1"], owner)


# ---- who sees which stall -----------------------------------------------------------------------------------------

def test_a_stall_owner_sees_only_their_own_stall_and_nothing_of_the_store():
    assert roles.allowed("stall_owner", "stall.read") and roles.allowed("stall_owner", "stall.products")
    for other in ("store.figures", "store.change", "catalogue.change", "views.read", "stalls.manage"):
        assert not roles.allowed("stall_owner", other)
    assert stall_refusal("stall_owner", "fish", "fish") is None
    assert stall_refusal("stall_owner", "fish", "tea") == "a stall owner of fish may not see or change stall tea"
    assert stall_refusal("stall_owner", None, "tea") == "this stall_owner account has no stall"
    assert stall_refusal("hq_admin", None, "tea") is None and stall_refusal("viewer", None, "tea") is None
    assert roles.allowed("viewer", "stall.read") and not roles.allowed("viewer", "stall.products")
    assert not roles.allowed("store_manager", "stall.read")


def test_a_stall_owner_account_names_its_store_and_stall_and_only_it_has_a_stall():
    roles.check_account("wang.fish", "stall_owner", "S074", "fish")
    with pytest.raises(ProtocolError, match="stall_id: a stall_owner runs one stall"):
        roles.check_account("wang.fish", "stall_owner", "S074", None)
    with pytest.raises(ProtocolError, match="store_id: a stall_owner runs a stall of one store"):
        roles.check_account("wang.fish", "stall_owner", None, "fish")
    with pytest.raises(ProtocolError, match="stall_id: only a stall owner has a stall"):
        roles.check_account("ann", "store_manager", "S074", "fish")


# ---- the catalogue on the wire --------------------------------------------------------------------------------------

def test_a_product_of_no_stall_travels_as_before_and_old_data_reads():
    data = catalogue().to_data()
    assert "stall" not in data[0] and data[1]["stall"] == "fish"  # boxes not yet upgraded still read store products
    again = Catalogue.from_data(data)
    assert again.get("OWN-1").stall == "" and again.get("FISH-1").stall == "fish"
    with pytest.raises(ProtocolError, match="invalid stall"):
        Catalogue.from_data([{**data[1], "stall": "no such stall!"}])


# ---- paying at a stall lane (edge/core/selling.pay) -----------------------------------------------------------------

def _pay_at(lane: str, stall: str, skus: list[str], gift: bool = False):
    from edge.core.cart import Cart, CartLine
    from edge.core.outcome import Publish
    from edge.core.selling import PayRequest, Till, pay
    from edge.core.state import Books, EventStamp, Moment, StockLevel
    from protocol.ids import make_id
    from protocol.messages import Quantity, SaleCommitted
    from protocol.pricing import BasketLine
    from protocol.pricing.rules import Gift, RuleBook
    now = 1_700_000_000_000
    rules = (Gift(id="GIFT", name="an apple from 1 yuan", spend_fen=100, gift_sku="OWN-1"),) if gift else ()
    books = Books(catalogue(), RuleBook(1, rules), 1, 1)
    cart = Cart(lines=[CartLine(BasketLine(sku=sku, qty=1), Quantity.pieces(1)) for sku in skus])
    seq = iter(range(1, 100))
    out = pay(cart, books, PayRequest(lane, "cash", 10**6, stall=stall), Till("S074", online=True),
              make_id(now, 999), {sku: StockLevel(sku, 10, 0) for sku in [*skus, "OWN-1"]},
              EventStamp("S074", 0, Moment(now, 0), lambda: make_id(now, next(seq))))
    (sale,) = [e.event for e in out.effects if isinstance(e, Publish) and isinstance(e.event, SaleCommitted)]
    return sale


def test_a_stall_lane_s_sale_carries_its_stall_and_no_store_gift():
    sale = _pay_at("6", "tea", ["TEA-1"], gift=True)  # 50 yuan reaches the store's gift: not given on a stall lane
    assert sale.stall == "tea" and [line.sku for line in sale.lines] == ["TEA-1"]
    assert [line.sku for line in _pay_at("1", "", ["OWN-1"], gift=True).lines] == ["OWN-1", "OWN-1"]  # store lane
    assert _pay_at("1", "", ["OWN-1"]).stall == ""


def test_a_basket_holding_another_stall_s_goods_is_refused_when_paid():
    # the catalogue moved TEA-1 to a stall after it was scanned on the fish lane: the pay checks the basket again
    with pytest.raises(Refused, match="lane 5 is stall fish's: it sells only that stall's products, not stall tea's"):
        _pay_at("5", "fish", ["FISH-1", "TEA-1"])
    with pytest.raises(Refused, match="sell it on that stall's lane, not on store lane 1"):
        _pay_at("1", "", ["OWN-1", "FISH-1"])
