"""The demo's points customers (issue 17.5), through the public APIs only, and a summary of the flow read from the
cloud's database.

- `PointsCustomers.run(http)`: until `stop` is set, members of the chain (signed in by SMS code, as every simulated
  customer is) shop in turns: at a store's till as an identified member (`POST /lanes/{lane}/member`, a scan, cash,
  now and then part of it in points: `{"points"}`, which the cloud holds first), then answer the satisfaction
  survey whose link the till's sale answered (`POST {cloud}/surveys/{token}`, retried while the sale is still on
  its way to the cloud); online, they pay part of an order with their points and the rest in the simulated wallet
  (`POST /orders/{id}/pay {"method": "wallet_sim", "points"}`, paid in the wallet app), and collect it at the
  store when it has a lane here; with enough points they buy a coupon in the points shop (`GET /points/offers` as
  themselves, then `POST /members/{id}/points/exchange {"offer_id"}`: the coupon lands in their wallet). Counted
  in `counts` under `points_…`; a refusal as `points_refused:<status>` (the next customer goes on all the same).
- `define_points_offer(http, cloud_url, operator, rule_id)`: HQ puts a coupon of a book's coupon rule in the points
  shop (a coupon definition with a points price); the demo calls it once at start.
- `summary(db, since_ms)`: points redeemed online / at the till / in exchanges, given back, coupons bought with
  points now in wallets, surveys answered and the points they granted, from PostgreSQL.
"""
from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

from loadtest.http import CLIENT_ERRORS, LeanClients
from protocol.points import points_cap
from simulators.customer_auth import SignedIn, SignInFailed, SimulatedPhones, sign_in
from simulators.traffic import pause

CN = timezone(timedelta(hours=8))
ROUND_S = 1.5  # one customer visit every this often
LANE = "points"  # the points customers' own till lane at each store
SURVEY_TRIES = 20  # the sale reaches the cloud within a second or two while the store is online
PICKUP_TRIES = 20
OFFER_PREMIUM_PCT = 10  # an amount-off coupon costs its face value in points plus this (10 yuan: 1,100 points)
OFFER_PERCENT_POINTS = 500  # what a percent-off coupon costs
OFFER_PER_MEMBER = 100  # the demo's customers may buy it again and again


async def define_points_offer(http: LeanClients, cloud_url: str, operator: dict, rule_id: str) -> dict | None:
    """HQ (`operator`: its headers) puts a coupon of the book's coupon rule `rule_id` in the points shop: a coupon
    definition `points-shop-<rule_id>` (online and at the till, valid 30 days from purchase) priced from the rule's
    value (face value + OFFER_PREMIUM_PCT% in points; OFFER_PERCENT_POINTS for a percent off). The same call again
    answers the same definition (idempotent). Returns the definition, or None when the cloud refused it (printed:
    the demo goes on without an offer of its own)."""
    cloud_url = cloud_url.rstrip("/")
    r = await http.get(f"{cloud_url}/operator/coupon-rules", headers=operator)
    rule = next((x for x in r.json().get("rules", []) if x["rule_id"] == rule_id), None) if r.status_code == 200 \
        else None
    if rule is None:
        print(f"points shop: no coupon rule {rule_id} ({r.status_code})")
        return None
    amount = rule.get("amount_off_fen") or 0  # fen; 100 points are worth 1 yuan
    price = amount * (100 + OFFER_PREMIUM_PCT) // 100 if amount else OFFER_PERCENT_POINTS
    body = {"definition_id": f"points-shop-{rule_id}", "rule_id": rule_id, "name": f"积分兑换券 / points coupon "
            f"({rule_id})", "valid_days": 30, "per_member_limit": OFFER_PER_MEMBER, "points_price": price}
    made = await http.post(f"{cloud_url}/operator/coupon-definitions", json=body, headers=operator)
    if made.status_code not in (200, 201):
        print(f"points shop: {rule_id} not defined: {made.status_code} {made.text[:200]}")
        return None
    return made.json()


class PointsCustomers:
    AREA = "points"

    def __init__(self, cloud_url: str, lanes: dict[str, str], skus: list[dict], phones: SimulatedPhones,
                 wallet_url: str, rng: random.Random, counts: Counter, stop: asyncio.Event,
                 people: list[str] | None = None, online_stores: list[str] | None = None,
                 round_s: float = ROUND_S) -> None:
        """`lanes`: store id -> its box's lane API URL (`fleet.lanes`); `skus`: packed goods with a GTIN that sell
        online (`Shelf.online`); `people`: their phones (default: a few new ones); `online_stores`: where they pick
        up online orders (default: the stores with lanes)."""
        self.cloud_url, self.lanes, self.skus, self.phones = cloud_url.rstrip("/"), lanes, skus, phones
        self.wallet_url, self.rng, self.counts, self.stop = wallet_url.rstrip("/"), rng, counts, stop
        self.people = people or [f"139{rng.randrange(10**8):08d}" for _ in range(6)]
        self.online_stores = online_stores or list(lanes)
        self.round_s = round_s
        self.sessions: dict[str, SignedIn] = {}
        self.went_online: set[str] = set()  # member ids that tried an online order with points
        self.refusals: dict[str, str] = {}

    def _refused(self, r, what: str) -> None:
        key = f"points_refused:{r.status_code}"
        self.counts[key] += 1
        try:
            self.refusals.setdefault(f"{key}:{what}", str(r.json().get("detail", ""))[:200])
        except (ValueError, AttributeError):
            self.refusals.setdefault(f"{key}:{what}", "")

    async def run(self, http: LeanClients) -> None:
        while not await pause(self.stop, self.rng.uniform(0.5, 1.5) * self.round_s):
            try:
                me = await self.signed_in(http, self.rng.choice(self.people))
                view = await self.me(http, me)
                # a member with no points yet shops at the till (its receipt's survey earns them); one with points
                # goes online, where they pay part of an order with them: at their first chance (a short or busy
                # run still shows the flow), then half the time
                first_online = view is not None and view["points"] > 0 and me.member_id not in self.went_online
                if self.lanes and not first_online and (
                        view is None or view["points"] <= 0 or self.rng.random() < 0.5):
                    await self.till_visit(http, me)
                else:
                    await self.online_order(http, me)
                await self.exchange_if_rich(http, me)
            except CLIENT_ERRORS:
                self.counts["points_error"] += 1
            except SignInFailed:
                self.counts["points_sign_in_failed"] += 1

    async def signed_in(self, http: LeanClients, phone: str) -> SignedIn:
        if phone not in self.sessions:
            self.sessions[phone] = await sign_in(http, self.cloud_url, self.phones, phone)
        return self.sessions[phone]

    async def me(self, http: LeanClients, me: SignedIn) -> dict | None:
        r = await http.get(f"{self.cloud_url}/members/{me.member_id}", headers=me.headers)
        return r.json() if r.status_code == 200 else None

    # ---- at the till, then the receipt's survey ---------------------------------------------------------------
    async def till_visit(self, http: LeanClients, me: SignedIn) -> None:
        view = await self.me(http, me)
        if view is None:
            return
        store = self.rng.choice(list(self.lanes))
        lane = f"{self.lanes[store]}/lanes/{LANE}"
        await http.delete(f"{lane}/cart")
        r = await http.post(f"{lane}/member", json={"member_code": view["member_code"]})
        if r.status_code != 200:  # the store does not know the member yet (its cache follows the cloud)
            return self._refused(r, "till member")
        for _ in range(self.rng.randint(1, 3)):
            await http.post(f"{lane}/scan", json={"code": self.rng.choice(self.skus)["gtin"]})
        pay: dict = {"method": "cash", "tendered_fen": 1_000_000}
        cart = await http.get(f"{lane}/cart")
        cap = points_cap(cart.json().get("total_fen", 0)) if cart.status_code == 200 else 0
        if view["points"] > 0 and cap > 0 and self.rng.random() < 0.5:  # part of it in points, the rest in cash
            pay["points"] = min(view["points"], cap)
        r = await http.post(f"{lane}/pay", json=pay)
        if r.status_code != 201:
            return self._refused(r, "till pay")
        self.counts["points_till_sales"] += 1
        if "points" in pay:
            self.counts["points_till_paid"] += 1
            self.counts["points_till_redeemed"] += pay["points"]
        token = r.json().get("survey_token")
        if token:
            self.counts["points_survey_links"] += 1
            await self.answer_survey(http, token)

    async def answer_survey(self, http: LeanClients, token: str) -> None:
        answers = {"satisfaction": self.rng.randint(3, 5), "freshness": self.rng.randint(2, 5),
                   "comment": self.rng.choice(("", "很新鲜", "排队有点久", "good"))}
        for _ in range(SURVEY_TRIES):
            r = await http.post(f"{self.cloud_url}/surveys/{token}", json=answers)
            if r.status_code == 201:
                self.counts["points_surveys_answered"] += 1
                self.counts["points_survey_points"] += r.json()["points_granted"]
                return
            if r.status_code != 404 or await pause(self.stop, 0.5):  # 404: the sale is still on its way
                return self._refused(r, "survey")
        self.counts["points_survey_gave_up"] += 1

    # ---- online: points for part, the wallet for the rest ----------------------------------------------------
    async def online_order(self, http: LeanClients, me: SignedIn) -> None:
        view = await self.me(http, me)
        if view is None or view["points"] <= 0:
            self.counts["points_online_no_points"] += 1
            return
        self.went_online.add(me.member_id)
        store = self.rng.choice(self.online_stores)
        slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=self.rng.randint(9, 19), minute=0, second=0,
                                                              microsecond=0)
        item = self.rng.choice(self.skus)
        r = await http.post(f"{self.cloud_url}/orders", headers={"Idempotency-Key": uuid.uuid4().hex, **me.headers},
                            json={"fulfilment": "pickup", "store_id": store, "slot_start": slot.isoformat(),
                                  "items": [{"sku": item["sku"], "qty": self.rng.randint(1, 3)}]})
        if r.status_code != 201:
            return self._refused(r, "order")
        order = r.json()
        points = min(view["points"], points_cap(order["total_fen"]))
        if points <= 0:
            return
        paid = await http.post(f"{self.cloud_url}/orders/{order['order_id']}/pay",
                               json={"method": "wallet_sim", "points": points}, headers=me.headers)
        if paid.status_code not in (200, 202):
            return self._refused(paid, "pay")
        self.counts["points_online_orders"] += 1
        self.counts["points_online_redeemed"] += points
        if paid.status_code == 202:
            app = await http.post(f"{self.wallet_url}/sim/pay/{paid.json()['payment']['pay']['prepay_id']}", json={})
            if app.status_code != 200:
                return self._refused(app, "wallet")
        if store in self.lanes:
            await self.pick_up(http, store, order["pickup_code"])

    async def pick_up(self, http: LeanClients, store: str, code: str) -> None:
        for _ in range(PICKUP_TRIES):  # 404/409 until the order reached the store and was picked
            if await pause(self.stop, 1.0):
                return
            r = await http.post(f"{self.lanes[store]}/pickups/{code}")
            if r.status_code == 200:
                self.counts["points_online_collected"] += 1
                return

    # ---- points for a coupon -----------------------------------------------------------------------------------
    async def exchange_if_rich(self, http: LeanClients, me: SignedIn) -> None:
        r = await http.get(f"{self.cloud_url}/points/offers", headers=me.headers)  # what this member may buy
        if r.status_code != 200:
            return self._refused(r, "offers")
        view = await self.me(http, me)
        affordable = [o for o in r.json()["offers"] if view is not None and o["points"] <= view["points"]]
        if not affordable or self.rng.random() < 0.5:
            return
        offer = self.rng.choice(affordable)
        r = await http.post(f"{self.cloud_url}/members/{me.member_id}/points/exchange", json={"offer_id": offer["offer_id"]},
                            headers={"Idempotency-Key": uuid.uuid4().hex, **me.headers})
        if r.status_code != 201:
            return self._refused(r, "exchange")
        self.counts["points_exchanges"] += 1
        self.counts["points_exchange_redeemed"] += r.json()["points"]  # the definition's price, as redeemed
        if r.json().get("code"):
            self.counts["points_exchange_coupons"] += 1


async def summary(db, since_ms: int) -> dict:
    """The points flow since `since_ms`, from the cloud's database (an asyncpg connection or pool)."""
    online = await db.fetchrow(
        "select count(*) filter (where state = 'redeemed') as orders, "
        "coalesce(sum(points) filter (where state = 'redeemed'), 0)::bigint as redeemed, "
        "coalesce(sum(points) filter (where state = 'returned'), 0)::bigint as returned "
        "from points_payments where created_ms >= $1", since_ms)
    exchanged = await db.fetchrow(
        "select count(*) filter (where state = 'issued') as issued, "
        "coalesce(sum(points) filter (where state = 'issued'), 0)::bigint as redeemed, "
        "count(*) filter (where state = 'returned') as returned "
        "from points_exchanges where created_ms >= $1", since_ms)
    coupons = await db.fetchval("select count(*) from coupons where why = 'points' and issued_ms >= $1", since_ms)
    till = await db.fetchrow(
        "select count(*) as sales, coalesce(sum(believed), 0)::bigint as redeemed, "
        "coalesce(sum(points - believed) filter (where state = 'claimed'), 0)::bigint as not_believed "
        "from till_points where state in ('captured', 'claimed') and created_ms >= $1", since_ms)
    surveys = await db.fetchrow(
        "select count(*) as answered, coalesce(sum(points) filter (where state = 'granted'), 0)::bigint as granted "
        "from survey_answers where answered_ms >= $1", since_ms)
    return {"points_online_orders": online["orders"], "points_redeemed_online": online["redeemed"],
            "points_given_back_online": online["returned"],
            "points_till_sales": till["sales"], "points_redeemed_till": till["redeemed"],
            "points_till_claimed_not_believed": till["not_believed"],
            "points_exchanges_issued": exchanged["issued"], "points_redeemed_exchange": exchanged["redeemed"],
            "points_exchanges_given_back": exchanged["returned"], "points_exchange_coupons_in_wallets": coupons,
            "surveys_answered": surveys["answered"], "survey_points_granted": surveys["granted"]}
