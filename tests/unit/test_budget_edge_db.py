"""The store's side of budgets and per-member limits, at the core and SQLite level (edge/core/member_limits.py,
edge/budget_db.py): the cloud's count plus this store's uses since its answer (a member who used a rule elsewhere
AND here is not undercounted); a grant older than the store's last take-back does not raise the share again."""
from __future__ import annotations

import aiosqlite

from edge import budget_db
from edge.core.member_limits import MemberLimits, RecordMemberUse, blocked
from protocol.pricing.catalogue import Product
from protocol.pricing.rules import ItemDiscount, RuleBook

NOW = 1_700_000_000_000
EGGS = Product(sku="EGG-A-0001", name="Eggs", category="eggs", unit="piece", price_fen=1_000)
TWICE = ItemDiscount(id="TWICE", name="eggs half price, twice per member", percent_off_bp=5000, skus=(EGGS.sku,),
                     per_member_limit=2)
BOOK = RuleBook(1, (TWICE,))


async def _db() -> aiosqlite.Connection:
    db = await aiosqlite.connect(":memory:", isolation_level=None)
    await db.executescript(budget_db.SCHEMA)
    return db


async def _execute(db, *effects) -> None:
    for e in effects:
        await budget_db.EXECUTORS[type(e)](db, e)


def test_the_clouds_count_plus_this_stores_uses_since_its_answer():
    # the member used TWICE once elsewhere (the cloud's answer: 1); then once here, after that answer
    limits = MemberLimits("m1", cloud={"TWICE": 1}, here={"TWICE": 1}, cloud_at_ms=NOW,
                          here_since_cloud={"TWICE": 1})
    assert blocked(BOOK, limits) == {"TWICE": "limit of 2 per member reached"}
    # a use here the cloud had counted already (before its answer) is not counted twice
    counted = MemberLimits("m1", cloud={"TWICE": 1}, here={"TWICE": 1}, cloud_at_ms=NOW, here_since_cloud={})
    assert blocked(BOOK, counted) == {}
    # this store's own uses still count when the cloud has not heard of them (never fewer than here)
    assert blocked(BOOK, MemberLimits("m1", cloud={}, here={"TWICE": 2}, cloud_at_ms=NOW)) != {}


async def test_the_store_db_counts_its_uses_after_the_clouds_answer():
    db = await _db()
    try:
        await _execute(db, RecordMemberUse("m1", "TWICE", "sale-old", "d", False, NOW - 5_000),
                       RecordMemberUse("m1", "TWICE", "sale-new", "d", False, NOW + 5_000))
        limits = await budget_db.member_limits(db, "m1", "d", {"TWICE": 1}, NOW)
        assert (limits.cloud_at_ms, dict(limits.here), dict(limits.here_since_cloud)) == (NOW, {"TWICE": 2},
                                                                                           {"TWICE": 1})
        assert blocked(BOOK, limits) == {"TWICE": "limit of 2 per member reached"}
    finally:
        await db.close()


async def test_a_grant_older_than_the_last_take_back_does_not_raise_the_share_again():
    from edge.core.budget_allowance import apply_grant, apply_reclaim
    from edge.core.outcome import UseAllowance
    from protocol.budget_messages import BudgetAllowanceGranted, BudgetShareReclaimed
    from protocol.ids import make_id

    def env(n: int) -> dict:
        return {"event_id": make_id(NOW, n), "store_id": "S036", "seq": 0, "wall_ms": NOW, "mono_ms": 0}

    def grant(fen: int, generation: int) -> BudgetAllowanceGranted:
        return BudgetAllowanceGranted(**env(fen), rule_id="CAP", granted_fen=fen, generation=generation)

    def reclaim(generation: int) -> BudgetShareReclaimed:
        return BudgetShareReclaimed(**env(generation), rule_id="CAP", returned_fen=700, reason="idle",
                                    generation=generation)

    db = await _db()
    try:
        async def run(outcome) -> tuple[int, int]:
            await _execute(db, *outcome.effects)
            return (await budget_db.allowances(db))["CAP"]
        await run(apply_grant(grant(1000, 0)))
        await _execute(db, UseAllowance("CAP", 300))
        assert await run(apply_reclaim(reclaim(1))) == (300, 300)  # the unused 700 taken back
        assert await run(apply_grant(grant(1000, 0))) == (300, 300)  # the old grant, redelivered late: ignored
        assert await run(apply_grant(grant(1300, 1))) == (1300, 300)  # granted again after the take-back
        assert await run(apply_reclaim(reclaim(1))) == (1300, 300)  # that take-back again: older than this grant
        assert await run(apply_grant(grant(1200, 1))) == (1300, 300)  # the same generation: the highest total wins
        assert await run(apply_reclaim(reclaim(2))) == (300, 300)  # the next take-back
    finally:
        await db.close()


async def test_a_whole_return_gives_the_sales_limited_uses_back_at_the_store():
    """A whole return's undo deletes the sale's rows of this store's member uses (the member may use the rule here
    again); a partial one keeps them."""
    from edge import return_promotions_db
    from edge.core.return_gifts import undo
    db = await _db()
    try:
        await db.executescript(return_promotions_db.SCHEMA + "create table coupon_redemptions (code text, sale_id text, "
                               "released_by text); create table coupon_snapshot (code text);")
        await _execute(db, RecordMemberUse("m1", "TWICE", "sale-1", "d", False, NOW),
                       RecordMemberUse("m1", "TWICE", "sale-2", "d", False, NOW))
        for e in undo("sale:sale-1", "R-1", (), (), 0, whole=False) + undo("sale:sale-2", "R-2", (), (), 0, whole=True):
            await return_promotions_db.EXECUTORS[type(e)](db, e)
        assert dict((await budget_db.member_limits(db, "m1", "d")).here) == {"TWICE": 1}  # sale-2's use given back
    finally:
        await db.close()
