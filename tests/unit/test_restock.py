"""Restock as pure decisions: reorder-point defaults from sales velocity, one alert per crossing below the point,
the suggested order per supplier (protocol.restock); HQ's points applied once and the alert raised or cleared by the
store (edge.core.restock); the cloud's trust check of restock events (protocol.restock_messages.judge)."""
from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

from edge.core import restock
from edge.core.outcome import CloseRestockAlert, MarkApplied, OpenRestockAlert, Publish, SetReorderPoint
from edge.core.state import EventStamp, Moment
from protocol import codec
from protocol import restock as rules
from protocol.errors import ProtocolError
from protocol.ids import make_id
from protocol.restock_messages import ReorderPoint, ReorderPointsSet, RestockAlerted, RestockCleared, judge

STORE = "S001"
NOW = Moment(1_700_000_000_000, 5_000)
ids = itertools.count(1)


def stamp(last_seq: int = 0) -> EventStamp:
    return EventStamp(STORE, last_seq, NOW, lambda: make_id(NOW.wall_ms, next(ids)))


def points_message(*points: tuple[str, int, int, int], store: str = STORE) -> ReorderPointsSet:
    return ReorderPointsSet(event_id=make_id(NOW.wall_ms, next(ids)), store_id=store, seq=1, wall_ms=NOW.wall_ms,
                            mono_ms=0, points=tuple(ReorderPoint(sku=s, reorder_point=p, target=t, version=v)
                                                    for s, p, t, v in points))


# ---- defaults from velocity -------------------------------------------------------------------------------------
def test_default_point_is_velocity_times_lead_and_target_velocity_times_lead_plus_cover():
    # 70 sold in 7 days = 10 a day: 2 days' lead -> 20, plus 3 days' cover -> 50
    assert rules.default_point(70) == (20, 50)
    assert rules.default_point(70, lead_days=1, cover_days=1) == (10, 20)
    assert rules.velocity_per_day(70) == 10.0


def test_default_point_rounds_up_so_anything_that_sells_is_watched_and_nothing_sold_means_no_point():
    assert rules.default_point(1) == (1, 1)  # 1/7 a day: 2/7 -> 1, 5/7 -> 1
    assert rules.default_point(0) == (0, 0)


def test_sold_by_sku_adds_till_and_online_lines():
    assert rules.sold_by_sku([("A", 3), ("B", 500), ("A", 4), ("C", 0)]) == {"A": 7, "B": 500}


def test_a_target_below_the_point_or_out_of_bounds_is_refused_with_the_field_named():
    assert rules.check_point(5, 10, "items[0]") == ""
    assert "target 4 is below reorder_point 5" in rules.check_point(5, 4, "items[0]")
    assert "items[1].reorder_point" in rules.check_point(-1, 4, "items[1]")
    assert "items[1].target" in rules.check_point(1, True, "items[1]")  # type: ignore[arg-type]


# ---- crossing ---------------------------------------------------------------------------------------------------
POINT = rules.Point("A", 10, 30)


def test_an_alert_is_raised_once_per_crossing_and_cleared_when_back_at_or_above_the_point():
    assert rules.crossing(12, POINT, alert_open=False) is None
    assert rules.crossing(9, POINT, alert_open=False) == "raise"
    assert rules.crossing(5, POINT, alert_open=True) is None  # still below: raised already
    assert rules.crossing(10, POINT, alert_open=True) == "clear"
    assert rules.crossing(10, POINT, alert_open=False) is None
    assert rules.crossing(9, None, alert_open=False) is None  # no point: nothing to watch
    assert rules.crossing(9, None, alert_open=True) == "clear"  # the point was taken away


def test_suggested_qty_reaches_the_target_in_whole_packs():
    assert rules.suggested_qty(30, 4) == 26
    assert rules.suggested_qty(30, 4, pack=12) == 36
    assert rules.suggested_qty(30, -5) == 35  # a till sale took it below zero: order that back too
    assert rules.suggested_qty(30, 40) == 0


def test_suggested_order_per_supplier_valued_at_cost_per_kg_or_piece():
    assert rules.value_at_cost(1_500, 800, weighed=True) == 1_200  # 1.5 kg at 8 yuan/kg
    assert rules.value_at_cost(3, 250, weighed=False) == 750
    lines = [rules.OrderLine("S2", "B", "farm", 2, 10), rules.OrderLine("S1", "A", "farm", 1, 5),
             rules.OrderLine("S1", "C", "dairy", 4, 40), rules.OrderLine("S1", "D", "dairy", 0, 0)]
    grouped = rules.by_supplier(lines)
    assert list(grouped) == ["dairy", "farm"]
    assert [(x.store_id, x.sku) for x in grouped["farm"]] == [("S1", "A"), ("S2", "B")]
    assert [x.sku for x in grouped["dairy"]] == ["C"]  # nothing to order of D


def test_due_day_and_lead_days_configuration():
    assert rules.due_day("2026-11-30", 2) == "2026-12-02"
    configured = rules.parse_lead_days("farm=1, *=4")
    assert rules.lead_days_of("farm", configured) == 1
    assert rules.lead_days_of("dairy", configured) == 4
    assert rules.lead_days_of("dairy", {}) == rules.DEFAULT_LEAD_DAYS
    with pytest.raises(ValueError, match="'farm=x'"):
        rules.parse_lead_days("farm=x")


# ---- the store applies HQ's points ----------------------------------------------------------------------------
def test_points_apply_once_and_only_newer_versions_replace_those_kept():
    message = points_message(("A", 10, 30, 2), ("B", 5, 9, 1))
    outcome = restock.apply_points(message, seen=False, kept_versions={"A": 3}, at_ms=NOW.wall_ms, store_id=STORE)
    assert isinstance(outcome.effects[0], MarkApplied)
    assert outcome.effects[1:] == (SetReorderPoint("B", 5, 9, 1),)  # A's version 3 kept: 2 is older
    assert outcome.notes and "A v2" in outcome.notes[0]
    assert restock.apply_points(message, seen=True, kept_versions={}, at_ms=0, store_id=STORE).effects == ()


def test_points_for_another_store_are_marked_and_ignored():
    outcome = restock.apply_points(points_message(("A", 1, 2, 1), store="S002"), False, {}, NOW.wall_ms, STORE)
    assert [type(e) for e in outcome.effects] == [MarkApplied]


def test_the_message_refuses_a_target_below_its_point_and_a_sku_twice():
    with pytest.raises(ProtocolError, match="below reorder_point"):
        points_message(("A", 10, 5, 1))
    with pytest.raises(ProtocolError, match="each sku once"):
        points_message(("A", 1, 5, 1), ("A", 2, 5, 2))


# ---- the store raises and clears ------------------------------------------------------------------------------
def test_falling_below_the_point_raises_one_alert_committed_with_its_event():
    s = stamp(last_seq=7)
    outcome = restock.check("A", on_hand=12, owed=4, point=POINT, alert=None, pack=0, stamp=s)
    assert outcome is not None and outcome.last_seq == 8
    opened, published = outcome.effects
    assert isinstance(opened, OpenRestockAlert) and isinstance(published, Publish)
    event = published.event
    assert isinstance(event, RestockAlerted)
    assert (event.on_hand, event.owed, event.projected, event.suggested_qty) == (12, 4, 8, 22)
    assert opened.alert_id == event.alert_id and event.seq == 8
    assert codec.decode(codec.encode(event)) == event  # on the wire like any edge event


def test_while_below_nothing_more_is_raised_and_back_above_it_clears():
    alert = restock.OpenAlert(make_id(NOW.wall_ms, 77), "A")
    assert restock.check("A", 3, 0, POINT, alert, 0, stamp()) is None
    outcome = restock.check("A", 40, 5, POINT, alert, 0, stamp())
    assert outcome is not None
    closed, published = outcome.effects
    assert isinstance(closed, CloseRestockAlert) and closed.alert_id == alert.alert_id
    assert isinstance(published, Publish) and isinstance(published.event, RestockCleared)


def test_an_alert_claiming_a_projection_not_below_its_point_is_malformed():
    with pytest.raises(ProtocolError, match="not below the reorder point"):
        RestockAlerted(event_id=make_id(NOW.wall_ms, 5), store_id=STORE, seq=1, wall_ms=0, mono_ms=0,
                       alert_id=make_id(NOW.wall_ms, 6), sku="A", on_hand=20, owed=0, reorder_point=10, target=30,
                       suggested_qty=10)


# ---- the cloud's trust ------------------------------------------------------------------------------------------
def _alert(store: str, alert_id: str, sku: str = "A") -> RestockAlerted:
    return RestockAlerted(event_id=make_id(NOW.wall_ms, next(ids)), store_id=store, seq=1, wall_ms=0, mono_ms=0,
                          alert_id=alert_id, sku=sku, on_hand=1, owed=0, reorder_point=10, target=30, suggested_qty=29)


def _clear(store: str, alert_id: str) -> RestockCleared:
    return RestockCleared(event_id=make_id(NOW.wall_ms, next(ids)), store_id=store, seq=2, wall_ms=0, mono_ms=0,
                          alert_id=alert_id, sku="A", on_hand=40, owed=0)


def test_a_store_is_believed_about_its_own_alerts_of_known_products_only():
    mine, theirs = make_id(NOW.wall_ms, 1001), make_id(NOW.wall_ms, 1002)
    ok, unknown = _alert("S001", mine), _alert("S001", make_id(NOW.wall_ms, 1003), sku="NOPE")
    steal, clear_ok, clear_other = _alert("S001", theirs), _clear("S001", mine), _clear("S001", theirs)
    refused = judge([ok, unknown, steal, clear_ok, clear_other], {"A"}, {theirs: "S002"})
    assert set(refused) == {unknown.event_id, steal.event_id, clear_other.event_id}
    assert "unknown product NOPE" in refused[unknown.event_id]
    assert "is store S002's" in refused[steal.event_id]
    assert "S002's to clear" in refused[clear_other.event_id]


def test_supply_is_due_after_the_suppliers_lead_time_or_the_day_after_a_transfer_left_and_the_earliest_wins():
    day = 86_400_000
    start = 1_764_432_000_000  # 2025-11-30 00:00 in the chain's time zone (UTC+8)
    noon = start + day // 2
    due = rules.supply_due([("S1", "A", noon, 2), ("S1", "B", noon, 3)], [("S1", "B", noon + day), ("S2", "A", noon)])
    assert due[("S1", "A")] == start + 2 * day  # raised today, 2 days' lead: from the start of the day after tomorrow
    assert due[("S1", "B")] == start + 2 * day  # in transit since tomorrow: the day after that, before the 3 days' lead
    assert due[("S2", "A")] == start + day
    assert ("S2", "B") not in due


def test_a_presale_waits_through_its_due_day_and_grace_and_is_overdue_the_day_after():
    due = "2026-03-10"
    assert not rules.presale_overdue(due, date(2026, 3, 9))
    assert not rules.presale_overdue(due, date(2026, 3, 10) + timedelta(days=rules.PRESALE_GRACE_DAYS))
    assert rules.presale_overdue(due, date(2026, 3, 11) + timedelta(days=rules.PRESALE_GRACE_DAYS))
