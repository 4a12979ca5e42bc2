"""Budgets, limits and gifts at a real store box's till against a running cloud (issue 17):

- a gift the store has none of is not given: the cart says "gift X out of stock", the sale has no gift line and
  takes nothing from stock; once received, the gift is given;
- a per-member-limited rule at the till: online the lane asks the cloud for the member's uses, a till sale counts
  in the cloud's one chain-wide count, and the next time the cart says "limit of 1 per member reached"; offline the
  till gives it within its allowance and the cloud, counting a use past the limit, records a conflict the operator
  sees (the sale stands);
- a pre-sale order is priced with a capped rule: it consumes the budget like an order and gives it back when
  cancelled;
- a store's unused share of a capped rule goes back to the chain's budget when the rule is withdrawn: the store is
  told, its till stops giving the rule, what it used stays counted, and the budgets add up (audit clean).

Isolation: stores S036 (the box) and S037 (a StoreLink: another store's till) of this module's own, rule ids
BGT-*, products no rule of the default book names.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from cloud.world import World
from edge import budget_db
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.budget_messages import BudgetUsed, MemberRuleUse
from protocol.messages import BusinessAck, Payment, Quantity, SaleCommitted, SaleLine
from protocol.pricing import load_rule_book
from simulators.netcut import NetCut
from tests.integration import harness
from tests.integration.harness import StoreLink, customer, eventually, operator_headers, running_cloud

pytestmark = pytest.mark.integration
BOX, OTHER = "S036", "S037"
GIFT, ONCE, CAP, PRE = "BGT-GIFT-1", "BGT-ONCE-1", "BGT-CAP-1", "BGT-PRE-1"
PRESOLD = "PAC-TOFU-0196"  # packed, with a supplier, sold online; no other module sells it
CHAIN_TZ = timezone(timedelta(hours=8))
DEFAULT = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
RUN = uuid.uuid4().hex[:6]
P: dict[str, dict] = {}  # "buy" (reaches the gift), "gift", "once" (limited), "cap" (capped)


def free_pieces(data: dict) -> list[dict]:
    rules = data["rule_book"]["rules"]
    named = {s for r in rules for s in r.get("skus", [])} | {r.get("gift_sku") for r in rules}
    categories = {c for r in rules for c in r.get("categories", [])}
    return sorted((p for p in data["catalogue"] if p["unit"] == "piece" and p["gtin"] and "offline" in p["channels"]
                   and p["sku"] not in named and p["category"] not in categories), key=lambda p: p["price_fen"])


def world_file(path: Path) -> Path:
    data = json.loads(DEFAULT.read_text())
    buy, gift, once, cap = free_pieces(data)[:4]
    P.update(buy=buy, gift=gift, once=once, cap=cap)
    data["rule_book"]["rules"] += [
        {"type": "gift", "id": GIFT, "name": "A gift with it", "spend_fen": buy["price_fen"], "skus": [buy["sku"]],
         "gift_sku": gift["sku"]},
        {"type": "item_discount", "id": ONCE, "name": "Half price, once per member", "percent_off_bp": 5000,
         "skus": [once["sku"]], "per_member_limit": 1},
        {"type": "item_discount", "id": CAP, "name": "A tenth off, capped", "percent_off_bp": 1000,
         "skus": [cap["sku"]], "budget_fen": 100_000},
        {"type": "item_discount", "id": PRE, "name": "A tenth off the pre-sold, capped", "percent_off_bp": 1000,
         "skus": [PRESOLD], "budget_fen": 100_000}]
    base = next(s for s in data["stores"] if s["store_id"] == "S001")
    data["stores"] += [dict(base, store_id=BOX), dict(base, store_id=OTHER)]
    path.write_text(json.dumps(data))
    return path


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    path = world_file(tmp_path_factory.mktemp("world") / "world.json")
    mp = pytest.MonkeyPatch()
    mp.setattr(harness.World, "load", classmethod(lambda cls, _=None: World.from_data(json.loads(path.read_text()))))
    try:
        async with running_cloud(stack, prefix=f"btl{RUN}-") as (services, url):
            proxy = await NetCut("127.0.0.1", int(stack.nats_address.rsplit(":", 1)[1])).start()
            config = {"store_id": BOX, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(path),
                      "nats_url": proxy.url, "nats_password": stack.store_credentials(BOX)[1]}
            box = await EdgeBox(config).start()
            async with httpx.AsyncClient(base_url=url, timeout=30) as http, \
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)),
                                      base_url="http://lane") as lane:
                assert await eventually(lambda: _online(box), timeout_s=20)
                yield services, http, box, lane, proxy, stack
            await box.stop()
            await proxy.stop()
    finally:
        mp.undo()


async def _online(box) -> bool:
    return box.actor.online


async def _offline(box) -> bool:
    return not box.actor.online


async def member_at_box(services, http, box) -> tuple[str, str]:
    member = await customer(services, http)
    view = await services.members.view(member.member_id)
    await services.members.notify_stores(view, stores=[BOX])

    async def cached():
        return await box.store_db.member(member_id=member.member_id)
    assert await eventually(cached, timeout_s=20), "the member did not reach the box"
    return member.member_id, view["member_code"]


async def scan(lane, lane_id: str, product: dict) -> dict:
    r = await lane.post(f"/lanes/{lane_id}/scan", json={"code": product["gtin"]})
    assert r.status_code == 200, r.text
    return r.json()["cart"]


async def pay(lane, lane_id: str) -> dict:
    r = await lane.post(f"/lanes/{lane_id}/pay", json={"method": "cash", "tendered_fen": 10**6})
    assert r.status_code == 201, r.text
    return r.json()


def applied(cart: dict) -> set[str]:
    return {a["rule_id"] for a in cart["applied_rules"]}


async def on_hand(box, sku: str) -> int:
    level = (await box.store_db.stock_levels([sku])).get(sku)
    return level.on_hand if level else 0


async def test_a_gift_with_no_stock_is_not_given_and_the_cart_says_so(world):
    _, _, box, lane, _, _ = world
    buy, gift = P["buy"], P["gift"]
    await box.actor.ask("receive", sku=buy["sku"], qty=10)
    await lane.delete("/lanes/1/cart")
    cart = await scan(lane, "1", buy)
    assert gift["sku"] not in [g["sku"] for g in cart["gifts"]]
    assert [g for g in cart["gifts_out_of_stock"] if g["rule_id"] == GIFT] == [
        {"rule_id": GIFT, "sku": gift["sku"], "name": gift["name"], "qty": 1,
         "message": f"gift {gift['name']} out of stock"}]
    await pay(lane, "1")
    assert await on_hand(box, gift["sku"]) == 0  # nothing taken from a stock it does not have
    await box.actor.ask("receive", sku=gift["sku"], qty=3)
    cart = await scan(lane, "1", buy)
    assert gift["sku"] in [g["sku"] for g in cart["gifts"]]
    assert [g for g in cart["gifts_out_of_stock"] if g["rule_id"] == GIFT] == []
    await pay(lane, "1")
    assert await on_hand(box, gift["sku"]) == 2  # given with the sale, from stock


async def test_a_per_member_limit_counts_till_and_chain_wide_and_offline_past_it_is_a_conflict(world):
    services, http, box, lane, proxy, stack = world
    once = P["once"]
    await box.actor.ask("receive", sku=once["sku"], qty=20)
    budgets = services.cloud.actors.budgets
    member, code = await member_at_box(services, http, box)
    # online: the lane asks the cloud; the first use applies and is counted in the cloud
    await lane.delete("/lanes/2/cart")
    assert (await lane.post("/lanes/2/member", json={"member_code": code})).status_code == 200
    cart = await scan(lane, "2", once)
    assert ONCE in applied(cart) and cart["limits"] == []
    await pay(lane, "2")

    async def counted(who: str, n: int):
        return (await budgets.budgets([ONCE], who))[ONCE]["member_uses"] == n
    assert await eventually(lambda: counted(member, 1), timeout_s=20), "the till's use did not reach the cloud"
    # the next time the cart says why the rule did not apply
    assert (await lane.post("/lanes/2/member", json={"member_code": code})).status_code == 200
    cart = await scan(lane, "2", once)
    assert ONCE not in applied(cart)
    assert cart["limits"] == [{"rule_id": ONCE, "name": "Half price, once per member",
                               "message": "limit of 1 per member reached"}]
    await lane.delete("/lanes/2/cart")

    # another member used it at another store's till; this box, offline, cannot know: it gives it within its
    # allowance, and the cloud records the use past the limit as a conflict (the sale stands)
    other, other_code = await member_at_box(services, http, box)
    async with StoreLink(stack, OTHER) as store:
        sold = store_sale(store, f"OTHER-{RUN}", other)
        await store.publish(sold)
        await store.publish(BudgetUsed(**store.next_envelope(), sale_id=sold.sale_id, uses=(), member_id=other,
                                       offline=False, member_uses=(MemberRuleUse(rule_id=ONCE, per_member_limit=1),)))
    assert await eventually(lambda: counted(other, 1), timeout_s=20)
    proxy.cut()
    try:
        assert await eventually(lambda: _offline(box), timeout_s=20)
        assert (await lane.post("/lanes/2/member", json={"member_code": other_code})).status_code == 200
        cart = await scan(lane, "2", once)
        assert ONCE in applied(cart)  # within the offline allowance
        sale = await pay(lane, "2")
        assert (await lane.post("/lanes/2/member", json={"member_code": other_code})).status_code == 200
        cart = await scan(lane, "2", once)  # used here now: the limit as this store knows it
        assert ONCE not in applied(cart) and cart["limits"][0]["message"] == "limit of 1 per member reached"
        await lane.delete("/lanes/2/cart")
    finally:
        proxy.heal()
    assert await eventually(lambda: counted(other, 2), timeout_s=30), "the offline use did not reach the cloud"
    manager = await operator_headers(services, "store_manager", store_id=BOX)
    r = await http.get("/promotion-budgets/limit-conflicts", headers=manager)
    assert r.status_code == 200, r.text
    (conflict,) = [c for c in r.json()["conflicts"] if c["member"] == other]
    assert (conflict["store"], conflict["sale_id"], conflict["offline"], conflict["uses"], conflict["limit"]) == \
        (BOX, sale["sale_id"], True, 2, 1)
    other_store = await http.get(f"/promotion-budgets/limit-conflicts?store_id={OTHER}", headers=manager)
    assert other_store.status_code == 403  # a store manager sees their own store's only


def store_sale(store: StoreLink, sale_id: str, member_id: str | None) -> SaleCommitted:
    once = P["once"]
    return SaleCommitted(**store.next_envelope(), sale_id=sale_id, lane="1",
                         lines=(SaleLine(sku=once["sku"], quantity=Quantity.pieces(1), amount_fen=100),),
                         total_fen=100, payments=(Payment(method="cash", amount_fen=100, reference=""),),
                         member_id=member_id, offline=False)


async def refused_acks(store: StoreLink, want: set[str], got: dict[str, str]) -> dict[str, str] | None:
    """The `refused` acks of `want`, gathered into `got` (each call reads and acks what came since); None until all."""
    for message in await store.commands(want=200, timeout_s=2):
        if isinstance(message, BusinessAck):
            got.update({a.event_id: a.detail for a in message.acks if a.result == "refused" and a.event_id in want})
    return got if set(got) == want else None


async def test_a_store_is_not_believed_about_another_members_uses_nor_the_limit(world):
    """A hostile store names a victim's uses of a limited rule: with no such sale, or on a sale of another member,
    it is refused (dead letter, `refused` ack) and the victim is not locked out; on its own member's sale the
    book's limit counts (not the store's), and a rule the book does not limit is not counted."""
    services, http, _, _, _, stack = world
    budgets = services.cloud.actors.budgets
    victim, anyone = (await customer(services, http)).member_id, (await customer(services, http)).member_id
    huge = (MemberRuleUse(rule_id=ONCE, per_member_limit=10_000),)
    async with StoreLink(stack, OTHER) as hostile:
        nobodys = store_sale(hostile, f"HOST-N-{RUN}", anyone)
        ghost = BudgetUsed(**hostile.next_envelope(), sale_id=f"nosuch-{RUN}", uses=(), member_id=victim,
                           member_uses=huge)
        wrong = BudgetUsed(**hostile.next_envelope(), sale_id=nobodys.sale_id, uses=(), member_id=victim,
                           member_uses=huge)
        for message in (nobodys, ghost, wrong):
            await hostile.publish(message)
        told: dict[str, str] = {}
        assert await eventually(lambda: refused_acks(hostile, {ghost.event_id, wrong.event_id}, told), timeout_s=20), told
        assert f"no sale nosuch-{RUN}" in told[ghost.event_id]
        assert f"is not member {victim}'s" in told[wrong.event_id]
    assert (await budgets.budgets([ONCE], victim))[ONCE]["member_uses"] == 0  # not locked out
    # its own member's sales: believed, against the book's limit of 1; a made-up rule is not counted
    made_up = "BGT-MADE-UP-" + RUN.upper()
    async with StoreLink(stack, OTHER) as store:
        for n in (1, 2):
            sold = store_sale(store, f"HOST-{n}-{RUN}", anyone)
            await store.publish(sold)
            await store.publish(BudgetUsed(**store.next_envelope(), sale_id=sold.sale_id, uses=(), member_id=anyone,
                                           member_uses=huge + (MemberRuleUse(rule_id=made_up, per_member_limit=5),)))

    async def counted():
        return (await budgets.budgets([ONCE], anyone))[ONCE]["member_uses"] == 2
    assert await eventually(counted, timeout_s=20)
    (conflict,) = [c for c in await budgets.limit_conflicts(OTHER) if c["member"] == anyone]
    assert (conflict["uses"], conflict["limit"], conflict["sale_id"]) == (2, 1, f"HOST-2-{RUN}")
    assert (await budgets.budgets([made_up], anyone))[made_up]["member_uses"] == 0


async def test_a_whole_till_return_gives_the_limited_rule_back_in_the_cloud_and_at_the_till(world):
    services, http, box, lane, _, _ = world
    once = P["once"]
    await box.actor.ask("receive", sku=once["sku"], qty=5)
    budgets = services.cloud.actors.budgets
    member, code = await member_at_box(services, http, box)

    async def uses(n: int):
        return (await budgets.budgets([ONCE], member))[ONCE]["member_uses"] == n
    await lane.delete("/lanes/4/cart")
    assert (await lane.post("/lanes/4/member", json={"member_code": code})).status_code == 200
    assert ONCE in applied(await scan(lane, "4", once))
    sale = await pay(lane, "4")
    assert await eventually(lambda: uses(1), timeout_s=20), "the till's use did not reach the cloud"
    r = await lane.post("/lanes/4/returns", json={"sale_id": sale["sale_id"], "lines": [{"sku": once["sku"], "qty": 1}]})
    assert r.status_code == 201, r.text
    here = await budget_db.member_limits(box.store_db.reader, member, "any")
    assert dict(here.here) == {}  # given back at the store, in the return's transaction
    assert await eventually(lambda: uses(0), timeout_s=20), "the whole return did not give the use back in the cloud"
    # the member gets the rule again at the till, with the cloud's count
    assert (await lane.post("/lanes/4/member", json={"member_code": code})).status_code == 200
    cart = await scan(lane, "4", once)
    assert ONCE in applied(cart) and cart["limits"] == []
    await lane.delete("/lanes/4/cart")


async def test_a_withdrawn_rules_unused_share_goes_back_and_the_till_stops_giving_it(world):
    services, _, box, lane, _, _ = world
    cap = P["cap"]
    budgets = services.cloud.actors.budgets
    await box.actor.ask("receive", sku=cap["sku"], qty=10)

    async def share():
        return (await budget_db.allowances(box.store_db.reader)).get(CAP, (0, 0))[0]
    granted = await eventually(share, timeout_s=30)
    assert granted == 10_000, "the store did not get its share (a tenth of the budget)"
    await lane.delete("/lanes/3/cart")
    cart = await scan(lane, "3", cap)
    (saving,) = [a["saving_fen"] for a in cart["applied_rules"] if a["rule_id"] == CAP]
    await pay(lane, "3")

    async def reported():
        return (await budgets.budgets([CAP]))[CAP]["store_used"].get(BOX) == saving
    assert await eventually(reported, timeout_s=20)
    # HQ withdraws the rule: the cloud's book no longer has it (the store's copy still does)
    world_ = services.cloud.world
    kept = world_.rule_book
    data = dict(world_.rule_data, rules=[r for r in world_.rule_data["rules"] if r["id"] != CAP])
    world_.rule_book = load_rule_book(data, world_.catalogue)
    try:
        async def stopped():
            granted_fen, used_fen = (await budget_db.allowances(box.store_db.reader)).get(CAP, (0, 0))
            return granted_fen == used_fen == saving
        assert await eventually(stopped, timeout_s=30), "the store's till was not told to stop using its share"
        view = (await budgets.budgets([CAP]))[CAP]
        assert view["shares"][BOX] == saving and view["reclaimed"][BOX]["reason"] == "withdrawn"
        others = sum(fen for store, fen in view["shares"].items() if store != BOX)  # S037's, heard above
        assert view["used"] == saving + others and view["left"] == 100_000 - saving - others  # the chain's again
        assert await budgets.audit() == []
        cart = await scan(lane, "3", cap)
        assert CAP not in applied(cart)  # the store's copy of the book still has it, but no share left
        await lane.delete("/lanes/3/cart")
    finally:
        world_.rule_book = kept


async def test_a_presale_consumes_a_capped_rule_and_gives_it_back_when_cancelled(world):
    services, http, _, _, _, _ = world
    budgets = services.cloud.actors.budgets
    admin = await operator_headers(services)
    r = await http.put(f"/stores/{BOX}/reorder-points", headers=admin,
                       json={"items": [{"sku": PRESOLD, "reorder_point": 5, "target": 10}]})
    assert r.status_code == 200, r.text  # none here: the box raises a restock alert, so supply is due
    member = await customer(services, http)

    async def order(days: int, **more) -> httpx.Response:
        slot = (datetime.now(CHAIN_TZ) + timedelta(days=days)).replace(hour=10, minute=0, second=0, microsecond=0)
        return await http.post("/orders", headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers},
                               json={"fulfilment": "pickup", "store_id": BOX, "slot_start": slot.isoformat(),
                                     "items": [{"sku": PRESOLD, "qty": 3}], **more})

    async def offered():
        r = await order(1)
        return r.json() if r.status_code == 409 and "presale_available_from" in r.json() else None
    offer = await eventually(offered, timeout_s=30)
    assert offer and offer["presale_store"] == BOX, offer
    due = datetime.fromisoformat(offer["presale_available_from"]).astimezone(CHAIN_TZ).date()
    async def online() -> int:  # what online orders hold of the budget (the stores' shares come and go apart)
        view = (await budgets.budgets([PRE]))[PRE]
        return int(view["used"]) - sum(view["shares"].values())
    before = await online()
    placed = await order((due - datetime.now(CHAIN_TZ).date()).days + 1, presale=True)
    assert placed.status_code == 201, placed.text
    body = placed.json()
    (consumed,) = [b["consumed_fen"] for b in body["pricing"].get("budgets", []) if b["rule_id"] == PRE]
    assert consumed > 0 and PRE in [a["rule_id"] for a in body["pricing"]["applied"]]
    assert await online() - before == consumed == before + consumed
    r = await http.post(f"/orders/{body['order_id']}/cancel", headers=member.headers)
    assert r.status_code == 200, r.text
    assert await online() == 0 and await budgets.audit() == []  # given back
