"""Customers who come back after buying, through the real interfaces only:

- `ReturningShoppers`: a few till shoppers buy a small basket (cash, or stored value when they are a member the store
  knows) and come back a little later to return one unit of it at the till (`POST /lanes/{lane}/returns` with the
  receipt's QR text `SALE:<id>`); the refund goes back the way they paid (cash from the drawer, stored value to the
  ledger by the cloud).
- `ask_after_sales`: an online customer asks for a refund of one unit of a picked-up or delivered order
  (`POST /orders/{id}/after-sales`); the store's staff decide it (`simulators/store_staff.py`).

Counted in `counts`: `till_returns`, `till_return_fen`, `till_returns_<method>`, `after_sales_asked`,
`after_sales_refused_by_cloud:<status>`, ...
"""
from __future__ import annotations

import asyncio
import random
import secrets
import time
import uuid
from collections import Counter

from loadtest.http import CLIENT_ERRORS, LeanClients
from protocol.ids import make_id

RETURN_LANE = "9"  # the service desk's lane: the shoppers' own lanes (1-4) stay with the Tills
COME_BACK_S = (1.0, 3.0)
AFTER_SALES_REASONS = ("bruised on arrival", "not fresh", "wrong item", "damaged packaging")


class ReturningShoppers:
    """`rate` shoppers per second chain-wide; `members()`: phones of members who may pay with stored value."""

    def __init__(self, fleet, packed: list[dict], rate: float, rng: random.Random, counts: Counter,
                 stop: asyncio.Event, members) -> None:
        self.fleet, self.packed, self.rate, self.rng, self.counts = fleet, packed, rate, rng, counts
        self.stop, self.members = stop, members
        self.lane_free: dict[str, asyncio.Lock] = {}
        self._visits: set[asyncio.Task] = set()

    async def run(self, http: LeanClients) -> None:
        while True:
            try:
                await asyncio.wait_for(self.stop.wait(), self.rng.expovariate(self.rate))
                break
            except TimeoutError:
                pass
            task = asyncio.create_task(self.visit(http, self.rng.choice(list(self.fleet.lanes))))
            self._visits.add(task)
            task.add_done_callback(self._visits.discard)
        await asyncio.gather(*self._visits, return_exceptions=True)

    async def visit(self, http: LeanClients, store_id: str) -> None:
        url = self.fleet.lanes[store_id]
        try:
            sale = await self.buy(http, store_id, url)
            if sale is None:
                return
            await asyncio.sleep(self.rng.uniform(*COME_BACK_S))
            sku = self.rng.choice(sale["skus"])
            r = await http.post(f"{url}/lanes/{RETURN_LANE}/returns",
                                json={"receipt": f"SALE:{sale['sale_id']}", "return_id": _id(),
                                      "lines": [{"sku": sku, "qty": 1, "disposition": "resaleable"}],
                                      "keep_gifts": True})  # a gift the rest no longer earns: kept, paid for
            if r.status_code != 201:
                self.counts[f"till_return_refused:{r.status_code}"] += 1
                return
            refund = r.json().get("refund", {})
            self.counts["till_returns"] += 1
            self.counts["till_return_fen"] += refund.get("amount_fen", 0)
            self.counts[f"till_returns_{refund.get('method', sale['method'])}"] += 1
        except CLIENT_ERRORS:
            self.counts["till_return_error"] += 1

    async def buy(self, http: LeanClients, store_id: str, url: str) -> dict | None:
        """A basket of 2-3 packed items, paid; None when the till said no (counted)."""
        lock = self.lane_free.setdefault(store_id, asyncio.Lock())
        async with lock:  # one customer at a time at the desk
            await http.delete(f"{url}/lanes/{RETURN_LANE}/cart")
            method = "cash"
            phones = self.members()
            if phones and self.rng.random() < 0.5:
                r = await http.post(f"{url}/lanes/{RETURN_LANE}/member", json={"phone": self.rng.choice(phones)})
                method = "stored_value" if r.status_code == 200 else "cash"  # a member this store does not know yet
            skus = []
            for item in self.rng.sample(self.packed, self.rng.randint(2, 3)):
                r = await http.post(f"{url}/lanes/{RETURN_LANE}/scan", json={"code": item["gtin"]})
                if r.status_code == 200:
                    skus.append(r.json()["line"]["sku"])
            if not skus:
                return None
            r = await http.post(f"{url}/lanes/{RETURN_LANE}/pay", json={"method": method, "tendered_fen": 10**6})
            if r.status_code != 201 and method == "stored_value":  # the balance ran out: cash then
                method = "cash"
                r = await http.post(f"{url}/lanes/{RETURN_LANE}/pay", json={"method": method, "tendered_fen": 10**6})
            if r.status_code != 201:
                self.counts[f"till_return_sale_refused:{r.status_code}"] += 1
                await http.delete(f"{url}/lanes/{RETURN_LANE}/cart")
                return None
            self.counts["till_return_sales"] += 1
            return {"sale_id": r.json()["sale_id"], "skus": skus, "method": method}


async def ask_after_sales(http: LeanClients, cloud_url: str, headers: dict, order: dict, rng: random.Random,
                          counts: Counter) -> None:
    """One unit of a piece line of a handed-over order back, with or without returning it."""
    lines = [line for line in order.get("lines", []) if line.get("unit", "piece") == "piece" and line.get("qty", 0) > 0]
    if not lines:
        return
    line = rng.choice(lines)
    r = await http.post(f"{cloud_url}/orders/{order['order_id']}/after-sales",
                        json={"lines": [{"sku": line["sku"], "qty": 1}], "reason": rng.choice(AFTER_SALES_REASONS),
                              "with_return": rng.random() < 0.5},
                        headers={"Idempotency-Key": uuid.uuid4().hex, **headers})
    if r.status_code == 201:
        counts["after_sales_asked"] += 1
    else:
        counts[f"after_sales_refused_by_cloud:{r.status_code}"] += 1


def _id() -> str:
    """A return's id, made at the origin (the terminal), so a retried return gives nothing back twice."""
    return make_id(int(time.time() * 1000), secrets.randbits(80))
