"""Which store the cloud asks to lend for one order (actors.borrow_plan): one at a time, nearest first, only until
the order is covered - never every short store at once for the whole shortfall."""
from __future__ import annotations

from actors.borrow_plan import next_ask

ITEMS = {"A": 10}
NEAR = ["S1", "S2", "S3"]  # nearest first


def test_the_nearest_store_that_could_serve_alone_is_asked_for_its_own_shortfall_only():
    availability = {"S1": {"A": 4}, "S2": {"A": 2}, "S3": {"A": 0}}
    spare = {("S1", "A"): 30, ("S2", "A"): 30, ("S3", "A"): 30}
    assert next_ask(ITEMS, NEAR, availability, spare, set()) == ("S1", {"A": 6})
    # once asked (it lent less than asked: still short), the next one is asked, the first never again
    assert next_ask(ITEMS, NEAR, {**availability, "S1": {"A": 7}}, spare, {"S1"}) == ("S2", {"A": 8})


def test_nothing_is_asked_once_one_store_covers_the_order():
    availability = {"S1": {"A": 4}, "S2": {"A": 10}}
    assert next_ask(ITEMS, NEAR, availability, {("S1", "A"): 30}, set()) is None
    lent = {"S1": {"A": 10}, "S2": {"A": 2}}  # S1 lent: nobody else is asked
    assert next_ask(ITEMS, NEAR, lent, {("S2", "A"): 30}, {"S1"}) is None


def test_a_store_that_could_not_serve_alone_is_skipped_for_a_farther_one_that_could():
    availability = {"S1": {"A": 0}, "S2": {"A": 5}}
    spare = {("S1", "A"): 3, ("S2", "A"): 5}
    assert next_ask(ITEMS, NEAR, availability, spare, set()) == ("S2", {"A": 5})


def test_when_no_store_could_serve_alone_only_what_the_stores_together_lack_is_asked():
    items = {"A": 10, "B": 4}
    availability = {"S1": {"A": 6, "B": 0}, "S2": {"A": 0, "B": 4}}
    spare = {("S1", "A"): 2, ("S2", "A"): 9}  # S1 lacks B and cannot lend it; S2 could lend A
    # S2 alone: short 10 A, spare 9: not enough. Together short of 0 B and 4 A: the nearest with spare A lends 2
    assert next_ask(items, NEAR, availability, spare, set()) == ("S1", {"A": 2})
    after = {"S1": {"A": 8, "B": 0}, "S2": {"A": 0, "B": 4}}
    assert next_ask(items, NEAR, after, spare, {"S1"}) == ("S2", {"A": 2})  # still 2 short together
    covered = {"S1": {"A": 10, "B": 0}, "S2": {"A": 0, "B": 4}}  # a split plan serves it now
    assert next_ask(items, NEAR, covered, spare, {"S1"}) is None


def test_nobody_is_asked_when_no_store_has_anything_to_lend():
    assert next_ask(ITEMS, NEAR, {"S1": {"A": 1}}, {}, set()) is None
    assert next_ask(ITEMS, NEAR, {"S1": {"A": 1}}, {("S1", "A"): 30}, {"S1"}) is None


def test_no_partial_loan_is_taken_when_the_stores_together_could_not_lend_enough():
    items = {"A": 10, "B": 4}
    availability = {"S1": {"A": 6, "B": 0}, "S2": {"A": 0, "B": 4}}
    assert next_ask(items, NEAR, availability, {("S1", "A"): 1, ("S3", "A"): 2}, set()) is None  # 3 < the 4 lacking
