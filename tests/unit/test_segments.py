"""RFM scoring and segments on hand-made histories (protocol/segments.py), and their monotonicity."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.segments import (
    DAY_MS,
    RfmRules,
    Visit,
    assign,
    monetary_score,
    profile,
    rfm,
    segment,
)

NOW = 1_800_000_000_000


def visits(days_ago: list[int], fen: int, channel: str = "till", categories=()) -> list[Visit]:
    return [Visit(NOW - d * DAY_MS, channel, "S001", fen, tuple(categories)) for d in days_ago]


JOINED_LONG_AGO = NOW - 400 * DAY_MS


@pytest.mark.parametrize("history, expected", [
    (visits([1, 8, 15, 22, 29, 40], 15_000), "important_value"),  # weekly, 150 yuan
    (visits([3, 45], 20_000), "important_develop"),  # twice in the window, 200 yuan
    (visits([2, 9, 16, 23, 37], 2_500), "general_value"),  # weekly, 25 yuan
    (visits([10, 50], 3_000), "general"),  # rarely, small baskets
    (visits([70, 80, 85, 88], 30_000), "lapsed"),  # was frequent and high, nothing for 70 days
    (visits([200], 50_000), "lapsed"),  # one old visit: outside the window entirely
])
def test_known_members_land_in_their_segment(history, expected):
    assert assign(history, JOINED_LONG_AGO, NOW)[2] == expected


def test_new_member_by_first_visit_or_registration():
    assert assign(visits([2], 50_000), NOW - 3 * DAY_MS, NOW)[2] == "new"  # first visit 2 days ago
    assert assign([], NOW - 3 * DAY_MS, NOW)[2] == "new"  # registered, never bought yet
    assert assign([], JOINED_LONG_AGO, NOW)[2] == "lapsed"  # registered long ago, never bought
    # a new member who is already frequent counts as frequent (4 visits in the first 3 weeks, high-ticket)
    assert assign(visits([1, 5, 10, 20], 12_000), NOW - 21 * DAY_MS, NOW)[2] == "important_value"


def test_rfm_counts_only_the_window_for_f_and_m_and_ignores_the_future():
    history = visits([1, 100], 5_000) + [Visit(NOW + DAY_MS, "online", "S001", 9_999)]
    score = rfm(history, NOW)
    assert (score.recency_days, score.frequency, score.monetary_fen) == (1, 1, 5_000)
    assert (score.r, score.f, score.m) == (5, 1, 1)


def test_profile_channels_average_and_favourite_categories():
    history = (visits([1], 6_000, "till", [("fruit", 4_000), ("dairy", 2_000)])
               + visits([3], 2_000, "online", [("veg", 2_000)])
               + visits([5], 1_000, "online", [("dairy", 1_000)]))
    p = profile(history, NOW)
    assert p.channels == ("till", "online")
    assert (p.visits, p.spend_fen, p.avg_ticket_fen) == (3, 9_000, 3_000)
    assert p.favourite_categories == ("fruit", "dairy", "veg")  # dairy 3000 and veg 2000 after fruit 4000
    assert p.last_visit_ms == NOW - DAY_MS and p.by_channel == {"till": 1, "online": 2}


def test_thresholds_are_parameters():
    history = visits([1, 40], 5_000)  # first visit 40 days ago: not new
    assert assign(history, JOINED_LONG_AGO, NOW)[2] == "general"
    cheap_chain = RfmRules(frequent_visits=2, high_ticket_fen=4_000)
    assert assign(history, JOINED_LONG_AGO, NOW, cheap_chain)[2] == "important_value"
    with pytest.raises(ValueError):
        RfmRules(m_fen=(5, 1))


@given(st.lists(st.integers(0, 10**7), max_size=20), st.integers(0, 10**7))
def test_more_spend_never_lowers_m(spends, extra):
    history = [Visit(NOW - i * DAY_MS, "till", "S001", s) for i, s in enumerate(spends)]
    more = history + [Visit(NOW, "online", "S001", extra)]
    assert rfm(more, NOW).m >= rfm(history, NOW).m
    assert monetary_score(sum(spends) + extra) >= monetary_score(sum(spends))
    assert rfm(more, NOW).f >= rfm(history, NOW).f


@given(st.lists(st.integers(0, 200), min_size=1, max_size=10), st.integers(0, 200))
def test_a_later_visit_never_lowers_r(days_ago, newer):
    history = visits(days_ago, 1_000)
    assert rfm(history + visits([newer], 1_000), NOW).r >= rfm(history, NOW).r


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 100_000)), max_size=15))
def test_segment_is_one_of_the_named_and_deterministic(history):
    vs = [Visit(NOW - d * DAY_MS, "till", "S001", fen) for d, fen in history]
    one = assign(vs, JOINED_LONG_AGO, NOW)
    assert one == assign(list(reversed(vs)), JOINED_LONG_AGO, NOW)
    score = rfm(vs, NOW)
    assert segment(score, one[0].first_visit_ms, JOINED_LONG_AGO, NOW) == one[2]
