"""`freshmesh load consistency`: a till sale committed at the edge -> visible in the cloud's stock view.

Starts the chain (embedded servers, `freshmesh cloud`, `--stores` edge boxes) and runs steady till traffic at
`--store-rate` baskets per second per store, through each store's lane API. Every store also runs a probe: it
sells one unit of an item only the probe sells, then polls `GET /stores/{id}/stock?sku=` until the cloud's on-hand
count shows that sale. Lag = the first poll that shows it minus the moment the lane answered "paid" (the sale is
committed in SQLite before that answer, so this never flatters the system by more than one local HTTP reply).
Each store probes every `--probe-every` seconds (default 5): the stock view is a real query (a stock-pool actor, the
database, the store registry), and probing every store every second made the measurement the heaviest load on the
box. The report says how long the stock-view requests took and how late the generator's own loop ran, so a slow
measurement is never mistaken for a slow chain.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

from loadtest.http import LeanClients
from loadtest.report import Progress, latency_ms
from simulators.chain import Chain
from simulators.traffic import Shelf, Tills, outboxes_drained, pause

POLL_S = 0.02
GIVE_UP_S = 30.0


class Probe:
    """One store's probe: sequential probe sales of its own item, each timed until the cloud shows it."""

    def __init__(self, http: LeanClients, cloud_url: str, lane_url: str, store_id: str, sku: str,
                 gtin: str, start_qty: int) -> None:
        self.http, self.cloud_url, self.lane_url = http, cloud_url, lane_url
        self.store_id, self.sku, self.gtin, self.expected = store_id, sku, gtin, start_qty
        self.lags: list[float] = []
        self.polls: list[float] = []  # how long each stock-view request took (the probe's own resolution)
        self.lost = 0
        self.refused: list[str] = []

    async def cloud_on_hand(self) -> int | None:
        started = time.monotonic()
        r = await self.http.get(f"{self.cloud_url}/stores/{self.store_id}/stock", params={"sku": self.sku})
        self.polls.append(time.monotonic() - started)
        rows = r.json().get("stock", []) if r.status_code == 200 else []
        return rows[0]["on_hand"] if rows else None

    async def wait_visible(self, deadline_s: float = 60) -> bool:
        """Poll at 20 ms, then ever less often (x1.2, at most 250 ms): the probes must not become the load they
        measure, and the error stays under a fifth of the lag itself."""
        until, pause = time.monotonic() + deadline_s, POLL_S
        while time.monotonic() < until:
            on_hand = await self.cloud_on_hand()
            if on_hand is not None and on_hand <= self.expected:
                return True
            await asyncio.sleep(pause)
            pause = min(pause * 1.2, 0.25)
        return False

    async def once(self) -> None:
        await self.http.post(f"{self.lane_url}/lanes/probe/scan", json={"code": self.gtin})
        r = await self.http.post(f"{self.lane_url}/lanes/probe/pay", json={"method": "cash", "tendered_fen": 10**6})
        committed = time.monotonic()
        if r.status_code != 201:  # counted, and the probe goes on: a refused sale is a finding, not a crash
            self.refused.append(f"{r.status_code} {r.text[:200]}")
            return
        self.expected -= 1
        if await self.wait_visible(GIVE_UP_S):
            self.lags.append(time.monotonic() - committed)
        else:
            self.lost += 1

    async def run(self, stop: asyncio.Event, every_s: float, rng: random.Random) -> None:
        if await pause(stop, rng.uniform(0, every_s)):  # stores do not probe in lockstep
            return
        while not stop.is_set():
            started = time.monotonic()
            await self.once()
            await pause(stop, max(every_s - (time.monotonic() - started), 0))


async def measure(chain: Chain, store_rate: float, seconds: float, probe_every_s: float, seed: int,
                  label: str = "consistency", stores: list[str] | None = None) -> dict:
    """Steady till traffic plus probes on a running chain for `seconds`; returns the lag figures."""
    rng = random.Random(seed)
    fleet = chain.fleet
    assert fleet is not None, "measure a started chain"
    shelf = Shelf(chain.world["catalogue"])
    stores = stores or list(fleet.lanes)
    counts: Counter = Counter()
    stop = asyncio.Event()
    async with LeanClients(timeout=30) as http:
        probes = [Probe(http, chain.cloud_url, fleet.lanes[s], s, shelf.probe["sku"], shelf.probe["gtin"], 0)
                  for s in stores]
        fresh = [p for p in probes if p.store_id not in fleet.stocked]
        await asyncio.gather(*(shelf.stock_up(http, p.lane_url) for p in fresh))
        fleet.stocked.update(p.store_id for p in fresh)
        if not await outboxes_drained(http, [p.lane_url for p in probes], 120):  # measure steady traffic, not
            raise RuntimeError("store outboxes did not drain before the measurement")  # the shelves' filling
        for probe in probes:  # a known starting point: the cloud shows the probe item's receipt
            probe.expected = await _settled_on_hand(probe)
        tills = Tills(fleet, shelf, store_rate, rng, counts, stop)
        traffic = tills.tasks(http, stores)
        runs = [asyncio.create_task(p.run(stop, probe_every_s, rng)) for p in probes]
        loop_lag: list[float] = []
        watch = asyncio.create_task(_loop_lag(stop, loop_lag))
        progress = Progress(label)
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await asyncio.sleep(0.5)
            lags = sorted(lag for p in probes for lag in p.lags)
            p99 = f"{lags[int(0.99 * (len(lags) - 1))] * 1000:.0f}" if lags else "-"
            progress.update(f"{len(stores)} stores, {counts['till_sales']} sales, {len(lags)} probes, p99 {p99} ms")
        stop.set()
        elapsed, sold = time.monotonic() - started, counts["till_sales"]  # the window, not the wind-down
        await asyncio.gather(*traffic, *runs, watch, return_exceptions=True)
        progress.done()
        samples = [lag for p in probes for lag in p.lags]
    return {"stores": len(stores), "store_rate_per_s": store_rate, "seconds": round(elapsed, 1),
            "till_sales": counts["till_sales"], "till_sales_per_s": round(sold / elapsed, 1),
            "till_refused": counts["till_refused"], "probes": len(samples),
            "probes_not_visible": sum(p.lost for p in probes),
            "lag_ms": latency_ms(samples),
            "stock_view_request_ms": latency_ms([t for p in probes for t in p.polls]),
            "generator_loop_lag_ms": latency_ms(loop_lag),
            "probes_refused": sum(len(p.refused) for p in probes),
            "probe_refusals": [r for p in probes for r in p.refused][:5],
            "offered_sales_per_s": round(store_rate * len(stores), 1),
            "errors": {k: v for k, v in counts.items() if ":" in k}}


async def _loop_lag(stop: asyncio.Event, out: list[float]) -> None:
    """How late this generator's own event loop runs a 10 ms timer: if it is busy, every lag above grows too."""
    while not stop.is_set():
        started = time.monotonic()
        await asyncio.sleep(0.01)
        out.append(max(time.monotonic() - started - 0.01, 0))


async def _settled_on_hand(probe: Probe) -> int:
    """The cloud's on-hand for the probe item once the store's receipt has arrived (it stops changing)."""
    last, same_since = None, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        on_hand = await probe.cloud_on_hand()
        if on_hand is not None and on_hand == last:
            if time.monotonic() - same_since > 0.5:
                return on_hand
        else:
            last, same_since = on_hand, time.monotonic()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the cloud never showed {probe.store_id}'s stock of {probe.sku}")


def run_from_args(args) -> dict:
    chain = Chain(args.stores, per_process=args.per_process, seed=args.seed)
    with chain:
        report = asyncio.run(measure(chain, args.store_rate or 1.0, args.duration, args.probe_every, args.seed))
    report["aim"] = "lag p99 <= 500 ms with 50 stores selling steadily (the mission's bar: 10 s)"
    return report
