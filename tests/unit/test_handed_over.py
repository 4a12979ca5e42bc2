"""What a store handed over of an online order after picking, and what may still be given back (protocol.handed_over):
the reviewer's scenarios - a short line refunded at picking, a catch-weight line refunded lighter, a line refunded
online and then brought to the till - never give back more than was paid for what left the store."""
from __future__ import annotations

import pytest

from protocol import handed_over as ho
from protocol import returns as rules
from protocol.returns import ReturnRefused

ORDER = [("A", 5, "piece", 500), ("B", 1, "piece", 500)]


def ordered(lines=ORDER, total=1000, allocation=None):
    return ho.part_lines(lines, total, allocation or {"S1": [(x[0], x[1]) for x in lines]})


def test_a_part_never_picked_is_handed_over_as_ordered():
    parts = ho.handed_over(ordered(), {}, {}, {}, {})
    assert parts["S1"]["A"] == rules.Sold("A", 5, "piece", 500)


def test_three_of_five_picked_and_two_refunded_short_returns_only_the_three_and_their_money():
    parts = ho.handed_over(ordered(), {"S1": [ho.Picked("A", 5, 3, 2), ho.Picked("B", 1, 1)]},
                           {("short", "S1", "A"): 200}, {}, {})
    a = parts["S1"]["A"]
    assert (a.qty, a.paid_fen) == (3, 300)
    with pytest.raises(ReturnRefused, match="5 piece asked, but 3 piece were sold"):
        rules.refund_lines(parts["S1"], {}, [("A", 5)])
    given = rules.refund_lines(parts["S1"], {}, [("A", 3), ("B", 1)])
    assert sum(fen for *_, fen in given) + 200 == 1000  # with the short refund: exactly the charge, never more


def test_a_catch_weight_line_refunded_lighter_is_returned_whole_for_what_is_left_of_it():
    lines = [("FISH", 500, "g", 1000), ("B", 1, "piece", 500)]
    parts = ho.handed_over(ordered(lines, 1500), {"S1": [ho.Picked("FISH", 500, 480), ho.Picked("B", 1, 1)]},
                           {("weight", "S1", ""): 40}, {}, {})
    fish = parts["S1"]["FISH"]
    assert (fish.qty, fish.unit, fish.paid_fen) == (480, "g", 960)
    given = rules.refund_lines(parts["S1"], {}, [("FISH", 480), ("B", 1)])
    assert sum(fen for *_, fen in given) == 1500 - 40  # everything back: the charge less the weight refund


def test_a_heavier_pick_charged_extra_gives_the_extra_back_with_the_goods():
    lines = [("FISH", 500, "g", 1000)]
    parts = ho.handed_over(ordered(lines, 1000), {"S1": [ho.Picked("FISH", 500, 520)]}, {}, {"S1": 40}, {})
    assert (parts["S1"]["FISH"].qty, parts["S1"]["FISH"].paid_fen) == (520, 1040)


def test_a_substitute_is_returned_under_its_own_sku_for_what_was_paid_for_it():
    parts = ho.handed_over(ordered(), {"S1": [ho.Picked("A", 5, 3, 0, "A2", 2), ho.Picked("B", 1, 1)]},
                           {("sub", "S1", "A"): 50}, {}, {"A2": "piece"})
    assert parts["S1"]["A"] == rules.Sold("A", 3, "piece", 300)
    assert parts["S1"]["A2"] == rules.Sold("A2", 2, "piece", 150)  # 200 for the two replaced, 50 refunded


def test_a_shortage_rerouted_moves_its_money_to_the_store_that_served_it():
    allocation = {"S1": [("A", 5), ("B", 1)], "S2": [("A", 2)]}
    parts = ho.handed_over(ordered(allocation=allocation),
                           {"S1": [ho.Picked("A", 5, 3, 2), ho.Picked("B", 1, 1)], "S2": [ho.Picked("A", 2, 2)]},
                           {}, {}, {})
    assert parts["S1"]["A"].paid_fen + parts["S2"]["A"].paid_fen == 500
    assert (parts["S1"]["A"].qty, parts["S2"]["A"].qty) == (3, 2)


def test_an_online_request_takes_from_each_part_and_counts_everything_given_back():
    allocation = {"S1": [("A", 5), ("B", 1)], "S2": [("A", 2)]}
    parts = ho.handed_over(ordered(allocation=allocation),
                           {"S1": [ho.Picked("A", 5, 3, 2), ho.Picked("B", 1, 1)], "S2": [ho.Picked("A", 2, 2)]},
                           {}, {}, {})
    before = ho.given_back([("S1", "A", 1, 100)])  # one returned at S1's till
    lines = ho.allocate(parts, before, [("A", 4)])
    assert [(s, q) for s, _, q, _ in lines] == [("S1", 2), ("S2", 2)]
    assert sum(fen for *_, fen in lines) == 400
    with pytest.raises(ReturnRefused, match="1 piece asked, but 5 piece were sold and 5 piece returned already"):
        ho.allocate(parts, ho.given_back([("S1", "A", 3, 300), ("S2", "A", 2, 200)]), [("A", 1)])
    assert ho.all_back(parts, before, [*lines, ("S1", "B", 1, 500)])


def test_a_line_refunded_online_is_not_returned_again_at_the_till():
    parts = ho.handed_over(ordered(), {}, {}, {}, {})
    before = ho.given_back([("S1", "B", 1, 500)])  # an approved after-sales request, without return
    with pytest.raises(ReturnRefused, match="B: 1 piece asked, but 1 piece were sold and 1 piece returned already"):
        rules.refund_lines(parts["S1"], before["S1"], [("B", 1)])
