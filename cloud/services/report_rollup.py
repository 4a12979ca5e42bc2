"""The HQ reports' daily rollups (issue 21 build 5): per chain day, what was sold by store × channel × category, by
member level × segment, by promotion rule, and what was lost by store × category × reason - so that a year of a
500-store chain reads in well under 2 s.

Why rollups refreshed per day, not maintained per event: the facts a report adds up change after they arrive (an
online order counts once paid and stops counting when refunded; a till sale's returns come days later; a member's
level and segment move), and they arrive through several writers (the bridge, the order saga, the money sweeper)
whose modules are each at their size limit. A per-event trigger would have to follow every one of those changes;
a refresh of a day recomputes it from the system of record with the same SQL whatever happened, is idempotent
(delete + insert of the day's rows in one transaction), and costs one pass over that day's raw rows.

Guarantees:
- A day's rows are exactly what `refresh` computed from the raw tables at its `refreshed_ms` (`report_days`).
- Settled days (protocol.reports.SETTLE_AFTER_DAYS after they ended) are refreshed once (by the background schedule,
  `run_schedule`, or by the first report that reads them) and then only read; recent
  days are refreshed again when a report reads them and their rows are older than RECENT_STALE_MS (so "today" is at
  most that old). Concurrent refreshes of a day (several API processes) are serialised by an advisory lock and the
  later one sees the day fresh and does nothing.
- Late facts reopen a settled day: a till sale, write-off or online order (a refund on an old order) written
  more than LATE_AFTER_DAYS after its day (an offline store's backlog, a late return) marks its day in
  `report_dirty` (statement triggers, migration 50; facts of recent days never touch it, so the hot paths take no
  lock on it), and the next report or schedule round that covers the day refreshes it again; a refresh clears the
  marks of its days in its own transaction (a mark written meanwhile survives for the next one).
- Rows with store CHAIN ('*') add up every store (in every rollup), so that chain-wide reports read a few rows per
  day instead of one per store; a report grouped by store reads the stores' own rows (never '*').
- Money is integer fen: a split online order's line is shared among its stores by allocated quantity (rounded);
  a till sale's lines add up to its total (the evaluator spreads basket discounts over lines).
- Days are the chain's days (protocol.policy.CHAIN_UTC_OFFSET_MIN) of the sale's wall clock or the order's creation.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta
from typing import Any

from cloud.services import losses
from protocol.order_lifecycle import PAID_STATUSES
from protocol.policy import CHAIN_UTC_OFFSET_MIN, chain_day
from protocol.reports import CHAIN, RANGE_DAYS_MAX, SETTLE_AFTER_DAYS, each_day, split_days

log = logging.getLogger("freshmesh.reports")
DAY_MS = 86_400_000
SCHEDULE_FIRST_S, SCHEDULE_EVERY_S = 60.0, 600.0  # the background settling of days: first round, then every
RECENT_STALE_MS = 30_000  # a recent day's rollup is refreshed when read if older than this
REFRESH_CHUNK_DAYS = 7  # a refresh transaction covers at most this many days (bounded work per statement)
NOT_IN_CATALOGUE = "(not in the catalogue)"  # written literally in LINES_CTE too
# the literals in the SQL below are protocol.reports' NON_MEMBER, DEFAULT_LEVEL, NO_SEGMENT and CHAIN
# (tests/unit/test_reports.py checks they agree)
_LOCK_KEY = 0x52505254  # "RPRT": one refresher of the rollups at a time

MIGRATION_44 = (44, "HQ reports: daily rollups of sales, members, promotions and losses", """
    create table if not exists report_days (
        day          date primary key,
        refreshed_ms bigint not null
    );
    create table if not exists report_sales_day (
        day              date not null,
        store_id         text not null,            -- '*': the whole chain
        channel          text not null,            -- till | online
        category         text not null,            -- '' = every category (whole tickets)
        tickets          bigint not null,          -- tickets (with a line of the category)
        sales_fen        bigint not null,
        items            bigint not null,          -- pieces, and 1 per weighed line
        returned_fen     bigint not null,          -- given back on those tickets (till returns, online refunds)
        member_tickets   bigint not null,
        member_sales_fen bigint not null,
        primary key (category, day, store_id, channel)
    );
    create index if not exists report_sales_day_store on report_sales_day (store_id, category, day);
    create table if not exists report_member_day (
        day       date not null,
        store_id  text not null,                   -- '*': the whole chain
        channel   text not null,
        level     text not null,                   -- the member's level when the day was refreshed; non_member
        segment   text not null,
        tickets   bigint not null,
        sales_fen bigint not null,
        primary key (store_id, day, channel, level, segment)
    );
    create table if not exists report_promotion_day (
        day            date not null,
        store_id       text not null,              -- '*': the whole chain
        channel        text not null,
        rule_id        text not null,              -- '': every basket (with or without a rule)
        uses           bigint not null,
        discount_fen   bigint not null,
        sales_with_fen bigint not null,
        primary key (store_id, day, channel, rule_id)
    );
    create table if not exists report_loss_day (
        day                date not null,
        store_id           text not null,          -- '*': the whole chain
        category           text not null,
        reason             text not null,
        lines              bigint not null,
        pieces             bigint not null,
        grams              bigint not null,
        value_at_cost_fen  bigint not null,
        value_at_price_fen bigint not null,
        unpriced_lines     bigint not null,
        primary key (day, store_id, category, reason)
    );
    create index if not exists report_loss_day_store on report_loss_day (store_id, day);
    create index if not exists orders_flash_report on orders (sale_id, status) where kind = 'flash';
""")

# $1/$2: the days' epoch ms [from, to); $3/$4: the catalogue's skus and categories; $5: the chain's UTC offset (ms);
# $6: the statuses of an online order that is a sale
LINES_CTE = """
with cat as (select * from unnest($3::text[], $4::text[]) as c(sku, category)),
till as (select s.sale_id, s.store_id, s.member_id, s.returned_fen, s.lines,
                date '1970-01-01' + ((s.wall_ms + $5) / 86400000)::int as day
         from till_sales s where s.wall_ms >= $1 and s.wall_ms < $2),
ol as (select o.order_id, o.member_id, o.refunded_fen, o.lines, o.allocation,
              date '1970-01-01' + ((o.created_ms + $5) / 86400000)::int as day
       from orders o where o.created_ms >= $1 and o.created_ms < $2 and o.status = any($6::text[])),
online_sku as (select ol.order_id, x.sku, sum(x.amount_fen)::bigint as amount,
                      bool_or(coalesce(x.weighed, false)) as weighed
               from ol cross join lateral jsonb_to_recordset(ol.lines) as x(sku text, amount_fen bigint, weighed boolean)
               group by 1, 2),
online_goods as (select order_id, sum(amount)::bigint as goods from online_sku group by 1),
online_alloc as (select ol.order_id, a.key as store_id, y.sku, sum(y.qty)::bigint as qty
                 from ol cross join lateral jsonb_each(ol.allocation) a
                 cross join lateral jsonb_to_recordset(case when jsonb_typeof(a.value) = 'array' then a.value
                                                            else '[]'::jsonb end) as y(sku text, qty bigint)
                 group by 1, 2, 3),
alloc_total as (select order_id, sku, sum(qty)::bigint as qty from online_alloc group by 1, 2),
lines as (
    select t.day, t.store_id, 'till'::text as channel, t.sale_id as ticket, t.member_id,
           coalesce(c.category, '(not in the catalogue)') as category, (l.v ->> 3)::bigint as amount,
           case when l.v ->> 2 = 'piece' then (l.v ->> 1)::bigint else 1 end as items,
           case when l.n = 1 then t.returned_fen else 0 end as returned
    from till t cross join lateral jsonb_array_elements(t.lines) with ordinality as l(v, n)
    left join cat c on c.sku = l.v ->> 0
    union all
    select p.day, p.store_id, 'online', p.order_id, p.member_id, coalesce(c.category, '(not in the catalogue)'),
           p.amount, p.items, case when g.goods > 0 then (p.refunded_fen * p.amount) / g.goods else 0 end
    from (select ol.day, a.store_id, ol.order_id, ol.member_id, ol.refunded_fen, a.sku,
                 case when t.qty > 0 then (s.amount * a.qty * 2 + t.qty) / (2 * t.qty) else 0 end as amount,
                 case when s.weighed then 1 else a.qty end as items
          from online_alloc a join alloc_total t using (order_id, sku) join online_sku s using (order_id, sku)
               join ol using (order_id)) p
    join online_goods g using (order_id) left join cat c on c.sku = p.sku)"""

# the lines of the days, once per refresh, for both the sales and the members' rollups
LINES_SQL = "create temp table report_lines on commit drop as " + LINES_CTE + " select * from lines"  # noqa: S608 - constant SQL
SALES_SQL = """
select day, coalesce(store_id, '*') as store_id, channel, coalesce(category, '') as category,
       count(distinct ticket) as tickets,
       sum(amount)::bigint as sales_fen, sum(items)::bigint as items, sum(returned)::bigint as returned_fen,
       count(distinct ticket) filter (where member_id is not null) as member_tickets,
       coalesce(sum(amount) filter (where member_id is not null), 0)::bigint as member_sales_fen
from report_lines group by grouping sets ((day, store_id, channel), (day, store_id, channel, category),
                                         (day, channel), (day, channel, category))"""

MEMBERS_SQL = """
with tickets as (select day, store_id, channel, ticket, member_id, sum(amount)::bigint as amount
                 from report_lines group by 1, 2, 3, 4, 5),
placed as (select t.*, case when t.member_id is null then 'non_member'
                            else coalesce(ml.level, 'regular') end as level,
                       coalesce(ms.segment, 'none') as segment
           from tickets t left join member_levels ml on ml.member_id = t.member_id
                left join member_segments ms on ms.member_id = t.member_id)
select day, coalesce(store_id, '*') as store_id, channel, level, segment,
       count(distinct (store_id, ticket)) as tickets, sum(amount)::bigint as sales_fen
from placed group by grouping sets ((day, store_id, channel, level, segment), (day, channel, level, segment))"""

# $1/$2: ms; $3: offset; $4: the statuses of an online order that is a sale
PROMOTIONS_SQL = """
with b as (select pb.basket_id, pb.channel, pb.store_id, pb.goods_fen,
                  date '1970-01-01' + ((pb.at_ms + $3) / 86400000)::int as day
           from promotion_baskets pb left join orders o on pb.channel = 'online' and o.order_id = pb.ref
           where pb.at_ms >= $1 and pb.at_ms < $2 and (pb.channel = 'till' or o.status = any($4::text[]))),
u as (select b.day, b.store_id, b.channel, x.rule_id, x.saving_fen, b.goods_fen
      from promotion_uses x join b using (basket_id)
      union all
      select day, store_id, channel, '', 0, goods_fen from b)
select day, coalesce(store_id, '*') as store_id, channel, rule_id, count(*) as uses,
       sum(saving_fen)::bigint as discount_fen, sum(goods_fen)::bigint as sales_with_fen
from u group by grouping sets ((day, store_id, channel, rule_id), (day, channel, rule_id))"""

TABLES = ("report_sales_day", "report_member_day", "report_promotion_day", "report_loss_day")
LATE_AFTER_DAYS = 2  # a fact this much older than now marks its day (under SETTLE_AFTER_DAYS: no settled day missed)
_MARK = """
    create or replace function report_mark_late_{name}() returns trigger language plpgsql as $$
    begin
        insert into report_dirty (day)
        select distinct date '1970-01-01' + ((c.{at} + {offset_ms}) / 86400000)::int from changed c
        where c.{at} < (extract(epoch from clock_timestamp()) * 1000)::bigint - {late_ms}
        on conflict (day) do nothing;
        return null;
    end $$;
    create trigger report_late_{name}_ins after insert on {table} referencing new table as changed
        for each statement execute function report_mark_late_{name}();
    create trigger report_late_{name}_upd after update on {table} referencing new table as changed
        for each statement execute function report_mark_late_{name}();
"""
MIGRATION_50 = (50, "HQ reports: late facts reopen their settled day (report_dirty, statement triggers)",
                "create table if not exists report_dirty (day date primary key);" + "".join(
                    _MARK.format(name=name, table=table, at=at, offset_ms=CHAIN_UTC_OFFSET_MIN * 60_000,
                                 late_ms=LATE_AFTER_DAYS * DAY_MS)
                    for name, table, at in (("sales", "till_sales", "wall_ms"), ("losses", "loss_lines", "wall_ms"),
                                            ("orders", "orders", "created_ms"))))
SALES_COLUMNS = ["day", "store_id", "channel", "category", "tickets", "sales_fen", "items", "returned_fen",
                 "member_tickets", "member_sales_fen"]
MEMBER_COLUMNS = ["day", "store_id", "channel", "level", "segment", "tickets", "sales_fen"]
PROMOTION_COLUMNS = ["day", "store_id", "channel", "rule_id", "uses", "discount_fen", "sales_with_fen"]
LOSS_COLUMNS = ["day", "store_id", "category", "reason", "lines", "pieces", "grams", "value_at_cost_fen",
                "value_at_price_fen", "unpriced_lines"]


def day_ms(day: date, utc_offset_min: int = CHAIN_UTC_OFFSET_MIN) -> int:
    """The epoch ms at which the chain day `day` starts."""
    return (day - date(1970, 1, 1)).days * DAY_MS - utc_offset_min * 60_000


def loss_grain(rows: list[dict[str, Any]], products: dict[str, losses.Priced]) -> list[tuple]:
    """The loss report's raw rows (write-offs per lot, stocktake shortfalls, markdowns: cloud.services.losses) valued
    (per lot) and added up per (day, store, category, reason), as rows of report_loss_day."""
    out: dict[tuple[str, str, str, str], list[int]] = {}
    for r in rows:
        product = products.get(r["sku"])
        key = (r["day"], r["store_id"], product.category if product else NOT_IN_CATALOGUE, r["reason"] or "unspecified")
        for agg in (out.setdefault(key, [0, 0, 0, 0, 0, 0]),  # lines, pieces, grams, at cost, at price, unpriced
                    out.setdefault((key[0], CHAIN, *key[2:]), [0, 0, 0, 0, 0, 0])):  # and the chain's row
            agg[0] += r["lines"]
            if "given_fen" in r:  # a markdown: sold, so only its price is given away
                agg[4] += r["given_fen"]
            elif product is None:
                agg[5] += r["lines"]
            else:
                agg[2 if product.weighed else 1] += r["qty"]
                cost = r["lot_cost_fen"] if r["lot_cost_fen"] is not None else product.cost_fen
                agg[3] += losses.value(r["qty"], cost, product.weighed)
                agg[4] += losses.value(r["qty"], product.price_fen, product.weighed)
    return [(date.fromisoformat(d), s, c, reason, *agg) for (d, s, c, reason), agg in out.items()]


class Rollups:
    """Refreshes and keeps fresh the rollups of a cloud (`cloud.db`, `cloud.world.catalogue`, `cloud.now_ms`)."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def ensure(self, start: date, end: date, today: date) -> None:
        """Every day of [start, end] refreshed as the guarantees say (settled once; recent when stale). Days after
        `today` have nothing yet: never refreshed (a range reaching into the future costs no more than to today)."""
        end = min(end, today)
        if end < start:
            return
        settled, recent = split_days(start, end, today)
        now = self.cloud.now_ms()
        rows = await self.cloud.db.fetch("select day, refreshed_ms from report_days where day between $1 and $2",
                                         start, end)
        done = {r["day"]: r["refreshed_ms"] for r in rows}
        # a settled day refreshed before it was settled (or never) is refreshed once more, then only read
        todo = [d for d in (each_day(*settled) if settled else [])
                if d not in done or done[d] < day_ms(d + timedelta(days=1 + SETTLE_AFTER_DAYS))]
        todo += [d for d in (each_day(*recent) if recent else []) if d not in done or now - done[d] > RECENT_STALE_MS]
        todo += [r["day"] for r in await self.cloud.db.fetch(  # settled days that late facts reopened
            "select day from report_dirty where day between $1 and $2", start, end)]
        todo = sorted(set(todo))
        for run in _runs(sorted(todo)):
            await self.refresh(run[0], run[-1], only_if_older_than_ms=now - RECENT_STALE_MS)

    async def run_schedule(self) -> None:
        """Settle the last year's days in the background (the cloud's background process runs this), so that a
        report never has to refresh many settled days inside its request: every SCHEDULE_EVERY_S, the days that
        settled since (or were never refreshed) are refreshed, a chunk per transaction."""
        await asyncio.sleep(SCHEDULE_FIRST_S)  # not while the cloud is starting
        while True:
            try:
                today = chain_day(self.cloud.now_ms())
                await self.ensure(today - timedelta(days=RANGE_DAYS_MAX), today - timedelta(days=SETTLE_AFTER_DAYS),
                                  today)
            except Exception as exc:  # noqa: BLE001 - try again next round; a report refreshes what it reads anyway
                log.warning("report rollups: settling days failed: %s", exc)
            await asyncio.sleep(SCHEDULE_EVERY_S)

    async def refresh(self, start: date, end: date, only_if_older_than_ms: int | None = None) -> int:
        """Recompute the rollups of the days [start, end] from the raw tables (idempotent); returns the days
        refreshed. `only_if_older_than_ms`: skip days another process refreshed since (checked under the lock)."""
        refreshed = 0
        for a in range(0, (end - start).days + 1, REFRESH_CHUNK_DAYS):
            first = start + timedelta(days=a)
            last = min(end, first + timedelta(days=REFRESH_CHUNK_DAYS - 1))
            refreshed += await self._refresh_chunk(first, last, only_if_older_than_ms)
        return refreshed

    async def _refresh_chunk(self, first: date, last: date, only_if_older_than_ms: int | None) -> int:
        cloud = self.cloud
        catalogue = cloud.world.catalogue
        skus = list(catalogue.by_sku)
        cats = [catalogue.by_sku[s].category for s in skus]
        a_ms, b_ms = day_ms(first), day_ms(last + timedelta(days=1))
        offset, paid = CHAIN_UTC_OFFSET_MIN * 60_000, list(PAID_STATUSES)
        async with cloud.db.acquire() as conn, conn.transaction():
            # one lock per day, taken in day order: refreshes of overlapping days wait for each other, others run
            await conn.execute("select pg_advisory_xact_lock($1::int, d::date - date '1970-01-01') "
                               "from generate_series($2::date, $3::date, interval '1 day') d order by d",
                               _LOCK_KEY, first, last)
            if only_if_older_than_ms is not None:
                fresh = await conn.fetchval("select count(*) from report_days d where day between $1 and $2 "
                                            "and refreshed_ms >= $3 and not exists (select 1 from report_dirty r "
                                            "where r.day = d.day)", first, last, only_if_older_than_ms)
                if fresh == (last - first).days + 1:
                    return 0
            # this refresh reads every fact committed so far: their marks are done with (later ones stay)
            await conn.execute("delete from report_dirty where day between $1 and $2", first, last)
            for table in TABLES:
                await conn.execute(f"delete from {table} where day between $1 and $2", first, last)  # noqa: S608
            await conn.execute(LINES_SQL, a_ms, b_ms, skus, cats, offset, paid)
            sales = await conn.fetch(SALES_SQL)
            await conn.copy_records_to_table("report_sales_day", records=[tuple(r) for r in sales],
                                             columns=SALES_COLUMNS)
            members = await conn.fetch(MEMBERS_SQL)
            await conn.copy_records_to_table("report_member_day", records=[tuple(r) for r in members],
                                             columns=MEMBER_COLUMNS)
            promotions = await conn.fetch(PROMOTIONS_SQL, a_ms, b_ms, offset, paid)
            await conn.copy_records_to_table("report_promotion_day", records=[tuple(r) for r in promotions],
                                             columns=PROMOTION_COLUMNS)
            raw = [dict(r) for r in await conn.fetch(losses.LOSS_SQL, first.isoformat(), last.isoformat(), None)]
            raw += [dict(r) for r in await conn.fetch(losses.STOCKTAKE_SQL, first.isoformat(), last.isoformat(), None,
                                                      offset)]
            raw += [dict(r) for r in await conn.fetch(losses.MARKDOWN_SQL, first.isoformat(), last.isoformat(), None)]
            await conn.copy_records_to_table("report_loss_day", records=loss_grain(raw, losses.priced(catalogue)),
                                             columns=LOSS_COLUMNS)
            now = cloud.now_ms()
            await conn.execute("""insert into report_days (day, refreshed_ms)
                                  select d::date, $3 from generate_series($1::date, $2::date, interval '1 day') d
                                  on conflict (day) do update set refreshed_ms = excluded.refreshed_ms""",
                               first, last, now)
        return (last - first).days + 1


def _runs(days: list[date]) -> list[list[date]]:
    """Consecutive days grouped: [d1, d2, d3], [d7], ..."""
    runs: list[list[date]] = []
    for d in days:
        if runs and (d - runs[-1][-1]).days == 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return runs
