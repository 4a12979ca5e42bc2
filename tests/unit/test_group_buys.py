"""Group buying's pure core (protocol/group_buys.py): which rule a group may be opened for, who may join, when a
group forms and when it fails - each refusal with its reason."""
from __future__ import annotations

import pytest

from protocol import ProtocolError
from protocol import group_buys as gb
from protocol.pricing import BasketLine, Catalogue, PricingContext, Product, load_rule_book, price_basket

NINE_AM = 1_767_229_200_000  # 2026-01-01 09:00 in UTC+8
CATALOGUE = Catalogue([
    Product(sku="RIBS", name="Spare ribs", category="meat", unit="kg", price_fen=6000),
    Product(sku="EGGS", name="Eggs x10", category="eggs", unit="piece", price_fen=1590),
])
GROUP = {"type": "group_buy", "id": "GB1", "name": "3 for ribs", "skus": ["RIBS"], "group_price_fen": 4800,
         "group_size": 3}


def book(*rules):
    return load_rule_book({"version": 1, "rules": list(rules)}, CATALOGUE)


def opened(now=NINE_AM, **rule):
    found = gb.rule_for(book({**GROUP, **rule}), "GB1", "S001", now)
    assert not isinstance(found, str), found
    return gb.open_group("G1", found, "leader", now, default_window_ms=60_000)


def seated(group, *members, paid=False):
    for i, member in enumerate(members):
        group = gb.join(group, gb.Seat(member, f"O{len(group.seats) + i}", paid), NINE_AM)
        assert isinstance(group, gb.Group), group
    return group


def test_a_group_opens_for_its_rule_with_the_rules_price_size_and_window():
    group = opened(window_min=30)
    assert (group.sku, group.size, group.price_fen, group.leader_id) == ("RIBS", 3, 4800, "leader")
    assert group.closes_ms - group.opened_ms == 30 * 60_000  # the rule's own window
    assert opened().closes_ms - NINE_AM == 60_000  # none in the rule: the chain's default (here a short one)
    assert gb.window_ms(book(GROUP).by_id["GB1"]) == 24 * 3_600_000  # the policy's default


@pytest.mark.parametrize(("rules", "rule_id", "reason"), [
    ([GROUP], "NOPE", "no rule 'NOPE' in the promotion book"),
    ([{"type": "item_discount", "id": "D1", "name": "d", "skus": ["EGGS"], "percent_off_bp": 1000}], "D1",
     "D1 is a item_discount rule, not a group buy"),
    ([{**GROUP, "channels": ["offline"]}], "GB1", "not in force online at S001 now"),
    ([{**GROUP, "stores": ["S002"]}], "GB1", "not in force online at S001 now"),
    ([{**GROUP, "daily": ["20:00-22:00"]}], "GB1", "not in force online at S001 now"),  # 09:00 local
])
def test_a_group_is_opened_only_for_a_group_buy_in_force_online(rules, rule_id, reason):
    refused = gb.rule_for(book(*rules), rule_id, "S001", NINE_AM)
    assert isinstance(refused, str) and reason in refused


def test_a_window_longer_than_a_week_is_refused_when_the_book_loads():
    with pytest.raises(ProtocolError, match="window_min must be 0..10080"):
        book({**GROUP, "window_min": 7 * 24 * 60 + 1})


def test_joining_takes_places_until_full_then_refuses_with_the_reason():
    group = seated(opened(), "leader", "ann")
    assert group.remaining == 1
    twice = gb.join(group, gb.Seat("ann", "O9", False), NINE_AM)
    assert isinstance(twice, gb.JoinRefused) and twice.code == "already_member"
    assert "already in this group" in twice.reason
    group = seated(group, "bob")
    full = gb.join(group, gb.Seat("cat", "O9", False), NINE_AM)
    assert isinstance(full, gb.JoinRefused) and full.code == "full" and "all 3 places are taken" in full.reason


def test_a_place_freed_by_an_ended_order_can_be_taken_again():
    group = seated(opened(), "leader", "ann", "bob")
    without_ann = gb.Group(**{**{f: getattr(group, f) for f in gb.Group.__dataclass_fields__},
                              "seats": tuple(s for s in group.seats if s.member_id != "ann")})
    assert isinstance(gb.join(without_ann, gb.Seat("cat", "O7", False), NINE_AM), gb.Group)


def test_joining_after_the_window_or_once_formed_or_failed_is_refused():
    group = seated(opened(), "leader")
    late = gb.join(group, gb.Seat("ann", "O9", False), group.closes_ms)
    assert isinstance(late, gb.JoinRefused) and late.code == "expired"
    for status, words in (("formed", "already formed"), ("failed", "closed without forming")):
        closed = gb.join_refusal(gb.Group(**{**{f: getattr(group, f) for f in gb.Group.__dataclass_fields__},
                                             "status": status}), "ann", NINE_AM)
        assert closed is not None and closed.code == "closed" and words in closed.reason


def test_a_group_forms_only_when_every_place_holds_a_paid_order_in_time():
    group = opened()
    assert not gb.forms(seated(group, "leader", "ann", paid=True), NINE_AM)  # two of three
    one_unpaid = seated(seated(group, "leader", "ann", paid=True), "bob")
    assert not gb.forms(one_unpaid, NINE_AM)
    everyone = seated(group, "leader", "ann", "bob", paid=True)
    assert gb.forms(everyone, NINE_AM)
    assert not gb.forms(everyone, everyone.closes_ms)  # too late: it fails instead
    assert gb.fails(everyone, everyone.closes_ms) and not gb.fails(everyone, everyone.closes_ms - 1)


def test_the_group_price_applies_only_to_a_member_whose_group_formed():
    rules = book(GROUP)
    line = [BasketLine(sku="RIBS", weight_g=500)]
    alone = price_basket(CATALOGUE, rules, line, PricingContext(channel="online", store_id="S001", now_ms=NINE_AM))
    grouped = price_basket(CATALOGUE, rules, line, PricingContext(channel="online", store_id="S001", now_ms=NINE_AM,
                                                                  formed_groups=("GB1",)))
    assert (alone.total_fen, grouped.total_fen) == (3000, 2400)  # 0.5 kg at 60.00 / at the group's 48.00


def test_members_appear_only_masked():
    assert gb.masked_name("138****0000") == "138****0000"
    assert gb.masked_name(None) == "会员"
