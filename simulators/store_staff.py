"""Simulated store staff in every store's back room, working only through the box's own API (the lane app):

- **picking** (`GET /picking/orders`, `POST .../start`, `.../lines/{sku}`, `.../done`): each paid order the store
  received is taken, each line recorded - pieces as ordered; a weighed line at an actual weight a little off the
  ordered grams but inside the product's accepted range (the list gives it); now and then a piece line one short,
  or, where the customer allowed it, the missing unit replaced by another product - and the order finished;
- **goods that came back** (`GET /deliveries?status=returned`): booked back on hand, or now and then to shrinkage
  as damaged;
- **after-sales requests** (`GET /after-sales?status=requested`): most approved, a few refused with a reason.

Everything they did is counted in `counts` (`picked`, `weight_adjusted`, `substituted`, `short`, ...). A refusal is
counted under `staff_refused:<what>:<status>` and the work goes on: one order that cannot be picked now (the cloud
cancelled it meanwhile, the scale says no) never stops the others.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter

from loadtest.http import CLIENT_ERRORS, LeanClients

ROUND_S = 0.5  # how often the back room looks at its lists (slower in a big fleet: 3 GETs per store a round)
ROUND_PER_STORE_S = 0.02
SHORT_EVERY = 16  # one piece line in 16 is one unit short (the shelf was empty); a cadence, so a short run has one
SUBSTITUTE_RATE = 0.3  # of orders allowing it: one unit of a piece line replaced by another product
SHRINK_RATE = 0.2  # goods that came back damaged
REFUSE_EVERY = 5  # one after-sales request in 5 is refused (the 3rd, the 8th, ...): the first ones are approved
REFUSALS = ("the goods were handed over in good order", "past what the store can take back", "no damage found")


class StoreStaff:
    """The back room of every store of `fleet` (`fleet.lanes`: store id -> its box's lane API)."""

    def __init__(self, fleet, substitutes: list[str], rng: random.Random, counts: Counter,
                 stop: asyncio.Event) -> None:
        self.fleet, self.substitutes, self.rng, self.counts, self.stop = fleet, substitutes, rng, counts, stop
        self.refusals: dict[str, str] = {}  # the first detail the box gave for each kind of refusal
        self.piece_lines = self.decisions = 0

    def tasks(self, http: LeanClients) -> list[asyncio.Task]:
        return [asyncio.create_task(self.run(http, store_id)) for store_id in self.fleet.lanes]

    async def run(self, http: LeanClients, store_id: str) -> None:
        while not self.stop.is_set():
            await self.one_round(http, store_id)
            try:
                await asyncio.wait_for(self.stop.wait(), max(ROUND_S, ROUND_PER_STORE_S * len(self.fleet.lanes)))
            except TimeoutError:
                pass

    async def one_round(self, http: LeanClients, store_id: str) -> None:
        """Everything waiting at the store once: orders to pick, goods back, requests to decide."""
        url = self.fleet.lanes[store_id]
        try:
            for order in (await http.get(f"{url}/picking/orders")).json().get("orders", []):
                await self.pick(http, url, order)
            for back in (await http.get(f"{url}/deliveries", params={"status": "returned"})).json().get(
                    "deliveries", []):
                await self.book_back(http, url, back)
            for request in (await http.get(f"{url}/after-sales", params={"status": "requested"})).json().get(
                    "requests", []):
                await self.decide(http, url, request)
        except CLIENT_ERRORS:
            self.counts["staff_error"] += 1

    def _refused(self, what: str, answer) -> None:
        key = f"staff_refused:{what}:{answer.status_code}"
        self.counts[key] += 1
        if key not in self.refusals:
            try:
                self.refusals[key] = str((answer.json() or {}).get("detail", ""))[:200]
            except ValueError:
                self.refusals[key] = answer.text[:200]

    async def pick(self, http: LeanClients, url: str, order: dict) -> None:
        oid = order["order_id"]
        r = await http.post(f"{url}/picking/orders/{oid}/start")
        if r.status_code != 200:
            return self._refused("start", r)
        substitute_done = False
        adjusted = substituted = short = 0
        for line in r.json()["lines"]:
            body, kind = self.line_body(line, order.get("allow_substitutions", False) and not substitute_done)
            done = await http.post(f"{url}/picking/orders/{oid}/lines/{line['sku']}", json=body)
            if done.status_code != 200 and kind != "exact":  # the box said no to the variation: pick as ordered
                self._refused(f"line_{kind}", done)
                body, kind = ({"weight_g": line["qty"]} if "weight_range_g" in line else {"qty": line["qty"]}), "exact"
                done = await http.post(f"{url}/picking/orders/{oid}/lines/{line['sku']}", json=body)
            if done.status_code != 200:
                return self._refused("line", done)
            substitute_done |= kind == "substitute"
            adjusted += kind == "weight"
            substituted += kind == "substitute"
            short += kind == "short"
        finished = await http.post(f"{url}/picking/orders/{oid}/done")
        if finished.status_code != 200:
            return self._refused("done", finished)
        self.counts["picked"] += 1
        self.counts["weight_adjusted"] += adjusted
        self.counts["substituted"] += substituted
        self.counts["short"] += short

    def line_body(self, line: dict, may_substitute: bool) -> tuple[dict, str]:
        """What the picker records for a line, and which kind of pick it is (exact, weight, short, substitute)."""
        qty = line["qty"]
        if "weight_range_g" in line:  # weighed: the pieces on the scale never weigh exactly what was ordered
            lo, hi = line["weight_range_g"]
            off = self.rng.uniform(-0.6, 0.6)
            grams = qty + round(off * ((hi - qty) if off > 0 else (qty - lo)))
            grams = min(max(grams, lo), hi)
            return {"weight_g": grams}, ("weight" if grams != qty else "exact")
        substitutes = [s for s in self.substitutes if s != line["sku"]]
        if may_substitute and substitutes and self.rng.random() < SUBSTITUTE_RATE:
            return {"qty": qty - 1, "substitute_sku": self.rng.choice(substitutes), "substitute_qty": 1}, "substitute"
        self.piece_lines += 1
        if self.piece_lines % SHORT_EVERY == SHORT_EVERY // 2:
            return {"qty": qty - 1}, "short"  # the rest is re-routed to another store or refunded by the cloud
        return {"qty": qty}, "exact"

    async def book_back(self, http: LeanClients, url: str, back: dict) -> None:
        body = {"to": "shrinkage", "reason": "damaged"} if self.rng.random() < SHRINK_RATE else {"to": "stock"}
        r = await http.post(f"{url}/deliveries/{back['order_id']}/returned", json=body)
        if r.status_code != 200:
            return self._refused("book_back", r)
        self.counts[f"booked_back_{body['to']}"] += 1

    async def decide(self, http: LeanClients, url: str, request: dict) -> None:
        self.decisions += 1
        refuse = self.decisions % REFUSE_EVERY == 3
        body = {"staff": "back-room", "reason": self.rng.choice(REFUSALS) if refuse else "refund agreed"}
        r = await http.post(f"{url}/after-sales/{request['request_id']}/{'refuse' if refuse else 'approve'}",
                            json=body)
        if r.status_code != 200:
            return self._refused("after_sales", r)
        self.counts["after_sales_refused" if refuse else "after_sales_approved"] += 1
        if not refuse:
            self.counts["after_sales_approved_fen"] += request.get("amount_fen", 0)
