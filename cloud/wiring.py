"""Wiring a cloud process: connect to PostgreSQL, Ray, NATS; load the world; start the bridge and sweepers.

Several API processes may run side by side (uvicorn workers); exactly one of them (`background=True`) also runs
the NATS bridge and the order-expiry and money sweeper (`Orders.sweep_money`: half-done money sagas finished or
undone, late provider notifications replaced by a query).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import time

import asyncpg
import nats

from cloud.console.snapshot import ConsoleConfig
from cloud.context import Cloud
from cloud.keys import KeyRing
from cloud.messaging import points_till
from cloud.messaging.bridge import Bridge
from cloud.messaging.coupon_desk import CouponDesk
from cloud.messaging.limits_desk import LimitsDesk
from cloud.messaging.points_till import PointsDesk
from cloud.messaging.stored_value import HoldDesk
from cloud.messaging.till_registrations import RegistrationDesk
from cloud.migrations import migrate
from cloud.runtime.clients import Actors
from cloud.runtime.hosting import ensure_ray
from cloud.runtime.shard_guard import settle_shard_map
from cloud.runtime.shard_map import ShardConfig
from cloud.services.after_sales import AfterSales
from cloud.services.allocations import Allocations
from cloud.services.bookings import Bookings
from cloud.services.channel_shares import ChannelShares
from cloud.services.deliveries import Deliveries
from cloud.services.flash_sales import FlashSales
from cloud.services.flash_stores import ASSIGN_BATCH_MAX as FLASH_ASSIGN_BATCH_MAX
from cloud.services.flash_stores import ASSIGN_EVERY_MS as FLASH_ASSIGN_EVERY_MS
from cloud.services.group_buys import GroupBuys
from cloud.services.identity import Identity
from cloud.services.marketplace_api import HttpMarketplace, marketplaces_from_env
from cloud.services.marketplace_orders import MarketplaceOrders
from cloud.services.marketplace_stock import MarketplaceStock
from cloud.services.member_levels import MemberLevels
from cloud.services.members import Members
from cloud.services.operators import Operators
from cloud.services.orders import Orders
from cloud.services.passes import FlashPasses
from cloud.services.pii import Pii, seal_clear_phones
from cloud.services.points_exchange import PointsExchange
from cloud.services.presale import Presales
from cloud.services.report_rollup import Rollups
from cloud.services.restock import Restock
from cloud.services.riders import HttpRiderPlatform, riders_from_env
from cloud.services.segments import Segments
from cloud.services.sms import HttpSmsProvider
from cloud.services.stalls import Stalls
from cloud.services.stock import StockViews
from cloud.services.surveys import Surveys
from cloud.services.transfer_approvals import TransferApprovals
from cloud.services.transfers import Transfers
from cloud.services.wallet import HttpPayProvider, wallet_from_env
from cloud.services.world_admin import WorldAdmin
from cloud.world import World
from protocol.schema import to_wire

EXPIRY_SWEEP_S = 1.0
log = logging.getLogger("freshmesh.cloud")


class Services:
    def __init__(self, cloud: Cloud, worker_id: str, sms: HttpSmsProvider | None = None,
                 wallet: HttpPayProvider | None = None, riders: HttpRiderPlatform | None = None,
                 world_admin: WorldAdmin | None = None, marketplaces: list[HttpMarketplace] | None = None) -> None:
        self.cloud, self.worker_id = cloud, worker_id
        self.orders, self.members, self.stock = Orders(cloud, wallet), Members(cloud), StockViews(cloud)
        self.payments = self.orders.payments
        self.members.payments = self.payments
        self.deliveries = Deliveries(cloud, self.orders, riders)
        self.orders.on_ready = self._on_ready  # a picked delivery order goes to a rider (a marketplace's: its own)
        self.orders.on_cancelled = self._on_cancelled  # ... and is withdrawn if the order is cancelled
        self.payments.on_balance_changed = self.members.balance_changed
        self.levels = MemberLevels(cloud, self.members.balance_changed)  # a new level goes to every store at once
        cloud.actors.member_ledger.on_result = self.levels.on_ledger_result
        self.after_sales = AfterSales(cloud, self.payments)
        self.identity = Identity(cloud, self.members, sms, cloud.keys.sign_in_code_key)
        self.passes = FlashPasses(cloud.keys.pass_signing_key, cloud.clock)
        self.flash = FlashSales(cloud, worker_id)
        self.operators = Operators(cloud.db, cloud.clock, cloud.ids)
        # the one that adopted the world (`start_services`): every writer of the world shares its version and lock
        self.world_admin = world_admin or WorldAdmin(cloud)
        self.stalls = Stalls(cloud, self.world_admin)  # market stalls (cloud/services/stalls.py)
        self.allocations = Allocations(cloud)
        self.channel_shares = ChannelShares(cloud)  # marketplaces' shares of the stores' online escrow
        # the marketplaces the stores sell on (issue 23): each store's part of the escrow and prices pushed there
        self.marketplaces = {m.marketplace: m for m in marketplaces or ()}
        self.marketplace_stock = [MarketplaceStock(cloud, m) for m in self.marketplaces.values()]
        self.marketplace_orders = MarketplaceOrders(cloud, self.orders, self.after_sales, self.marketplaces)
        self.after_sales.on_decided = self.marketplace_orders.refund_decided  # a marketplace's refund: told its way
        self.restock = Restock(cloud)  # reorder points, restock alerts' view (cloud/services/restock.py)
        self.orders.presales = self.presales = Presales(self.orders, self.restock.lead_days)  # out of stock but due
        self.transfers = Transfers(cloud)  # transfers between stores, asked by HQ or routing
        self.transfer_approvals = TransferApprovals(cloud)  # a store manager's ask, approved by the sending store
        self.coupons = self.orders.coupons  # coupons: definitions, wallets, the one authority on codes
        self.orders.groups = self.group_buys = GroupBuys(cloud, self.orders)  # group buys: orders held until formed
        self.segments = Segments(cloud)  # member profiles, RFM segments, campaigns (cloud/services/segments.py)
        # points: the points shop sells coupon definitions with a points price, issued by the coupons authority
        self.points_exchange, self.surveys = PointsExchange(cloud, self.coupons.issue_for_points), Surveys(cloud)
        self.points_exchange.on_balance_changed = self.surveys.on_balance_changed = self.members.balance_changed
        self.bookings = Bookings(cloud)  # local services booking: service books, bookings, schedules (issue 21)
        self.bridge: Bridge | None = None
        self.holds: HoldDesk | None = None  # every process with NATS answers the tills' holds (a queue group)
        self.coupon_desk: CouponDesk | None = None  # ... and the tills' coupon requests (cloud/messaging/coupon_desk.py)
        self.limits_desk: LimitsDesk | None = None  # ... and their members' limited rules (cloud/messaging/limits_desk.py)
        self.points_desk: PointsDesk | None = None  # ... and their points holds
        self.registration_desk: RegistrationDesk | None = None  # ... and their members' registrations
        self._tasks: list[asyncio.Task] = []
        self.console_config = ConsoleConfig.from_env()  # may be replaced before the console is first used
        self._console = None
        self._followers = None

    async def _on_ready(self, order_id: str) -> None:
        """A picked delivery order: a marketplace's rider collects a marketplace order, ours the others."""
        if not await self.marketplace_orders.ready(order_id):
            await self.deliveries.on_ready(order_id)

    async def _on_cancelled(self, order_id: str) -> None:
        """A delivery order cancelled while at the store: the marketplace is told it is rejected, or our rider is
        withdrawn."""
        if not await self.marketplace_orders.ended_here(order_id):
            await self.deliveries.on_cancelled(order_id)

    async def followers(self):
        """This process's listener for order timelines (made on first use: only API processes with followers)."""
        if self._followers is None:
            from cloud.services.order_journal import Followers
            self._followers = Followers(self.cloud.actors.calls.database_url)
            await self._followers.start()
        return self._followers

    def console(self):
        """This process's operator-console feed (made on first use; it runs only while someone watches)."""
        if self._console is None:
            from cloud.console.feed import ConsoleFeed
            self._console = ConsoleFeed(self, self.console_config)
        return self._console

    async def start_background(self) -> None:
        bridge = Bridge(self.cloud, self.orders)
        bridge.returns.payments = self.payments  # an online order returned at a till is refunded through them
        bridge.returns.after_sales = self.after_sales  # the stores' after-sales decisions are carried out by it
        bridge.staff_deliveries = self.deliveries.by_staff  # a store's own staff deliver: withdraw the rider
        bridge.restock.presales = self.presales  # stock received: waiting pre-sale orders reserved for
        self.bridge = await bridge.start()
        self._tasks.append(asyncio.create_task(self._sweep_expired()))
        self._tasks.append(asyncio.create_task(self._sweep_money()))
        self._tasks.append(asyncio.create_task(self._sweep_deliveries()))
        self._tasks.append(asyncio.create_task(self._flash_orders_to_stores()))
        self._tasks.extend(asyncio.create_task(pusher.run()) for pusher in self.marketplace_stock)
        self._tasks.append(asyncio.create_task(self.segments.run_schedule()))  # recomputed every few hours
        self._tasks.append(asyncio.create_task(Rollups(self.cloud).run_schedule()))  # reports' days settled
        await self.world_admin.broadcast()  # a store that was down while the book changed gets the current one
        await self.allocations.resend()  # likewise HQ's allocation ratios (each applied once at the store)
        await self.channel_shares.resend()  # and the marketplaces' shares (each applied once in the StockPool)
        await self.restock.resend()  # and HQ's reorder points
        await self.transfers.resend()  # and open transfers (each applied once at its store)

    async def _sweep_expired(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_S)
            try:
                await self.orders.expire_due()
                await self.orders.sweep_abandoned()
                await self.coupons.settle()  # coupons follow their orders (a hook missed by a crash), lapsed holds
                await self.presales.allocate_due()  # pre-sales a missed trigger left waiting for stock that came
                await self.presales.end_overdue(self.cloud.now_ms())  # and those whose supply never came
                await self.group_buys.sweep_due()  # groups whose window closed short: cancelled and refunded
                await self.orders.sweep_given_back()  # budget uses of orders ended unserved that a failure kept
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("expiry sweep failed: %s", exc)

    async def _flash_orders_to_stores(self) -> None:
        """New flash orders assigned to their stores in batches, off the sale's hot path, and the units of those
        that ended unserved given back to their sale (`cloud/services/flash_stores.py`)."""
        flash = self.orders.flash
        while True:
            await asyncio.sleep(FLASH_ASSIGN_EVERY_MS / 1000)
            try:
                while await flash.assign_due() >= FLASH_ASSIGN_BATCH_MAX:
                    pass  # a full batch: more are waiting
                await flash.sweep_returns()
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("flash order assignment failed: %s", exc)

    async def _sweep_money(self) -> None:
        """Beside the expiry sweep, not in it: a provider query or an actor that is slow to answer must not hold up
        expiry (and an order the expiry sweep ended with its charge done is refunded here the next round)."""
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_S)
            try:
                await self.orders.sweep_money()
                await self.points_exchange.sweep()  # exchanges and survey grants a crash left half-way
                await self.surveys.sweep()
                await points_till.sweep(self.cloud)  # points holds no sale captured
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("money sweep failed: %s", exc)

    async def _sweep_deliveries(self) -> None:
        """Tries the rider platform did not take yet, failed deliveries not yet redispatched or refunded."""
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_S)
            try:
                await self.deliveries.sweep()
                await self.marketplace_orders.sweep()  # what the marketplaces were not told yet
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("delivery sweep failed: %s", exc)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._console is not None:
            await self._console.close()
        if self._followers is not None:
            await self._followers.stop()
        await self.flash.close()
        if self.identity.sms is not None:
            await self.identity.sms.close()
        if self.payments.wallet is not None:
            await self.payments.wallet.close()
        if self.deliveries.platform is not None:
            await self.deliveries.platform.close()
        for market in self.marketplaces.values():
            await market.close()
        if self.bridge:
            await self.bridge.stop()
        if self.holds:
            await self.holds.stop()
        if self.coupon_desk:
            await self.coupon_desk.stop()
        if self.limits_desk:
            await self.limits_desk.stop()
        if self.points_desk:
            await self.points_desk.stop()
        if self.registration_desk is not None:
            await self.registration_desk.stop()
        if self.cloud.nats is not None:
            await self.cloud.nats.close()
        await self.cloud.db.close()


async def load_world_into_router(cloud: Cloud) -> None:
    commands = []
    for store in cloud.world.stores.values():
        digest = hashlib.blake2b(json.dumps(to_wire(store), sort_keys=True).encode(), digest_size=6).hexdigest()
        commands.append(store.router_command(f"world:{store.store_id}:{digest}"))
    if commands:
        results = await cloud.actors.router.load(commands)
        bad = [r for r in results if not r.succeeded]
        if bad:
            raise RuntimeError(f"the order router refused stores of the world: {bad[:3]}")


def sms_from_env(clock) -> HttpSmsProvider | None:
    """The SMS provider named by FRESHMESH_SMS_URL, _KEY and _SECRET (the simulated one in the demo and tests)."""
    url = os.environ.get("FRESHMESH_SMS_URL")
    if not url:
        return None
    return HttpSmsProvider(url, os.environ.get("FRESHMESH_SMS_KEY", ""), os.environ.get("FRESHMESH_SMS_SECRET", ""), clock)


async def start_services(world: World, database_url: str, nats_url: str | None,
                         shards: ShardConfig | None = None, background: bool = True, clock=None,
                         reservation_ttl_ms: int | None = None, explicit_world: bool = False,
                         sms: HttpSmsProvider | None = None, keys: KeyRing | None = None,
                         wallet: HttpPayProvider | None = None, riders: HttpRiderPlatform | None = None,
                         marketplaces: list[HttpMarketplace] | None = None) -> Services:
    """`keys`: the key ring (default: from the environment, `KeyRing.from_env`; it refuses to start without
    FRESHMESH_SECRET_KEY rather than seal phones with a key the next start would not have)."""
    keys = keys or KeyRing.from_env()
    ensure_ray()
    shards = shards or ShardConfig.from_env()
    db = await asyncpg.create_pool(database_url, min_size=2, max_size=10, command_timeout=10)
    async with db.acquire() as conn:
        await migrate(conn)
        await settle_shard_map(conn, shards, time.time_ns() // 1_000_000)  # refuses counts other than the recorded
        await seal_clear_phones(conn, Pii(keys))
    kwargs = {"clock": clock} if clock else {}
    # FRESHMESH_RESERVATION_TTL_S: the payment window of unpaid orders (default 15 min); the demo shortens it so that
    # an unpaid flash order expires within its run. Every process of one cloud must read the same value.
    reservation_ttl_ms = reservation_ttl_ms or int(float(os.environ.get("FRESHMESH_RESERVATION_TTL_S", "0")) * 1000)
    if reservation_ttl_ms:
        kwargs["reservation_ttl_ms"] = reservation_ttl_ms
    cloud = Cloud(world=world, db=db, actors=Actors(database_url, shards), keys=keys,
                  **kwargs)
    admin = WorldAdmin(cloud)
    await admin.adopt(world, explicit_world)
    await load_world_into_router(cloud)
    if nats_url and keys.store_passwords is None and background:
        log.warning("FRESHMESH_STORE_CREDENTIALS is not set: stores' member caches get no phone hashes, so tills "
                    "find members by member code only")
    if nats_url:
        cloud.nats = await nats.connect(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=1,
                                        name=f"freshmesh-cloud-{os.getpid()}")
    worker_id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
    services = Services(cloud, worker_id, sms or sms_from_env(cloud.clock), wallet or wallet_from_env(cloud.clock, keys),
                        riders or riders_from_env(cloud.clock), world_admin=admin,
                        marketplaces=marketplaces if marketplaces is not None else marketplaces_from_env(cloud.clock))
    services._tasks.append(asyncio.create_task(admin.follow()))
    if cloud.nats is not None:
        services.holds = await HoldDesk(cloud).start()
        services.coupon_desk = await CouponDesk(cloud).start()  # the tills' coupon holds and wallet snapshots
        services.limits_desk = await LimitsDesk(cloud).start()  # members' uses of limited rules, for the tills
        services.points_desk = await PointsDesk(cloud).start()  # points holds of the tills (points_till.py)
        services.registration_desk = await RegistrationDesk(cloud).start()  # members registered at a till
    if background and cloud.nats is not None:
        await services.start_background()
    return services
