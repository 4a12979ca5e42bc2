"""Group buys seen and explained, the pure parts: the status a held group order shows (the lifecycle), its timeline,
what an operator reads of a group (outcome, HQ's cancel), what a member pays when their own price beats the group's,
and the console's group-buy panel."""
from __future__ import annotations

from dataclasses import replace

import pytest

from cloud.console.group_panel import group_buys_view
from cloud.console.snapshot import ConsoleInputs, ConsoleMemory, business_view
from cloud.services.group_views import parse_filters
from cloud.services.verdicts import Refusal
from protocol import group_buys as gb
from protocol import order_lifecycle as lc
from protocol.pricing import BasketLine, Catalogue, PricingContext, Product, load_rule_book, price_basket
from protocol.pricing.catalogue import LevelPrice

NINE_AM = 1_767_229_200_000
CHEESE = Product(sku="CHEESE", name="Cheese", category="dairy", unit="piece", price_fen=3132,
                 member_prices=(LevelPrice(level="gold", price_fen=2975),))
CATALOGUE = Catalogue([CHEESE])
RULE = {"type": "group_buy", "id": "GB1", "name": "3 for cheese", "skus": ["CHEESE"], "group_price_fen": 3000,
        "group_size": 3}


def rule(**kw) -> gb.GroupBuy:
    found = load_rule_book({"version": 1, "rules": [{**RULE, **kw}]}, CATALOGUE).by_id["GB1"]
    assert isinstance(found, gb.GroupBuy)
    return found


def group(status="open", seats=0, closes=NINE_AM + 60_000) -> gb.Group:
    return gb.Group("G1", "GB1", "CHEESE", "leader", 3, 3000, NINE_AM, closes, status,
                    tuple(gb.Seat(f"m{i}", f"O{i}", True) for i in range(seats)))


# ---- what a held group order shows -------------------------------------------------------------------------------
def test_a_paid_order_held_for_its_group_shows_group_forming_with_the_count():
    assert lc.shown(lc.PAID, group_held=True) == lc.GROUP_FORMING
    assert lc.shown(lc.PAID, group_held=False) == lc.PAID
    assert lc.shown(lc.RESERVED, group_held=True) == lc.RESERVED  # not paid yet: waiting for the payment
    assert lc.shown(lc.CANCELLED, group_held=True) == lc.CANCELLED
    assert lc.status_text(lc.GROUP_FORMING, (2, 3)) == "group forming (2/3)"
    assert lc.status_text(lc.OUT_FOR_DELIVERY) == "out for delivery"
    # the money is kept and the member may still leave: a shown status answers those questions like a paid one
    assert lc.GROUP_FORMING in lc.PAID_STATUSES and lc.GROUP_FORMING in lc.CUSTOMER_CANCELLABLE
    assert not lc.is_final(lc.GROUP_FORMING) and lc.GROUP_FORMING not in lc.STATUSES  # never stored
    order = lc.SHOWN_STATUSES
    assert order.index(lc.GROUP_FORMING) == order.index(lc.PAID) + 1 and set(order) - {lc.GROUP_FORMING} == set(
        lc.STATUSES)


def test_a_held_order_says_what_it_waits_for_the_group_and_its_window():
    why = lc.why_open(lc.GROUP_FORMING, "pickup", NINE_AM, group=(2, 3, NINE_AM + 40 * 60_000))
    assert "held until its group buy forms (2/3 joined" in why and "closes in 40 min" in why
    assert "refunded" in why and "store to start picking" not in why
    assert "group buy" in lc.why_open(lc.GROUP_FORMING, "pickup", NINE_AM)


def entry(seq, event, status, **detail):
    return {"seq": seq, "event": event, "status": status, "at": "", **({"detail": detail} if detail else {})}


def test_the_timeline_shows_group_forming_from_joining_until_the_group_forms():
    steps = [entry(1, "created", "pending"), entry(2, "reserve", "reserved"),
             entry(3, "group_joined", "reserved", group_id="G1", place=1, size=3),
             entry(4, "pay", "paid"), entry(5, "group_progress", "paid", group_id="G1", joined=2, size=3),
             entry(6, "group_progress", "paid", group_id="G1", joined=3, size=3),
             entry(7, "group_formed", "paid", group_id="G1", size=3), entry(8, "sent_to_store", "paid")]
    shown = lc.shown_timeline(steps)
    assert [e["status"] for e in shown] == ["pending", "reserved", "reserved", "group_forming", "group_forming",
                                            "group_forming", "paid", "paid"]
    assert [e.get("status_text") for e in shown[3:6]] == ["group forming (1/3)", "group forming (2/3)",
                                                          "group forming (3/3)"]
    assert steps[3]["status"] == "paid"  # the stored rows are not changed
    plain = [entry(1, "reserve", "reserved"), entry(2, "pay", "paid")]
    assert lc.shown_timeline(plain) == plain  # an order of no group shows its stored statuses


# ---- what a member pays --------------------------------------------------------------------------------------------
def test_the_group_price_when_the_pricing_used_it():
    basis = gb.price_basis(rule(), True, 3132, "own price (the list price)")
    assert basis is not None and (basis.basis, basis.unit_fen) == ("group", 3000)


@pytest.mark.parametrize("own", [2975, 3000])
def test_a_member_whose_own_price_is_at_or_below_the_group_price_pays_their_own_and_is_told_so(own):
    basis = gb.price_basis(rule(), False, own, "gold member price")
    assert basis is not None and (basis.basis, basis.unit_fen, basis.group_price_fen) == ("own", own, 3000)
    assert f"your gold member price {own // 100}.{own % 100:02d} per unit is at or below the group price 30.00" in \
        basis.note and "counts toward the group" in basis.note


def test_a_group_rule_not_applied_although_the_members_price_is_above_it_is_no_basis():
    assert gb.price_basis(rule(), False, 3132, "own price") is None  # not in force for the order: the caller says


def test_the_pricing_gives_a_gold_member_their_own_price_when_it_beats_the_group_price():
    """Why the shell must not read "the group rule was not applied" as "not in force": the evaluator keeps the better
    of the member's own price and the group price."""
    book = load_rule_book({"version": 1, "rules": [RULE]}, CATALOGUE)
    ctx = PricingContext(channel="online", store_id="S001", now_ms=NINE_AM, formed_groups=("GB1",))
    gold = price_basket(CATALOGUE, book, [BasketLine(sku="CHEESE", qty=1)], replace(ctx, member_level="gold"))
    regular = price_basket(CATALOGUE, book, [BasketLine(sku="CHEESE", qty=1)], ctx)
    assert regular.total_fen == 3000 and "GB1" in [a.rule_id for a in regular.applied]
    assert gold.total_fen == 2975 and "GB1" not in [a.rule_id for a in gold.applied]


# ---- HQ's cancel, outcomes -----------------------------------------------------------------------------------------
def test_hq_may_cancel_only_an_open_group_within_its_window():
    assert gb.cancel_refusal(group("open", seats=2), NINE_AM) is None
    assert gb.cancel_refusal(group("cancelled"), NINE_AM) is None  # a retry answers the same
    assert "has formed" in gb.cancel_refusal(group("formed", seats=3), NINE_AM)
    assert "closed without forming" in gb.cancel_refusal(group("failed"), NINE_AM)
    assert "window closed short" in gb.cancel_refusal(group("open", seats=1), NINE_AM + 60_000)


def test_a_cancelled_group_takes_no_one():
    refused = gb.join_refusal(group("cancelled"), "ann", NINE_AM)
    assert refused is not None and refused.code == "closed" and "cancelled by the chain" in refused.reason


def test_each_outcome_says_what_became_of_the_group():
    assert gb.outcome("open", 3, 2, 1, NINE_AM, None, None) == \
        "open: 2/3 joined, 1 paid; closes at 2026-01-01T01:00:00.000Z"
    assert "formed at" in gb.outcome("formed", 3, 3, 3, NINE_AM, NINE_AM - 5, None)
    assert "being cancelled" in gb.outcome("failed", 3, 0, 0, NINE_AM, None, None)
    assert "all cancelled and refunded" in gb.outcome("failed", 3, 0, 0, NINE_AM, None, NINE_AM + 1)
    assert gb.outcome("cancelled", 3, 0, 0, NINE_AM, None, NINE_AM, "hq-ann", "supplier recall") == \
        "cancelled by hq-ann (supplier recall): its orders all refunded"


# ---- the operators' list filters ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "words"), [
    ({"status": "done"}, "status: one of open, formed, failed, cancelled"),
    ({"store": "S999"}, "store: unknown store 'S999'"),
    ({"item": "NOPE"}, "item: unknown sku 'NOPE'"),
    ({"limit": "0"}, "limit: a whole number from 1 to 200"),
    ({"limit": "x"}, "limit: a whole number"),
    ({"before": "abc"}, "before: the `next_before` of the previous page"),
])
def test_each_bad_filter_is_refused_naming_it(query, words):
    with pytest.raises(Refusal) as refused:
        parse_filters(query, {"CHEESE": CHEESE}, {"S001": object()})
    assert refused.value.kind == "invalid" and words in refused.value.detail


def test_good_filters_are_read():
    f = parse_filters({"status": "open", "store": "S001", "item": "CHEESE", "limit": "5", "before": "17:G1"},
                      {"CHEESE": CHEESE}, {"S001": object()})
    assert (f.status, f.store, f.item, f.limit, f.before) == ("open", "S001", "CHEESE", 5, (17, "G1"))


# ---- the console --------------------------------------------------------------------------------------------------
def row(group_id, status, closes_ms, joined=1, **kw):
    return {"group_id": group_id, "sku": "CHEESE", "name": "Cheese", "rule_name": "3 for cheese", "store_id": "S038",
            "status": status, "size": 3, "joined": joined, "paid": joined, "price_fen": 3000,
            "opened_ms": closes_ms - 600_000, "closes_ms": closes_ms, "formed_ms": None, "cancelled_ms": None,
            "ended_ms": None, "cancelled_by": None, "cancel_reason": None, **kw}


def test_the_console_panel_lists_open_groups_closing_soonest_first_then_lately_ended_ones():
    now = NINE_AM
    view = group_buys_view([row("Glater", "open", now + 600_000, joined=2), row("Gsoon", "open", now + 90_500),
                            row("Gpast", "open", now - 5_000),
                            row("Gf", "formed", now - 60_000, joined=3, formed_ms=now - 120_000),
                            row("Gx", "failed", now - 30_000, joined=0),
                            row("Gc", "cancelled", now + 500_000, joined=0, cancelled_ms=now - 10_000,
                                cancelled_by="hq", cancel_reason="recall")], now)
    assert [(g["group_id"], g["closes_in_s"], g["needed"]) for g in view["open"]] == [
        ("Gpast", 0, 2), ("Gsoon", 90, 2), ("Glater", 600, 1)]  # a passed window is closing, never negative
    assert [g["group_id"] for g in view["recent"]] == ["Gc", "Gx", "Gf"]  # newest ending first
    assert "cancelled by hq (recall)" in view["recent"][0]["outcome"]
    assert view["counts"] == {"open": 3, "formed": 1, "failed": 1, "cancelled": 1}
    assert group_buys_view(None, now) is None


def test_the_consoles_orders_by_status_show_held_group_orders_as_group_forming():
    business = {"day_start_ms": 0, "at_ms": NINE_AM, "orders": [
        {"status": "paid", "group_held": True, "kind": "online", "count": 2, "fen": 6000, "sv_count": 0, "sv_fen": 0},
        {"status": "paid", "group_held": False, "kind": "online", "count": 1, "fen": 100, "sv_count": 0, "sv_fen": 0},
        {"status": "reserved", "group_held": True, "kind": "online", "count": 1, "fen": 3000, "sv_count": 0,
         "sv_fen": 0}]}
    view = business_view(ConsoleInputs(now_ms=NINE_AM, business=business), ConsoleMemory())
    assert view is not None
    assert view["orders_by_status"] == [{"status": "reserved", "count": 1}, {"status": "paid", "count": 1},
                                        {"status": "group_forming", "count": 2}]
    assert view["sales"]["online"] == {"count": 3, "fen": 6100}  # their money is taken: counted as paid
