"""Typed clients, one per actor kind: the only way the cloud's services, bridge and console reach an actor.

Each client knows its kind's shard map (a stock-pool command goes to the shard of its sku, a ledger command to its
member's) and sends through the one batching and retry path (`ActorCalls`). Commands and queries are the records
defined next to each actor; results are `Result`s (`result.succeeded`, `result.settled`).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ray.exceptions import RayActorError

from actors.base import AuditQuery, Result
from actors.flash_sale import LeaseSync, OpenSale, ReturnUnits, SaleStatusQuery
from actors.member_ledger import (
    Capture,
    GrantPoints,
    Hold,
    MemberQuery,
    RecordSpend,
    RedeemPoints,
    Refund,
    Release,
    Spend,
    TopUp,
)
from actors.order_router import (
    BookSlot,
    NearbyQuery,
    PickupPlanQuery,
    PlanQuery,
    ReleaseSlot,
    SlotsLeftQuery,
    UpsertStore,
)
from actors.promotion_budgets import (
    BudgetsQuery,
    Consume,
    GiveBack,
    GrantShare,
    LimitConflictsQuery,
    ReclaimShare,
    StoreSharesQuery,
    StoreUsed,
    TillMemberUses,
    TillSaleReturned,
)
from actors.stock_blocks import Carve, Uncarve
from actors.stock_pool import (
    MALL,
    AvailabilityQuery,
    Cancel,
    Confirm,
    Fulfil,
    Grant,
    PositionsQuery,
    Reclaim,
    ReportOnHand,
    Reroute,
    Reserve,
    SetChannelRatio,
    SetRatio,
)
from cloud.runtime.calls import ActorCalls
from cloud.runtime.registry import registry
from cloud.runtime.shard_map import ShardConfig

StockPoolCommand = (Grant | Reclaim | SetRatio | SetChannelRatio | ReportOnHand | Reserve | Confirm | Cancel | Fulfil
                    | Reroute | Carve | Uncarve)
MemberLedgerCommand = TopUp | Spend | RecordSpend | Refund | RedeemPoints | GrantPoints | Hold | Capture | Release
RouterCommand = UpsertStore | BookSlot | ReleaseSlot
BudgetCommand = Consume | GiveBack | GrantShare | StoreUsed | ReclaimShare | TillMemberUses | TillSaleReturned
REGISTRY_TIMEOUT_S = 3.0


class StockPoolClient:
    def __init__(self, calls: ActorCalls, shards: ShardConfig) -> None:
        self.calls, self.shards = calls, shards

    async def send(self, command: StockPoolCommand) -> Result:
        return await self.calls.submit(self.shards.stock_pool_name(command.sku), command)

    async def positions(self, store: str, sku: str | None = None) -> list[dict]:
        """One store's positions: one shard's when the sku is given, else every shard's."""
        names = [self.shards.stock_pool_name(sku)] if sku else self.shards.all_stock_pools()
        found = await asyncio.gather(*(self.calls.ask(n, PositionsQuery(store=store, sku=sku)) for n in names))
        return [p for positions in found for p in positions]

    async def availability(self, stores: list[str], skus: list[str], channel: str = MALL) -> dict[str, dict[str, int]]:
        """Units free to reserve in `channel`'s part (the mall's by default): {store: {sku: units}}, one query per
        shard involved."""
        by_shard: dict[str, list[tuple[str, str]]] = {}
        for sku in skus:
            by_shard.setdefault(self.shards.stock_pool_name(sku), []).extend((s, sku) for s in stores)
        out: dict[str, dict[str, int]] = {s: {} for s in stores}
        for name, pairs in by_shard.items():
            for key, qty in (await self.calls.ask(name, AvailabilityQuery(pairs=tuple(pairs), channel=channel))).items():
                store, sku = key.split("/", 1)
                out[store][sku] = qty
        return out

    async def audit(self) -> dict[str, list[str]]:
        return {n: await self.calls.ask(n, AuditQuery()) for n in self.shards.all_stock_pools()}


class MemberLedgerClient:
    def __init__(self, calls: ActorCalls, shards: ShardConfig) -> None:
        self.calls, self.shards = calls, shards
        # called with every command's answer (each names the member's level): level changes go to the stores at
        # once, whoever's command crossed the threshold (cloud/services/member_levels.py; set by the wiring)
        self.on_result: Callable[[Result], Awaitable[None]] | None = None

    async def send(self, command: MemberLedgerCommand) -> Result:
        result = await self.calls.submit(self.shards.member_ledger_name(command.member), command)
        if self.on_result is not None:
            await self.on_result(result)
        return result

    async def member(self, member: str, now_ms: int) -> dict:
        """Stored value, points and level."""
        view: dict = await self.calls.ask(self.shards.member_ledger_name(member), MemberQuery(member=member, now_ms=now_ms))
        return view

    async def audit(self) -> dict[str, list[str]]:
        return {n: await self.calls.ask(n, AuditQuery()) for n in self.shards.all_member_ledgers()}


class RouterClient:
    def __init__(self, calls: ActorCalls, shards: ShardConfig) -> None:
        self.calls, self.name = calls, shards.order_router_name()

    async def send(self, command: RouterCommand) -> Result:
        return await self.calls.submit(self.name, command)

    async def load(self, commands: list[UpsertStore]) -> list[Result]:
        return await self.calls.call(self.name, list(commands))

    async def nearby(self, lat: float, lon: float, fulfilment: str, slot_start_ms: int) -> list[str]:
        """Stores that could serve this point at this slot, nearest first."""
        found = await self.calls.ask(self.name, NearbyQuery(lat=lat, lon=lon, fulfilment=fulfilment,
                                                            slot_start_ms=slot_start_ms))
        return [store for store, _ in found]

    async def slots_left(self, store: str, slot_starts_ms: list[int]) -> dict[int, int]:
        """Places left in each of these slots of the store (a read: nothing is booked)."""
        found = await self.calls.ask(self.name, SlotsLeftQuery(store=store, slot_starts_ms=tuple(slot_starts_ms)))
        return {int(start): int(left) for start, left in found}

    async def plan(self, items: dict[str, int], candidates: list[str], availability: dict) -> dict:
        plan: dict = await self.calls.ask(self.name, PlanQuery(items=tuple(items.items()), candidates=tuple(candidates),
                                                               availability=availability))
        return plan

    async def plan_pickup(self, store: str, items: dict[str, int], slot_start_ms: int, lat: float, lon: float,
                          availability: dict) -> dict:
        plan: dict = await self.calls.ask(self.name, PickupPlanQuery(
            store=store, items=tuple(items.items()), slot_start_ms=slot_start_ms, lat=lat, lon=lon,
            availability=availability))
        return plan

    async def info(self) -> dict:
        return await self.calls.info(self.name)


class PromotionBudgetsClient:
    """The chain's one PromotionBudgets actor (actors/promotion_budgets.py)."""

    def __init__(self, calls: ActorCalls, shards: ShardConfig) -> None:
        self.calls, self.name = calls, shards.promotion_budgets_name()

    async def send(self, command: BudgetCommand) -> Result:
        return await self.calls.submit(self.name, command)

    async def budgets(self, rule_ids: list[str], member: str = "") -> dict[str, dict]:
        found: dict[str, dict] = await self.calls.ask(self.name, BudgetsQuery(rule_ids=tuple(rule_ids), member=member))
        return found

    async def audit(self) -> list[str]:
        problems: list[str] = await self.calls.ask(self.name, AuditQuery())
        return problems

    async def store_shares(self, store: str) -> dict[str, dict]:
        found: dict[str, dict] = await self.calls.ask(self.name, StoreSharesQuery(store=store))
        return found

    async def limit_conflicts(self, store: str = "", limit: int = 200) -> list[dict]:
        found: list[dict] = await self.calls.ask(self.name, LimitConflictsQuery(store=store, limit=limit))
        return found


class FlashSaleClient:
    """One sale's gate. Syncs are batches already (a worker's admitted sales), so they go at once, unbatched."""

    def __init__(self, calls: ActorCalls, name: str) -> None:
        self.calls, self.name = calls, name

    async def open(self, command: OpenSale) -> Result:
        (result,) = await self.calls.call(self.name, [command])
        return result

    async def sync(self, command: LeaseSync) -> Result:
        (result,) = await self.calls.call(self.name, [command])
        return result

    async def return_units(self, command: ReturnUnits) -> Result:
        (result,) = await self.calls.call(self.name, [command])
        return result

    async def status(self) -> dict:
        status: dict = await self.calls.ask(self.name, SaleStatusQuery())
        return status

    async def audit(self) -> list[str]:
        problems: list[str] = await self.calls.ask(self.name, AuditQuery())
        return problems


class StoreRegistryClient:
    """Liveness and lag of the stores: soft state, so a failure answers with nothing rather than an error. A handle
    to a registry that is gone is looked up by name again, once per call (as `ActorCalls` does)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.handle = registry(prefix)

    async def _once_more(self, call):
        try:
            return await call(self.handle)
        except RayActorError:
            self.handle = registry(self.prefix)
            return await call(self.handle)

    async def view(self, now_ms: int, store_id: str | None = None) -> list[dict]:
        view: list[dict] = await self._once_more(
            lambda h: asyncio.wait_for(h.view.remote(now_ms, store_id), REGISTRY_TIMEOUT_S))
        return view

    async def report(self, heartbeats: list[dict], lags: list[list]) -> None:
        await self._once_more(lambda h: h.report.remote(heartbeats, lags))


class Actors:
    """Every actor kind's client, for one cloud process."""

    def __init__(self, database_url: str, shards: ShardConfig, expire_every_ms: int = 1_000) -> None:
        self.calls = ActorCalls(database_url, expire_every_ms)
        self.shards = shards
        self.stock_pool = StockPoolClient(self.calls, shards)
        self.member_ledger = MemberLedgerClient(self.calls, shards)
        self.router = RouterClient(self.calls, shards)
        self.budgets = PromotionBudgetsClient(self.calls, shards)
        self.registry = StoreRegistryClient(shards.prefix)

    def flash_sale(self, sale_id: str) -> FlashSaleClient:
        return FlashSaleClient(self.calls, self.shards.flash_sale_name(sale_id))

    async def warm(self) -> list[str]:
        """Start every long-lived actor (made on first use, then rebuilt from its journal) and wait until each
        answers: a cloud that starts serving with cold actors makes its first callers wait seconds (measured: a
        store back online waited 2 s on its first batch, `freshmesh load catchup`). Returns their names."""
        names = [*self.shards.all_sharded(), self.shards.order_router_name(), self.shards.promotion_budgets_name()]
        await asyncio.gather(*(self.calls.info(name) for name in names))
        return names

    async def audit(self, sale_ids: list[str]) -> dict[str, list[str]]:
        """Every audited actor's invariant check, by actor name."""
        report = {**await self.stock_pool.audit(), **await self.member_ledger.audit(),
                  self.budgets.name: await self.budgets.audit()}
        sales = [self.flash_sale(sale_id) for sale_id in sale_ids]
        for sale, problems in zip(sales, await asyncio.gather(*(sale.audit() for sale in sales)), strict=True):
            report[sale.name] = problems
        return report
