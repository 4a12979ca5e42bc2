"""`freshmesh demo`: the whole chain on one box - embedded servers, the cloud, N edge boxes with their scale,
scanner and printer, shoppers at the tills, online customers, a flash sale - and a summary at the end (printed,
and as JSON with --json).

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
from simulators.chain import ADMIN_USERNAME, Chain
from simulators.traffic import OnlineCustomers, Shelf, Tills, flash_crowd, outboxes_drained

SALES_PER_STORE_PER_S = 2.0
ONLINE_ORDERS_PER_S = 1.0
MAX_STORES_WITH_DEVICES = 20  # three pseudo-terminals and reader threads per store; beyond this, lanes only


class Demo:
    def __init__(self, chain: Chain, duration: float | None, seed: int = 7, till_rate: float = SALES_PER_STORE_PER_S,
                 online_rate: float = ONLINE_ORDERS_PER_S, flash: bool = True) -> None:
        self.chain, self.duration, self.rng = chain, duration, random.Random(seed)
        self.till_rate, self.online_rate, self.flash = till_rate, online_rate, flash
        self.counts: Counter = Counter()
        self.operator: dict = {}  # the chain's admin, signed in when the run starts
        self.stop = asyncio.Event()
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
            tasks = Tills(fleet, shelf, self.till_rate, self.rng, self.counts, self.stop).tasks(http)
            if self.online_rate > 0:
                assert chain.wallet is not None, "the demo's online customers pay through the simulated wallet"
                online = OnlineCustomers(chain.cloud_url, fleet, shelf, self.online_rate, self.rng, self.counts, self.stop,
                                         sms.phones, chain.wallet.url)
                tasks.append(asyncio.create_task(online.run(http)))
            print(f"FreshMesh: cloud {chain.cloud_url}", flush=True)
            print(f"  console: {chain.console_url}  (sign in as {ADMIN_USERNAME} / {chain.admin_password}, hq_admin; "
                  f"a password made for this run)", flush=True)
            print(f"  SMS (simulated): {sms.url}/v1/messages?to=<phone>  (sign-in codes sent to customers)",
                  flush=True)
            if chain.wallet is not None:
                print(f"  wallet provider (simulated): {chain.wallet.url}/health  (top-ups and wallet payments, "
                      "credited on its signed notifications)", flush=True)
            for store_id, url in fleet.lanes.items():
                devices = fleet.devices.get(store_id)
                extra = (f"  scale {devices.scale.path}  scanner {devices.scanner.path}  printer {devices.printer.path}"
                         if devices else "")
                print(f"  store {store_id}: lanes {url}{extra}", flush=True)
            started = time.monotonic()
            sale = None
            while not self.stop.is_set():
                await asyncio.sleep(1)
                elapsed = time.monotonic() - started
                if self.flash and sale is None and (self.duration is None or elapsed >= self.duration / 2):
                    sale = await flash_crowd(http, chain.cloud_url, self.operator, shelf.packed[0]["sku"], self.counts,
                                             sms.phones)
                c = self.counts
                print(f"\r{elapsed:5.0f}s  till sales {c['till_sales']}  online orders {c['online_orders']} "
                      f"(picked up {c['picked_up']})  flash {c['flash_accepted']}/{c['flash_attempts']}", end="",
                      flush=True)
                if self.duration is not None and elapsed >= self.duration:
                    self.stop.set()
            print(flush=True)
            await asyncio.gather(*tasks, return_exceptions=True)
            return await self.summary(http, sale)

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
            "sales": sum(edge.values()),
            "cloud_sales": sum(stores[s]["till_sales"] for s in ids),
            "device_sales": c["device_sales"],
            "receipts_printed": sum(len(d.printer.receipts) for d in fleet.devices.values()),
            "customers_signed_in": c["signed_in"], "sign_in_failed": c["sign_in_failed"],  # by SMS code, simulated
            "online_orders": c["online_orders"], "online_paid": c["online_paid"],
            "topped_up": c["topped_up"], "wallet_paid": c["wallet_paid"],  # through the simulated wallet provider
            "online_cancelled": c["online_cancelled"], "picked_up": c["picked_up"],
            "orders_by_final_state": orders["ended"],
            "orders_open": {"count": orders["open_count"],
                            "waiting_for": dict(Counter(o["waiting_for"].split(";")[0].split(" (")[0]
                                                        for o in orders["open"]))},
            "flash_sale": {"quantity": status.get("quantity", 0), "sold": status.get("sold", 0),
                           "attempts": c["flash_attempts"], "accepted": c["flash_accepted"],
                           "fans_signed_in": c["flash_fans_signed_in"],
                           "oversold": max(status.get("sold", 0) - status.get("quantity", 0), 0)},
            "lag_ms": {"p50": statistics.median(last) if last else None, "p99": max(lags) if lags else None,
                       "max": max(lags + last) if lags or last else None},
            "invariant_violations": audit["violations"],
            "edge_cloud_mismatches": [{"store": s, "edge": edge[s], "cloud": stores[s]["till_sales"]}
                                      for s in ids if edge[s] != stores[s]["till_sales"]],
            "till_refused": c["till_refused"],
            "errors": {k: v for k, v in c.items() if ":" in k},
        }

    @staticmethod
    async def _health(http: LeanClients, url: str) -> dict:
        try:
            return (await http.get(f"{url}/health")).json()
        except CLIENT_ERRORS:
            return {}


def run(args, **traffic) -> int:
    """`freshmesh demo` (and, with its own traffic settings and no flash sale, `freshmesh sim fleet`)."""
    devices = getattr(args, "devices", None)
    chain = Chain(args.stores, seed=getattr(args, "seed", 7), per_process=getattr(args, "per_process", 25),
                  devices=args.stores <= MAX_STORES_WITH_DEVICES if devices is None else devices)
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
    if args.json:
        Path(args.json).write_text(text + "\n")
    ok = (not summary["invariant_violations"] and not summary["edge_cloud_mismatches"]
          and not summary["flash_sale"]["oversold"])
    return 0 if ok else 1
