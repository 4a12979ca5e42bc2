"""A whole return at the store lets its sale's coupon go only as far as the cloud does (issue 17, review defect 8):
the cloud gives a coupon back only if this sale holds it and the return is within the coupon's window, so the box
keeps the redemption marked released by the return, and its tills take the code again only once a snapshot of the
member's wallet the cloud answered after the release shows it issued (or the cloud grants a hold on it). A stale
snapshot (answered before the cloud heard of the sale) does not free it. A real store db in a temp file."""
from __future__ import annotations

from edge import coupons_db, return_promotions_db
from edge.core.coupons import RecordRedemption, ReplaceSnapshot
from edge.core.return_gifts import UndoPromotions
from edge.store_db import StoreDb
from protocol.coupon_messages import KnownCoupon

CODE, MEMBER = "CPRELEASE0000A", "M-release"
COUPON = KnownCoupon(code=CODE, rule_id="C10", valid_from_ms=0, valid_until_ms=10**13)


def redemption(sale_id: str, at_ms: int) -> RecordRedemption:
    return RecordRedemption(code=CODE, sale_id=sale_id, member_id=MEMBER, offline=True, saving_fen=1_000,
                            day="2026-12-01", at_ms=at_ms)


async def usable(db: StoreDb) -> list[str]:
    return [r[0] for r in await coupons_db.usable(db.writer, MEMBER, 5_000)]


async def test_a_whole_return_keeps_the_coupon_until_a_fresh_wallet_shows_it_issued(tmp_path):
    db = await StoreDb(tmp_path / "store.db").open()
    try:
        await db.apply([ReplaceSnapshot(MEMBER, (COUPON,), 1_000)])
        await db.apply([redemption("S1", 1_100)])
        await db.apply([ReplaceSnapshot(MEMBER, (COUPON,), 1_200)])  # stale: the cloud had not heard of S1 yet
        assert await coupons_db.redeemed_here(db.writer, CODE) and await usable(db) == []

        await db.apply([UndoPromotions(source="sale:S1", return_id="R1", deductions=(), coupons_back=(CODE,))])
        assert await return_promotions_db.sale_coupons(db.writer, "S1") == ()  # let go: a later return does not
        assert await coupons_db.redeemed_here(db.writer, CODE), "freed before the cloud said it gave it back"
        assert await usable(db) == [] and await coupons_db.known(db.writer, MEMBER, CODE) is None
        async with db.writer.execute("select released_by from coupon_redemptions where code = ?", (CODE,)) as cur:
            assert [r[0] for r in await cur.fetchall()] == ["R1"]  # kept, marked by the return that let it go

        await db.apply([ReplaceSnapshot(MEMBER, (COUPON,), 3_000)])  # the cloud's answer after the release
        assert not await coupons_db.redeemed_here(db.writer, CODE) and await usable(db) == [CODE]

        await db.apply([redemption("S2", 3_100)])  # used again: the row is the new sale's
        assert await coupons_db.redeemed_here(db.writer, CODE) and await usable(db) == []
        assert await return_promotions_db.sale_coupons(db.writer, "S2") == (CODE,)
    finally:
        await db.close()


async def test_a_wallet_without_the_coupon_after_the_release_keeps_it_taken(tmp_path):
    db = await StoreDb(tmp_path / "store.db").open()
    try:
        await db.apply([redemption("S1", 1_100)])
        await db.apply([UndoPromotions(source="sale:S1", return_id="R1", deductions=(), coupons_back=(CODE,))])
        await db.apply([ReplaceSnapshot(MEMBER, (), 3_000)])  # the cloud kept it (outside its window)
        assert await coupons_db.redeemed_here(db.writer, CODE) and await usable(db) == []
    finally:
        await db.close()
