"""Member levels, gifts and promotion budgets in the demo (issue 17, items 3 and 4), through the public HTTP APIs only,
and a summary of the flow's results read from the cloud's database.

- `LevelsShoppers.run(http)`: at the start HQ (an hq_admin's headers) reads the book in force (`GET /rule-book`) and
  publishes it again with two rules of the demo's own (`PUT /rule-book`): `DEMO-LV-BUDGET`, 20% off a few products
  the stores hold online, capped at `BUDGET_FEN` in total and `PER_MEMBER` uses per member; and `DEMO-LV-GIFT`, a
  free product once an order or sale reaches `GIFT_SPEND_FEN`. Then, until `stop` is set, signed-in customers (SMS
  codes from the simulated provider, `simulators/customer_auth.py`) order those products for pickup (`POST /orders`)
  and pay them with the simulated wallet when a wallet URL is given; the tills of the demo give the same gift to
  their own customers. Counted in `counts`: `levels_rules_published`, `levels_orders`, `levels_budget_fen` (what
  the capped rule gave), `levels_budget_stopped` (orders priced after the cap ran out), `levels_gifts_online`,
  `levels_gifts_out_of_stock`, `levels_paid`, `levels_gold_priced` (orders with a member-level price or rule);
  a refusal as `levels_refused:<status>` (one refusal never stops the rest).
- `summary(db, since_ms)`: from the cloud's PostgreSQL: per capped rule the budget used vs its cap (online uses
  kept, given back ones apart, and what the tills reported using from their stores' shares), gifts given by
  channel (online order lines marked as gifts; till sale lines at 0 fen of a gift rule's SKU), and members by
  level (as the stores were last told; everyone else is regular).
"""
from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx

from loadtest.http import CLIENT_ERRORS, LeanClients
from simulators.customer_auth import SignedIn, SignInFailed, SimulatedPhones, sign_in

BUDGET_RULE, GIFT_RULE = "DEMO-LV-BUDGET", "DEMO-LV-GIFT"
BUDGET_FEN = 20_000  # 200 yuan for the whole chain
PER_MEMBER = 3
GIFT_SPEND_FEN = 3_000
CUSTOMERS = 4
ROUND_S = 1.5
CN = timezone(timedelta(hours=8))


class LevelsShoppers:
    AREA = "levels"

    def __init__(self, cloud_url: str, operator: dict[str, str], phones: SimulatedPhones, lanes: dict[str, str],
                 rng: random.Random, counts: Counter, stop: asyncio.Event, wallet_url: str | None = None,
                 customers: int = CUSTOMERS, round_s: float = ROUND_S) -> None:
        """`lanes`: store id -> its box's lane API URL (to see what the stores hold online for the demo's rules)."""
        self.cloud_url, self.operator, self.phones, self.lanes = cloud_url.rstrip("/"), operator, phones, lanes
        self.rng, self.counts, self.stop, self.wallet_url = rng, counts, stop, wallet_url
        self.customers, self.round_s = customers, round_s
        self.targets: list[tuple[str, str]] = []  # (store, sku) the budget rule discounts and the store holds online
        self.published = False  # the demo's rules are in the book (HQ publishes them once, perhaps before `run`)

    def _refused(self, status: int) -> None:
        self.counts[f"levels_refused:{status}"] += 1

    async def publish_rules(self, http: LeanClients) -> bool:
        """HQ adds the demo's budget-capped rule and gift rule to the book in force (once: they are kept after)."""
        held: list[tuple[str, str, int]] = []
        for store, url in sorted(self.lanes.items()):
            r = await http.get(f"{url}/stock")
            if r.status_code == 200:
                held += [(store, s["sku"], s["escrow"]) for s in r.json().get("stock", []) if s.get("escrow", 0) > 2]
        products = {p["sku"]: p for p in (await http.get(f"{self.cloud_url}/products")).json()["products"]}
        held = [h for h in held if products.get(h[1], {}).get("unit") == "piece"
                and "online" in products[h[1]]["channels"]]
        if not held:
            self.counts["levels_no_stock"] += 1
            return False
        skus = sorted({sku for _, sku, _ in held})[:3]
        self.targets = [(store, sku) for store, sku, _ in held if sku in skus]
        gift = min(skus, key=lambda s: products[s]["price_fen"])
        r = await http.get(f"{self.cloud_url}/rule-book", headers=self.operator)
        if r.status_code != 200:
            self._refused(r.status_code)
            return False
        book = r.json()
        rules = [rule for rule in book["rules"] if rule["id"] not in (BUDGET_RULE, GIFT_RULE)]
        rules += [{"type": "item_discount", "id": BUDGET_RULE, "name": "Demo: 20% off, capped", "priority": 9,
                   "percent_off_bp": 2000, "skus": skus, "budget_fen": BUDGET_FEN, "per_member_limit": PER_MEMBER},
                  {"type": "gift", "id": GIFT_RULE, "name": "Demo: a gift from 30 yuan", "priority": 9,
                   "spend_fen": GIFT_SPEND_FEN, "gift_sku": gift, "gift_qty": 1}]
        async with httpx.AsyncClient(timeout=30) as hq:  # the lean clients send no PUT: HQ's console would
            put = await hq.put(f"{self.cloud_url}/rule-book", headers=self.operator,
                               json={**book, "version": book["version"] + 1, "rules": rules})
        if put.status_code != 200:
            self._refused(put.status_code)
            return False
        self.counts["levels_rules_published"] += 1
        self.published = True
        return True

    async def run(self, http: LeanClients) -> None:
        try:
            if not self.published and not await self.publish_rules(http):
                return
            people: list[SignedIn] = []
            for _ in range(self.customers):
                try:
                    people.append(await sign_in(http, self.cloud_url, self.phones,
                                                f"139{self.rng.randrange(10**8):08d}"))
                except SignInFailed:
                    self.counts["levels_sign_in_failed"] += 1
        except CLIENT_ERRORS:
            self.counts["levels_error"] += 1
            return
        while people and not self.stop.is_set():
            try:
                await self.one_order(http, self.rng.choice(people))
            except CLIENT_ERRORS:
                self.counts["levels_error"] += 1
            try:
                await asyncio.wait_for(self.stop.wait(), self.round_s)
            except TimeoutError:
                pass

    async def one_order(self, http: LeanClients, person: SignedIn) -> None:
        store, sku = self.rng.choice(self.targets)
        slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
        r = await http.post(f"{self.cloud_url}/orders", json={
            "fulfilment": "pickup", "store_id": store, "slot_start": slot.isoformat(),
            "items": [{"sku": sku, "qty": self.rng.randint(1, 3)}]},
            headers={"Idempotency-Key": uuid.uuid4().hex, **person.headers})
        if r.status_code != 201:
            return self._refused(r.status_code)
        order = r.json()
        self.counts["levels_orders"] += 1
        pricing = order.get("pricing", {})
        given = sum(a["saving_fen"] for a in pricing.get("applied", []) if a["rule_id"] == BUDGET_RULE)
        self.counts["levels_budget_fen"] += given
        if not given:
            self.counts["levels_budget_stopped"] += 1
        if any(a["rule_id"].startswith("member-price:") for a in pricing.get("applied", [])):
            self.counts["levels_gold_priced"] += 1
        for gift in pricing.get("gifts", []):
            self.counts["levels_gifts_online" if gift["given"] else "levels_gifts_out_of_stock"] += 1
        if self.wallet_url:
            await self.pay(http, person, order["order_id"])

    async def pay(self, http: LeanClients, person: SignedIn, order_id: str) -> None:
        r = await http.post(f"{self.cloud_url}/orders/{order_id}/pay", json={"method": "wallet_sim"},
                            headers=person.headers)
        if r.status_code not in (200, 202):
            return self._refused(r.status_code)
        pay = (r.json().get("payment") or {}).get("pay")
        if r.status_code == 202 and pay:
            paid = await http.post(f"{self.wallet_url}/sim/pay/{pay['prepay_id']}", json={})
            if paid.status_code != 200:
                return self._refused(paid.status_code)
        self.counts["levels_paid"] += 1


async def summary(db, since_ms: int = 0) -> dict:
    """The flow's results from the cloud's database (`db`: an asyncpg connection or pool), since `since_ms`."""
    world = await db.fetchrow("select data from world_versions order by version desc limit 1")
    rules = json.loads(world["data"])["rule_book"]["rules"] if world else []
    caps = {r["id"]: r.get("budget_fen", 0) for r in rules if r.get("budget_fen") or r.get("per_member_limit")}
    gift_skus = sorted({r["gift_sku"] for r in rules if r.get("type") == "gift"})
    used = {row["rule_id"]: row for row in await db.fetch(
        "select rule_id, coalesce(sum(fen) filter (where given_back_ms is null and channel = 'online'), 0) as kept, "
        "coalesce(sum(fen) filter (where given_back_ms is not null), 0) as given_back, "
        "coalesce(sum(fen) filter (where channel = 'offline'), 0) as till, count(*) as uses "
        "from budget_uses where used_ms >= $1 group by rule_id", since_ms)}
    budgets = [{"rule_id": rid, "cap_fen": cap, "used_fen": int(used[rid]["kept"]) if rid in used else 0,
                "till_used_fen": int(used[rid]["till"]) if rid in used else 0,
                "given_back_fen": int(used[rid]["given_back"]) if rid in used else 0,
                "uses": used[rid]["uses"] if rid in used else 0} for rid, cap in sorted(caps.items())]
    online = await db.fetchval(
        "select coalesce(sum((line->>'qty')::bigint), 0) from orders, jsonb_array_elements(lines::jsonb) as line "
        "where created_ms >= $1 and line ? 'gift' and status not in ('rejected', 'pending')", since_ms)
    till = await db.fetchval(
        "select coalesce(sum((line->>1)::bigint), 0) from till_sales, jsonb_array_elements(lines::jsonb) as line "
        "where wall_ms >= $1 and line->>0 = any($2::text[]) and (line->>3)::bigint = 0", since_ms, gift_skus)
    levels = {row["level"]: row["n"] for row in await db.fetch(
        "select level, count(*) as n from member_levels group by level")}
    members = await db.fetchval("select count(*) from members where erased_ms is null")
    levels["regular"] = max(members - sum(n for lv, n in levels.items() if lv != "regular"), 0)
    return {"budgets": budgets, "gifts_by_channel": {"online": int(online), "till": int(till)},
            "members_by_level": dict(sorted(levels.items()))}
