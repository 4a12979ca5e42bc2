"""Simulated staff moving stock between the stores of the demo fleet, only through each box's own API (the lane
app): transfers between stores (issue 16 item 5).

- **asking** (`GET /stock` of another store's box, `POST /transfers` on this store's box): now and then a store asks
  another store for a few units of one or two products that store has on hand;
- **dispatching** (`GET /transfers?status=to_dispatch`, `POST /transfers/{id}/dispatch`): what was asked of the
  store is sent, first-expiry-first-out, capped by what the store has on hand of it (a product it ran out of is
  not sent: the rest of the transfer goes);
- **receiving** (`GET /transfers?status=arriving`, `POST /transfers/{id}/receive`): what arrived is counted in per
  lot; now and then a line is one unit short (a discrepancy the cloud records).

Counts go into `counts` under `transfers_*`; a refusal is counted as `staff_refused:transfers:<status>` and the
work goes on: one transfer that cannot be dispatched or received now never stops the others. `summary(db)` counts
the same flow from the cloud's database.
"""
from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from loadtest.http import CLIENT_ERRORS, LeanClients
from simulators.ops_receiving import CLERK
from simulators.store_work import StoreWork

ROUND_S = 2.0  # how often a store looks at its transfer lists
ASK_EVERY_S = (12.0, 24.0)  # a store asks another for goods at a random pause in this range: a few a minute
ASK_QTY_MAX = 3  # pieces per line (grams: ASK_GRAMS per line)
ASK_GRAMS = 500
SHORT_EVERY = 4  # one received transfer in 4 has a line one unit short
STAFF = CLERK  # a clerk the demo boxes have configured (simulators.ops_stocktake's staff)


def weighed_skus(world_path) -> frozenset[str]:
    """The products sold by the kg in the fleet's world file (their stock is in grams)."""
    if not world_path:
        return frozenset()
    world = json.loads(Path(world_path).read_text())
    return frozenset(p["sku"] for p in world.get("catalogue", []) if p.get("unit") == "kg")


class TransferStaff(StoreWork):
    """Transfers among the stores of `fleet` (`fleet.lanes`: store id -> its box's lane API base URL)."""

    AREA = "transfers"

    def __init__(self, fleet, rng: random.Random, counts: Counter, stop: asyncio.Event,
                 ask_every_s: tuple[float, float] = ASK_EVERY_S, round_s: float = ROUND_S) -> None:
        super().__init__(fleet, rng, counts, stop)
        self.ask_every_s, self.round_s = ask_every_s, round_s
        self.received = 0
        self.given_up: set[str] = set()  # transfers the box would not dispatch or receive: not tried every round
        self.weighed = weighed_skus(getattr(fleet, "world_path", None))  # counted in grams: asked by the 500 g

    async def run(self, http: LeanClients, store_id: str) -> None:
        next_ask = asyncio.get_running_loop().time() + self.rng.uniform(1.0, max(self.ask_every_s[0], 1.0))
        while not self.stop.is_set():
            try:
                if len(self.fleet.lanes) > 1 and asyncio.get_running_loop().time() >= next_ask:
                    await self.ask(http, store_id)
                    next_ask = asyncio.get_running_loop().time() + self.rng.uniform(*self.ask_every_s)
                await self.one_round(http, store_id)
            except CLIENT_ERRORS:
                self.counts["transfers_error"] += 1
            if await self._pause(self.round_s):
                return

    async def one_round(self, http: LeanClients, store_id: str) -> None:
        url = self.fleet.lanes[store_id]
        for t in (await http.get(f"{url}/transfers", params={"status": "to_dispatch"})).json().get("transfers", []):
            if t["transfer_id"] not in self.given_up:
                await self.dispatch(http, url, t)
        for t in (await http.get(f"{url}/transfers", params={"status": "arriving"})).json().get("transfers", []):
            if t["transfer_id"] not in self.given_up:
                await self.receive(http, url, t)

    async def _stock(self, http: LeanClients, url: str) -> list[dict[str, Any]]:
        return list((await http.get(f"{url}/stock")).json().get("stock", []))

    async def ask(self, http: LeanClients, store_id: str) -> None:
        """Ask another store for one or two products it has a few of on hand."""
        other = self.rng.choice([s for s in self.fleet.lanes if s != store_id])
        stocked = [x for x in await self._stock(http, self.fleet.lanes[other]) if x.get("on_hand", 0) > ASK_QTY_MAX * 4]
        lines = []
        for item in self.rng.sample(stocked, min(len(stocked), self.rng.randint(1, 2))):
            weighed = item["sku"] in self.weighed
            if weighed and item["on_hand"] < ASK_GRAMS * 4:
                continue
            lines.append({"sku": item["sku"], "qty": ASK_GRAMS if weighed else self.rng.randint(1, ASK_QTY_MAX)})
        if not lines:
            return
        r = await http.post(f"{self.fleet.lanes[store_id]}/transfers",
                            json={"from_store": other, "lines": lines, "requested_by": STAFF,
                                  "reason": "the shelf runs low"})
        if r.status_code != 201:
            return self._refused(r)
        self.counts["transfers_requested"] += 1

    async def dispatch(self, http: LeanClients, url: str, transfer: dict[str, Any]) -> None:
        on_hand = {x["sku"]: x.get("on_hand", 0) for x in await self._stock(http, url)}
        lines = [{"sku": x["sku"], "qty": min(x["qty"], on_hand.get(x["sku"], 0))} for x in transfer["lines"]]
        lines = [x for x in lines if x["qty"] > 0]
        if not lines:
            self.counts["transfers_nothing_to_send"] += 1
            return
        r = await http.post(f"{url}/transfers/{transfer['transfer_id']}/dispatch",
                            json={"lines": lines, "dispatched_by": STAFF})
        if r.status_code != 200:  # expired lots on the shelf, or sold meanwhile: send one unit less, once
            self._refused(r)
            lines = [{**x, "qty": x["qty"] - 1} for x in lines if x["qty"] > 1]
            if lines:
                r = await http.post(f"{url}/transfers/{transfer['transfer_id']}/dispatch",
                                    json={"lines": lines, "dispatched_by": STAFF})
            if not lines or r.status_code != 200:
                self.given_up.add(transfer["transfer_id"])
                return self._refused(r) if lines else None
        self.counts["transfers_dispatched"] += 1
        self.counts["transfers_units_dispatched"] += sum(x["qty"] for x in r.json().get("dispatched", []))

    async def receive(self, http: LeanClients, url: str, transfer: dict[str, Any]) -> None:
        self.received += 1
        got = [{"sku": x["sku"], "lot": x["lot"], "qty": x["qty"]} for x in transfer.get("dispatched", [])]
        short = self.received % SHORT_EVERY == 1 and got
        if short:
            got[0]["qty"] -= 1
        r = await http.post(f"{url}/transfers/{transfer['transfer_id']}/receive",
                            json={"lines": got, "received_by": STAFF})
        if r.status_code != 200:
            self.given_up.add(transfer["transfer_id"])
            return self._refused(r)
        self.counts["transfers_received"] += 1
        self.counts["transfers_units_received"] += sum(x["qty"] for x in got)
        off = [x["short"] for x in r.json().get("discrepancies", [])]
        self.counts["transfers_short_lines"] += sum(1 for x in off if x > 0)
        self.counts["transfers_over_lines"] += sum(1 for x in off if x < 0)


async def summary(db, since_ms: int = 0) -> dict[str, int]:
    """The transfers asked since `since_ms` as the cloud recorded them (`db`: an asyncpg connection or pool): how
    many were asked, how many are at each status now (`transfers_now_<status>`), units dispatched, received and
    still in transit, and the lines received short of their dispatch, or over it."""
    rows = await db.fetch("select status, count(*)::bigint as n from transfers where requested_ms >= $1 "
                          "group by status", since_ms)
    out = {f"transfers_now_{r['status']}": int(r["n"]) for r in rows}
    out["transfers_asked"] = sum(out.values())
    units = await db.fetchrow(
        """select coalesce(sum((x->>'qty')::bigint), 0)::bigint as dispatched,
                  coalesce(sum((x->>'qty')::bigint) filter (where t.status = 'dispatched'), 0)::bigint as in_transit
           from transfers t, jsonb_array_elements(coalesce(t.dispatched, '[]'::jsonb)) x
           where t.requested_ms >= $1""", since_ms)
    received = await db.fetchval(
        """select coalesce(sum((x->>'qty')::bigint), 0)::bigint
           from transfers t, jsonb_array_elements(coalesce(t.received, '[]'::jsonb)) x
           where t.requested_ms >= $1""", since_ms)
    lines = await db.fetchrow(
        """select count(*) filter (where (x->>'short')::bigint > 0)::bigint as short,
                  count(*) filter (where (x->>'short')::bigint < 0)::bigint as over
           from transfers t, jsonb_array_elements(coalesce(t.discrepancies, '[]'::jsonb)) x
           where t.requested_ms >= $1""", since_ms)
    return {**out, "transfers_units_dispatched": int(units["dispatched"]),
            "transfers_units_in_transit": int(units["in_transit"]), "transfers_units_received": int(received),
            "transfers_short_lines": int(lines["short"]), "transfers_over_lines": int(lines["over"])}
