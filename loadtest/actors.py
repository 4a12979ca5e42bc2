"""`freshmesh load actors`: actor-level throughput with batching, durable in PostgreSQL, through real Ray.

- reservations_per_s: reserve commands acknowledged (after their group commit) by the StockPool shards.
- transfers_per_s: stored-value transfers (top-ups) acknowledged by the MemberLedger shards.
- route_p99_ms: routing a delivery order among 5,000 stores (grid lookup + plan), in-process.
Uses DATABASE_URL / RAY_ADDRESS when set, else starts an embedded PostgreSQL and a local Ray.
"""
from __future__ import annotations

import asyncio
import os
import random
import time
import uuid

from actors.member_ledger import TopUp
from actors.order_router import OrderRouter, UpsertStore
from actors.stock_pool import Grant, Reserve
from loadtest.report import Progress, latency_ms

BATCH = 2_000
SENDERS_PER_SHARD = 2
STORES = 5_000
ROUTES = 20_000


async def pump(client, names: list[str], make_batch, seconds: float, label: str) -> dict:
    """Send `make_batch(name, sender, n)` batches to each named actor from SENDERS_PER_SHARD senders for `seconds`:
    the acknowledged count, its rate and the batch latencies (also used by `load scaleout`)."""
    done = 0
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds
    progress = Progress(label)

    async def sender(name: str, k: int):
        nonlocal done
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            batch = make_batch(name, k, n)
            t0 = time.monotonic()
            results = await client.call(name, batch)
            latencies.append(time.monotonic() - t0)
            done += sum(1 for r in results if r.status == "ok")
            progress.update(f"{done:,} acknowledged")

    started = time.monotonic()
    await asyncio.gather(*(sender(name, k) for name in names for k in range(SENDERS_PER_SHARD)))
    elapsed = time.monotonic() - started
    progress.done()
    return {"count": done, "seconds": round(elapsed, 3), "per_s": round(done / elapsed), "batch": BATCH,
            "batch_latency_ms": latency_ms(latencies)}


def _route_benchmark(seed: int) -> dict:
    rng = random.Random(seed)
    router = OrderRouter()
    # 5,000 stores over a 60 x 60 km city, 3 km delivery radius
    for i in range(STORES):
        router.apply(UpsertStore(id=f"u{i}", store=f"S{i:05d}", lat=31.0 + rng.random() * 0.55,
                                 lon=121.1 + rng.random() * 0.65, pickup_radius_m=5_000, delivery_radius_m=3_000), 0)
    slot = 1_767_229_200_000
    items = {"EGGS": 1, "MILK": 2, "APPLE": 1}
    samples = []
    for _ in range(ROUTES):
        lat, lon = 31.0 + rng.random() * 0.55, 121.1 + rng.random() * 0.65
        t0 = time.perf_counter()
        near = [sid for sid, _ in router.nearby(lat, lon, "delivery", slot)]
        lookup = time.perf_counter() - t0
        availability = {sid: {sku: rng.randint(0, 3) for sku in items} for sid in near}  # what StockPool would say
        t1 = time.perf_counter()
        router.plan(items, near, availability)
        samples.append(lookup + time.perf_counter() - t1)
    return {"stores": STORES, "routes": ROUTES, "latency_ms": latency_ms(samples)}


async def _run(seconds: float, seed: int, database_url: str) -> dict:
    from cloud.runtime.calls import ActorCalls
    from cloud.runtime.hosting import ensure_ray
    from cloud.runtime.shard_map import ShardConfig

    ensure_ray()
    shards = ShardConfig(prefix=f"load{uuid.uuid4().hex[:6]}-")
    client = ActorCalls(database_url, expire_every_ms=0)
    pools = shards.all_stock_pools()
    skus: dict[str, str] = {}
    for i in range(100):
        skus.setdefault(shards.stock_pool_name(f"SKU{i}"), f"SKU{i}")
    for name in pools:
        (granted,) = await client.call(name, [Grant(id="g", store="S001", sku=skus[name], qty=10**12)])
        if granted.status != "ok":
            raise RuntimeError(f"{name}: the escrow grant was refused: {granted}")

    def reserve_batch(name, k, n):
        return [Reserve(id=f"r{k}-{n}-{i}", reservation_id=f"R{k}-{n}-{i}", order_id=f"O{k}-{n}-{i}", store="S001",
                        sku=skus[name], qty=1) for i in range(BATCH)]

    def transfer_batch(name, k, n):
        return [TopUp(id=f"t{k}-{n}-{i}", member=f"M{k}-{i % 500}", amount_fen=100) for i in range(BATCH)]

    reservations = await pump(client, pools, reserve_batch, seconds, "reservations")
    transfers = await pump(client, shards.all_member_ledgers(), transfer_batch, seconds, "transfers")
    return {"reservations": reservations, "transfers": transfers}


def run(seconds: float = 5.0, seed: int = 7) -> dict:
    from cloud.embedded import EmbeddedStack

    route = _route_benchmark(seed)
    database_url = os.environ.get("DATABASE_URL", "")
    stack = None if database_url else EmbeddedStack(nats=False).start()
    try:
        if stack is not None:
            database_url = stack.database_url
        measured = asyncio.run(_run(seconds, seed, database_url))
    finally:
        if stack is not None:
            stack.stop()
    return {
        "suite": "actors",
        "reservations_per_s": measured["reservations"]["per_s"],
        "transfers_per_s": measured["transfers"]["per_s"],
        "route_p99_ms": route["latency_ms"]["p99"],
        "route": route,
        "reservations": measured["reservations"],
        "transfers": measured["transfers"],
        "durable": "each acknowledged command was committed to PostgreSQL (group commit) before its answer",
        "cores": os.cpu_count(),
    }
