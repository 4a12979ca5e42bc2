"""Simulated store staff doing the evening clearance (日清) and near-expiry markdowns in every store of the demo
fleet, only through each box's own lane API (`fleet.lanes`: store id -> that box's lane API base URL):

- every few seconds per store they look at what is marked down right now (`GET /markdowns/now`: the promotion
  book's markdown rules by time of day and by days to the lots' use-by);
- for one of those items (weighed goods first: a label carries its PLU) they print one or two markdown labels
  (`POST /markdowns/labels`, a package of 300-800 g for weighed goods) with the new price-embedded barcode;
- and a customer takes one of the labelled packages to a till: the label's code is scanned
  (`POST /lanes/{lane}/scan`) and paid in cash, so the sale carries its markdown to the cloud.

What they did is counted in `counts` under `markdowns_*` (`markdowns_rounds`, `markdowns_none_now` when nothing is
marked down - markdowns follow the clock: greens from 19:00, bakery from 20:00, lots on their use-by day all day -
`markdowns_labels_printed`, `markdowns_labels_<rule>` per rule (its ':' spelt '_': the demo lists keys with ':' as
errors), `markdowns_labels_clash_refused` (the box refused a label whose code another lot has today),
`markdowns_label_sales`, `markdowns_label_given_fen` ...); any other refusal is counted under
`staff_refused:markdowns:<status>` and the work goes on (one refusal never stops the rest).

`summary(db, since_ms)` counts the result from the cloud's database: the markdowns the tills reported with their
sales from `since_ms` on.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter

from loadtest.http import CLIENT_ERRORS, LeanClients
from simulators.store_work import StoreWork

ROUND_S = 8.0  # per store: a few markdown rounds a minute, so a 40 s demo shows several
LANE = "mkd"  # the till the clearance customers pay at (lanes are per box)
LABELS_PER_PRINT = (1, 2)
PACKAGE_G = (300, 800)
FIRST_ROUND_MAX_S = 3.0  # stores start staggered, all within the first seconds
TENDERED_FEN = 1_000_000


class MarkdownStaff(StoreWork):
    """The evening clearance in every store of `fleet`."""

    AREA = "markdowns"

    def __init__(self, fleet, rng: random.Random, counts: Counter, stop: asyncio.Event,
                 round_s: float = ROUND_S) -> None:
        super().__init__(fleet, rng, counts, stop)
        self.round_s = round_s

    async def run(self, http: LeanClients, store_id: str) -> None:
        if await self._pause(self.rng.uniform(0, min(FIRST_ROUND_MAX_S, self.round_s))):
            return
        while not self.stop.is_set():
            try:
                await self.one_round(http, self.fleet.lanes[store_id])
            except CLIENT_ERRORS:
                self.counts["markdowns_error"] += 1
            if await self._pause(self.round_s):
                return

    async def one_round(self, http: LeanClients, url: str) -> None:
        """Look at what is marked down, label one item, sell one labelled package."""
        self.counts["markdowns_rounds"] += 1
        r = await http.get(f"{url}/markdowns/now")
        if r.status_code != 200:
            return self._refused(r)
        items = r.json().get("items", [])
        self.counts["markdowns_items_seen"] += len(items)
        if not items:
            self.counts["markdowns_none_now"] += 1
            return
        weighed = [i for i in items if i.get("unit") == "kg"]
        item = self.rng.choice(weighed or items)
        count = self.rng.randint(*LABELS_PER_PRINT)
        body = {"sku": item["sku"], "lot": item.get("lot", ""), "count": count, "printed_by": "clearance"}
        if item.get("unit") == "kg":
            body["weight_g"] = self.rng.randint(*PACKAGE_G)
        r = await http.post(f"{url}/markdowns/labels", json=body)
        if r.status_code == 409 and "already printed today" in str(r.json().get("detail", "")):
            self.counts["markdowns_labels_clash_refused"] += 1  # another lot has that code today: the box said no
            return None
        if r.status_code != 200:
            return self._refused(r)
        label = r.json()
        self.counts["markdowns_labels_printed"] += count
        self.counts[f"markdowns_labels_{label['rule_id'].replace(':', '_')}"] += count
        await self.sell(http, url, label)

    async def sell(self, http: LeanClients, url: str, label: dict) -> None:
        """A customer brings one labelled package to the till: scanned, paid in cash."""
        await http.delete(f"{url}/lanes/{LANE}/cart")  # nothing left over from a refused try
        r = await http.post(f"{url}/lanes/{LANE}/scan", json={"code": label["code"]})
        if r.status_code != 200:
            return self._refused(r)
        r = await http.post(f"{url}/lanes/{LANE}/pay", json={"method": "cash", "tendered_fen": TENDERED_FEN})
        if r.status_code != 201:
            await http.delete(f"{url}/lanes/{LANE}/cart")
            return self._refused(r)
        self.counts["markdowns_label_sales"] += 1
        self.counts["markdowns_label_sold_fen"] += label["now_fen"]
        self.counts["markdowns_label_given_fen"] += label["was_fen"] - label["now_fen"]


async def summary(db, since_ms: int = 0, stores: list[str] | None = None) -> dict:
    """What markdowns gave away at the tills, as the cloud recorded it (`markdowns_given`): marked-down sale lines,
    fen given away, per rule, and the stores that marked down; sales from `since_ms` (epoch ms) on, of `stores`
    (None: every store). `db`: an asyncpg pool or connection."""
    mine = "wall_ms >= $1 and ($2::text[] is null or store_id = any($2))"
    rows = await db.fetch(f"select rule_id, count(*) as lines, sum(saving_fen) as fen from markdowns_given "  # noqa: S608
                          f"where {mine} group by rule_id order by rule_id", since_ms, stores)
    count = await db.fetchval(f"select count(distinct store_id) from markdowns_given where {mine}",  # noqa: S608
                              since_ms, stores)
    return {"markdown_lines": sum(r["lines"] for r in rows), "markdown_given_fen": sum(int(r["fen"]) for r in rows),
            "by_rule": {r["rule_id"]: {"lines": r["lines"], "given_fen": int(r["fen"])} for r in rows},
            "stores_marking_down": count or 0}
