"""Simulated customers: shoppers at the tills and online customers (the flash-sale crowd: `simulators/flash_fans.py`).

They reach the system only through its real interfaces: a store's lane API, its serial scanner and scale
(pseudo-terminals, when the fleet has devices), and the cloud HTTP API. Every outcome is counted in `counts`, which
the demo and the load suites summarise.
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

from loadtest.http import CLIENT_ERRORS, LeanClients
from protocol import order_lifecycle as lifecycle
from simulators.aftercare import ask_after_sales
from simulators.customer_auth import SignedIn, SignInFailed, SimulatedPhones, sign_in
from simulators.world import label_barcode, reference_members

CN = timezone(timedelta(hours=8))
LANES = ("1", "2", "3", "4")
SHELF_ITEMS = 24  # of each kind: enough variety for the pricing rules, few receipts to fill the shelves
ORDERING_MAX = 8  # online customers placing and paying an order at the same time
DEVICE_LANE = "1"  # the lane whose scanner is the store's serial scanner (edge config devices.scanner.lane)


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, but wake at once when `stop` is set (then True): a run ends when it says, not after the longest
    customer's think time."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except TimeoutError:
        return False


class Shelf:
    """What shoppers pick from: packed goods (GTIN), weighed goods (PLU), and one probe item per store that only
    the consistency probe sells, so that its on-hand count says exactly which probe sales the cloud has seen."""

    def __init__(self, catalogue: list[dict]) -> None:
        packed = [p for p in catalogue if p["unit"] == "piece" and p["gtin"]]
        self.probe = packed[-1]
        self.packed = packed[:SHELF_ITEMS]
        self.weighed = [p for p in catalogue if p["unit"] == "kg" and p["plu"]][:SHELF_ITEMS]
        self.online = [p for p in self.packed if "online" in p["channels"]]
        self.online_weighed = [p for p in self.weighed if "online" in p["channels"]]

    def code(self, rng: random.Random) -> str:
        if rng.random() < 0.6:
            return rng.choice(self.packed)["gtin"]
        return label_barcode(rng.choice(self.weighed)["plu"], rng.randint(150, 1500))  # a pre-weighed pack

    async def stock_up(self, http: LeanClients, lane_url: str, probe_qty: int = 1_000_000) -> None:
        for p in self.packed:
            await http.post(f"{lane_url}/stock/{p['sku']}/receive", json={"qty": 100_000})
        for p in self.weighed:
            await http.post(f"{lane_url}/stock/{p['sku']}/receive", json={"qty": 10_000_000})  # grams
        await http.post(f"{lane_url}/stock/{self.probe['sku']}/receive", json={"qty": probe_qty})


async def outboxes_drained(http: LeanClients, lane_urls: list[str], timeout_s: float) -> bool:
    """Until no store has events waiting for the cloud's ack (True), or the time is up (False). A store that does
    not answer counts as drained: its count cannot be compared anyway."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        depths = []
        for url in lane_urls:
            try:
                depths.append((await http.get(f"{url}/health")).json().get("outbox_depth"))
            except CLIENT_ERRORS:
                pass
        if not any(depths):
            return True
        await asyncio.sleep(0.5)
    return False


class Tills:
    """Shoppers at every store's tills: Poisson arrivals at `rate_per_store`, each a basket of 1-4 items scanned
    (packed goods and label barcodes), sometimes a loose item weighed on the store's scale, then paid. On the
    device lane the scanner and scale are the serial devices, and the receipt comes out of the serial printer."""

    def __init__(self, fleet, shelf: Shelf, rate_per_store: float, rng: random.Random, counts: Counter,
                 stop: asyncio.Event) -> None:
        self.fleet, self.shelf, self.rate, self.rng, self.counts, self.stop = fleet, shelf, rate_per_store, rng, counts, stop
        self.lane_free: dict[tuple[str, str], asyncio.Lock] = {}

    def tasks(self, http: LeanClients, stores: list[str] | None = None) -> list[asyncio.Task]:
        """One arrival stream per store (every store of the fleet unless given)."""
        return [asyncio.create_task(self._arrivals(http, store_id)) for store_id in stores or self.fleet.lanes]

    async def _arrivals(self, http: LeanClients, store_id: str) -> None:
        pending: set[asyncio.Task] = set()
        while not await pause(self.stop, self.rng.expovariate(self.rate)):
            task = asyncio.create_task(self.basket(http, store_id))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending, return_exceptions=True)

    async def basket(self, http: LeanClients, store_id: str) -> None:
        lane = self.rng.choice(LANES)
        lock = self.lane_free.setdefault((store_id, lane), asyncio.Lock())
        async with lock:  # one customer at a time per lane, as at a real till
            url = self.fleet.lanes[store_id]
            devices = self.fleet.devices.get(store_id) if lane == DEVICE_LANE else None
            try:
                for _ in range(self.rng.randint(1, 4)):
                    if devices is not None:
                        await self._scan_with_device(http, url, devices)
                    else:
                        await http.post(f"{url}/lanes/{lane}/scan", json={"code": self.shelf.code(self.rng)})
                if devices is not None and self.rng.random() < 0.5:
                    await self._weigh(http, url, devices)
                r = await http.post(f"{url}/lanes/{lane}/pay", json={"method": "cash", "tendered_fen": 10**6})
                self.counts["till_sales" if r.status_code == 201 else "till_refused"] += 1
                if r.status_code == 201 and devices is not None:
                    self.counts["device_sales"] += 1
            except CLIENT_ERRORS as exc:
                self.counts["till_refused"] += 1
                self.counts[f"till_error:{type(exc).__name__}"] += 1
                try:  # the cashier voids what is on the lane, so the next customer does not pay for it
                    await http.delete(f"{url}/lanes/{lane}/cart")
                except CLIENT_ERRORS:
                    pass

    async def _scan_with_device(self, http: LeanClients, url: str, devices) -> None:
        """The scanner types the code on its serial port; the box adds the line; the cashier sees it on screen."""
        before = (await http.get(f"{url}/lanes/{DEVICE_LANE}/cart")).json().get("lines", [])
        devices.scanner.scan(self.shelf.code(self.rng))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            # a new line, or one more of an item already there (the same code twice merges into one line)
            if (await http.get(f"{url}/lanes/{DEVICE_LANE}/cart")).json().get("lines", []) != before:
                return
        raise TimeoutError("a scanned code never reached the cart")

    async def _weigh(self, http: LeanClients, url: str, devices) -> None:
        product = self.rng.choice(self.shelf.weighed)
        devices.scale.set_grams(self.rng.randint(120, 2500))
        await asyncio.sleep(0.25)  # the item settles on the plate
        r = await http.post(f"{url}/lanes/{DEVICE_LANE}/weigh", json={"sku": product["sku"]})
        self.counts["weighed" if r.status_code == 200 else "weigh_refused"] += 1


class OnlineCustomers:
    """Members of the reference world who sign in with a code by SMS (registering the first time, through the
    simulated provider) and top up once through the simulated wallet provider (they pay the payment in its wallet
    app; the cloud credits it on the provider's signed notification), then order for pickup or (a share
    `delivery_share`, when `stores` gives where the stores are) for delivery to an address near a store, in a slot
    of tomorrow (past every cut-off), packed goods and now and then a weighed item, some allowing substitutions; pay
    with stored value (with the simulated wallet when it runs out: paid in the wallet app, the order paid on the
    notification), sometimes cancel, pick up at the store's till once the back room picked the order (409 until
    then) or follow the rider, and a share `after_sales_share` of them ask for a refund of one unit afterwards.
    They keep following their orders after `stop` until `done` is set (the run's grace)."""

    def __init__(self, cloud_url: str, fleet, shelf: Shelf, rate: float, rng: random.Random, counts: Counter,
                 stop: asyncio.Event, phones: SimulatedPhones, wallet_url: str, stores: list[dict] | None = None,
                 delivery_share: float = 0.0, after_sales_share: float = 0.0,
                 done: asyncio.Event | None = None) -> None:
        self.cloud_url, self.fleet, self.shelf, self.rate = cloud_url, fleet, shelf, rate
        self.rng, self.counts, self.stop, self.phones = rng, counts, stop, phones
        self.wallet_url = wallet_url  # the simulated wallet provider: its wallet app pays a payment's code
        self.stores = {s["store_id"]: s for s in stores or [] if s["store_id"] in fleet.lanes}
        self.delivery_share = delivery_share if self.stores else 0.0
        self.after_sales_share = after_sales_share
        self.done = done  # None: a customer gives up on a pickup after ~20 s, as before
        self.people = reference_members(2000, seed=rng.randrange(1 << 30))
        self.sessions: dict[str, SignedIn] = {}  # phone -> the person's session (they stay signed in)
        self._person: dict[str, asyncio.Lock] = {}
        self.refusals: dict[str, str] = {}  # the first detail the cloud gave for each kind of refusal
        self._handed_over = 0
        self._pickups: set[asyncio.Task] = set()

    async def signed_in(self, http: LeanClients, person: dict) -> SignedIn:
        async with self._person.setdefault(person["phone"], asyncio.Lock()):  # one sign-in per person at a time
            return await self._signed_in(http, person)

    async def _signed_in(self, http: LeanClients, person: dict) -> SignedIn:
        session = self.sessions.get(person["phone"])
        if session is None:
            session = await sign_in(http, self.cloud_url, self.phones, person["phone"])
            self.counts["signed_in"] += 1
            r = await http.post(f"{self.cloud_url}/members/{session.member_id}/top-ups",
                                json={"amount_fen": person["top_up_fen"], "method": "wallet_sim"},
                                headers={"Idempotency-Key": uuid.uuid4().hex, **session.headers})
            if r.status_code == 202 and await self.pay_in_wallet(http, r.json()["pay"]):
                self.counts["topped_up"] += 1
            self.sessions[person["phone"]] = session
        return session

    async def pay_in_wallet(self, http: LeanClients, pay: dict) -> bool:
        r = await http.post(f"{self.wallet_url}/sim/pay/{pay['prepay_id']}", json={})
        return r.status_code == 200

    async def paid_by_wallet(self, http: LeanClients, order_id: str, me: dict, pay: dict) -> bool:
        """The customer pays in the wallet app; the order is paid once the provider's notification reaches the
        cloud (or its query sweeper asks)."""
        if not await self.pay_in_wallet(http, pay):
            return False
        for _ in range(40):
            await asyncio.sleep(0.25)
            r = await http.get(f"{self.cloud_url}/orders/{order_id}", headers=me)
            if r.status_code == 200 and r.json()["status"] in lifecycle.PAID_STATUSES:
                return True
        return False

    async def run(self, http: LeanClients) -> None:
        """Poisson arrivals at `rate`; customers order independently of each other (at most
        `ORDERING_MAX` at once: beyond that an arrival is counted as `online_busy` and goes away)."""
        ordering: set[asyncio.Task] = set()
        while not await pause(self.stop, self.rng.expovariate(self.rate)):
            if len(ordering) >= ORDERING_MAX:
                self.counts["online_busy"] += 1
                continue
            task = asyncio.create_task(self._order_safely(http))
            ordering.add(task)
            task.add_done_callback(ordering.discard)
        await asyncio.gather(*ordering, return_exceptions=True)
        await asyncio.gather(*self._pickups, return_exceptions=True)

    async def _order_safely(self, http: LeanClients) -> None:
        try:
            await self.order_once(http)
        except CLIENT_ERRORS:
            self.counts["online_error"] += 1
        except SignInFailed:
            self.counts["sign_in_failed"] += 1

    def order_body(self, store: str) -> dict:
        """Tomorrow's slot (past any cut-off); packed goods, now and then a weighed item (grams)."""
        slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=self.rng.randint(8, 20), minute=0, second=0,
                                                              microsecond=0)
        items = [{"sku": p["sku"], "qty": self.rng.randint(1, 3)}
                 for p in self.rng.sample(self.shelf.online, self.rng.choice((1, 1, 2)))]
        if self.shelf.online_weighed and self.rng.random() < 0.4:
            items.append({"sku": self.rng.choice(self.shelf.online_weighed)["sku"], "qty": self.rng.randint(3, 12) * 100})
        body: dict = {"slot_start": slot.isoformat(), "items": items, "allow_substitutions": self.rng.random() < 0.5}
        if self.rng.random() < self.delivery_share:
            at = self.stores[store]  # an address ~1 km from the store: inside its delivery radius
            body |= {"fulfilment": "delivery", "location": {"lat": at["lat"] + self.rng.uniform(-0.008, 0.008),
                                                            "lon": at["lon"] + self.rng.uniform(-0.008, 0.008)}}
        else:
            body |= {"fulfilment": "pickup", "store_id": store}
        return body

    async def order_once(self, http: LeanClients) -> None:
        me = (await self.signed_in(http, self.rng.choice(self.people))).headers
        store = self.rng.choice(list(self.fleet.lanes))
        body = self.order_body(store)
        r = await http.post(f"{self.cloud_url}/orders", headers={"Idempotency-Key": uuid.uuid4().hex, **me}, json=body)
        if r.status_code != 201:
            try:  # the problem's type says which refusal (slot, stock, ...), its detail exactly what
                problem = (r.json() or {}) if r.status_code < 500 else {}
            except ValueError:
                problem = {}
            why = str(problem.get("type", "")).rsplit("/", 1)[-1]
            key = f"online_refused:{r.status_code}" + (f":{why}" if why else "")
            self.counts[key] += 1
            self.refusals.setdefault(key, str(problem.get("detail", ""))[:200])
            return
        order = r.json()
        self.counts["online_orders"] += 1
        self.counts[f"online_{body['fulfilment']}_orders"] += 1
        if self.rng.random() < 0.1:  # changed their mind
            c = await http.post(f"{self.cloud_url}/orders/{order['order_id']}/cancel", headers=me)
            self.counts["online_cancelled" if c.status_code == 200 else "cancel_refused"] += 1
            return
        paid = await http.post(f"{self.cloud_url}/orders/{order['order_id']}/pay", json={"method": "stored_value"},
                               headers=me)
        ok = paid.status_code == 200
        if paid.status_code == 409:  # the stored value ran out (or its top-up is not credited yet): the wallet
            paid = await http.post(f"{self.cloud_url}/orders/{order['order_id']}/pay", json={"method": "wallet_sim"},
                                   headers=me)
            ok = paid.status_code == 200 or (paid.status_code == 202 and await self.paid_by_wallet(
                http, order["order_id"], me, paid.json()["payment"]["pay"]))
            self.counts["wallet_paid"] += ok
        if ok:
            self.counts["online_paid"] += 1
            follow = (self.pick_up(http, store, order["pickup_code"], order["order_id"], me)
                      if body["fulfilment"] == "pickup" else self.follow_delivery(http, order["order_id"], me))
            task = asyncio.create_task(follow)
            self._pickups.add(task)
            task.add_done_callback(self._pickups.discard)

    def _patient(self, tries: int) -> bool:
        return not self.done.is_set() if self.done is not None else tries < 40

    async def pick_up(self, http: LeanClients, store: str, code: str, order_id: str = "", me: dict | None = None
                      ) -> None:
        """At the till: 409 while the back room is still picking it (or 404 before it reached the store): come back
        a little later; give up when the order ended otherwise (cancelled, refunded as short). Units a store was
        short of may have been re-routed to another store: the order then names it too, and the customer collects
        the rest there with the same code."""
        if self.done is not None:  # the back room picks it meanwhile (a customer at the counter first: picked there)
            await asyncio.sleep(self.rng.uniform(2.0, 5.0))
        visit, seen, collected, looks = [store], {store}, 0, 0
        while visit or self._patient(looks):
            if visit:
                if not await self._collect_at(http, visit.pop(0), code, order_id, me):
                    break
                collected += 1
            if me is None:
                break
            # the store's picking (and the re-route of what it was short of) may reach the cloud after the customer
            # left its till: look until the order ended, or names a store not visited yet
            view = await http.get(f"{self.cloud_url}/orders/{order_id}", headers=me)
            body = (view.json() or {}) if view.status_code == 200 else {}
            if lifecycle.is_final(body.get("status", "")):
                break
            others = [s for s in body.get("stores", []) if s not in seen and s in self.fleet.lanes]
            visit += others
            seen.update(others)
            if not visit:
                looks += 1
                await asyncio.sleep(0.5)
        if collected:
            self.counts["picked_up"] += 1
            await self._maybe_after_sales(http, order_id, me)

    async def _collect_at(self, http: LeanClients, store: str, code: str, order_id: str, me: dict | None) -> bool:
        tries = 0
        while self._patient(tries):  # the order reaches the store over NATS; the customer arrives a little later
            tries += 1
            await asyncio.sleep(0.5)
            r = await http.post(f"{self.fleet.lanes[store]}/pickups/{code}")
            if r.status_code == 200:
                return True
            if me and tries % 4 == 0:
                view = await http.get(f"{self.cloud_url}/orders/{order_id}", headers=me)
                if view.status_code == 200 and lifecycle.is_final(view.json()["status"]):
                    self.counts[f"pickup_ended_{view.json()['status']}"] += 1
                    return False
        return False

    async def follow_delivery(self, http: LeanClients, order_id: str, me: dict) -> None:
        """The customer watches the order (the rider on its timeline) until it is delivered or given up."""
        tries = 0
        while self._patient(tries):
            tries += 1
            await asyncio.sleep(1.0)
            view = await http.get(f"{self.cloud_url}/orders/{order_id}", headers=me)
            if view.status_code != 200:
                continue
            status = view.json()["status"]
            if status in lifecycle.HANDED_OVER_STATUSES:
                self.counts["delivered"] += 1
                await self._maybe_after_sales(http, order_id, me)
                return
            if lifecycle.is_final(status):
                self.counts[f"delivery_ended_{status}"] += 1
                return

    async def _maybe_after_sales(self, http: LeanClients, order_id: str, me: dict | None) -> None:
        """Asked once the cloud knows the order was handed over (a till pickup reaches it through the store's
        outbox, a moment after the till)."""
        self._handed_over += 1  # a cadence rather than dice: the first one asks, then every (1 / share)-th
        if me is None or not self.after_sales_share or \
                (self._handed_over - 1) % max(round(1 / self.after_sales_share), 1) != 0:
            return
        for _ in range(20):
            view = await http.get(f"{self.cloud_url}/orders/{order_id}", headers=me)
            if view.status_code == 200 and view.json()["status"] in lifecycle.HANDED_OVER_STATUSES:
                await ask_after_sales(http, self.cloud_url, me, view.json(), self.rng, self.counts)
                return
            await asyncio.sleep(0.5)

