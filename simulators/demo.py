"""`freshmesh demo`: the whole chain on one box - embedded servers, the cloud, N edge boxes, shoppers at the
tills, online customers, a flash sale - and a summary at the end (printed, and as JSON with --json).

Everything talks to the system through its real interfaces: the lane API of each box, the cloud HTTP API.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from cloud.embedded import EmbeddedStack
from cloud.embedded.process import free_port, spawn_quiet
from loadtest.report import stop_process, wait_http
from protocol.barcodes import gs1_check_digit
from simulators.world import reference_world

SALES_PER_STORE_PER_S = 2.0
ONLINE_ORDERS_PER_S = 1.0
CN = timezone(timedelta(hours=8))


class Demo:
    def __init__(self, stores: int, duration: float | None, seed: int = 7) -> None:
        self.n, self.duration, self.rng = stores, duration, random.Random(seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="freshmesh-demo-"))
        self.token = uuid.uuid4().hex
        self.procs: list[subprocess.Popen] = []
        self.counts = {"till_sales": 0, "till_refused": 0, "online_orders": 0, "online_paid": 0, "picked_up": 0,
                       "flash_attempts": 0, "flash_accepted": 0}
        self.stop = asyncio.Event()

    # ---- bring-up -------------------------------------------------------------------------------------
    def start(self, stack: EmbeddedStack) -> None:
        world = reference_world(stores=self.n, rules=60)
        self.world_path = self.workdir / "world.json"
        self.world_path.write_text(json.dumps(world))
        self.products = world["catalogue"]
        self.store_ids = [s["store_id"] for s in world["stores"]]
        env = {**os.environ, "NATS_URL": stack.nats_url, "DATABASE_URL": stack.database_url,
               "FRESHMESH_OPERATOR_TOKEN": self.token}
        env.pop("RAY_ADDRESS", None)
        port = free_port()
        self.cloud_url = f"http://127.0.0.1:{port}"
        self.procs.append(spawn_quiet([sys.executable, "-m", "simulators.cli", "cloud", "--http-port", str(port),
                                       "--workers", "1", "--world", str(self.world_path)], env=env))
        wait_http(f"{self.cloud_url}/health", 180, self.procs[-1])
        self.lanes = {}
        for store_id in self.store_ids:
            lane_port = free_port()
            config = self.workdir / f"{store_id}.json"
            config.write_text(json.dumps({"store_id": store_id, "data_dir": str(self.workdir / "edge"),
                                          "world": str(self.world_path), "http_port": lane_port,
                                          "nats_url": stack.nats_address,
                                          "nats_password": stack.store_credentials(store_id)[1]}))
            self.procs.append(spawn_quiet([sys.executable, "-m", "simulators.cli", "edge", "--config", str(config)]))
            self.lanes[store_id] = f"http://127.0.0.1:{lane_port}"
        for store_id, url in self.lanes.items():
            wait_http(f"{url}/health", 60)

    # ---- traffic ---------------------------------------------------------------------------------------
    def packed(self) -> list[dict]:
        return [p for p in self.products if p["unit"] == "piece" and p["gtin"]][:40]

    def weighed(self) -> list[dict]:
        return [p for p in self.products if p["unit"] == "kg" and p["plu"]][:40]

    async def stock_up(self, http: httpx.AsyncClient) -> None:
        for url in self.lanes.values():
            for p in self.packed():
                await http.post(f"{url}/stock/{p['sku']}/receive", json={"qty": 500})
            for p in self.weighed():
                await http.post(f"{url}/stock/{p['sku']}/receive", json={"qty": 200_000})  # grams

    async def shopper(self, http: httpx.AsyncClient, store_id: str) -> None:
        url, lane = self.lanes[store_id], str(self.rng.randint(1, 4))
        while not self.stop.is_set():
            await asyncio.sleep(self.rng.expovariate(SALES_PER_STORE_PER_S))
            try:
                for _ in range(self.rng.randint(1, 4)):
                    if self.rng.random() < 0.6:
                        code = self.rng.choice(self.packed())["gtin"]
                    else:  # a pre-weighed pack with a label-scale barcode
                        body = "21" + self.rng.choice(self.weighed())["plu"] + f"{self.rng.randint(150, 1500):05d}"
                        code = body + str(gs1_check_digit(body))
                    await http.post(f"{url}/lanes/{lane}/scan", json={"code": code})
                r = await http.post(f"{url}/lanes/{lane}/pay", json={"method": "cash", "tendered_fen": 10**6})
                self.counts["till_sales" if r.status_code == 201 else "till_refused"] += 1
            except httpx.HTTPError:
                self.counts["till_refused"] += 1

    async def online_customer(self, http: httpx.AsyncClient) -> None:
        online = [p for p in self.packed() if "online" in p["channels"]]
        while not self.stop.is_set():
            await asyncio.sleep(self.rng.expovariate(ONLINE_ORDERS_PER_S))
            try:
                member = (await http.post(f"{self.cloud_url}/members",
                                          json={"phone": f"139{self.rng.randrange(10**8):08d}"})).json()["member_id"]
                await http.post(f"{self.cloud_url}/members/{member}/top-ups", json={"amount_fen": 50_000},
                                headers={"Idempotency-Key": uuid.uuid4().hex})
                store = self.rng.choice(self.store_ids)
                slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=self.rng.randint(8, 20), minute=0,
                                                                      second=0, microsecond=0)
                r = await http.post(f"{self.cloud_url}/orders", headers={"Idempotency-Key": uuid.uuid4().hex},
                                    json={"fulfilment": "pickup", "store_id": store, "member_id": member,
                                          "slot_start": slot.isoformat(),
                                          "items": [{"sku": self.rng.choice(online)["sku"], "qty": 1}]})
                if r.status_code != 201:
                    continue
                order = r.json()
                self.counts["online_orders"] += 1
                paid = await http.post(f"{self.cloud_url}/orders/{order['order_id']}/pay", json={"method": "stored_value"})
                if paid.status_code == 200:
                    self.counts["online_paid"] += 1
                    asyncio.create_task(self.pick_up(http, store, order["pickup_code"]))
            except httpx.HTTPError:
                pass

    async def pick_up(self, http: httpx.AsyncClient, store: str, code: str) -> None:
        for _ in range(40):  # the order reaches the store over NATS; the customer arrives a little later
            await asyncio.sleep(0.5)
            r = await http.post(f"{self.lanes[store]}/pickups/{code}")
            if r.status_code == 200:
                self.counts["picked_up"] += 1
                return

    async def flash_sale(self, http: httpx.AsyncClient) -> dict:
        sku = self.packed()[0]["sku"]
        now = datetime.now(timezone.utc)
        sale = (await http.post(f"{self.cloud_url}/flash-sales", headers={"Authorization": f"Bearer {self.token}"},
                                json={"sku": sku, "quantity": 50, "price_fen": 990, "per_member_limit": 1,
                                      "rate_per_s": 5000, "starts_at": (now - timedelta(seconds=1)).isoformat(),
                                      "ends_at": (now + timedelta(hours=1)).isoformat()})).json()

        async def attempt(i: int):
            r = await http.post(f"{self.cloud_url}/flash-sales/{sale['sale_id']}/orders",
                                json={"member_id": f"fan-{i % 120}"}, headers={"Idempotency-Key": uuid.uuid4().hex})
            self.counts["flash_attempts"] += 1
            self.counts["flash_accepted"] += r.status_code == 201
        await asyncio.gather(*(attempt(i) for i in range(300)))
        return sale

    # ---- run and summarise -------------------------------------------------------------------------------
    async def run(self) -> dict:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=15, limits=limits) as http:
            await self.stock_up(http)
            tasks = [asyncio.create_task(self.shopper(http, s)) for s in self.store_ids for _ in range(2)]
            tasks.append(asyncio.create_task(self.online_customer(http)))
            print(f"FreshMesh demo: cloud {self.cloud_url}  (operator token {self.token})", flush=True)
            for store_id, url in self.lanes.items():
                print(f"  store {store_id}: lanes {url}", flush=True)
            started = time.monotonic()
            sale = None
            while not self.stop.is_set():
                await asyncio.sleep(1)
                elapsed = time.monotonic() - started
                if sale is None and (self.duration is None or elapsed >= self.duration / 2):
                    sale = await self.flash_sale(http)
                print(f"\r{elapsed:5.0f}s  till sales {self.counts['till_sales']}  online orders "
                      f"{self.counts['online_orders']} (picked up {self.counts['picked_up']})  flash "
                      f"{self.counts['flash_accepted']}/{self.counts['flash_attempts']}", end="", flush=True)
                if self.duration is not None and elapsed >= self.duration:
                    self.stop.set()
            print(flush=True)
            await asyncio.gather(*tasks, return_exceptions=True)
            return await self.summary(http, sale)

    async def summary(self, http: httpx.AsyncClient, sale: dict | None) -> dict:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # let every outbox drain before comparing counts
            health = [await self._health(http, u) for u in self.lanes.values()]
            if not any(h.get("outbox_depth") for h in health):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        edge = {s: (await self._health(http, u)).get("sales", 0) for s, u in self.lanes.items()}
        stores = {s["store_id"]: s for s in (await http.get(f"{self.cloud_url}/stores")).json()["stores"]}
        lags = [stores[s]["lag_p99_ms"] for s in self.store_ids if stores[s].get("lag_p99_ms") is not None]
        last = [stores[s]["lag_ms"] for s in self.store_ids if stores[s].get("lag_ms") is not None]
        status = (await http.get(f"{self.cloud_url}/flash-sales/{sale['sale_id']}")).json() if sale else {}
        audit = (await http.get(f"{self.cloud_url}/audit", headers={"Authorization": f"Bearer {self.token}"})).json()
        return {
            "stores": self.n,
            "sales": sum(edge.values()),
            "cloud_sales": sum(stores[s]["till_sales"] for s in self.store_ids),
            "online_orders": self.counts["online_orders"], "online_paid": self.counts["online_paid"],
            "picked_up": self.counts["picked_up"],
            "flash_sale": {"quantity": status.get("quantity", 0), "sold": status.get("sold", 0),
                           "attempts": self.counts["flash_attempts"], "accepted": self.counts["flash_accepted"],
                           "oversold": max(status.get("sold", 0) - status.get("quantity", 0), 0)},
            "lag_ms": {"p50": statistics.median(last) if last else None, "p99": max(lags) if lags else None,
                       "max": max(lags + last) if lags or last else None},
            "invariant_violations": audit["violations"],
            "edge_cloud_mismatches": [{"store": s, "edge": edge[s], "cloud": stores[s]["till_sales"]}
                                      for s in self.store_ids if edge[s] != stores[s]["till_sales"]],
            "till_refused": self.counts["till_refused"],
        }

    @staticmethod
    async def _health(http: httpx.AsyncClient, url: str) -> dict:
        try:
            return (await http.get(f"{url}/health")).json()
        except httpx.HTTPError:
            return {}

    def shutdown(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)


def run(args) -> int:
    demo = Demo(args.stores, args.duration, seed=7)
    with EmbeddedStack(store_ids=[f"S{i + 1:03d}" for i in range(args.stores)]) as stack:
        try:
            demo.start(stack)

            async def main():
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, demo.stop.set)
                return await demo.run()
            summary = asyncio.run(main())
        finally:
            demo.shutdown()
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    ok = not summary["invariant_violations"] and not summary["edge_cloud_mismatches"] and not summary["flash_sale"]["oversold"]
    return 0 if ok else 1
