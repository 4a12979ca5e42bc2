"""`freshmesh demo`: the whole chain on one box - embedded servers, the cloud, N edge boxes with their scale,
scanner and printer, the simulated SMS, wallet and rider providers and a simulated marketplace (its customers buying
from the first store's share) - and the whole order loop: shoppers at the tills (a few come back to return part of
a sale), online customers ordering for pickup and for delivery, the stores' back rooms picking (catch weight,
substitutions, short lines), booking back goods no rider could deliver and deciding after-sales requests, riders
(some never found, some cancelling: redispatches and refunds), a flash sale sold from the stores' escrow whose
orders are paid and collected (a few left to expire, their units sold again). At the end the in-flight work gets a
short grace, then a summary (printed, and as JSON with --json): orders by final state, each open one with what it
waits for, rider tries, picking, returns, after-sales and the marketplace's orders.

Everything talks to the system through its real interfaces: serial ports, the lane API of each box, the cloud API.
"""
from __future__ import annotations

import asyncio
import json
import random
import signal
import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from loadtest.http import CLIENT_ERRORS, LeanClients
from simulators import marketplace_demo, ops_restock, programmes
from simulators.aftercare import ReturningShoppers
from simulators.chain import ADMIN_USERNAME, Chain, RiderPace
from simulators.flash_fans import FlashFans
from simulators.marketplace_demo import MarketplaceShoppers
from simulators.store_operations import STORE_OPERATIONS
from simulators.store_staff import StoreStaff
from simulators.traffic import OnlineCustomers, Shelf, Tills, outboxes_drained

SALES_PER_STORE_PER_S = 2.0
ONLINE_ORDERS_PER_S = 1.0
DELIVERY_SHARE = 0.5  # of online orders
AFTER_SALES_SHARE = 0.25  # of orders handed over, a refund of one unit asked
RETURNING_SHOPPERS_PER_S = 0.3  # chain-wide: buy, come back, return one unit at the till
GRACE_S = 25.0  # at most, after the traffic stops, for orders in flight to end (paid ones picked, riders back)
PAYMENT_WINDOW_S = 15.0  # an unpaid order (a flash order left unpaid) expires within the run
# riders fail often enough that a short run shows redispatches and refunds (a try fails 2 times in 5); seeded so that
# the platform's very first delivery finds no rider: even a run with few deliveries shows a failure and a redispatch
RIDERS = RiderPace(step_ms=300, accept_delay_ms=500, no_rider_rate=0.2, rider_cancel_rate=0.2, seed=1)
MAX_STORES_WITH_DEVICES = 20  # three pseudo-terminals and reader threads per store; beyond this, lanes only


class Demo:
    def __init__(self, chain: Chain, duration: float | None, seed: int = 7, till_rate: float = SALES_PER_STORE_PER_S,
                 online_rate: float = ONLINE_ORDERS_PER_S, flash: bool = True) -> None:
        self.chain, self.duration, self.rng = chain, duration, random.Random(seed)
        self.till_rate, self.online_rate, self.flash = till_rate, online_rate, flash
        self.counts: Counter = Counter()
        self.operator: dict = {}  # the chain's admin, signed in when the run starts
        self.stop = asyncio.Event()  # no new customers
        self.done = asyncio.Event()  # the grace is over: staff and customers stop following orders
        self.refusals: list[dict[str, str]] = []  # the simulated roles' first refusal detail of each kind
        self.started_at = datetime.now(UTC).isoformat()

    async def run(self) -> dict:
        chain, fleet, sms = self.chain, self.chain.fleet, self.chain.sms
        assert fleet is not None and sms is not None, "the demo runs on a started chain"
        shelf = Shelf(chain.world["catalogue"])
        async with LeanClients(timeout=15) as http:
            self.operator = await chain.operator_headers(http)
            for store_id, url in fleet.lanes.items():
                await shelf.stock_up(http, url)
                fleet.stocked.add(store_id)
            # HQ sets reorder points a little above a few SKUs' stock: the tills' sales cross them during the run
            await ops_restock.hq_sets_points(chain.cloud_url, self.operator, fleet, self.rng, self.counts)
            tasks = Tills(fleet, shelf, self.till_rate, self.rng, self.counts, self.stop).tasks(http)
            staff = StoreStaff(fleet, [p["sku"] for p in shelf.packed], self.rng, self.counts, self.done)
            tasks += staff.tasks(http)
            self.refusals = [staff.refusals]
            # the stores' fresh-food work: delivery notes with lots, write-offs, stocktakes, transfers, markdown
            # labels, restocking (simulators/ops_*.py, each through the boxes' own API)
            for area in STORE_OPERATIONS.values():
                work = area.Staff(fleet, self.rng, self.counts, self.done)
                tasks += work.tasks(http)
                self.refusals.append(work.refusals)
            in_flight: list[asyncio.Task] = []  # customers following their orders: waited for in the grace
            if self.online_rate > 0:
                assert chain.wallet is not None, "the demo's online customers pay through the simulated wallet"
                online = OnlineCustomers(chain.cloud_url, fleet, shelf, self.online_rate, self.rng, self.counts, self.stop,
                                         sms.phones, chain.wallet.url, stores=chain.world["stores"],
                                         delivery_share=DELIVERY_SHARE, after_sales_share=AFTER_SALES_SHARE,
                                         done=self.done)
                in_flight.append(asyncio.create_task(online.run(http)))
                self.refusals.append(online.refusals)
                returning = ReturningShoppers(fleet, shelf.packed, RETURNING_SHOPPERS_PER_S, self.rng, self.counts,
                                              self.stop, lambda: list(online.sessions))
                in_flight.append(asyncio.create_task(returning.run(http)))
            if chain.wallet is not None:  # coupons, group buys, levels, points, segments (simulators/programmes.py)
                setting = programmes.Setting(chain.cloud_url, self.operator, fleet.lanes, sms.phones, chain.wallet.url,
                                             shelf.online, shelf.online[1]["sku"], self.duration)
                for programme in await programmes.prepare(http, setting, self.rng, self.counts, self.stop):
                    in_flight.append(asyncio.create_task(programme.run(http)))
                    self.refusals.append(getattr(programme, "refusals", {}))
            if chain.marketplace is not None:  # a marketplace selling from the first store's shelves (issue 23)
                shoppers = MarketplaceShoppers(chain.cloud_url, self.operator, chain.marketplace.url,
                                               next(iter(fleet.lanes)), [p["sku"] for p in shelf.online], self.rng,
                                               self.counts, self.stop)
                in_flight.append(asyncio.create_task(shoppers.run(http)))
                self.refusals.append(shoppers.refusals)
            self._where_to_look()
            started = time.monotonic()
            fans: FlashFans | None = None
            while not self.stop.is_set():
                await asyncio.sleep(1)
                elapsed = time.monotonic() - started
                if (self.flash and fans is None and chain.wallet is not None
                        and (self.duration is None or elapsed >= self.duration / 3)):
                    fans = FlashFans(chain.cloud_url, fleet.lanes, chain.wallet.url, sms.phones, self.rng, self.counts,
                                     self.done)
                    in_flight.append(asyncio.create_task(fans.run(http, self.operator, shelf.packed[0]["sku"])))
                self._progress(elapsed)
                if self.duration is not None and elapsed >= self.duration:
                    self.stop.set()
            print(flush=True)
            # the grace: no new customers; orders in flight are picked, delivered, collected or expire
            if in_flight:
                await asyncio.wait(in_flight, timeout=GRACE_S)
            self.done.set()
            for result in await asyncio.gather(*tasks, *in_flight, return_exceptions=True):
                if isinstance(result, BaseException):
                    self.counts[f"simulator_failed:{type(result).__name__}"] += 1
                    print(f"a simulated role stopped: {result!r}", flush=True)
            return await self.summary(http, fans.sale if fans else None)

    def _where_to_look(self) -> None:
        chain, fleet, sms = self.chain, self.chain.fleet, self.chain.sms
        assert fleet is not None and sms is not None
        print(f"FreshMesh: cloud {chain.cloud_url}", flush=True)
        print(f"  console: {chain.console_url}  (sign in as {ADMIN_USERNAME} / {chain.admin_password}, hq_admin; "
              f"a password made for this run)", flush=True)
        print(f"  back office: {chain.cloud_url}/office  (HQ: catalogue and prices, promotions, stock policy, stores, "
              "reports; the same sign-in as the console)", flush=True)
        print(f"  mall: {chain.cloud_url}/mall  (the customers' shop; sign-in codes are in the SMS outbox)", flush=True)
        print(f"  orders: {chain.cloud_url}/operator/orders/summary  (as the admin: by final state, what each open "
              "one waits for, rider tries, returns, after-sales)", flush=True)
        print(f"  SMS (simulated): {sms.url}/v1/messages?to=<phone>  (sign-in codes sent to customers)", flush=True)
        if chain.wallet is not None:
            print(f"  wallet provider (simulated): {chain.wallet.url}/health  (top-ups and wallet payments, "
                  "credited on its signed notifications)", flush=True)
        if chain.riders is not None:
            print(f"  rider platform (simulated): {chain.riders.url}/health  (deliveries; some find no rider, some "
                  "riders cancel)", flush=True)
        if chain.marketplace is not None:
            print(f"  marketplace (simulated): {chain.marketplace.url}/health  (its customers buy the first store's "
                  f"share: {chain.marketplace.url}/sim/shops/{next(iter(fleet.lanes))}/items)", flush=True)
        for store_id, url in fleet.lanes.items():
            devices = fleet.devices.get(store_id)
            extra = (f"  scale {devices.scale.path}  scanner {devices.scanner.path}  printer {devices.printer.path}"
                     if devices else "")
            print(f"  store {store_id}: lanes {url}  back room {url}/picking/orders{extra}", flush=True)

    def _progress(self, elapsed: float) -> None:
        c = self.counts
        print(f"\r{elapsed:5.0f}s  till sales {c['till_sales']}  online orders {c['online_orders']} "
              f"(picked {c['picked']}, picked up {c['picked_up']}, delivered {c['delivered']})  returns "
              f"{c['till_returns']}  flash {c['flash_accepted']}/{c['flash_attempts']}", end="", flush=True)

    async def summary(self, http: LeanClients, sale: dict | None) -> dict:
        chain, fleet, sms = self.chain, self.chain.fleet, self.chain.sms
        assert fleet is not None and sms is not None, "the demo runs on a started chain"
        lanes = fleet.lanes
        self.operator = await chain.operator_headers(http)  # a long run outlives a session (12 h)
        await outboxes_drained(http, list(lanes.values()), 30)  # before comparing counts (a mismatch shows if not)
        await asyncio.sleep(1.0)
        ids = list(lanes)
        edge = {s: (await self._health(http, u)).get("sales", 0) for s, u in lanes.items()}
        stores = {s["store_id"]: s for s in (await http.get(f"{chain.cloud_url}/stores", headers=self.operator))
                  .json()["stores"]}  # till figures are the operator's to see
        lags = [stores[s]["lag_p99_ms"] for s in ids if stores[s].get("lag_p99_ms") is not None]
        last = [stores[s]["lag_ms"] for s in ids if stores[s].get("lag_ms") is not None]
        status = (await http.get(f"{chain.cloud_url}/flash-sales/{sale['sale_id']}")).json() if sale else {}
        audit = (await http.get(f"{chain.cloud_url}/audit", headers=self.operator)).json()
        # every online order of the run: how it ended, and what each still open one waits for
        orders = (await http.get(f"{chain.cloud_url}/operator/orders/summary", headers=self.operator,
                                 params={"since": self.started_at})).json()
        c = self.counts
        return {
            "stores": len(ids),
            # what the stores did to their stock, as the cloud recorded it, and each box's own stock audit
            "store_operations": await store_operations(chain.stack.database_url if chain.stack else "",
                                                       self.started_at),
            "edge_stock_violations": {s: v for s, u in lanes.items() if (v := await self._stock_audit(http, u))},
            # the promotion and member programmes, as the cloud recorded them (simulators/programmes.py)
            "programmes": await programmes.summary(chain.stack.database_url, self._since_ms()) if chain.stack else {},
            # the marketplace's orders as the cloud took them, and what its customers did on the platform
            "marketplace": {**(await marketplace_figures(chain.stack.database_url, self._since_ms()) if chain.stack
                               else {}),
                            "placed_on_platform": c["marketplace_orders"], "sold_out": c["marketplace_sold_out"],
                            "cancelled_by_customers": c["marketplace_cancelled"]},
            "sales": sum(edge.values()),
            "cloud_sales": sum(stores[s]["till_sales"] for s in ids),
            "device_sales": c["device_sales"],
            "receipts_printed": sum(len(d.printer.receipts) for d in fleet.devices.values()),
            "customers_signed_in": c["signed_in"], "sign_in_failed": c["sign_in_failed"],  # by SMS code, simulated
            "online_orders": c["online_orders"], "online_paid": c["online_paid"],
            "topped_up": c["topped_up"], "wallet_paid": c["wallet_paid"],  # through the simulated wallet provider
            "online_cancelled": c["online_cancelled"], "picked_up": c["picked_up"],
            "online_by_fulfilment": {"pickup": c["online_pickup_orders"], "delivery": c["online_delivery_orders"]},
            "delivered": c["delivered"],  # delivery orders their customers saw handed over by a rider
            "orders_by_final_state": orders["ended"],
            "orders_open": {"count": orders["open_count"],
                            "waiting_for": dict(Counter(o["waiting_for"].split(";")[0].split(" (")[0]
                                                        for o in orders["open"])),
                            "orders": [{k: o[k] for k in ("order_id", "kind", "status", "waiting_for")}
                                       for o in orders["open"]]},
            # from the cloud (the operator's order summary): every rider try of the run and how it ended
            "riders": orders.get("deliveries", {}),
            # what the stores' back rooms did (the simulated staff, through each box's picking API)
            "picking": {"orders_picked": c["picked"], "weight_adjusted": c["weight_adjusted"],
                        "substituted": c["substituted"], "short": c["short"],
                        "goods_booked_back": {"stock": c["booked_back_stock"],
                                              "shrinkage": c["booked_back_shrinkage"]}},
            "returns": {"till": orders.get("till_returns", {}),  # the cloud's record of returns at the tills
                        "till_by_shoppers": {"count": c["till_returns"], "fen": c["till_return_fen"]},
                        "online": {"count": orders.get("after_sales", {}).get("approved", {}).get("count", 0),
                                   "fen": orders.get("after_sales", {}).get("approved", {}).get("fen", 0)}},
            "after_sales": {"asked": c["after_sales_asked"], "approved": c["after_sales_approved"],
                            "refused": c["after_sales_refused"], "approved_fen": c["after_sales_approved_fen"],
                            "by_status_in_cloud": orders.get("after_sales", {})},
            "flash_sale": {"quantity": status.get("quantity", 0), "sold": status.get("sold", 0),
                           "returned": status.get("returned", 0),
                           "attempts": c["flash_attempts"], "accepted": c["flash_accepted"],
                           "fans_signed_in": c["flash_fans_signed_in"], "paid": c["flash_paid"],
                           "picked_up": c["flash_picked_up"], "let_expire": c["flash_let_expire"],
                           "expired": c["flash_expired"], "bought_again": c["flash_rebought"],
                           "oversold": max(status.get("sold", 0) - status.get("quantity", 0), 0)},
            "lag_ms": {"p50": statistics.median(last) if last else None, "p99": max(lags) if lags else None,
                       "max": max(lags + last) if lags or last else None},
            "invariant_violations": audit["violations"],
            "edge_cloud_mismatches": [{"store": s, "edge": edge[s], "cloud": stores[s]["till_sales"]}
                                      for s in ids if edge[s] != stores[s]["till_sales"]],
            "till_refused": c["till_refused"],
            "errors": {k: v for k, v in c.items() if ":" in k},
            "error_details": {k: v for found in self.refusals for k, v in found.items()},  # the first of each kind
        }

    def _since_ms(self) -> int:
        return int(datetime.fromisoformat(self.started_at).timestamp() * 1000)

    @staticmethod
    async def _stock_audit(http: LeanClients, url: str) -> list[str]:
        """A box's own check of Σ movements = on_hand, per SKU and per lot."""
        try:
            return list((await http.get(f"{url}/stock/audit")).json()["violations"])
        except (*CLIENT_ERRORS, KeyError, ValueError) as exc:
            return [f"stock audit not answered: {exc!r}"]

    @staticmethod
    async def _health(http: LeanClients, url: str) -> dict:
        try:
            return (await http.get(f"{url}/health")).json()
        except CLIENT_ERRORS:
            return {}


async def marketplace_figures(database_url: str, since_ms: int) -> dict:
    import asyncpg
    conn = await asyncpg.connect(database_url)
    try:
        return await marketplace_demo.summary(conn, since_ms)
    finally:
        await conn.close()


async def store_operations(database_url: str, since: str) -> dict:
    """Each store operation's figures from the cloud's database (`summary(db)` of simulators/ops_*.py)."""
    import asyncpg
    conn = await asyncpg.connect(database_url)
    try:
        since_ms = int(datetime.fromisoformat(since).timestamp() * 1000)
        return {name: await area.summary(conn, since_ms) for name, area in STORE_OPERATIONS.items()}
    finally:
        await conn.close()


def digest(summary: dict) -> str:
    """The summary in a few readable lines (after the JSON, so they are what a console shows last)."""
    riders, picking, flash = summary["riders"], summary["picking"], summary["flash_sale"]
    market = summary["marketplace"]
    ended = ", ".join(f"{k} {v}" for k, v in sorted(summary["orders_by_final_state"].items())) or "none"
    waiting = "; ".join(f"{n}x {why}" for why, n in summary["orders_open"]["waiting_for"].items()) or "-"
    till, online = summary["returns"]["till"], summary["returns"]["online"]
    return "\n".join([
        f"orders ended: {ended}",
        f"orders open: {summary['orders_open']['count']} (waiting for: {waiting})",
        f"riders: {riders.get('tries', 0)} tries {riders.get('tries_by_status', {})}, failed "
        f"{riders.get('failed_by_reason', {})}, redispatched {riders.get('redispatched', 0)}",
        f"picking: {picking['orders_picked']} orders, {picking['weight_adjusted']} weights adjusted, "
        f"{picking['substituted']} substituted, {picking['short']} short; goods back {picking['goods_booked_back']}",
        f"returns: till {till.get('count', 0)} ({till.get('fen', 0)} fen), online {online['count']} "
        f"({online['fen']} fen); after-sales approved {summary['after_sales']['approved']}, refused "
        f"{summary['after_sales']['refused']}",
        f"marketplace: {market.get('orders', 0)} orders taken {market.get('by_status', {})}, "
        f"{market['placed_on_platform']} placed on the platform, {market['sold_out']} sold out, "
        f"{market['cancelled_by_customers']} cancelled by customers",
        f"flash sale: {flash['sold']}/{flash['quantity']} sold, {flash['paid']} paid, {flash['picked_up']} picked up, "
        f"{flash['expired']} expired, {flash['bought_again']} bought again, oversold {flash['oversold']}",
        *(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items() if not isinstance(v, dict | list))
          for name, figures in summary.get("store_operations", {}).items()),
        *(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items() if not isinstance(v, list))
          for name, figures in summary.get("programmes", {}).items()),
    ])


def run(args, **traffic) -> int:
    """`freshmesh demo` (and, with its own traffic settings and no flash sale, `freshmesh sim fleet`)."""
    devices = getattr(args, "devices", None)
    chain = Chain(args.stores, seed=getattr(args, "seed", 7), per_process=getattr(args, "per_process", 25),
                  devices=args.stores <= MAX_STORES_WITH_DEVICES if devices is None else devices,
                  rider_pace=RIDERS, reservation_ttl_s=PAYMENT_WINDOW_S)
    try:
        chain.start()
        demo = Demo(chain, args.duration, seed=getattr(args, "seed", 7), **traffic)

        async def main():
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, demo.stop.set)
            return await demo.run()
        summary = asyncio.run(main())
    finally:
        chain.stop()
    text = json.dumps(summary, indent=2)
    print(text)
    print(digest(summary), flush=True)
    if args.json:
        Path(args.json).write_text(text + "\n")
    ok = (not summary["invariant_violations"] and not summary["edge_cloud_mismatches"]
          and not summary["edge_stock_violations"] and not summary["flash_sale"]["oversold"])
    return 0 if ok else 1
