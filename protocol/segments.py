"""Member profiles and RFM segments, as pure functions (no I/O, no clock: `now_ms` is passed in).

A member's history is a list of visits: a till sale or a paid online order, each with its time, channel, store,
what was paid and how that spend fell on the catalogue's categories. From it:

- `profile(...)`: channels used (till / online), visits, average ticket, favourite categories by spend, last visit;
- `rfm(...)`: recency in whole days since the last visit, frequency = visits in the window, monetary = spend in the
  window, and a 1..5 score for each against fixed thresholds (`RfmRules`; fixed, not quantiles of the chain, so a
  member's score does not move because other members bought more);
- `segment(...)`: one of the seeds' named segments, decided in this order (the first that holds):
  1. `lapsed` (流失): no visit for `lapsed_days` or more (or none ever, and registered before `new_days`);
  2. `new` (新客): first visit (or registration, with no visit) within the last `new_days`, not yet frequent;
  3. `important_value` (重要价值): frequent (>= `frequent_visits` in the window) and high-ticket (average ticket in
     the window >= `high_ticket_fen`);
  4. `important_develop` (重要发展/保持): high-ticket but infrequent;
  5. `general_value` (一般价值): frequent but low-ticket;
  6. `general` (一般): neither frequent nor high-ticket.

Guarantees (unit- and property-tested): scores are monotone (more spend never lowers M, more visits never lower F,
a later last visit never lowers R); visits outside the window count for recency and the profile, never for F or M;
the same history and `now_ms` always give the same answer.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

DAY_MS = 86_400_000
SEGMENTS: tuple[str, ...] = ("important_value", "important_develop", "general_value", "general", "new", "lapsed")
SEGMENT_NAMES: dict[str, str] = {  # as the seeds and HQ call them
    "important_value": "重要价值 (frequent, high-ticket)",
    "important_develop": "重要发展/保持 (infrequent, high-ticket)",
    "general_value": "一般价值 (frequent, low-ticket)",
    "general": "一般 (infrequent, low-ticket)",
    "new": "新客 (new)",
    "lapsed": "流失 (lapsed)",
}
CHANNELS = ("till", "online")
FAVOURITES_MAX = 3


@dataclass(frozen=True)
class RfmRules:
    """The thresholds, with the defaults a fresh-food chain starts from (weekly shoppers, 80-yuan baskets)."""
    window_days: int = 90  # F and M count visits of the last 90 days
    lapsed_days: int = 60  # no visit for 60 days: lapsed
    new_days: int = 30  # first visit within 30 days: new
    frequent_visits: int = 4  # 4+ visits in the window: frequent
    high_ticket_fen: int = 8_000  # an average ticket of 80 yuan or more: high-ticket
    # score thresholds, ascending: the score is 1 + how many are reached (R: fewer days is better)
    r_days: tuple[int, ...] = (60, 30, 14, 7)  # <= 7 days: 5; <= 14: 4; <= 30: 3; <= 60: 2; else 1
    f_visits: tuple[int, ...] = (2, 4, 8, 12)
    m_fen: tuple[int, ...] = (10_000, 30_000, 80_000, 200_000)

    def __post_init__(self) -> None:
        if min(self.window_days, self.lapsed_days, self.new_days, self.frequent_visits) < 1 or self.high_ticket_fen < 0:
            raise ValueError("RFM rules: days and visits must be positive, the ticket not negative")
        for name, seq, descending in (("r_days", self.r_days, True), ("f_visits", self.f_visits, False),
                                      ("m_fen", self.m_fen, False)):
            if list(seq) != sorted(seq, reverse=descending):
                raise ValueError(f"RFM rules: {name} must be {'descending' if descending else 'ascending'}")


DEFAULT_RULES = RfmRules()


@dataclass(frozen=True)
class Visit:
    at_ms: int
    channel: str  # till | online
    store_id: str
    spend_fen: int  # what the customer paid (after discounts)
    categories: tuple[tuple[str, int], ...] = ()  # (category, fen) of its lines


@dataclass(frozen=True)
class Rfm:
    recency_days: int | None  # None: never visited
    frequency: int
    monetary_fen: int
    r: int
    f: int
    m: int

    @property
    def avg_ticket_fen(self) -> int:
        return self.monetary_fen // self.frequency if self.frequency else 0


@dataclass(frozen=True)
class Profile:
    channels: tuple[str, ...]
    visits: int  # all visits in the history given
    spend_fen: int
    avg_ticket_fen: int
    favourite_categories: tuple[str, ...]  # by spend, largest first (ties by name)
    first_visit_ms: int | None
    last_visit_ms: int | None
    by_channel: dict[str, int] = field(default_factory=dict)  # visits per channel


def recency_score(days: int | None, rules: RfmRules = DEFAULT_RULES) -> int:
    if days is None:
        return 1
    return 1 + sum(1 for limit in rules.r_days if days <= limit)


def frequency_score(visits: int, rules: RfmRules = DEFAULT_RULES) -> int:
    return 1 + sum(1 for limit in rules.f_visits if visits >= limit)


def monetary_score(spend_fen: int, rules: RfmRules = DEFAULT_RULES) -> int:
    return 1 + sum(1 for limit in rules.m_fen if spend_fen >= limit)


def rfm(visits: Iterable[Visit], now_ms: int, rules: RfmRules = DEFAULT_RULES) -> Rfm:
    """R, F and M of a history as of `now_ms` (a visit after `now_ms` is ignored: not yet made as of then)."""
    seen = [v for v in visits if v.at_ms <= now_ms]
    since = now_ms - rules.window_days * DAY_MS
    in_window = [v for v in seen if v.at_ms > since]
    days = (now_ms - max(v.at_ms for v in seen)) // DAY_MS if seen else None
    frequency, monetary = len(in_window), sum(v.spend_fen for v in in_window)
    return Rfm(days, frequency, monetary, recency_score(days, rules), frequency_score(frequency, rules),
               monetary_score(monetary, rules))


def segment(score: Rfm, first_visit_ms: int | None, joined_ms: int, now_ms: int,
            rules: RfmRules = DEFAULT_RULES) -> str:
    """The member's segment (see the module's order of decision)."""
    recent_start = now_ms - rules.new_days * DAY_MS
    if score.recency_days is None:
        return "new" if joined_ms > recent_start else "lapsed"
    if score.recency_days >= rules.lapsed_days:
        return "lapsed"
    frequent = score.frequency >= rules.frequent_visits
    if first_visit_ms is not None and first_visit_ms > recent_start and not frequent:
        return "new"
    high = score.frequency > 0 and score.avg_ticket_fen >= rules.high_ticket_fen
    if high:
        return "important_value" if frequent else "important_develop"
    return "general_value" if frequent else "general"


def profile(visits: Sequence[Visit], now_ms: int) -> Profile:
    """What the member did, in every channel, up to `now_ms`."""
    seen = sorted((v for v in visits if v.at_ms <= now_ms), key=lambda v: v.at_ms)
    by_channel: dict[str, int] = defaultdict(int)
    by_category: dict[str, int] = defaultdict(int)
    for v in seen:
        by_channel[v.channel] += 1
        for category, fen in v.categories:
            by_category[category] += fen
    spend = sum(v.spend_fen for v in seen)
    favourites = sorted((c for c, fen in by_category.items() if fen > 0), key=lambda c: (-by_category[c], c))
    return Profile(channels=tuple(c for c in CHANNELS if by_channel.get(c)), visits=len(seen), spend_fen=spend,
                   avg_ticket_fen=spend // len(seen) if seen else 0,
                   favourite_categories=tuple(favourites[:FAVOURITES_MAX]),
                   first_visit_ms=seen[0].at_ms if seen else None, last_visit_ms=seen[-1].at_ms if seen else None,
                   by_channel=dict(by_channel))


def assign(visits: Sequence[Visit], joined_ms: int, now_ms: int,
           rules: RfmRules = DEFAULT_RULES) -> tuple[Profile, Rfm, str]:
    """The member's profile, RFM and segment in one go (what the cloud's recompute stores)."""
    p = profile(visits, now_ms)
    score = rfm(visits, now_ms, rules)
    return p, score, segment(score, p.first_visit_ms, joined_ms, now_ms, rules)
