"""Simulated GS1 scanning at every store's till, only through the box's own lane API (the demo hook of issue 16
item 2 and the till side of item 8):

- **lot sales**: packs and weighed goods whose GS1 code (GS1-128 with FNC1, DataBar Expanded, the bracketed form
  or a Digital Link, chosen at random as scanners send them) names a lot the store holds (`GET /stock`) and its
  use-by; scanned at the store's "labels" lane and paid cash: the sale takes exactly that lot;
- **GS1 sales without a lot**: a supplier's pre-pack with a use-by (and a weight) but no lot, for goods of which the
  store holds no named lot (sold first-expiry-first-out from the unlotted stock);
- **expired refusals**: a code whose use-by has passed, or naming a lot the store holds as expired: the till must
  refuse it (409, the reason for the cashier); counted as `labels_expired_refused`;
- **label-scale labels**: where the store has a label scale (`fleet.devices[store].label_scale`, a simulated scale on
  a pseudo-terminal that the box keeps loaded with its PLU table and the markdowns' prices), the counter weighs loose
  goods the store holds, the scale prints the label (its own barcode layout and price) and the package is scanned
  and paid at the store's "scale" lane (`SCALE_LANE`): the till reads back what the scale printed.

Counts (`counts`): labels_lot_sales, labels_lot_units (pieces or grams taken from named lots), labels_gs1_sales,
labels_expired_refused, labels_scale_printed, labels_scale_sales, labels_scale_fen (what those sales took). Anything
else the box refuses is counted `staff_refused:labels:<status>` (the first detail
of each kept in `refusals`), the lane's cart is voided and the work goes on.

`summary(db, stores, since_ms)` counts the same flow from the cloud's database: the sales paid at the staff's own
lane (`LANE`, joined from the cloud's till_sales to their movements) that took named lots, and how much, since
`since_ms`; the sales of label-scale labels (paid at `SCALE_LANE`: one label each) and what they took; and, as they
are now, the lots the stores hold and how many of them are past their use-by with goods
still on hand. Sales at the other tills that took a lot first-expiry-first-out are not this staff's.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

from loadtest.http import CLIENT_ERRORS, LeanClients
from protocol.barcodes import gs1_check_digit
from protocol.gs1 import GS
from protocol.lots import chain_day, is_expired
from simulators.store_work import StoreWork

LANE = "labels"  # a lane of its own: the tills' and the staff's carts never mix with it
SCALE_LANE = "scale"  # where the label scale's packages are paid: one label, one sale (the cloud counts them)
SCALE_SHARE = 0.5  # of rounds at a store with a label scale: also weigh, print and scan a label
SCALE_GRAMS = (150, 900)  # what the counter puts on the platter
ROUND_S = 6.0  # per store: about ten scans a minute, several in a 40 s demo
EXPIRED_SHARE = 0.2  # of rounds: a code past its use-by is tried (and must be refused)
SPELLINGS = ("gs1-128", "databar", "brackets", "digital-link")
# GS1 AI (10) holds at most 20 characters: a lot named longer (a lot of a second use-by gets "_yyyymmdd" appended,
# protocol.lots.lot_for_arrival) cannot be printed on a GS1 label, so the staff print none for it
GS1_LOT_MAX = 20


def in_store_gtin14(plu: str) -> str:
    """A weighed product's GTIN-14: indicator 0, its in-store GTIN-13 "21 PLU 00000 C" (value zeroed)."""
    body = "021" + plu.zfill(5) + "00000"
    return body + str(gs1_check_digit(body))


def gs1_code(spelling: str, gtin14: str, use_by: str = "", lot: str = "", grams: int | None = None) -> str:
    """One code as a scanner sends it: AIs 01, 3103 (net kg, 3 decimals), 17 (use-by YYMMDD), 10 (lot)."""
    pairs = [("01", gtin14)]
    if grams is not None:
        pairs.append(("3103", f"{grams:06d}"))
    if use_by:
        pairs.append(("17", use_by[2:4] + use_by[5:7] + use_by[8:10]))
    if lot:
        pairs.append(("10", lot))
    if spelling == "brackets":
        return "".join(f"({ai}){value}" for ai, value in pairs)
    if spelling == "digital-link":
        path = f"/01/{gtin14}" + (f"/10/{quote(lot, safe='')}" if lot else "")
        query = "&".join(f"{ai}={value}" for ai, value in pairs if ai not in ("01", "10"))
        return f"https://id.freshmesh.example{path}" + (f"?{query}" if query else "")
    body = "".join(ai + value + (GS if ai == "10" and k < len(pairs) - 1 else "") for k, (ai, value) in enumerate(pairs))
    return ("]C1" if spelling == "gs1-128" else "]e0") + body


class LabelOps(StoreWork):
    """GS1 scanning at the tills of every store of `fleet` (`fleet.lanes`: store id -> its box's lane API)."""

    AREA = "labels"

    def __init__(self, fleet, rng: random.Random, counts: Counter, stop: asyncio.Event) -> None:
        super().__init__(fleet, rng, counts, stop)
        catalogue = json.loads(Path(fleet.world_path).read_text())["catalogue"]
        self.gtins: dict[str, tuple[str, bool]] = {}  # sku -> (GTIN-14, weighed)
        for p in catalogue:
            if "offline" not in p.get("channels", ["offline"]):
                continue
            if p["unit"] == "piece" and p.get("gtin") and len(p["gtin"]) == 13:
                self.gtins[p["sku"]] = ("0" + p["gtin"], False)
            elif p["unit"] == "kg" and p.get("plu") and len(p["plu"].lstrip("0")) <= 5:
                self.gtins[p["sku"]] = (in_store_gtin14(p["plu"]), True)

    async def run(self, http: LeanClients, store_id: str) -> None:
        await asyncio.sleep(self.rng.uniform(0, ROUND_S))  # stores out of step
        scale = getattr(getattr(self.fleet, "devices", {}).get(store_id), "label_scale", None)
        while not self.stop.is_set():
            try:
                await self.one_round(http, self.fleet.lanes[store_id])
                if scale is not None and self.rng.random() < SCALE_SHARE:  # besides the round's scanning
                    await self.scale_label(http, self.fleet.lanes[store_id], scale)
            except CLIENT_ERRORS:
                self.counts["staff_error"] += 1
            if await self._pause(ROUND_S * self.rng.uniform(0.7, 1.3)):
                return

    async def one_round(self, http: LeanClients, url: str) -> None:
        today = chain_day(time.time_ns() // 1_000_000)
        stock = (await http.get(f"{url}/stock")).json().get("stock", [])
        live, expired, lotless = [], [], []
        for row in stock:
            if row["sku"] not in self.gtins:
                continue
            named = [lot for lot in row.get("lots", []) if lot["lot"]]
            for lot in named:
                if lot["use_by"] and is_expired(lot["use_by"], today):
                    if lot["on_hand"] > 0:
                        expired.append((row["sku"], lot))
                elif lot["on_hand"] >= (100 if self.gtins[row["sku"]][1] else 1) and len(lot["lot"]) <= GS1_LOT_MAX:
                    live.append((row["sku"], lot))  # a label carries a lot name GS1 AI (10) can hold
            if not named:
                lotless.append(row["sku"])
        spelling = self.rng.choice(SPELLINGS)
        if self.rng.random() < EXPIRED_SHARE:
            return await self.try_expired(http, url, spelling, today, expired, lotless)
        kinds = [kind for kind, some in (("lot", live), ("plain", lotless)) if some]
        if not kinds:
            return
        if self.rng.choice(kinds) == "lot":
            sku, lot = self.rng.choice(live)
            gtin14, weighed = self.gtins[sku]
            units = min(lot["on_hand"], self.rng.randrange(150, 900)) if weighed else 1
            code = gs1_code(spelling, gtin14, lot["use_by"], lot["lot"], units if weighed else None)
            if await self.sell(http, url, code) is not None:
                self.counts["labels_lot_sales"] += 1
                self.counts["labels_lot_units"] += units
        else:
            sku = self.rng.choice(lotless)
            gtin14, weighed = self.gtins[sku]
            use_by = (date.fromisoformat(today) + timedelta(days=self.rng.randrange(0, 4))).isoformat()
            code = gs1_code(spelling, gtin14, use_by, "", self.rng.randrange(150, 900) if weighed else None)
            if await self.sell(http, url, code) is not None:
                self.counts["labels_gs1_sales"] += 1

    async def try_expired(self, http: LeanClients, url: str, spelling: str, today: str, expired: list,
                          lotless: list) -> None:
        if expired and self.rng.random() < 0.5:
            sku, lot = self.rng.choice(expired)
            code = gs1_code(spelling, self.gtins[sku][0], "", lot["lot"], 500 if self.gtins[sku][1] else None)
        else:
            sku = self.rng.choice(lotless or list(self.gtins))
            past = (date.fromisoformat(today) - timedelta(days=self.rng.randrange(1, 5))).isoformat()
            code = gs1_code(spelling, self.gtins[sku][0], past, f"OLD{self.rng.randrange(100)}",
                            400 if self.gtins[sku][1] else None)
        r = await http.post(f"{url}/lanes/{LANE}/scan", json={"code": code})
        if r.status_code == 409 and "passed its use-by" in str(r.json().get("detail", "")):
            self.counts["labels_expired_refused"] += 1
        else:  # the till sold what it must not: say so in the counts, and take it off the lane
            self._refused(r, "expired_not_refused" if r.status_code == 200 else "expired")
            await http.delete(f"{url}/lanes/{LANE}/cart")

    async def scale_label(self, http: LeanClients, url: str, scale) -> None:
        """Weigh loose goods the store holds on the label scale, print the label, scan and pay it at SCALE_LANE."""
        held = {row["sku"]: row.get("on_hand", 0) for row in (await http.get(f"{url}/stock")).json().get("stock", [])}
        loaded = [e for e in list(scale.plus.values()) if e.unit == "kg" and held.get(e.sku, 0) >= 2 * SCALE_GRAMS[1]]
        if not loaded:  # the box has not loaded the scale yet, or nothing weighed is on the shelf
            return
        entry = self.rng.choice(loaded)
        scale.weigh(self.rng.randrange(*SCALE_GRAMS))
        try:
            label = scale.print_label(entry.plu)
        except ValueError:
            self.counts["staff_refused:labels:scale"] += 1
            return
        self.counts["labels_scale_printed"] += 1
        paid = await self.sell(http, url, label.code, SCALE_LANE, label.grams)
        if paid is not None:
            self.counts["labels_scale_sales"] += 1
            self.counts["labels_scale_fen"] += paid

    async def sell(self, http: LeanClients, url: str, code: str, lane: str = LANE, grams: int | None = None) -> int | None:
        """Scan `code` and pay cash: the sale's total, or None (refused; the lane's cart voided). `grams`: what the
        label says was weighed; a till that reads another weight from it is counted `labels_scale_misread` (the
        till prices the weight itself, with the day's promotions, so the amount may differ from the label's)."""
        r = await http.post(f"{url}/lanes/{lane}/scan", json={"code": code})
        if r.status_code != 200:
            self._refused(r, "scan")
            await http.delete(f"{url}/lanes/{lane}/cart")
            return None
        if grams is not None and r.json().get("line", {}).get("weight_g") != grams:
            self.counts["labels_scale_misread"] += 1
        paid = await http.post(f"{url}/lanes/{lane}/pay", json={"method": "cash", "tendered_fen": 10_000_000})
        if paid.status_code != 201:
            self._refused(paid, "pay")
            await http.delete(f"{url}/lanes/{lane}/cart")
            return None
        return int(paid.json()["total_fen"])


async def summary(db, stores: list[str] | None = None, since_ms: int = 0) -> dict:
    """This flow in the cloud's database (asyncpg connection or pool `db`; `stores`: only these, else all; sales
    from `since_ms` on, epoch ms)."""
    today = chain_day(time.time_ns() // 1_000_000)
    sold = await db.fetchrow(
        "select count(distinct m.event_id) as sales, coalesce(sum(-l.delta), 0)::bigint as units"
        " from stock_movement_lots l join stock_movements m on m.event_id = l.event_id"
        " join till_sales t on t.sale_id = m.reference and t.store_id = m.store_id"
        " where m.reason = 'sale' and l.lot <> '' and t.lane = $2 and m.wall_ms >= $3"
        " and ($1::text[] is null or m.store_id = any($1))", stores, LANE, since_ms)
    held = await db.fetchrow(
        "select count(*) as lots, count(*) filter (where use_by <> '' and use_by < $2 and on_hand > 0) as expired"
        " from stock_lots where lot <> '' and ($1::text[] is null or store_id = any($1))", stores, today)
    scaled = await db.fetchrow(
        "select count(*) as sales, coalesce(sum(total_fen), 0)::bigint as fen from till_sales"
        " where lane = $2 and wall_ms >= $3 and ($1::text[] is null or store_id = any($1))", stores, SCALE_LANE,
        since_ms)
    return {"lot_sales": sold["sales"], "lot_units_sold": sold["units"], "lots_held": held["lots"],
            "expired_lots_on_hand": held["expired"], "scale_labels_sold": scaled["sales"],
            "scale_labels_fen": scaled["fen"]}
