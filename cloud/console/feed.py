"""The operator console's shell: gathers what `cloud.console.snapshot` turns into a snapshot, and feeds the watchers.

One `ConsoleFeed` per API process (each uvicorn worker serves the console on its own). While at least one
watcher is subscribed, one producer builds a snapshot every `tick_s` and hands the same snapshot to every
watcher; with no watcher nothing runs. A slow watcher only ever gets the newest snapshot (queues of one), so
nothing piles up. What costs is not done per tick: the PostgreSQL figures every `business_every_s` and the
invariant audit every `audit_every_s`, each in a background task, so a slow query never delays a tick.

Sources, and why these:
- actors: the actor table and each live actor's cheap `stats()`, with a short timeout (a dead or busy actor
  simply has none), through `cloud/runtime/inventory.py`;
- stores: the StoreRegistry actor's view (soft state from heartbeats);
- business: SQL over orders, till_sales, stock_movements and flash_sales (index ranges from the day's start, see
  migration 4), plus the flash gates' status, and today's top-ups read incrementally from the member ledgers'
  journal (they are recorded nowhere else). "Today" is the chain's local day: the rule book's UTC offset;
- audit: every live stock pool, member ledger and flash gate's own `audit()`, and the money journal's.
Looking never creates an actor (see the inventory).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from actors.base import AuditQuery, Query
from actors.flash_sale import SaleStatusQuery
from cloud.console.backend import backend_health
from cloud.console.snapshot import (
    ConsoleConfig,
    ConsoleInputs,
    ConsoleMemory,
    build_snapshot,
    local_day_start_ms,
    parse_actor_name,
)
from cloud.runtime.inventory import ActorInventory
from cloud.services import losses
from protocol import order_lifecycle as lifecycle
from protocol.codec import unpack

REGISTRY_TIMEOUT_S = 2.0
AUDIT_TIMEOUT_S = 20.0
ASK_TIMEOUT_S = 5.0
AUDITED_KINDS = ("stock_pool", "member_ledger", "flash_sale")
FLASH_RECENT_MS = 3_600_000  # ended sales stay on the console this long
FLASH_MAX = 20
JOURNAL_PAGE = 20_000  # journal rows read per ledger per refresh: catching up is spread over refreshes
log = logging.getLogger("freshmesh.console")


class TopUpTally:
    """Today's stored-value top-ups, counted from the member ledgers' journals, incrementally per shard."""

    def __init__(self) -> None:
        self.day_start_ms: int | None = None
        self.cursor: dict[str, int] = {}
        self.count = self.fen = 0

    async def refresh(self, conn, ledgers: list[str], day_start_ms: int) -> dict:
        if day_start_ms != self.day_start_ms:
            self.day_start_ms, self.cursor, self.count, self.fen = day_start_ms, {}, 0, 0
        for actor in ledgers:
            if actor not in self.cursor:
                self.cursor[actor] = await self._first_seq_of_day(conn, actor, day_start_ms) - 1
            rows = await conn.fetch("select seq, at_ms, command from actor_journal where actor = $1 and seq > $2 "
                                    "order by seq limit $3", actor, self.cursor[actor], JOURNAL_PAGE)
            for row in rows:
                self.cursor[actor] = row["seq"]
                if row["at_ms"] < day_start_ms:
                    continue
                command = unpack(row["command"])
                if isinstance(command, dict) and command.get("op") == "topup":
                    self.count += 1
                    self.fen += int(command.get("amount_fen") or 0)
        return {"count": self.count, "fen": self.fen}

    @staticmethod
    async def _first_seq_of_day(conn, actor: str, day_start_ms: int) -> int:
        """Binary search over the journal's primary key (seq grows with time): a few indexed look-ups instead of
        scanning a journal that is never truncated."""
        low, high = 1, (await conn.fetchval("select max(seq) from actor_journal where actor = $1", actor) or 0) + 1
        while low < high:
            mid = (low + high) // 2
            at = await conn.fetchval("select at_ms from actor_journal where actor = $1 and seq >= $2 order by seq "
                                     "limit 1", actor, mid)
            if at is None or at >= day_start_ms:
                high = mid
            else:
                low = mid + 1
        return low


class ConsoleFeed:
    def __init__(self, services, config: ConsoleConfig) -> None:
        self.services, self.config = services, config
        self.memory = ConsoleMemory()
        self.latest: dict | None = None
        self._subscribers: set[asyncio.Queue] = set()
        self._producer: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.inventory = ActorInventory()
        self._alive: dict[str, dict] = {}  # name -> actor table row, from the last look
        self._business: dict | None = None
        self._business_error: str | None = None
        self._audit: dict | None = None
        self._refreshers: dict[str, asyncio.Task] = {}
        self._due: dict[str, float] = {}
        self._topups = TopUpTally()

    def _monotonic_s(self) -> float:
        return self.services.cloud.clock.monotonic_ms() / 1000

    # ---- watchers -----------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue]:
        """A queue that receives every new snapshot (only the newest is kept); leaving unsubscribes, and the
        last one out stops the producer."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        self._subscribers.add(queue)
        if self.latest is not None:
            queue.put_nowait(self.latest)
        if self._producer is None or self._producer.done():
            self._producer = asyncio.create_task(self._produce(), name="console-producer")
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
            if not self._subscribers and self._producer is not None:
                self._producer.cancel()
                self._producer = None

    @property
    def watchers(self) -> int:
        return len(self._subscribers)

    async def snapshot(self) -> dict:
        """The newest snapshot if the producer made one within two ticks, else a fresh one."""
        if self.latest is not None and self.services.cloud.now_ms() - self.latest["at_ms"] < 2000 * self.config.tick_s:
            return self.latest
        return await self._build()

    async def _produce(self) -> None:
        while True:
            started = self._monotonic_s()
            try:
                snap = await self._build()
            except Exception:  # noqa: BLE001 - a broken tick must not end the feed; the next one tries again
                log.exception("console snapshot failed")
            else:
                for queue in list(self._subscribers):
                    if queue.full():
                        queue.get_nowait()
                    queue.put_nowait(snap)
            await asyncio.sleep(max(self.config.tick_s - (self._monotonic_s() - started), 0.05))

    async def close(self) -> None:
        tasks = [t for t in [self._producer, *self._refreshers.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._producer, self._refreshers = None, {}

    # ---- one snapshot -------------------------------------------------------------------------------------
    async def _build(self) -> dict:
        async with self._lock:  # the producer and a /console/snapshot request share one memory
            cloud = self.services.cloud
            inputs = ConsoleInputs(now_ms=0, prefix=cloud.shards.prefix, worker=self.services.worker_id,
                                   stores={s.store_id: s.name for s in cloud.world.stores.values()},
                                   utc_offset_minutes=cloud.world.rule_book.utc_offset_minutes)
            (actors, stats, nodes), registry, backend = await asyncio.gather(
                self._actors(inputs), self._registry(inputs), backend_health(cloud))
            # after the actor table is read: the audit and the flash figures ask the actors it lists
            self._start_due("business", self.config.business_every_s, self._refresh_business)
            self._start_due("audit", self.config.audit_every_s, self._refresh_audit)
            inputs.actors, inputs.actor_stats, inputs.nodes, inputs.registry = actors, stats, nodes, registry
            inputs.business, inputs.audit = self._business, self._audit
            if self._business_error:
                inputs.errors["business figures"] = self._business_error
            if self._audit and self._audit.get("error"):
                inputs.errors["invariant audit"] = self._audit["error"]
            inputs.now_ms = cloud.now_ms()
            self.latest = build_snapshot(inputs, self.memory, self.config)
            self.latest["watchers"] = self.watchers
            self.latest["backend"] = backend  # NATS, PostgreSQL, bridge backlog, dead letters (cloud/console/backend.py)
            return self.latest

    def _start_due(self, name: str, every_s: float, refresh) -> None:
        now = self._monotonic_s()
        task = self._refreshers.get(name)
        if (task is None or task.done()) and now >= self._due.get(name, 0):
            self._due[name] = now + every_s
            self._refreshers[name] = asyncio.create_task(refresh(), name=f"console-{name}")

    async def _actors(self, inputs: ConsoleInputs):
        try:
            table = await self.inventory.actor_table()
        except Exception as exc:  # noqa: BLE001 - e.g. the GCS briefly unreachable
            inputs.errors["Ray actor table"] = f"{type(exc).__name__}: {exc}"
            return None, {}, {}
        ours = [a for a in table if parse_actor_name(a["name"], inputs.prefix) is not None]
        nodes = {a["node_id"]: f"{a['address']} ({a['node_id'][:8]})" for a in ours if a["node_id"]}
        alive = [a for a in ours if a["state"] == "ALIVE"]
        self._alive = {a["name"]: a for a in alive}
        answers = await asyncio.gather(*(self.inventory.stats(a, self.config.stats_timeout_s) for a in alive))
        return ours, {a["name"]: s for a, s in zip(alive, answers, strict=True)}, nodes

    async def ask(self, name: str, query: Query, timeout_s: float = ASK_TIMEOUT_S):
        """A query to a live actor of ours; None when it is not running."""
        actor = self._alive.get(name)
        if actor is None:
            return None
        return await self.inventory.ask(actor, query, timeout_s)

    async def audit(self) -> dict:
        """The invariant audit of every live stock pool, member ledger and flash gate."""
        prefix = self.services.cloud.shards.prefix
        # every live name parses: _alive holds only this system's actors
        names = sorted(n for n in self._alive if (parse_actor_name(n, prefix) or ("", ""))[0] in AUDITED_KINDS)
        reports = await asyncio.gather(*(self.ask(n, AuditQuery()) for n in names), return_exceptions=True)
        violations, failed = [], []
        for name, report in zip(names, reports, strict=True):
            if isinstance(report, BaseException):
                failed.append(f"{name}: {type(report).__name__}")
            elif report is None:  # gone since the actor table was read: it was not audited, so it cannot pass
                failed.append(f"{name}: not running")
            else:
                violations += [f"{name}: {p}" for p in report]
        try:  # the money journal's invariant: every charge matched by a paid order or a refund
            violations += [f"money: {p}" for p in await self.services.stock.money_audit()]
        except Exception as exc:  # noqa: BLE001 - shown as unanswered, like an actor that did not answer
            failed.append(f"money journal: {type(exc).__name__}")
        return {"asked": len(names), "actors": len(names) - len(failed), "violations": violations,
                "unanswered": failed}

    async def _registry(self, inputs: ConsoleInputs):
        try:
            return await asyncio.wait_for(self.services.cloud.actors.registry.view(self.services.cloud.now_ms()),
                                          REGISTRY_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001
            inputs.errors["store registry"] = f"{type(exc).__name__}: {exc}"[:300]
            return None

    async def _refresh_audit(self) -> None:
        started = self.services.cloud.now_ms()
        try:
            report = await asyncio.wait_for(self.audit(), AUDIT_TIMEOUT_S)
            self._audit = {"at_ms": started, **report}
        except Exception as exc:  # noqa: BLE001 - shown as a warning; the last good audit is not kept as if fresh
            self._audit = {"at_ms": started, "error": f"{type(exc).__name__}: {exc}"[:300], "violations": []}

    async def _refresh_business(self) -> None:
        try:
            offset = self.services.cloud.world.rule_book.utc_offset_minutes  # the chain's one time zone
            self._business = await business_figures(self.services, self._topups, self.ask, offset)
            self._business_error = None
        except Exception as exc:  # noqa: BLE001 - keep the last figures (their age is shown) and say why
            log.warning("console business figures failed: %s", exc)
            self._business_error = f"{type(exc).__name__}: {exc}"[:300]


# Today's figures. Each query reads an index range from the day's start (migration 4): none scans its table, and
# none expands a till sale's JSON (the stored-value amount is a column computed when the sale was recorded).
TILL_SQL = """select store_id, count(*) as count, coalesce(sum(total_fen), 0)::bigint as fen,
                     count(*) filter (where stored_value_fen > 0) as sv_count,
                     coalesce(sum(stored_value_fen), 0)::bigint as sv_fen
              from till_sales where wall_ms >= $1 group by store_id"""
ORDERS_SQL = """select status, group_held, kind, count(*) as count, coalesce(sum(total_fen), 0)::bigint as fen,
                       count(*) filter (where payment->>'method' = 'stored_value') as sv_count,
                       coalesce(sum(total_fen) filter (where payment->>'method' = 'stored_value'), 0)::bigint as sv_fen
                from orders where created_ms >= $1 group by status, group_held, kind"""
# An online sale belongs to the store it was allocated to; split and flash orders are shown as such.
ONLINE_SQL = """select case when kind = 'flash' then '(flash)'
                            when (select count(*) from jsonb_object_keys(allocation)) = 1
                            then (select k from jsonb_object_keys(allocation) k limit 1) else '(split)' end as store_id,
                       count(*) as count, coalesce(sum(total_fen), 0)::bigint as fen
                from orders where created_ms >= $1 and status = any($2::text[]) group by 1"""
# Shrinkage by reason and SKU (quantities are pieces or grams depending on the SKU, so only their value adds up),
# from every shrinkage movement's loss lines, with its value at cost per lot: `cloud.services.losses.today_rows`.
# Refused store events (dead letters) today: per store, and the newest few with their reasons. Index ranges: the
# per-store count walks today's rows by `at_ms`, the list the newest ids (migration 11's indexes).
REFUSED_BY_STORE_SQL = """select store_id, count(*) as count, max(at_ms) as last_ms from dead_letters
                          where at_ms >= $1 group by store_id"""
REFUSED_RECENT_SQL = """select store_id, subject, reason, raw_bytes, at_ms from dead_letters where at_ms >= $1
                        order by id desc limit $2"""
REFUSED_RECENT_MAX = 20
FLASH_SQL = """select sale_id, config from flash_sales where (config->>'ends_ms')::bigint >= $1
               order by (config->>'ends_ms')::bigint desc limit $2"""


async def business_figures(services, topups: TopUpTally, ask, utc_offset_minutes: int) -> dict:
    """Today's figures from PostgreSQL and the flash gates (raw rows; `cloud.console.business_view` shapes them).
    "Today" is the chain's local day (`utc_offset_minutes`), the same offset the page shows times in."""
    cloud = services.cloud
    now = cloud.now_ms()
    day = local_day_start_ms(now, utc_offset_minutes)
    async with cloud.db.acquire() as conn:
        till = await conn.fetch(TILL_SQL, day)
        orders = await conn.fetch(ORDERS_SQL, day)
        online = await conn.fetch(ONLINE_SQL, day, list(lifecycle.PAID_STATUSES))
        shrink = await losses.today_rows(conn, day, cloud.world.catalogue)
        sales = await conn.fetch(FLASH_SQL, now - FLASH_RECENT_MS, FLASH_MAX)
        refused_by_store = await conn.fetch(REFUSED_BY_STORE_SQL, day)
        refused_recent = await conn.fetch(REFUSED_RECENT_SQL, day, REFUSED_RECENT_MAX)
        topped = await topups.refresh(conn, cloud.shards.all_member_ledgers(), day)
        groups = await services.group_buys.views.console_rows(conn, now)  # open groups, and recently ended ones
    flash = await asyncio.gather(*(_flash_status(cloud, ask, r["sale_id"]) for r in sales))
    # when the counters the rates come from (sold, throttled) were read: the queries before take a varying time
    rates_at = cloud.now_ms()
    from prometheus_client import REGISTRY
    products = cloud.world.catalogue.by_sku
    return {
        "day_start_ms": day, "at_ms": now, "rates_at_ms": rates_at,
        "till_by_store": [dict(r) for r in till],
        "orders": [dict(r) for r in orders], "online_by_store": [dict(r) for r in online],
        "shrinkage": shrink, "topups": topped, "flash": [f for f in flash if f is not None],
        "refused_by_store": [dict(r) for r in refused_by_store], "refused_recent": [dict(r) for r in refused_recent],
        "group_buys": groups,
        # list prices of the SKUs written off today: what the shrinkage is worth (a SKU no longer sold has none)
        "prices": {r["sku"]: {"unit": products[r["sku"]].unit, "price_fen": products[r["sku"]].price_fen}
                   for r in shrink if r["sku"] in products},
        # 429s answered by this process (each API worker throttles its own share of a sale's rate)
        "flash_throttled_total": REGISTRY.get_sample_value("freshmesh_flash_orders_total", {"outcome": "throttled"}) or 0.0,
    }


async def _flash_status(cloud, ask, sale_id: str) -> dict | None:
    try:
        s = await ask(cloud.shards.flash_sale_name(sale_id), SaleStatusQuery())
    except Exception as exc:  # noqa: BLE001 - a gate restarting: the sale is left out of this refresh
        log.info("flash sale %s status unavailable: %s", sale_id, exc)
        return None
    if not s or not s.get("sale_id"):
        return None
    return {"sale_id": sale_id, "sku": s["sku"], "quantity": s["quantity"], "sold": s["sold"],
            "remaining": s["remaining"], "leased": s["leased"], "rate_per_s": s["rate_per_s"],
            "price_fen": s["price_fen"], "starts_ms": s["starts_ms"], "ends_ms": s["ends_ms"]}
