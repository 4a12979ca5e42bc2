"""Simulated receiving clerks and shelf staff in every store, working only through the box's own API (the lane app):

- **receiving** (`POST /receivings`): a supplier's delivery note now and then - a fresh product in two lots with
  different use-by dates, another product whose note says more than arrived (an under-delivery) with no lot (the
  box names it and gives the use-by from the product's shelf life), each with a unit cost near the product's;
- **shrinkage** (`POST /shrinkage`, after `GET /stock` shows what is on the shelf): a few pieces or grams written
  off with one of the reasons (spoiled, damaged, theft, tasting, weighing loss, other), taken first-expiry-first-
  out or from a named lot, and now and then a whole lot written off as expired (no quantity: the lot's on-hand).

What they did is counted in `counts` under `receiving_*` keys; a refusal under `staff_refused:receiving:<status>`,
and the work goes on (one refused note never stops the next). `summary(db)` counts the same flow's results from
the cloud's database - what reached the cloud, exactly once.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from loadtest.http import CLIENT_ERRORS, LeanClients
from protocol.lots import chain_day
from simulators.store_work import StoreWork

WORLD = Path(__file__).resolve().parents[1] / "cloud" / "data" / "default_world.json"
ROUND_S = 7.0  # one operation per store this often (alternately a note and a write-off): ~8 a minute a store
SHORT_DATED_EVERY = 3  # one delivery note in 3 brings a lot on its use-by day
ROUND_PER_STORE_S = 0.05  # slower in a big fleet
REASONS = ("spoiled", "damaged", "theft", "tasting", "weighing_loss", "other")
WHOLE_LOT_EVERY = 4  # one write-off in 4 is a whole lot, as expired
WHOLE_LOT_NOTE = "past its best on the shelf"
CLERK = "recv-1"


class OpsReceiving(StoreWork):
    """Receiving and shrinkage in every store of `fleet` (`fleet.lanes`: store id -> its box's lane API)."""

    AREA = "receiving"

    def __init__(self, fleet, rng: random.Random, counts: Counter, stop: asyncio.Event) -> None:
        super().__init__(fleet, rng, counts, stop)
        world = json.loads(Path(getattr(fleet, "world_path", None) or WORLD).read_text())
        self.products = [p for p in world["catalogue"] if "offline" in p.get("channels", ["offline"])]
        self.fresh = [p for p in self.products if p.get("shelf_life_days", 0) > 0] or self.products
        self.notes = 0
        self.offset = rng.randrange(1_000_000)  # note numbers of this run differ from an earlier run's

    async def run(self, http: LeanClients, store_id: str) -> None:
        url = self.fleet.lanes[store_id]
        turn = 0
        while not self.stop.is_set():
            try:
                if turn % 2 == 0:
                    await self.receive(http, url, store_id)
                else:
                    await self.write_off(http, url, turn // 2)
            except CLIENT_ERRORS:
                self.counts["receiving_error"] += 1
            turn += 1
            pause = max(ROUND_S, ROUND_PER_STORE_S * len(self.fleet.lanes)) * self.rng.uniform(0.7, 1.3)
            if turn == 1:
                pause /= 3  # the first write-off soon after the first note: a short demo shows both
            try:
                await asyncio.wait_for(self.stop.wait(), pause)
            except TimeoutError:
                pass

    def note(self, store_id: str, today: str) -> dict:
        """A delivery note: one fresh product in two lots (different use-by), another one short of the note."""
        self.notes += 1
        two, other = self.rng.sample(self.fresh, 1)[0], self.rng.choice(self.products)
        no = f"{store_id}-{self.offset + self.notes}"
        day = date.fromisoformat(today)

        def qty(p: dict) -> int:
            return self.rng.randrange(2_000, 8_000, 50) if p["unit"] == "kg" else self.rng.randint(6, 24)

        def cost(p: dict) -> int:
            return max(1, round(p.get("cost_fen") or p["price_fen"] * 0.6) + self.rng.randint(-5, 5))

        life = max(two.get("shelf_life_days", 0), 2)
        lines = [{"sku": two["sku"], "qty": qty(two), "unit_cost_fen": cost(two), "lot": f"{no}-A",
                  # every third note's first lot is short-dated (use-by today: the store clears it with the
                  # use-by-day markdown, whatever the hour of the run)
                  "use_by": (day + timedelta(days=0 if self.notes % SHORT_DATED_EVERY == 1 else life - 1)).isoformat()},
                 {"sku": two["sku"], "qty": qty(two), "unit_cost_fen": cost(two), "lot": f"{no}-B",
                  "use_by": (day + timedelta(days=life)).isoformat()}]
        for line in lines:
            line["expected_qty"] = line["qty"]
        if other["sku"] != two["sku"]:
            got = qty(other)
            lines.append({"sku": other["sku"], "qty": got, "expected_qty": got + max(1, got // 10),
                          "unit_cost_fen": cost(other)})
        supplier = two.get("supplier") or "Fresh Farm Co-op"
        return {"supplier": supplier, "note_no": no, "received_by": CLERK, "lines": lines}

    async def receive(self, http: LeanClients, url: str, store_id: str) -> None:
        body = self.note(store_id, chain_day(time.time_ns() // 1_000_000))  # the box's day: the same clock here
        r = await http.post(f"{url}/receivings", json=body)
        if r.status_code != 201:
            return self._refused(r)
        done = r.json()
        self.counts["receiving_notes"] += 1
        self.counts["receiving_lots"] += sum(1 for x in done["lines"] if x["qty"] > 0)
        self.counts["receiving_under_delivered"] += sum(1 for x in done["lines"] if x["variance"] < 0)

    async def write_off(self, http: LeanClients, url: str, n: int) -> None:
        stock = (await http.get(f"{url}/stock")).json() or {}
        lots = [(item, lot) for item in stock.get("stock", []) for lot in item.get("lots", [])
                if lot.get("lot") and lot.get("on_hand", 0) > 0 and item.get("on_hand", 0) >= lot["on_hand"]]
        if not lots:
            return
        item, lot = self.rng.choice(lots)
        if n % WHOLE_LOT_EVERY == WHOLE_LOT_EVERY - 1:
            body = {"sku": item["sku"], "reason": "expired", "lot": lot["lot"], "recorded_by": CLERK,
                    "note": WHOLE_LOT_NOTE}
        else:
            weighed = any(p["sku"] == item["sku"] and p["unit"] == "kg" for p in self.products)
            want = self.rng.randint(50, 400) if weighed else self.rng.randint(1, 2)
            body = {"sku": item["sku"], "reason": self.rng.choice(REASONS), "qty": min(want, lot["on_hand"]),
                    "recorded_by": CLERK, "note": ""}
            if self.rng.random() < 0.5:
                body["lot"] = lot["lot"]
        r = await http.post(f"{url}/shrinkage", json=body)
        if r.status_code != 201:
            return self._refused(r)
        self.counts["receiving_shrinkage"] += 1
        self.counts[f"receiving_shrinkage_{body['reason']}"] += 1
        if "qty" not in body:
            self.counts["receiving_whole_lots_written_off"] += 1


async def summary(db, since_ms: int = 0, stores: list[str] | None = None) -> dict:
    """This flow's results as the cloud recorded them (since `since_ms`, of `stores` or all): delivery notes, lots
    received (with their costs), under-delivered lines, write-offs by reason, and whole lots written off (known by
    the note these staff leave with them: the cloud records a whole lot as the quantity it was)."""
    args = (since_ms, stores)
    mine = "wall_ms >= $1 and ($2::text[] is null or store_id = any($2::text[]))"
    mine_r = "r.wall_ms >= $1 and ($2::text[] is null or r.store_id = any($2::text[]))"
    lines = "from receiving_lines l join receivings r using (receiving_id)"
    notes = await db.fetchval(f"select count(*) from receivings where {mine}", *args)  # noqa: S608
    lots = await db.fetchval(f"select count(*) {lines} where l.qty > 0 and {mine_r}", *args)  # noqa: S608
    under = await db.fetchval(f"select count(*) {lines} where l.qty < l.expected_qty and {mine_r}", *args)  # noqa: S608
    costs = await db.fetchval("select count(*) from lot_costs where updated_ms >= $1 and "
                              "($2::text[] is null or store_id = any($2::text[]))", *args)
    by_reason = {r["reason"]: r["n"] for r in await db.fetch(
        f"select reason, count(*) as n from shrinkage_notes where {mine} group by reason", *args)}  # noqa: S608
    whole = await db.fetchval(f"select count(*) from shrinkage_notes where {mine} and note = $3",  # noqa: S608
                              *args, WHOLE_LOT_NOTE)
    return {"receivings": notes, "lots_received": lots, "under_delivered_lines": under, "lot_costs": costs,
            "shrinkage": sum(by_reason.values()), "shrinkage_by_reason": by_reason, "whole_lots_written_off": whole}
