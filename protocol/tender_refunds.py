"""How a till sale's refund is shared among the tenders that paid it (issue 19 review, defect 1): pure, and the
same contract on both sides - the till splits with `split_money`, the cloud believes a store's split only within
`over_paid` (`protocol.return_facts`).

A sale paid 20.00 by stored value and 30.00 in cash, returned whole, gives back 20.00 to stored value and 30.00 in
cash - not 50.00 by its first tender. A partial return gives back each tender its share: the money given back by
each method over all the sale's returns so far is that method's payment in the proportion of the money given back
in all (rounded down; all of it once everything is back), as `protocol.return_promotions.points_split` does for
points. Guarantees: the parts add up to the amount; never more back by a method than it paid less what earlier
returns gave back by it; the split depends only on the sale's tenders and its earlier refunds, so a retry computes
the same.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

POINTS = "points"  # points go back through the cloud by `points_split`, not shared here


class TenderRefused(ValueError):
    """More money to give back than the sale's tenders have left: the reason names the amounts."""


def by_method(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    """(method, fen) pairs -> fen per method, in first-seen order."""
    out: dict[str, int] = {}
    for method, fen in pairs:
        out[method] = out.get(method, 0) + int(fen)
    return out


def split_money(paid: Iterable[tuple[str, int]], before: Mapping[str, int], amount_fen: int
                ) -> tuple[tuple[str, int], ...]:
    """(method, fen) parts of `amount_fen` money given back; `paid`: the sale's tenders (method, fen) in the order
    paid (points are left out: they go back as points); `before`: money given back per method by earlier returns.
    TenderRefused if the tenders have less left than `amount_fen`."""
    if amount_fen <= 0:
        return ()
    tenders = {m: fen for m, fen in by_method(paid).items() if m != POINTS and fen > 0}
    total = sum(tenders.values())
    back = {m: min(max(before.get(m, 0), 0), fen) for m, fen in tenders.items()}
    room = {m: fen - back[m] for m, fen in tenders.items()}
    if amount_fen > sum(room.values()):
        left = ", ".join(f"{m} {fen}" for m, fen in room.items()) or "none"
        raise TenderRefused(f"{amount_fen} fen to give back, but the sale's tenders have {sum(room.values())} fen "
                            f"left ({left})")
    after = min(sum(back.values()) + amount_fen, total)
    give = {m: min(room[m], max((fen if after >= total else fen * after // total) - back[m], 0))
            for m, fen in tenders.items()}
    over = sum(give.values()) - amount_fen
    for m in reversed(list(give)):  # an earlier return that took less from one tender: trim the later ones
        cut = min(over, give[m]) if over > 0 else 0
        give[m], over = give[m] - cut, over - cut
    short = amount_fen - sum(give.values())
    for m in give:  # the rounding's fen, to the tenders in the order paid, each within what it has left
        add = min(short, room[m] - give[m])
        give[m], short = give[m] + add, short - add
    return tuple((m, fen) for m, fen in give.items() if fen)


def over_paid(paid: Iterable[tuple[str, int]], before: Mapping[str, int], claimed: Iterable[tuple[str, int]]
              ) -> str:
    """Why a refund claim gives back more by a method than the sale paid by it less what was given back by it
    before ("" when it does not): the cloud's check of a store's split."""
    tenders = by_method(paid)
    for method, fen in by_method(claimed).items():
        have = tenders.get(method, 0) - before.get(method, 0)
        if fen > have:
            return (f"{fen} fen refunded by {method}, but the sale paid {tenders.get(method, 0)} fen by {method} "
                    f"and {before.get(method, 0)} fen went back by it before")
    return ""
