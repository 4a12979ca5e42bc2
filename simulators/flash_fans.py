"""The flash-sale crowd, with the sale's units in real stores: an operator opens a sale over the stores' online
escrow; the fans (each signed in by an SMS code, with a flash pass) rush it at once, one unit each; every fan who got
an order waits for it to be assigned to a store (pickup code, payment deadline), and then most pay through the
simulated wallet and collect it at that store's till once the back room picked it, while a few let theirs expire.
Fans who came too late keep an eye on the sale, and buy a unit that went back on sale (an expired order's), so the
sale still sells out. Only the cloud API, the wallet app and the stores' lane APIs are used.

Counts (in `counts`): `flash_attempts`, `flash_accepted`, `flash_paid`, `flash_picked_up`, `flash_let_expire`,
`flash_expired` (seen expired by its fan), `flash_rebought`, `flash_collected_at_stores` (one per till pickup: a
unit a store was short of and the cloud re-routed is collected at that other store too).
"""
from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from loadtest.http import CLIENT_ERRORS, LeanClients
from protocol import order_lifecycle as lifecycle
from simulators.customer_auth import SignedIn, SignInFailed, SimulatedPhones, flash_pass, sign_in
from simulators.world import reference_members

LET_EXPIRE_EVERY = 10  # one fan in 10 who got an order never pays for it
LOOK_EVERY_S = 0.5
REBUY_EVERY_S = 1.0


class FlashFans:
    def __init__(self, cloud_url: str, lanes: dict[str, str], wallet_url: str, phones: SimulatedPhones,
                 rng: random.Random, counts: Counter, done: asyncio.Event) -> None:
        self.cloud_url, self.lanes, self.wallet_url, self.phones = cloud_url, lanes, wallet_url, phones
        self.rng, self.counts, self.done = rng, counts, done  # `done`: the run is over, stop waiting
        self.sale: dict | None = None
        self.unserved = 0  # orders let expire and not bought again yet: the late fans look for these units

    async def run(self, http: LeanClients, operator: dict, sku: str, quantity: int = 50, attempts: int = 300,
                  fans: int = 120, seed: int = 11) -> dict:
        """Open the sale over every running store, rush it, and follow each order to its end (or `done`)."""
        people = reference_members(fans, seed=seed)
        sessions = await asyncio.gather(*(sign_in(http, self.cloud_url, self.phones, p["phone"]) for p in people),
                                        return_exceptions=True)
        signed = [s for s in sessions if isinstance(s, SignedIn)]
        passes = [await flash_pass(http, self.cloud_url, s) for s in signed]
        self.counts["flash_fans_signed_in"] += len(passes)
        if not passes:
            raise SignInFailed(f"none of the {fans} fans could sign in: {sessions[0]!r}")
        now = datetime.now(UTC)
        r = await http.post(f"{self.cloud_url}/flash-sales", headers=operator,
                            json={"sku": sku, "quantity": quantity, "price_fen": 990, "per_member_limit": 1,
                                  "rate_per_s": 5000, "starts_at": (now - timedelta(seconds=1)).isoformat(),
                                  "ends_at": (now + timedelta(hours=1)).isoformat(), "stores": sorted(self.lanes)})
        if r.status_code != 201:
            raise RuntimeError(f"the flash sale was refused: {r.status_code} {r.text[:300]}")
        self.sale = sale = r.json()
        won: list[tuple[SignedIn, str]] = []
        lost: set[int] = set()

        async def attempt(i: int) -> None:
            a = await http.post(f"{self.cloud_url}/flash-sales/{sale['sale_id']}/orders", json={},
                                headers={"Idempotency-Key": uuid.uuid4().hex,
                                         "Authorization": f"Bearer {passes[i % len(passes)]}"})
            self.counts["flash_attempts"] += 1
            if a.status_code == 201:
                self.counts["flash_accepted"] += 1
                won.append((signed[i % len(passes)], a.json()["order_id"]))
            else:
                lost.add(i % len(passes))
        await asyncio.gather(*(attempt(i) for i in range(attempts)))
        winners = {fan.member_id for fan, _ in won}
        late = [(signed[i], passes[i]) for i in sorted(lost) if signed[i].member_id not in winners]
        followers = [asyncio.create_task(self.follow(http, fan, oid, i % LET_EXPIRE_EVERY != 3))
                     for i, (fan, oid) in enumerate(won)]
        await asyncio.gather(*followers, self.watch_returns(http, late, followers), return_exceptions=True)
        return sale

    async def follow(self, http: LeanClients, fan: SignedIn, order_id: str, pays: bool = True) -> None:
        """One fan's order: assigned -> paid -> picked up at its store (or left unpaid until it expires)."""
        try:
            order = await self._wait(http, fan, order_id, lambda o: bool(o.get("pickup_code")) or
                                     lifecycle.is_final(o["status"]))
            if order is None or lifecycle.is_final(order["status"]):
                return
            if not pays:
                self.counts["flash_let_expire"] += 1
                self.unserved += 1
                ended = await self._wait(http, fan, order_id, lambda o: lifecycle.is_final(o["status"]))
                if ended is not None and ended["status"] == lifecycle.EXPIRED:
                    self.counts["flash_expired"] += 1
                return
            if not await self.pay(http, fan, order_id):
                self.counts["flash_pay_failed"] += 1
                return
            self.counts["flash_paid"] += 1
            await self.collect(http, fan, order_id, order["stores"][0], order["pickup_code"])
        except CLIENT_ERRORS:
            self.counts["flash_error"] += 1

    async def pay(self, http: LeanClients, fan: SignedIn, order_id: str) -> bool:
        r = await http.post(f"{self.cloud_url}/orders/{order_id}/pay", json={"method": "wallet_sim"},
                            headers=fan.headers)
        if r.status_code == 200:
            return True
        if r.status_code != 202:
            self.counts[f"flash_pay_refused:{r.status_code}"] += 1
            return False
        paid_in_app = await http.post(f"{self.wallet_url}/sim/pay/{r.json()['payment']['pay']['prepay_id']}", json={})
        if paid_in_app.status_code != 200:
            return False
        paid = await self._wait(http, fan, order_id, lambda o: o["status"] in lifecycle.PAID_STATUSES or
                                lifecycle.is_final(o["status"]))
        return paid is not None and paid["status"] in lifecycle.PAID_STATUSES

    async def collect(self, http: LeanClients, fan: SignedIn, order_id: str, store: str, code: str) -> None:
        """At the store's till: answered 409 while the back room is still picking it; come back a little later.
        Units the store was short of may have been re-routed to another store (the cloud's re-route adds that
        store's part, with the same pickup code): the order then names it too, and the fan collects the rest there.
        Until every part is collected the order stays `ready` in the cloud (the part waiting at the other store)."""
        await self._sleep(self.rng.uniform(2.0, 5.0))  # on their way; the back room picks it meanwhile
        visit, seen, collected = [store], {store}, 0
        while not self.done.is_set():
            if visit:
                if not await self._collect_at(http, fan, order_id, visit.pop(0), code):
                    break
                collected += 1
            # the store's picking may reach the cloud after the fan left the till: look until the order ended
            view = await http.get(f"{self.cloud_url}/orders/{order_id}", headers=fan.headers)
            if view.status_code == 200:
                body = view.json() or {}
                if lifecycle.is_final(body.get("status", "")):
                    break
                others = [s for s in body.get("stores", []) if s not in seen and s in self.lanes]
                visit += others
                seen.update(others)
            if not visit:
                await self._sleep(LOOK_EVERY_S)
        if collected:
            self.counts["flash_picked_up"] += 1
            self.counts["flash_collected_at_stores"] += collected

    async def _collect_at(self, http: LeanClients, fan: SignedIn, order_id: str, store: str, code: str) -> bool:
        url = self.lanes[store]
        while not self.done.is_set():
            r = await http.post(f"{url}/pickups/{code}")
            if r.status_code == 200:
                return True
            order = (await http.get(f"{self.cloud_url}/orders/{order_id}", headers=fan.headers)).json()
            if lifecycle.is_final(order["status"]):
                return False
            await self._sleep(LOOK_EVERY_S)
        return False

    async def watch_returns(self, http: LeanClients, late: list[tuple[SignedIn, str]],
                            winners: list[asyncio.Task]) -> None:
        """Fans who were sold out look again while some order is left to expire: a unit back on sale is bought by
        the next of them (their order then followed like any other, and paid). They stop looking once every winner's
        order ended and no unit is left to come back."""
        assert self.sale is not None
        sale_id = self.sale["sale_id"]
        following: list[asyncio.Task] = []
        while late and not self.done.is_set():
            await self._sleep(REBUY_EVERY_S)
            if self.unserved <= 0:
                if all(t.done() for t in winners):
                    break
                continue
            status = (await http.get(f"{self.cloud_url}/flash-sales/{sale_id}")).json()
            back = min(status.get("remaining", 0), self.unserved, len(late))
            if back <= 0:
                continue
            # every unit back on sale is tried by a fan of its own at once, as a watching crowd would: one a look
            # would leave the last units unsold when several orders expire together near the end of a run
            buyers, late[:back] = late[:back], []
            tries = await asyncio.gather(*(self._rebuy(http, sale_id, fan, fan_pass) for fan, fan_pass in buyers))
            for (fan, _), order_id in zip(buyers, tries, strict=True):
                if order_id is None:
                    continue
                self.unserved -= 1
                self.counts["flash_rebought"] += 1
                following.append(asyncio.create_task(self.follow(http, fan, order_id)))
        await asyncio.gather(*following, return_exceptions=True)

    async def _rebuy(self, http: LeanClients, sale_id: str, fan: SignedIn, fan_pass: str) -> str | None:
        """A late fan's try at a unit back on sale: the order id, or None (sold out again, or this fan has one
        already: the next fan tries at the next look)."""
        r = await http.post(f"{self.cloud_url}/flash-sales/{sale_id}/orders", json={},
                            headers={"Idempotency-Key": f"rebuy-{fan.member_id}", "Authorization": f"Bearer {fan_pass}"})
        return r.json()["order_id"] if r.status_code == 201 else None

    async def _wait(self, http: LeanClients, fan: SignedIn, order_id: str, until) -> dict | None:
        while not self.done.is_set():
            r = await http.get(f"{self.cloud_url}/orders/{order_id}", headers=fan.headers)
            if r.status_code == 200 and until(r.json()):
                return r.json()
            await self._sleep(LOOK_EVERY_S)
        return None

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), seconds)
        except TimeoutError:
            pass
