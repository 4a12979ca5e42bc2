"""The store database's side of coupons (issue 17 item 1): the members' coupons the box last heard of from the cloud
(`coupon_snapshot`, for an offline period) and the coupons this store's tills redeemed (`coupon_redemptions`: a
code once here, until a whole return released it and the cloud's wallet showed it issued again; the offline
allowance counts them per chain day, released or not). Effects are executed by `edge.store_db` (merged
into its executors, in its one transaction per outcome); loads go through the writer (the actor is its only
writer)."""
from __future__ import annotations

from edge.core.coupons import OfflineUse, RecordRedemption, ReplaceSnapshot
from protocol.coupon_messages import KnownCoupon

SCHEMA = """
create table if not exists coupon_snapshot (code text primary key, member_id text not null, rule_id text not null,
    valid_from_ms integer not null, valid_until_ms integer not null, taken_ms integer not null);
create index if not exists coupon_snapshot_member on coupon_snapshot (member_id);
create table if not exists coupon_redemptions (code text primary key, sale_id text not null, member_id text not null,
    offline integer not null, saving_fen integer not null, day text not null, at_ms integer not null);
create index if not exists coupon_redemptions_day on coupon_redemptions (day, offline);
"""


async def usable(conn, member_id: str, now_ms: int) -> list:
    """The member's coupons in the snapshot, valid now and not redeemed by this store's tills: (code, rule, until)."""
    async with conn.execute(
            "select code, rule_id, valid_until_ms from coupon_snapshot where member_id = ? and valid_from_ms <= ? "
            "and valid_until_ms > ? and code not in (select code from coupon_redemptions where released_by is null) "
            "order by valid_until_ms",
            (member_id, now_ms, now_ms)) as cur:
        return list(await cur.fetchall())


async def _one(conn, sql: str, params: tuple):
    async with conn.execute(sql, params) as cur:
        return await cur.fetchone()


async def known(conn, member_id: str, code: str) -> KnownCoupon | None:
    row = await _one(conn, "select code, rule_id, valid_from_ms, valid_until_ms from coupon_snapshot "
                           "where code = ? and member_id = ?", (code, member_id))
    return KnownCoupon(code=row[0], rule_id=row[1], valid_from_ms=row[2], valid_until_ms=row[3]) if row else None


async def redeemed_here(conn, code: str) -> bool:
    """Redeemed by this store's tills and not since let go by a whole return that the cloud's wallet confirmed: a
    released row counts until a snapshot row of the code exists again (the release deleted any, so one now is the
    cloud's answer after the release, showing it issued)."""
    return await _one(conn, "select 1 from coupon_redemptions r where code = ? and (released_by is null or not exists "
                            "(select 1 from coupon_snapshot s where s.code = r.code))", (code,)) is not None


async def offline_use(conn, day: str) -> OfflineUse:
    row = await _one(conn, "select count(*), coalesce(sum(saving_fen), 0) from coupon_redemptions "
                           "where day = ? and offline = 1", (day,))
    return OfflineUse(row[0], row[1])


async def _record(db, e: RecordRedemption) -> None:
    await db.execute("insert into coupon_redemptions (code, sale_id, member_id, offline, saving_fen, day, at_ms) "
                     "values (?, ?, ?, ?, ?, ?, ?) on conflict (code) do update set sale_id = excluded.sale_id, "
                     "member_id = excluded.member_id, offline = excluded.offline, saving_fen = excluded.saving_fen, "
                     "day = excluded.day, at_ms = excluded.at_ms, released_by = null "
                     "where coupon_redemptions.released_by is not null",  # used again after a return let it go
                     (e.code, e.sale_id, e.member_id, int(e.offline), e.saving_fen, e.day, e.at_ms))
    await db.execute("delete from coupon_snapshot where code = ?", (e.code,))


async def _replace(db, e: ReplaceSnapshot) -> None:
    await db.execute("delete from coupon_snapshot where member_id = ?", (e.member_id,))
    await db.executemany("insert into coupon_snapshot (code, member_id, rule_id, valid_from_ms, valid_until_ms, "
                         "taken_ms) values (?, ?, ?, ?, ?, ?) on conflict (code) do nothing",
                         [(c.code, e.member_id, c.rule_id, c.valid_from_ms, c.valid_until_ms, e.at_ms)
                          for c in e.coupons])


EXECUTORS = {RecordRedemption: _record, ReplaceSnapshot: _replace}
