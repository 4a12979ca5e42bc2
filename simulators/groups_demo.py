"""The demo's group buyers (issue 17 item 2): customers open group buys and friends join through the share link,
each paying their own order with stored value or the simulated wallet; some groups gather every member in time and
form (their orders go to the stores), some do not and are cancelled and refunded by the cloud when their window
closes. Only the cloud's public HTTP API is used (and the simulated wallet's app to pay).

`GroupBuyers.run` works until `stop` is set, counting in `counts` under `groups_*` keys (refusals as
`groups_refused:<status>`; one refusal never stops the rest). `summary(db, since_ms)` counts the same flow's results
from the cloud's database.
"""
from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx

from loadtest.http import CLIENT_ERRORS, LeanClients
from protocol import order_lifecycle as lifecycle
from simulators.customer_auth import SignedIn, SignInFailed, SimulatedPhones, sign_in

CN = timezone(timedelta(hours=8))
DEMO_RULE_ID = "GB-DEMO"
TOP_UP_FEN = 20_000
ROUND_EVERY_S = 2.5  # a new group is opened this often
FAIL_EVERY = 3  # the 2nd, 5th, 8th ... group is one friend short: it is cancelled and refunded when its window closes


class GroupBuyers:
    def __init__(self, cloud_url: str, operator: dict, stores: list[str], phones: SimulatedPhones, wallet_url: str,
                 rng: random.Random, counts: Counter, stop: asyncio.Event, *, rule_id: str | None = None,
                 rule_book: dict | None = None, sku: str | None = None, people: int = 12) -> None:
        """`rule_id`: a group-buy rule in force online to use; without it, HQ publishes `rule_book` (the book it
        holds) with `DEMO_RULE_ID` added for `sku` (size 3, all day, the chain's window: FRESHMESH_GROUP_WINDOW_S)."""
        self.cloud_url, self.operator, self.stores, self.phones = cloud_url.rstrip("/"), operator, stores, phones
        self.wallet_url, self.rng, self.counts, self.stop = wallet_url.rstrip("/"), rng, counts, stop
        self.rule_id, self.rule_book, self.sku, self.people = rule_id, rule_book, sku, people
        self.groups: dict[str, int] = {}  # group id -> members it was meant to get
        self._tasks: list[asyncio.Task] = []
        self._seen_final: set[str] = set()
        self.opened = 0

    async def run(self, http: LeanClients) -> None:
        rule_id = self.rule_id or await self.publish_rule(http)
        if rule_id is None:
            return
        crowd = await self.sign_in_crowd(http)
        if len(crowd) < 3:
            self.counts["groups_refused:sign_in"] += 1
            return
        while not self.stop.is_set():
            self._tasks.append(asyncio.create_task(self.one_group(http, rule_id, crowd)))
            try:
                await asyncio.wait_for(self.stop.wait(), ROUND_EVERY_S)
            except TimeoutError:
                pass
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.tally(http)

    async def publish_rule(self, http: LeanClients) -> str | None:
        """HQ adds a group buy to the book it holds and publishes it (audited by the cloud)."""
        if self.rule_book is None or self.sku is None:
            self.counts["groups_refused:no_rule"] += 1
            return None
        products = (await http.get(f"{self.cloud_url}/products")).json()["products"]
        listed = next((p["price_fen"] for p in products if p["sku"] == self.sku), 0)
        if listed < 2:
            self.counts["groups_refused:no_product"] += 1
            return None
        rule = {"type": "group_buy", "id": DEMO_RULE_ID, "name": "三人团 / 3-person group", "skus": [self.sku],
                "group_price_fen": listed * 4 // 5, "group_size": 3}  # 20% off; the chain's window
        book = {**self.rule_book, "version": int(self.rule_book.get("version", 1)) + 1,
                "rules": [r for r in self.rule_book.get("rules", []) if r.get("id") != DEMO_RULE_ID] + [rule]}
        async with httpx.AsyncClient(timeout=30) as once:  # (the lean clients send no PUT)
            r = await once.put(f"{self.cloud_url}/rule-book", json=book, headers=self.operator)
        if r.status_code != 200:
            self.counts[f"groups_refused:{r.status_code}"] += 1
            return None
        self.counts["groups_rule_published"] += 1
        return DEMO_RULE_ID

    async def sign_in_crowd(self, http: LeanClients) -> list[tuple[SignedIn, bool]]:
        """(customer, has stored value): half top up once through the wallet, the others pay each order in it."""
        async def one(i: int) -> tuple[SignedIn, bool] | None:
            phone = f"137{self.rng.randrange(10**8):08d}"
            try:
                me = await sign_in(http, self.cloud_url, self.phones, phone)
            except (SignInFailed, *CLIENT_ERRORS):
                self.counts["groups_refused:sign_in"] += 1
                return None
            return me, i % 2 == 0 and await self.top_up(http, me)
        return [c for c in await asyncio.gather(*(one(i) for i in range(self.people))) if c is not None]

    async def top_up(self, http: LeanClients, me: SignedIn) -> bool:
        r = await http.post(f"{self.cloud_url}/members/{me.member_id}/top-ups", json={"amount_fen": TOP_UP_FEN,
                            "method": "wallet_sim"}, headers={**me.headers, "Idempotency-Key": uuid.uuid4().hex})
        if r.status_code != 202:
            self.counts[f"groups_refused:{r.status_code}"] += 1
            return False
        paid = await http.post(f"{self.wallet_url}/sim/pay/{r.json()['pay']['prepay_id']}", json={})
        if paid.status_code != 200:
            return False
        for _ in range(50):  # credited on the provider's notification
            view = await http.get(f"{self.cloud_url}/members/{me.member_id}", headers=me.headers)
            if view.status_code == 200 and view.json()["stored_value_fen"] >= TOP_UP_FEN:
                self.counts["groups_topped_up"] += 1
                return True
            await asyncio.sleep(0.1)
        return False

    def _order_fields(self) -> dict:
        slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=16, minute=0, second=0, microsecond=0)
        return {"qty": 1, "store_id": self.rng.choice(self.stores), "slot_start": slot.isoformat()}

    async def one_group(self, http: LeanClients, rule_id: str, crowd: list[tuple[SignedIn, bool]]) -> None:
        """A leader opens a group and pays; friends join one by one and pay. Some groups get everyone they need."""
        try:
            members = self.rng.sample(crowd, 3)
            leader, friends = members[0], members[1:]
            r = await http.post(f"{self.cloud_url}/group-buys", json={**self._order_fields(), "rule_id": rule_id},
                                headers={**leader[0].headers, "Idempotency-Key": uuid.uuid4().hex})
            if r.status_code != 201:
                self.counts[f"groups_refused:{r.status_code}"] += 1
                return
            group = r.json()["group"]
            self.counts["groups_opened"] += 1
            self.counts["groups_joined"] += 1  # the leader holds the first place
            self.opened += 1
            forming = self.opened % FAIL_EVERY != 2  # the others wait for a friend who never comes
            coming = group["size"] - 1 if forming else group["size"] - 2
            self.groups[group["group_id"]] = coming + 1
            await self.pay(http, leader, r.json()["order"]["order_id"])
            for friend in friends[:coming]:
                if self.stop.is_set():
                    return
                await asyncio.sleep(self.rng.uniform(0.1, 0.6))  # the link reaches them
                j = await http.post(f"{self.cloud_url}/group-buys/{group['group_id']}/join", json=self._order_fields(),
                                    headers={**friend[0].headers, "Idempotency-Key": uuid.uuid4().hex})
                if j.status_code != 201:
                    self.counts[f"groups_refused:{j.status_code}"] += 1
                    continue
                self.counts["groups_joined"] += 1
                if self.rng.random() < 0.2:  # a friend taps the link again: refused, they hold a place already
                    again = await http.post(f"{self.cloud_url}/group-buys/{group['group_id']}/join",
                                            json=self._order_fields(),
                                            headers={**friend[0].headers, "Idempotency-Key": uuid.uuid4().hex})
                    self.counts[f"groups_refused:{again.status_code}"] += 1
                await self.pay(http, friend, j.json()["order"]["order_id"])
        except CLIENT_ERRORS:
            self.counts["groups_error"] += 1

    async def pay(self, http: LeanClients, who: tuple[SignedIn, bool], order_id: str) -> bool:
        me, stored = who
        r = await http.post(f"{self.cloud_url}/orders/{order_id}/pay",
                            json={"method": "stored_value" if stored else "wallet_sim"}, headers=me.headers)
        if r.status_code == 202:  # pay it in the simulated wallet's app; paid on the provider's notification
            paid = await http.post(f"{self.wallet_url}/sim/pay/{r.json()['payment']['pay']['prepay_id']}", json={})
            ok = paid.status_code == 200
        else:
            ok = r.status_code == 200
        if not ok:
            self.counts[f"groups_refused:{r.status_code}"] += 1
            return False
        self.counts["groups_paid_wallet" if r.status_code == 202 else "groups_paid_stored_value"] += 1
        return True

    async def tally(self, http: LeanClients) -> None:
        """Each of this run's groups as the share page shows it now: formed or failed (counted once)."""
        for group_id in self.groups:
            if group_id in self._seen_final:
                continue
            r = await http.get(f"{self.cloud_url}/group-buys/{group_id}")
            status = r.json()["status"] if r.status_code == 200 else None
            if status in ("formed", "failed"):
                self._seen_final.add(group_id)
                self.counts[f"groups_{status}"] += 1


async def summary(db, since_ms: int) -> dict:
    """The flow's results as the cloud's database holds them, for groups opened since `since_ms`: opened, formed,
    failed, failed and fully refunded (every done charge of its orders has a done refund), members who joined,
    orders still held for a group, refunds made and their sum."""
    groups = await db.fetchrow(
        """select count(*) as opened, count(*) filter (where status = 'formed') as formed,
                  count(*) filter (where status = 'failed') as failed,
                  count(*) filter (where status = 'failed' and ended_ms is not null and not exists (
                      select 1 from group_members m join money_movements c on c.order_id = m.order_id
                         and c.kind = 'charge' and c.state = 'done'
                      left join money_movements r on r.movement_id = 'refund:' || m.order_id and r.state = 'done'
                      where m.group_id = g.group_id and r.movement_id is null)) as refunded
           from group_buys g where opened_ms >= $1""", since_ms)
    members = await db.fetchrow(
        """select count(*) as joined, count(*) filter (where o.group_held and o.status = any($2::text[])) as held,
                  count(r.movement_id) as refunds, coalesce(sum(r.amount_fen), 0) as refunded_fen
           from group_members m join group_buys g on g.group_id = m.group_id
           join orders o on o.order_id = m.order_id
           left join money_movements r on r.movement_id = 'refund:' || m.order_id and r.state = 'done'
           where g.opened_ms >= $1""", since_ms, list(lifecycle.PAID_STATUSES))
    return {"groups_opened": int(groups["opened"]), "groups_formed": int(groups["formed"]),
            "groups_failed": int(groups["failed"]), "groups_refunded": int(groups["refunded"]),
            "members_joined": int(members["joined"]), "orders_held": int(members["held"]),
            "refunds": int(members["refunds"]), "refunded_fen": int(members["refunded_fen"])}
