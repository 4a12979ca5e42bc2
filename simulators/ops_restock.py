"""Simulated restocking in every store of the demo fleet (issue 16 item 7), working only through each box's own lane
API, and a summary of the flow's results read from the cloud's database.

- `OpsRestock` (one task per store): every round the store's staff look at the box's open restock alerts
  (`GET /restock/alerts?status=open`); each new one is ordered from its supplier and, a demo-sized lead time later
  (`LEAD_S`: seconds, not days), the supplier's delivery note is received on the box (`POST /receivings`: the
  alert's suggested quantity, one note per alert, lot and use-by named by the box; `POST /stock/{sku}/receive` for
  a product whose supplier is not known), which lifts the SKU back above its point and clears the alert (the box
  says so to the cloud). Counted in `counts`: `restock_checks`, `restock_alerts_seen`, `restock_received` (of them
  `restock_notes_received` as delivery notes, `restock_received_plain` without), `restock_received_units`; a
  refusal as `staff_refused:restock:<status>` (the next alert is handled all the same).
- `hq_sets_points` (the HQ side, for the demo's start: through the cloud's API as an hq_admin): reorder points for a
  few SKUs per store set just above what the store holds, so the boxes raise alerts during a short demo the way a
  real store does when sales take it below its point.
- `summary(db)`: from the cloud's PostgreSQL: reorder points set, alerts raised / cleared / open, the open alerts'
  suggested units, pre-sale orders placed and reserved, and the restock deliveries received (their notes "RS-...").
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Mapping

import httpx

from loadtest.http import CLIENT_ERRORS, LeanClients
from simulators.ops_receiving import CLERK  # the receiving clerk the demo boxes have
from simulators.store_work import StoreWork

ROUND_S = 3.0  # how often a store's staff look at the alerts (a few operations per store per minute)
LEAD_S = 4.0  # the demo's supplier lead time: an alert's delivery is received this long after it was seen
POINTS_PER_STORE = 3
POINT_ABOVE_MAX = 5  # a demo point is 1..this above what the store holds: the box raises the alert at once
TARGET_ABOVE = 20  # and its target this far above the point


class OpsRestock(StoreWork):
    """Restocking staff of every store of `fleet` (`fleet.lanes`: store id -> its box's lane API base URL)."""

    AREA = "restock"

    def __init__(self, fleet, rng: random.Random, counts: Counter, stop: asyncio.Event, round_s: float = ROUND_S,
                 lead_s: float = LEAD_S, suppliers: Mapping[str, str] | None = None) -> None:
        """`suppliers`: sku -> its supplier, for the delivery notes of alerts whose box names none."""
        super().__init__(fleet, rng, counts, stop)
        self.round_s, self.lead_s = round_s, lead_s
        self.suppliers = dict(suppliers or {})
        self.ordered: dict[str, dict[str, tuple[float, dict]]] = {}  # store -> alert id -> (due, alert)
        self.received: set[str] = set()  # alert ids whose delivery was received

    async def run(self, http: LeanClients, store_id: str) -> None:
        if await self._pause(self.rng.uniform(0, self.round_s)):  # the stores' rounds spread out
            return
        while not self.stop.is_set():
            await self.one_round(http, store_id)
            if await self._pause(self.round_s):
                return

    async def one_round(self, http: LeanClients, store_id: str) -> None:
        """New alerts ordered; deliveries that are due received."""
        url, waiting = self.fleet.lanes[store_id], self.ordered.setdefault(store_id, {})
        try:
            r = await http.get(f"{url}/restock/alerts", params={"status": "open"})
            if r.status_code != 200:
                return self._refused(r, "alerts")
            self.counts["restock_checks"] += 1
            for alert in r.json().get("alerts", []):
                if alert["alert_id"] not in waiting and alert["alert_id"] not in self.received:
                    waiting[alert["alert_id"]] = (time.monotonic() + self.lead_s, alert)
                    self.counts["restock_alerts_seen"] += 1
            for alert_id, (due, alert) in sorted(waiting.items(), key=lambda x: x[1][0]):
                if due <= time.monotonic():
                    await self.receive(http, url, alert)
                    del waiting[alert_id]
        except CLIENT_ERRORS:
            self.counts["restock_error"] += 1

    async def receive(self, http: LeanClients, url: str, alert: dict) -> None:
        qty, supplier = max(alert["suggested_qty"], 1), alert.get("supplier") or self.suppliers.get(alert["sku"], "")
        if supplier:  # the supplier's delivery note: one per alert (the same note again books nothing twice)
            r = await http.post(f"{url}/receivings", json={
                "supplier": supplier, "note_no": f"RS-{alert['alert_id']}", "received_by": CLERK,
                "lines": [{"sku": alert["sku"], "qty": qty}]})
        else:
            r = await http.post(f"{url}/stock/{alert['sku']}/receive", json={"qty": qty})
        if r.status_code not in (200, 201):
            return self._refused(r, f"receiving {alert['sku']}")
        self.counts["restock_notes_received" if supplier else "restock_received_plain"] += 1
        self.received.add(alert["alert_id"])
        self.counts["restock_received"] += 1
        self.counts["restock_received_units"] += qty


async def hq_sets_points(cloud_url: str, operator: dict, fleet, rng: random.Random, counts: Counter,
                         per_store: int = POINTS_PER_STORE) -> int:
    """HQ sets reorder points for `per_store` SKUs of each store, just above what the store holds now (read from the
    store's box: `GET /stock`), through `PUT /stores/{id}/reorder-points`; returns how many were set."""
    done = 0
    async with httpx.AsyncClient(timeout=15) as http:
        for store_id, url in fleet.lanes.items():
            stock = (await http.get(f"{url}/stock")).json().get("stock", [])
            held = sorted((s for s in stock if s.get("on_hand", 0) > 0), key=lambda s: s["sku"])
            items = [{"sku": s["sku"], "reorder_point": (p := s["on_hand"] + rng.randint(1, POINT_ABOVE_MAX)),
                      "target": p + TARGET_ABOVE} for s in rng.sample(held, min(per_store, len(held)))]
            if not items:
                continue
            r = await http.put(f"{cloud_url}/stores/{store_id}/reorder-points", json={"items": items}, headers=operator)
            if r.status_code == 200:
                done += len(items)
                counts["restock_points_set"] += len(items)
            else:
                counts[f"staff_refused:restock_points:{r.status_code}"] += 1
    return done


async def summary(db, since_ms: int = 0, stores: list[str] | None = None) -> dict:
    """The restock flow's results from the cloud's database (`db`: an asyncpg connection or pool): points set,
    alerts raised, pre-sales placed and deliveries received since `since_ms` (epoch ms); `stores` narrows it to those
    stores."""
    mine = "($1::text[] is null or store_id = any($1))"
    row = await db.fetchrow(
        f"""select (select count(*) from reorder_points where {mine} and updated_ms >= $2) as points_set,
                   (select count(*) from restock_alerts where {mine} and raised_ms >= $2) as raised,
                   (select count(*) from restock_alerts where {mine} and raised_ms >= $2
                      and cleared_ms is not null) as cleared,
                   (select coalesce(sum(suggested_qty), 0) from restock_alerts where {mine} and raised_ms >= $2
                      and cleared_ms is null) as open_suggested_units,
                   (select count(*) from presale_orders where {mine} and created_ms >= $2) as presales,
                   (select count(*) from presale_orders where {mine} and created_ms >= $2
                      and allocated_ms > 0) as presales_reserved,
                   (select count(*) from receivings where {mine} and note_no like 'RS-%'
                      and wall_ms >= $2) as notes""", stores, since_ms)  # noqa: S608 - no input in the text
    return {"reorder_points_set": row["points_set"], "alerts_raised": row["raised"], "alerts_cleared": row["cleared"],
            "alerts_open": row["raised"] - row["cleared"], "open_suggested_units": int(row["open_suggested_units"]),
            "presale_orders": row["presales"], "presale_orders_reserved": row["presales_reserved"],
            "restock_deliveries_received": row["notes"]}
