"""Wiring a cloud process: connect to PostgreSQL, Ray, NATS; load the world; start the bridge and sweepers.

Several API processes may run side by side (uvicorn workers); exactly one of them (`background=True`) also runs
the NATS bridge and the order-expiry sweeper.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket

import asyncpg
import nats

from cloud.actor_client import ActorClient
from cloud.bridge import Bridge
from cloud.console import ConsoleConfig
from cloud.context import Cloud
from cloud.flash import FlashSales
from cloud.members import Members
from cloud.migrations import migrate
from cloud.orders import Orders
from cloud.ray_hosts import ensure_ray
from cloud.registry_host import registry
from cloud.shards import ShardConfig
from cloud.world import World
from cloud.world_admin import WorldAdmin
from protocol.schema import to_wire

EXPIRY_SWEEP_S = 1.0
log = logging.getLogger("freshmesh.cloud")


class Services:
    def __init__(self, cloud: Cloud, registry_handle, worker_id: str) -> None:
        self.cloud, self.registry, self.worker_id = cloud, registry_handle, worker_id
        self.orders, self.members = Orders(cloud), Members(cloud)
        self.flash = FlashSales(cloud, worker_id)
        self.world_admin = WorldAdmin(cloud)
        self.bridge: Bridge | None = None
        self._tasks: list[asyncio.Task] = []
        self.console_config = ConsoleConfig.from_env()  # may be replaced before the console is first used
        self._console = None

    async def registry_view(self, store_id: str | None = None) -> list[dict]:
        try:
            return await asyncio.wait_for(self.registry.view.remote(store_id), 3)
        except Exception as exc:  # noqa: BLE001 - liveness is soft: answer without it rather than fail
            log.warning("store registry unavailable: %s", exc)
            return []

    async def stock_view(self, store_id: str, sku: str | None = None) -> dict:
        shards = self.cloud.shards
        positions = {}
        for name in [shards.stock_pool_name(sku)] if sku else shards.all_stock_pools():
            for p in await self.cloud.actors.read(name, "view", store_id, sku):
                positions[p["sku"]] = p
        on_hand = {r["sku"]: r for r in await self.cloud.db.fetch(
            "select sku, on_hand, updated_ms from store_stock where store_id = $1 and ($2::text is null or sku = $2)",
            store_id, sku)}
        live = next(iter(await self.registry_view(store_id)), {})  # one store's liveness, not all of them
        skus = sorted(set(positions) | set(on_hand))
        return {"store_id": store_id, "lag_ms": live.get("lag_ms"), "lag_p99_ms": live.get("lag_p99_ms"),
                "online": live.get("online", False), "outbox_depth": live.get("outbox_depth"),
                "stock": [{"sku": sku, "on_hand": on_hand[sku]["on_hand"] if sku in on_hand else None,
                           "escrow": positions.get(sku, {}).get("escrow", 0),
                           "reserved": positions.get(sku, {}).get("pending", 0),
                           "confirmed": positions.get(sku, {}).get("confirmed", 0),
                           "available_online": positions.get(sku, {}).get("available", 0),
                           "presale": positions.get(sku, {}).get("presale", True)} for sku in skus]}

    async def audit(self) -> dict:
        """Every actor's invariant audit; `violations` is empty when all hold."""
        shards = self.cloud.shards
        names = shards.all_stock_pools() + shards.all_member_ledgers() + [
            shards.flash_sale_name(r["sale_id"]) for r in await self.cloud.db.fetch("select sale_id from flash_sales")]
        report = {name: await self.cloud.actors.read(name, "audit") for name in names}
        return {"actors": len(report), "violations": [f"{n}: {p}" for n, problems in report.items() for p in problems]}

    def console(self):
        """This process's operator-console feed (made on first use; it runs only while someone watches)."""
        if self._console is None:
            from cloud.console_feed import ConsoleFeed
            self._console = ConsoleFeed(self, self.console_config)
        return self._console

    def extra_routes(self) -> list:
        return []

    async def start_background(self) -> None:
        self.bridge = await Bridge(self.cloud, self.registry).start()
        self._tasks.append(asyncio.create_task(self._sweep_expired()))
        await self.world_admin.broadcast()  # a store that was down while the book changed gets the current one

    async def _sweep_expired(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_S)
            try:
                await self.orders.expire_due()
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("expiry sweep failed: %s", exc)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._console is not None:
            await self._console.close()
        await self.flash.close()
        if self.bridge:
            await self.bridge.stop()
        if self.cloud.nats is not None:
            await self.cloud.nats.close()
        await self.cloud.db.close()


async def load_world_into_router(cloud: Cloud) -> None:
    commands = []
    for store in cloud.world.stores.values():
        digest = hashlib.blake2b(json.dumps(to_wire(store), sort_keys=True).encode(), digest_size=6).hexdigest()
        commands.append(store.router_command(f"world:{store.store_id}:{digest}"))
    if commands:
        results = await cloud.actors.call(cloud.shards.order_router_name(), commands)
        bad = [r for r in results if r["status"] not in ("ok", "exists")]
        if bad:
            raise RuntimeError(f"the order router refused stores of the world: {bad[:3]}")


async def start_services(world: World, database_url: str, nats_url: str | None, operator_token: str,
                         shards: ShardConfig | None = None, background: bool = True, clock=None,
                         reservation_ttl_ms: int | None = None, explicit_world: bool = False) -> Services:
    ensure_ray()
    shards = shards or ShardConfig()
    db = await asyncpg.create_pool(database_url, min_size=2, max_size=10, command_timeout=10)
    async with db.acquire() as conn:
        await migrate(conn)
    kwargs = {"clock": clock} if clock else {}
    if reservation_ttl_ms:
        kwargs["reservation_ttl_ms"] = reservation_ttl_ms
    cloud = Cloud(world=world, db=db, actors=ActorClient(database_url), shards=shards, operator_token=operator_token,
                  **kwargs)
    admin = WorldAdmin(cloud)
    await admin.adopt(world, explicit_world)
    await load_world_into_router(cloud)
    if nats_url:
        cloud.nats = await nats.connect(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=1,
                                        name=f"freshmesh-cloud-{os.getpid()}")
    worker_id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
    services = Services(cloud, registry(shards.prefix), worker_id)
    services.world_admin = admin
    services._tasks.append(asyncio.create_task(admin.follow()))
    if background and cloud.nats is not None:
        await services.start_background()
    return services
