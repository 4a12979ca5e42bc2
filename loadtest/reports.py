"""`freshmesh load reports --stores 500 --days 365 --json FILE`: a year of a 500-store chain's history generated
once into a reusable PostgreSQL (embedded, kept under `--data-dir` or the user's cache dir), then every HQ report
(cloud/services/hq_reports.py) timed over several date ranges and filters.

Generation writes the raw tables the reports read, as the system writes them (till sales with their lines, online
orders with their allocation and status, promotion baskets and uses, write-offs per lot, member levels and segments,
flash sales with their orders), with COPY, a day at a time; then the daily rollups are refreshed from them by the
same code a running cloud uses (`Rollups.refresh`). A database made with the same parameters is reused (its
`loadtest_reports` row says so); `--fresh` makes it again.

The reports are timed in-process, through `HqReports.answer` (the SQL and the arithmetic the HTTP endpoint runs, minus
the HTTP round trip and JSON encoding): `report_ms` is p50/p99/max over every timed call, `reports` gives each
report's figures and each call's. `tickets_per_store_day` sets the volume of raw rows (not the rollups' size, which
is what a report reads): a real store sells more, which costs the refresh, not the reports.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import time
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import asyncpg

from cloud.embedded.postgres import PostgresServer
from cloud.migrations import migrate
from cloud.services.hq_reports import HqReports
from cloud.services.report_rollup import Rollups, day_ms
from cloud.world import World
from loadtest.report import Progress, latency_ms
from protocol import reports as rp
from protocol.policy import chain_day
from protocol.segments import SEGMENTS

FORMAT_VERSION = 1  # grows when what is generated changes: an older database is made again
ROLLUP_VERSION = 2  # grows when the rollups change shape: a reused database's rollups are refreshed again
LEVELS = ("regular", "silver", "gold", "platinum")
MEMBERS_PER_STORE = 100
REFRESH_WORKERS = 2  # the box's cores
REASONS = ("expired", "spoiled", "damaged")
FLASH_SALES_PER_MONTH = 4
PAID = ("picked_up", "delivered", "paid", "partially_refunded")
UNPAID = ("expired", "cancelled")


BULK_TABLES = ("till_sales", "orders", "promotion_baskets", "promotion_uses", "loss_lines")
# the secondary indexes of those tables (not the ones that back a key or unique constraint)
BULK_INDEXES_SQL = """select indexname, indexdef from pg_indexes
                      where schemaname = 'public' and tablename = any($1::text[])
                        and indexname not in (select conname from pg_constraint)"""


def default_data_dir(stores: int, days: int) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "freshmesh" / f"load-reports-{stores}x{days}"


class Chain:
    """What is generated: stores, members (with levels and segments), the catalogue's SKUs, the book's rules."""

    def __init__(self, world: World, stores: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.stores = [f"L{n:04d}" for n in range(1, stores + 1)]
        self.members = [f"LM{n:07d}" for n in range(stores * MEMBERS_PER_STORE)]
        products = list(world.catalogue.by_sku.values())
        self.products = [(p.sku, p.unit == "kg", p.price_fen) for p in products]
        self.rules = [r.id for r in world.rule_book.rules][:12] or ["R-LOAD"]


BASKETS = 4_000  # distinct baskets, made once and drawn from (json per ticket would dominate the generation)


def baskets(chain: Chain) -> list[tuple[str, str, str, int]]:
    """(till lines, online lines, online allocation lines, total fen) of BASKETS random baskets."""
    rng, out = chain.rng, []
    for _ in range(BASKETS):
        lines, total = [], 0
        for _ in range(1 + rng.randrange(4)):
            sku, weighed, price = chain.products[rng.randrange(len(chain.products))]
            qty = 200 + rng.randrange(800) if weighed else 1 + rng.randrange(3)
            amount = price * qty // 1000 if weighed else price * qty
            lines.append((sku, weighed, qty, amount))
            total += amount
        out.append((json.dumps([[s, q, "g" if w else "piece", a] for s, w, q, a in lines]),
                    json.dumps([{"sku": s, "qty": q, "weighed": w, "amount_fen": a} for s, w, q, a in lines]),
                    json.dumps([{"sku": s, "qty": q, "reservation_id": f"r{i}"} for i, (s, _, q, _) in enumerate(lines)]),
                    total))
    return out


def day_rows(chain: Chain, made: list[tuple[str, str, str, int]], day: date, tickets: int,
             seq: list[int]) -> dict[str, list[tuple]]:
    """One chain day's raw rows for every store."""
    rng, start = chain.rng, day_ms(day)
    out: dict[str, list[tuple]] = {k: [] for k in ("till", "orders", "baskets", "uses", "losses")}
    till, orders, baskets_, uses = out["till"], out["orders"], out["baskets"], out["uses"]
    rules, random_, randrange = chain.rules, rng.random, rng.randrange
    for n_store, store in enumerate(chain.stores):
        members_here = chain.members[n_store * MEMBERS_PER_STORE:(n_store + 1) * MEMBERS_PER_STORE]
        for t in range(tickets):
            seq[0] += 1
            n = seq[0]
            at = start + 28_800_000 + randrange(46_800_000)  # 08:00 to 21:00
            online = t % 5 == 0  # a fifth of the tickets are online orders
            member = members_here[randrange(MEMBERS_PER_STORE)] if random_() < (0.9 if online else 0.5) else None
            till_lines, online_lines, alloc, total = made[randrange(BASKETS)]
            if online:
                ref = f"o{n}"
                status = PAID[n % len(PAID)] if n % 10 else UNPAID[n % 2]
                kind = "delivery" if t % 2 else "pickup"
                orders.append((ref, kind, status, member, f'{{"{store}": {alloc}}}', online_lines, total, at, at, kind))
                basket = "online:" + ref
            else:
                ref = f"s{n}"
                till.append((ref, store, "1", total, till_lines, "[]", member, False, at))
                basket = "till:" + ref
            saving = 0
            if random_() < 0.3:
                saving = max(1, total // 10)
                uses.append((basket, rules[randrange(len(rules))], "", saving))
            baskets_.append((basket, "online" if online else "till", store, ref, member, total + saving, total, at))
        for k in range(3):
            sku, weighed, _ = chain.products[randrange(len(chain.products))]
            out["losses"].append((f"loss-{store}-{day}-{k}", "", store, sku, 300 if weighed else 1 + k,
                                  REASONS[k], day, start + 20 * 3_600_000))
    return out


async def generate(db, chain: Chain, first: date, days: int, tickets: int, progress: Progress) -> dict:
    counts = {"till_sales": 0, "orders": 0, "promotion_baskets": 0, "loss_lines": 0}
    seq = [0]
    made = baskets(chain)
    async with db.acquire() as conn:
        await conn.copy_records_to_table("member_levels", columns=["member_id", "level", "changed_ms"], records=[
            (m, LEVELS[i % len(LEVELS)], 0) for i, m in enumerate(chain.members)])
        await conn.copy_records_to_table("member_segments", columns=["member_id", "segment", "computed_ms", "version"],
                                         records=[(m, SEGMENTS[i % len(SEGMENTS)], 0, 1)
                                                  for i, m in enumerate(chain.members) if i % 7])
        for d in range(days):
            day = first + timedelta(days=d)
            rows = day_rows(chain, made, day, tickets, seq)
            async with conn.transaction():
                await conn.copy_records_to_table("till_sales", records=rows["till"], columns=[
                    "sale_id", "store_id", "lane", "total_fen", "lines", "payments", "member_id", "offline", "wall_ms"])
                await conn.copy_records_to_table("orders", records=rows["orders"], columns=[
                    "order_id", "kind", "status", "member_id", "allocation", "lines", "total_fen", "created_ms",
                    "updated_ms", "fulfilment"])
                await conn.copy_records_to_table("promotion_baskets", records=rows["baskets"], columns=[
                    "basket_id", "channel", "store_id", "ref", "member_id", "list_fen", "goods_fen", "at_ms"])
                await conn.copy_records_to_table("promotion_uses", records=rows["uses"], columns=[
                    "basket_id", "rule_id", "name", "saving_fen"])
                await conn.copy_records_to_table("loss_lines", records=rows["losses"], columns=[
                    "event_id", "lot", "store_id", "sku", "qty", "reason", "day", "wall_ms"])
                await flash_sales(conn, chain, day, seq)
            for k, table in (("till", "till_sales"), ("orders", "orders"), ("baskets", "promotion_baskets"),
                             ("losses", "loss_lines")):
                counts[table] += len(rows[k])
            progress.update(f"generated {d + 1}/{days} days, {counts['till_sales'] + counts['orders']:,} tickets")
    return counts


async def flash_sales(conn, chain: Chain, day: date, seq: list[int]) -> None:
    """A few flash sales a month, each with its orders (most paid, some left to expire)."""
    if day.day % (30 // FLASH_SALES_PER_MONTH) != 1:
        return
    rng, sale = chain.rng, f"LF{day.isoformat()}"
    sku, _, price = chain.products[rng.randrange(len(chain.products))]
    stores = rng.sample(chain.stores, min(5, len(chain.stores)))
    start = day_ms(day) + 10 * 3_600_000
    await conn.execute("insert into flash_sales (sale_id, config, created_ms) values ($1, $2, $3)", sale, json.dumps(
        {"sku": sku, "quantity": 200, "price_fen": price // 2, "starts_ms": start, "ends_ms": start + 3_600_000,
         "per_member_limit": 2, "rate_per_s": 100, "blocks": {s: 40 for s in stores}}), start)
    rows = []
    for n in range(150 + rng.randrange(50)):
        seq[0] += 1
        qty = 1 + n % 2
        status = "picked_up" if n % 8 else "expired"
        rows.append((f"lf{seq[0]}", "flash", status, chain.members[rng.randrange(len(chain.members))],
                     json.dumps({stores[n % len(stores)]: [{"sku": sku, "qty": qty, "reservation_id": f"x{seq[0]}"}]}),
                     json.dumps([{"sku": sku, "qty": qty, "amount_fen": price // 2 * qty}]), price // 2 * qty,
                     start + n, start + n, "pickup", sale))
    await conn.copy_records_to_table("orders", records=rows, columns=[
        "order_id", "kind", "status", "member_id", "allocation", "lines", "total_fen", "created_ms", "updated_ms",
        "fulfilment", "sale_id"])


def calls(first: date, last: date, stores: list[str], categories: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Every report over several ranges and filters (name, query parameters)."""
    year = {"from": first.isoformat(), "to": last.isoformat()}
    month = {"from": (last - timedelta(days=29)).isoformat(), "to": last.isoformat()}
    week = {"from": (last - timedelta(days=6)).isoformat(), "to": last.isoformat()}
    store = {"store": stores[len(stores) // 2]}
    out: list[tuple[str, dict[str, str]]] = []
    for name, kind in rp.REPORTS.items():
        for rng in (year, month, week):
            out.append((name, dict(rng)))
            out.append((name, {**rng, **store}))
        for group in kind.groups[1:]:
            out.append((name, {**year, "group_by": group, **(store if group == "store_day" else {})}))
        if kind.by_category:
            out.append((name, {**year, "category": categories[0]}))
    return out


async def measure(db, world: World, first: date, last: date, chain: Chain) -> dict:
    today = last + timedelta(days=rp.SETTLE_AFTER_DAYS + 1)
    cloud = SimpleNamespace(db=db, world=world, now_ms=lambda: int(time.time() * 1000))
    cloud.now_ms = lambda: max(int(time.time() * 1000), day_ms(today))  # the history is settled
    reports = HqReports(cloud)
    categories = sorted({p.category for p in world.catalogue.by_sku.values()})
    per_report: dict[str, list[float]] = {name: [] for name in rp.REPORTS}
    timed: list[dict] = []
    for name, params in calls(first, last, chain.stores, categories):
        q = rp.parse_query(name, params)
        started = time.perf_counter()
        answer = await reports.answer(q)
        took = time.perf_counter() - started
        per_report[name].append(took)
        timed.append({"report": name, **params, "ms": round(took * 1000, 1), "rows": len(answer["rows"])})
    every = [s for samples in per_report.values() for s in samples]
    return {"report_ms": latency_ms(every), "reports": {name: {"calls": len(s), "ms": latency_ms(s)}
                                                         for name, s in per_report.items()},
            "calls": timed, "under_2s": all(s < 2.0 for s in every)}


async def run_async(stores: int, days: int, tickets: int, data_dir: Path, seed: int, fresh: bool) -> dict:
    world = World.load()
    server = PostgresServer(data_dir).start()
    try:
        db = await asyncpg.create_pool(server.url, min_size=1, max_size=4,
                                       server_settings={"synchronous_commit": "off"})  # a load database
        try:
            return await _run(db, world, stores, days, tickets, seed, fresh, data_dir)
        finally:
            await db.close()
    finally:
        server.stop()


async def _run(db, world: World, stores: int, days: int, tickets: int, seed: int, fresh: bool, data_dir: Path) -> dict:
    async with db.acquire() as conn:
        await migrate(conn)
        await conn.execute("create table if not exists loadtest_reports (params jsonb not null, first_day date not "
                           "null, last_day date not null, counts jsonb not null, generate_s float8 not null, "
                           "refresh_s float8 not null)")
        await conn.execute("alter table loadtest_reports add column if not exists rollup_version int not null "
                           "default 0")
    params = {"stores": stores, "days": days, "tickets": tickets, "seed": seed, "version": FORMAT_VERSION}
    made = await db.fetchrow("select * from loadtest_reports")
    chain = Chain(world, stores, seed)
    if made is not None and json.loads(made["params"]) == params and not fresh:
        first, last = made["first_day"], made["last_day"]
        gen = {"reused": True, "counts": json.loads(made["counts"]), "generate_s": made["generate_s"],
               "refresh_s": made["refresh_s"]}
        if made["rollup_version"] != ROLLUP_VERSION:  # the rollups changed shape: refreshed again from the raw rows
            progress = Progress("load reports")
            refreshed = await refresh_all(db, world, first, last, days, progress)
            progress.done()
            await db.execute("vacuum analyze")
            await db.execute("update loadtest_reports set refresh_s = $1, rollup_version = $2", refreshed,
                             ROLLUP_VERSION)
            gen["refresh_s"] = round(refreshed, 1)
    else:
        await _empty(db)
        last = chain_day(int(time.time() * 1000)) - timedelta(days=rp.SETTLE_AFTER_DAYS + 1)
        first = last - timedelta(days=days - 1)
        progress = Progress("load reports")
        started = time.perf_counter()
        async with db.acquire() as conn:  # bulk load: indexes are built once after it, not row by row
            indexes = await conn.fetch(BULK_INDEXES_SQL, list(BULK_TABLES))
            for ix in indexes:
                await conn.execute(f'drop index "{ix["indexname"]}"')
        try:
            counts = await generate(db, chain, first, days, tickets, progress)
        finally:
            progress.update("building indexes")
            for ix in indexes:
                await db.execute(ix["indexdef"])
        generated = time.perf_counter() - started
        refreshed = await refresh_all(db, world, first, last, days, progress)
        progress.done()
        await db.execute("vacuum analyze")
        await db.execute("insert into loadtest_reports values ($1, $2, $3, $4, $5, $6, $7)", json.dumps(params),
                         first, last, json.dumps(counts), generated, refreshed, ROLLUP_VERSION)
        gen = {"reused": False, "counts": counts, "generate_s": round(generated, 1), "refresh_s": round(refreshed, 1)}
    rollup_rows = {t: await db.fetchval(f"select count(*) from {t}") for t in (  # noqa: S608 - our table names
        "report_sales_day", "report_member_day", "report_promotion_day", "report_loss_day")}
    result = await measure(db, world, first, last, chain)
    return {"suite": "reports", "stores": stores, "days": days, "tickets_per_store_day": tickets,
            "data_dir": str(data_dir), "first_day": first.isoformat(), "last_day": last.isoformat(),
            "generation": gen, "rollup_rows": rollup_rows, **result}


async def refresh_all(db, world: World, first: date, last: date, days: int, progress: Progress) -> float:
    """Every day's rollups refreshed from the raw rows, a month per call, REFRESH_WORKERS at once; seconds taken."""
    cloud = SimpleNamespace(db=db, world=world, now_ms=lambda: int(time.time() * 1000))
    started = time.perf_counter()
    rollups = Rollups(cloud)
    months = [first + timedelta(days=d) for d in range(0, days, 30)]
    done: list[date] = []
    n_months = len(months)

    async def refresh(queue: list[date]) -> None:  # REFRESH_WORKERS of these: the days are independent
        while queue:
            a = queue.pop(0)
            await rollups.refresh(a, min(last, a + timedelta(days=29)))
            done.append(a)
            progress.update(f"rollups refreshed for {len(done)}/{n_months} months")
    await asyncio.gather(*(refresh(months) for _ in range(REFRESH_WORKERS)))
    return time.perf_counter() - started


async def _empty(db) -> None:
    """A database made with other parameters: its generated rows go (only the tables this suite writes)."""
    await db.execute("""truncate loadtest_reports, till_sales, orders, promotion_uses, promotion_baskets, loss_lines,
                        flash_sales, member_levels, member_segments, report_days, report_sales_day, report_member_day,
                        report_promotion_day, report_loss_day cascade""")


def run_from_args(args) -> dict:
    stores, days = args.stores, args.days
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir(stores, days)
    return asyncio.run(run_async(stores, days, args.tickets, data_dir, args.seed, args.fresh))
