"""The demo's coupons (issue 17 item 1), through the cloud's public HTTP API only.

At the start HQ (the demo's operator) defines two coupons from the promotion book's coupon rules: "spend >= 50 at a
till -> a 10-yuan online coupon" (a `till_spend` trigger: the tills' member sales issue it) and a campaign coupon,
issued to the first members who sign in. Then, until `stop`, customers sign in (by SMS code, as OnlineCustomers
do), look in their wallet, and order for pickup with a coupon they hold (items the coupon applies to, at a store
holding them online); most pay with the simulated wallet (the coupon is redeemed), some cancel (it goes back to the
wallet). Counts go to `counts` under "coupons_*"; a refusal is counted as "coupons_refused:<status>" and never stops
the rest. `summary(db, since_ms)` counts the flow's results from the cloud's database.
"""
from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

from loadtest.http import CLIENT_ERRORS, LeanClients
from protocol.order_lifecycle import PAID_STATUSES
from simulators.customer_auth import SignedIn, SignInFailed, SimulatedPhones, sign_in
from simulators.world import reference_members

CN = timezone(timedelta(hours=8))
CAMPAIGN_MEMBERS = 8
TILL_SPEND_MIN_FEN = 5_000
CANCEL_SHARE = 0.2
PAUSE_S = 1.0  # between customers: the demo shows the flow without crowding the 2-core box
TILL_EVERY = 3  # of the customers' rounds, one begins with a till purchase worth the trigger
TILL_LANE = "coupons"


class CouponCustomers:
    def __init__(self, cloud_url: str, operator: dict, phones: SimulatedPhones, wallet_url: str, rng: random.Random,
                 counts: Counter, stop: asyncio.Event, stores: list[str] | None = None, run_id: str | None = None,
                 lanes: dict[str, str] | None = None, packed: list[dict] | None = None) -> None:
        """`lanes` (store id -> its box's lane API) and `packed` (goods with a GTIN): where and what the customers buy
        at the tills, spending enough for the till-spend trigger's online coupon (none: online only)."""
        self.cloud_url, self.operator, self.phones, self.wallet_url = cloud_url.rstrip("/"), operator, phones, wallet_url
        self.rng, self.counts, self.stop = rng, counts, stop
        self.stores = stores  # None: every store the cloud lists
        self.lanes, self.packed = lanes or {}, [p for p in packed or () if p.get("gtin")]
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.people = reference_members(200, seed=rng.randrange(1 << 30))
        self.sessions: dict[str, SignedIn] = {}
        self.refusals: dict[str, str] = {}  # the first detail of each kind of refusal
        self.rule: dict | None = None

    def _refused(self, what: str, r) -> None:
        self.counts[f"coupons_refused:{r.status_code}"] += 1
        self.refusals.setdefault(f"{what}:{r.status_code}", r.text[:300])

    async def run(self, http: LeanClients) -> None:
        try:
            if not await self._hq_defines(http):
                return
            await self._campaign(http)
        except (*CLIENT_ERRORS, SignInFailed) as exc:
            self.refusals.setdefault("setup", str(exc)[:300])
            return
        rounds = 0
        while not self.stop.is_set():
            rounds += 1
            try:
                if self.lanes and self.packed and rounds % TILL_EVERY == 1:
                    await self._till_spend(http)
                await self._one_customer(http)
            except (*CLIENT_ERRORS, SignInFailed) as exc:
                self.counts["coupons_errors"] += 1
                self.refusals.setdefault("error", str(exc)[:300])
            try:
                await asyncio.wait_for(self.stop.wait(), PAUSE_S)
            except TimeoutError:
                pass

    # ---- HQ ------------------------------------------------------------------------------------------------------
    async def _hq_defines(self, http: LeanClients) -> bool:
        r = await http.get(f"{self.cloud_url}/operator/coupon-rules", headers=self.operator)
        if r.status_code != 200:
            self._refused("rules", r)
            return False
        rules = [x for x in r.json()["rules"] if not x["new_member_only"] and "online" in x["channels"]]
        if not rules:
            self.refusals.setdefault("rules", "the promotion book has no coupon rule usable online")
            return False
        # "a 10-yuan coupon": the book's 10-yuan rule when it has one, else its first usable coupon rule
        self.rule = next((x for x in rules if x["amount_off_fen"] == 1_000), rules[0])
        for suffix, extra in (("spend50", {"trigger": {"kind": "till_spend", "min_fen": TILL_SPEND_MIN_FEN,
                                                        "channel_issued": "online"}, "per_member_limit": 50}),
                              ("campaign", {"per_member_limit": 1})):
            body = {"definition_id": f"demo-{suffix}-{self.run_id}", "rule_id": self.rule["rule_id"],
                    "name": f"{self.rule['name']} ({suffix})", "channels": ["online"], "valid_days": 7, **extra}
            r = await http.post(f"{self.cloud_url}/operator/coupon-definitions", json=body, headers=self.operator)
            if r.status_code not in (200, 201):
                self._refused("define", r)
                return False
            self.counts["coupons_defined"] += 1
        return True

    async def _campaign(self, http: LeanClients) -> None:
        members = [(await self._signed_in(http, p)).member_id for p in self.people[:CAMPAIGN_MEMBERS]]
        r = await http.post(f"{self.cloud_url}/operator/coupon-definitions/demo-campaign-{self.run_id}/issue",
                            json={"batch_id": f"demo-{self.run_id}", "member_ids": members}, headers=self.operator)
        if r.status_code != 200:
            self._refused("issue", r)
            return
        self.counts["coupons_issued_campaign"] += len(r.json()["issued"])

    async def _signed_in(self, http: LeanClients, person: dict) -> SignedIn:
        session = self.sessions.get(person["phone"])
        if session is None:
            session = self.sessions[person["phone"]] = await sign_in(http, self.cloud_url, self.phones, person["phone"])
        return session

    # ---- customers -------------------------------------------------------------------------------------------------
    async def _till_spend(self, http: LeanClients) -> None:
        """A member buys for at least TILL_SPEND_MIN_FEN at a till (identified by their member code): the cloud's
        trigger puts an online coupon in their wallet when the sale arrives."""
        me = await self._signed_in(http, self.rng.choice(self.people[:CAMPAIGN_MEMBERS * 2]))
        view = await http.get(f"{self.cloud_url}/members/{me.member_id}", headers=me.headers)
        if view.status_code != 200:
            return self._refused("member", view)
        store = self.rng.choice(sorted(self.lanes))
        lane = f"{self.lanes[store]}/lanes/{TILL_LANE}"
        await http.delete(f"{lane}/cart")
        r = await http.post(f"{lane}/member", json={"member_code": view.json()["member_code"]})
        if r.status_code != 200:  # the store's member cache has not heard of them yet
            return self._refused("till member", r)
        total = 0
        for _ in range(30):  # scan until the basket is worth the trigger
            r = await http.post(f"{lane}/scan", json={"code": self.rng.choice(self.packed)["gtin"]})
            if r.status_code < 300:
                total = r.json().get("total_fen", 0)
            if total >= TILL_SPEND_MIN_FEN:
                break
        cart = await http.get(f"{lane}/cart")  # what the till asks for, with the day's promotions
        total = cart.json().get("total_fen", total) if cart.status_code == 200 else total
        r = await http.post(f"{lane}/pay", json={"method": "cash", "tendered_fen": total + 10_000})
        if r.status_code != 201:
            return self._refused("till pay", r)
        self.counts["coupons_till_spends"] += 1

    async def _one_customer(self, http: LeanClients) -> None:
        person = self.rng.choice(self.people[:CAMPAIGN_MEMBERS * 2])
        me = await self._signed_in(http, person)
        r = await http.get(f"{self.cloud_url}/members/{me.member_id}/coupons", headers=me.headers)
        if r.status_code != 200:
            self._refused("wallet", r)
            return
        usable = [c for c in r.json()["coupons"] if c["status"] == "issued" and "online" in c["channels"]]
        self.counts["coupons_wallets_seen"] += 1
        if not usable:
            return
        coupon = self.rng.choice(usable)
        item = await self._item(http, coupon)
        if item is None:
            self.counts["coupons_no_stock"] += 1
            return
        store, sku, qty = item
        slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0).isoformat()
        r = await http.post(f"{self.cloud_url}/orders", headers={"Idempotency-Key": uuid.uuid4().hex, **me.headers},
                            json={"fulfilment": "pickup", "store_id": store, "slot_start": slot,
                                  "items": [{"sku": sku, "qty": qty}], "coupons": [coupon["code"]]})
        if r.status_code != 201:
            self._refused("order", r)
            return
        order = r.json()
        self.counts["coupons_reserved"] += 1
        if self.rng.random() < CANCEL_SHARE:
            r = await http.post(f"{self.cloud_url}/orders/{order['order_id']}/cancel", headers=me.headers)
            self.counts["coupons_released" if r.status_code == 200 else "coupons_cancel_failed"] += 1
            return
        if await self._pay(http, me, order["order_id"]):
            self.counts["coupons_redeemed_online"] += 1

    async def _item(self, http: LeanClients, coupon: dict) -> tuple[str, str, int] | None:
        """(store, sku, qty) the coupon applies to, held online at a store, of at least its minimum spend."""
        value = coupon["value"] or {}
        stores = self.stores
        if stores is None:
            r = await http.get(f"{self.cloud_url}/stores")
            stores = [s["store_id"] for s in r.json()["stores"]] if r.status_code == 200 else []
        rule = self.rule or {}
        products = {p["sku"]: p for p in (await http.get(f"{self.cloud_url}/products")).json()["products"]}
        for store in self.rng.sample(stores, len(stores)):
            r = await http.get(f"{self.cloud_url}/stores/{store}/stock")
            if r.status_code != 200:
                continue
            for row in self.rng.sample(r.json()["stock"], len(r.json()["stock"])):
                p = products.get(row["sku"])
                if p is None or "online" not in p["channels"] or row.get("available_online", 0) <= 0:
                    continue
                if (rule.get("skus") or rule.get("categories")) and p["sku"] not in rule.get("skus", []) \
                        and p["category"] not in rule.get("categories", []):
                    continue
                need = max(value.get("min_spend_fen", 0), value.get("amount_off_fen", 0)) + 500
                per = p["price_fen"]
                qty = -(-need * 1000 // per) if p["unit"] == "kg" else -(-need // per)
                if qty <= row.get("available_online", 0):
                    return store, p["sku"], qty
        return None

    async def _pay(self, http: LeanClients, me: SignedIn, order_id: str) -> bool:
        r = await http.post(f"{self.cloud_url}/orders/{order_id}/pay", json={"method": "wallet_sim"},
                            headers=me.headers)
        if r.status_code == 200:
            return True
        if r.status_code != 202:
            self._refused("pay", r)
            return False
        paid = await http.post(f"{self.wallet_url}/sim/pay/{r.json()['payment']['pay']['prepay_id']}", json={})
        if paid.status_code != 200:
            self._refused("wallet", paid)
            return False
        for _ in range(40):
            await asyncio.sleep(0.25)
            r = await http.get(f"{self.cloud_url}/orders/{order_id}", headers=me.headers)
            if r.status_code == 200 and r.json()["status"] in PAID_STATUSES:
                return True
        return False


async def summary(db, since_ms: int) -> dict:
    """The coupon flow's results since `since_ms`, from the cloud's database (asyncpg connection)."""
    issued = {r["why"]: r["n"] for r in await db.fetch(
        "select why, count(*) as n from coupons where issued_ms >= $1 group by why order by why", since_ms)}
    redeemed = {r["channel"] or "unknown": r["n"] for r in await db.fetch(
        "select channel, count(*) as n from coupons where status = 'redeemed' and redeemed_ms >= $1 "
        "group by channel order by channel", since_ms)}
    return {"coupons_issued": issued, "coupons_issued_total": sum(issued.values()),
            "coupons_reserved_now": await db.fetchval(
                "select count(*) from coupons where status = 'reserved' and issued_ms >= $1", since_ms),
            "coupons_redeemed": redeemed, "coupons_redeemed_total": sum(redeemed.values()),
            "coupons_released": await db.fetchval(
                "select coalesce(sum(releases), 0) from coupons where issued_ms >= $1", since_ms),
            "coupon_conflicts": await db.fetchval(
                "select count(*) from coupon_conflicts where recorded_ms >= $1", since_ms)}
