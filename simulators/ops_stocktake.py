"""Simulated stocktakes in every store of the demo fleet, only through the box's own API (the lane app):

a stock clerk opens a count session over a few SKUs with stock (now and then a whole small category), counts each
line of the blind sheet while the tills go on selling - the shelf as the simulator knows it is the box's book
(`GET /stock`) with the losses a real shelf has: now and then a few pieces or grams missing, rarely one found - and
the store manager reviews it (`GET /stocktakes/{id}`) and approves it with their PIN; now and then one is cancelled
instead. A few stocktakes per store per minute.

Counted in `counts` under `stocktake_*` (opened, counted lines, posted, adjusted lines, cancelled, uncounted lines
left); a refusal under `staff_refused:stocktake:<status>`, and the work goes on: a SKU held by another count, a
stocktake the box refused, never stops the others. `summary(db)` counts the same flow from the cloud's database.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter

from edge.cashier_pins import hash_pin
from loadtest.http import CLIENT_ERRORS, LeanClients
from simulators.store_work import StoreWork

MANAGER_ID, MANAGER_PIN = "MGR1", "7531"  # the demo boxes' manager (`box_config`)
CLERK, CLERK_PIN = "clerk1", "2468"
FIRST_WAIT_S = (2.0, 5.0)  # the shelves are filled first
BETWEEN_S = (8.0, 16.0)  # a few stocktakes per store per minute
COUNT_PAUSE_S = 0.15  # between two lines counted: the tills sell meanwhile
REVIEW_WAIT_S = (0.5, 2.0)
SKUS_PER_COUNT = (3, 6)
CATEGORY_EVERY = 5  # one stocktake in 5 counts a whole small category
CANCEL_EVERY = 7
LOSS_RATE, FOUND_RATE = 0.3, 0.05


def box_config() -> dict:
    """The demo boxes' staff: the manager who approves (id, PIN hash, role) and the clerks the ops simulators name
    (a box with cashiers configured takes only their ids as who received, counted or wrote off)."""
    from simulators import ops_receiving  # its clerk receives and writes off in the same boxes
    clerk = hash_pin(CLERK_PIN)
    return {"cashiers": {MANAGER_ID: {"pin_hash": hash_pin(MANAGER_PIN), "role": "manager"}, CLERK: clerk,
                         ops_receiving.CLERK: clerk}}


def _stock_items(answer: dict) -> list[dict]:
    items = answer.get("stock", answer.get("items", []))
    return items if isinstance(items, list) else []


class StocktakeStaff(StoreWork):
    """The stock clerk and manager of every store of `fleet` (`fleet.lanes`: store id -> its box's lane API)."""

    AREA = "stocktake"

    def __init__(self, fleet, rng: random.Random, counts: Counter, stop: asyncio.Event) -> None:
        super().__init__(fleet, rng, counts, stop)
        self.rounds = 0

    async def _pause_some(self, span: tuple[float, float]) -> bool:
        """Wait a while; True once the demo is stopping."""
        return await self._pause(self.rng.uniform(*span))

    async def run(self, http: LeanClients, store_id: str) -> None:
        if await self._pause_some(FIRST_WAIT_S):
            return
        while not self.stop.is_set():
            try:
                await self.one_stocktake(http, self.fleet.lanes[store_id])
            except CLIENT_ERRORS:
                self.counts["stocktake_error"] += 1
            if await self._pause_some(BETWEEN_S):
                return

    async def _book(self, http: LeanClients, url: str) -> dict[tuple[str, str], int]:
        """(sku, lot) -> on hand, as the box's books hold it now."""
        r = await http.get(f"{url}/stock")
        if r.status_code != 200:
            return {}
        book = {}
        for item in _stock_items(r.json()):
            lots = item.get("lots") or [{"lot": "", "on_hand": item.get("on_hand", 0)}]
            for lot in lots:
                book[(item["sku"], lot.get("lot", ""))] = int(lot.get("on_hand", 0))
        return book

    async def one_stocktake(self, http: LeanClients, url: str) -> None:
        self.rounds += 1
        # a count of ours left open (the box did not answer in the middle of it) would hold its SKUs: cancelled
        left = await http.get(f"{url}/stocktakes", params={"status": "open"})
        for stale in (left.json().get("stocktakes", []) if left.status_code == 200 else []):
            if stale.get("opened_by") == CLERK:
                await self.cancel(http, url, stale["stocktake_id"])
        book = await self._book(http, url)
        with_stock = sorted({sku for (sku, _), qty in book.items() if qty > 0})
        if self.rounds % CATEGORY_EVERY == 0:
            scope: dict | str = {"categories": ["eggs"]}
        elif with_stock:
            scope = {"skus": self.rng.sample(with_stock, min(len(with_stock), self.rng.randint(*SKUS_PER_COUNT)))}
        else:
            return  # nothing on the shelves yet
        opened = await http.post(f"{url}/stocktakes", json={"scope": scope, "opened_by": CLERK})
        if opened.status_code != 201:
            return self._refused(opened)
        sheet = opened.json()
        sid = sheet["stocktake_id"]
        self.counts["stocktake_opened"] += 1
        if self.rounds % CANCEL_EVERY == 0:
            return await self.cancel(http, url, sid)
        for item in sheet["sheet"]:
            for lot in item["lots"]:
                if self.stop.is_set():
                    return await self.cancel(http, url, sid)
                shelf = (await self._book(http, url)).get((item["sku"], lot["lot"]), 0)
                if shelf <= 0 and lot["lot"] == "":
                    continue  # nothing unlotted on the shelf: the clerk leaves the line blank
                counted = self.shelf(max(shelf, 0), item["unit"])
                r = await http.post(f"{url}/stocktakes/{sid}/counts", json={
                    "sku": item["sku"], "lot": lot["lot"], "counted": counted, "counted_by": CLERK})
                if r.status_code != 200:
                    self._refused(r)
                    continue
                self.counts["stocktake_counted"] += 1
                await asyncio.sleep(COUNT_PAUSE_S)
        await self._pause_some(REVIEW_WAIT_S)  # the tills go on selling before the manager looks
        review = await http.get(f"{url}/stocktakes/{sid}",
                                headers={"X-Manager-Id": MANAGER_ID, "X-Manager-Pin": MANAGER_PIN})
        if review.status_code != 200:
            return self._refused(review)
        approved = await http.post(f"{url}/stocktakes/{sid}/approve",
                                   json={"manager_id": MANAGER_ID, "pin": MANAGER_PIN})
        if approved.status_code != 200:
            return self._refused(approved)
        result = approved.json()
        self.counts["stocktake_posted"] += 1
        self.counts["stocktake_adjusted"] += len(result["adjusted"])
        self.counts["stocktake_uncounted_lines"] += len(result["uncounted"])
        self.counts["stocktake_not_posted"] += len(result["not_posted"])

    def shelf(self, book: int, unit: str) -> int:
        """What the clerk finds on the shelf: mostly the book, now and then a loss, rarely something found."""
        roll = self.rng.random()
        if roll < LOSS_RATE and book > 0:
            return max(book - (self.rng.randint(20, 300) if unit == "g" else self.rng.randint(1, 2)), 0)
        if roll > 1 - FOUND_RATE:
            return book + (self.rng.randint(20, 200) if unit == "g" else 1)
        return book

    async def cancel(self, http: LeanClients, url: str, sid: str) -> None:
        r = await http.post(f"{url}/stocktakes/{sid}/cancel", json={"cancelled_by": CLERK})
        if r.status_code != 200:
            return self._refused(r)
        self.counts["stocktake_cancelled"] += 1


async def summary(db) -> dict:
    """The stocktakes as the cloud recorded them (its database, asyncpg `db`): posted, lines counted, lines adjusted
    and the stock movements they posted, and the variance valued at cost and at price."""
    row = await db.fetchrow(
        "select count(*) as posted, coalesce(sum(lines), 0)::bigint as lines, "
        "coalesce(sum(variance_cost_fen), 0)::bigint as cost, coalesce(sum(variance_price_fen), 0)::bigint as price "
        "from stocktakes")
    adjusted = await db.fetchval("select count(*) from stocktake_lines where variance <> 0")
    moves = await db.fetchval("select count(*) from stock_movements where reason = 'stocktake'")
    return {"stocktakes_posted": row["posted"], "stocktake_lines": row["lines"], "stocktake_adjusted_lines": adjusted,
            "stocktake_movements": moves, "stocktake_variance_cost_fen": row["cost"],
            "stocktake_variance_price_fen": row["price"]}
