"""Picking at the store over the real stack: a real store box (SQLite, its lane and picking API, NATS as its own user),
the cloud (bridge, Ray actors, PostgreSQL) and a second store speaking NATS by hand. Each test picks an order the
way a picker would and then checks what must hold: the order's status and timeline, the stock at the store and in
the cloud agree, the reservation is consumed, the money moved once (refund or extra charge, the member's balance
follows) and `/audit` names nothing of ours."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.messages import (
    EscrowGranted,
    OrderPicked,
    OrderToFulfil,
    PickedLine,
    PickingStarted,
    PickupCompleted,
    StockMoved,
)
from protocol.pricing import BasketLine, PricingContext, price_basket
from tests.integration.harness import (
    StoreLink,
    customer,
    eventually,
    operator_headers,
    pay_by_wallet,
    running_cloud,
    this_clouds,
    top_up,
)

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE, OTHER = "S003", "S005"  # the box; the store a shortage is re-routed to (NATS by hand)
CN = timezone(timedelta(hours=8))
OP: dict[str, str] = {}


def catalogue() -> list[dict]:
    return json.loads(WORLD.read_text())["catalogue"]


def pieces() -> list[dict]:
    return sorted((p for p in catalogue() if p["unit"] == "piece" and "online" in p["channels"]),
                  key=lambda p: p["sku"])


def weighed() -> list[dict]:
    return [p for p in catalogue() if p["unit"] == "kg" and "online" in p["channels"]]


@pytest_asyncio.fixture(scope="module")
async def world(stack, ray_runtime, tmp_path_factory):
    async with running_cloud(stack, prefix=f"pick{uuid.uuid4().hex[:6]}-") as (services, url):
        OP.update(await operator_headers(services))
        config = {"store_id": STORE, "data_dir": str(tmp_path_factory.mktemp("edge")), "world": str(WORLD),
                  "nats_url": stack.nats_url, "nats_password": stack.store_credentials(STORE)[1]}
        box = await EdgeBox(config).start()
        # the test database is shared with other modules: a store's seqs only grow (as StoreLink does)
        conn = await asyncpg.connect(stack.database_url)
        try:
            box.actor.last_seq = max(box.actor.last_seq, await conn.fetchval(
                "select coalesce(max(seq), 0) from edge_events where store_id = $1", STORE) or 0)
        finally:
            await conn.close()
        async with httpx.AsyncClient(base_url=url, timeout=30) as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(box)), base_url="http://lane") as lane:
            assert await eventually(lambda: _online(box), timeout_s=15)
            yield services, http, box, lane
        await box.stop()


async def _online(box):
    return box.actor.online


async def drained(box):
    return await box.store_db.outbox_depth() == 0


async def receive(box, sku: str, qty: int) -> None:
    await box.actor.ask("receive", sku=sku, qty=qty)
    assert await eventually(lambda: drained(box), timeout_s=15), "the store's outbox did not drain"


async def paid_order(services, http, box, items: list[dict], balance_fen: int = 100_000, **extra) -> tuple:
    """A member with stored value orders for pickup at the box's store and pays; the order has reached the box."""
    member = await customer(services, http)
    await top_up(services, http, member, balance_fen)
    slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=15, minute=0, second=0, microsecond=0).isoformat()
    r = await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": slot, "items": items,
                                         **extra}, headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert r.status_code == 201, r.text
    order = r.json()
    paid = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value"}, headers=member.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text

    async def arrived():
        orders = (await box.actor.ask("pick_list"))["orders"]
        return any(o["order_id"] == order["order_id"] for o in orders)
    assert await eventually(arrived, timeout_s=15), "the order to fulfil did not reach the store"
    return member, paid.json()


async def status_of(http, member, order_id: str, status: str, timeout_s: float = 15) -> dict:
    async def reached():
        body = (await http.get(f"/orders/{order_id}", headers=member.headers)).json()
        return body if body["status"] == status else None
    found = await eventually(reached, timeout_s=timeout_s)
    last = (await http.get(f"/orders/{order_id}", headers=member.headers)).json()
    assert found, f"order {order_id} never became {status}: {last}"
    return found


async def balance(http, member) -> int:
    return (await http.get(f"/members/{member.member_id}", headers=member.headers)).json()["stored_value_fen"]


async def own_violations(http, order_ids: list[str]) -> list[str]:
    found = this_clouds((await http.get("/audit", headers=OP)).json()["violations"])
    return [v for v in found if not v.startswith("money:") or any(o in v for o in order_ids)]


async def cloud_stock(http, store: str, sku: str) -> dict:
    found = (await http.get(f"/stores/{store}/stock", params={"sku": sku})).json()["stock"]
    return found[0] if found else {}


async def agree(http, box, sku: str) -> dict:
    """The cloud's view of the store's stock of `sku` once it matches the box's own (on hand and escrow)."""
    level = await box.store_db.stock_level(sku)

    async def same():
        row = await cloud_stock(http, STORE, sku)
        return row if (row.get("on_hand"), row.get("escrow")) == (level.on_hand, level.escrow) else None
    row = await eventually(same, timeout_s=15)
    assert row, f"cloud {await cloud_stock(http, STORE, sku)} vs store {level}"
    return row


async def pick(lane, order_id: str, lines: dict[str, dict]) -> dict:
    assert (await lane.post(f"/picking/orders/{order_id}/start")).status_code == 200
    for sku, body in lines.items():
        r = await lane.post(f"/picking/orders/{order_id}/lines/{sku}", json=body)
        assert r.status_code == 200, r.text
    done = await lane.post(f"/picking/orders/{order_id}/done")
    assert done.status_code == 200 and done.json()["status"] == "picked", done.text
    return done.json()


async def movement(services, movement_id: str) -> dict | None:
    row = await services.payments.get(movement_id)
    return dict(row) if row else None


# ---- the must-show lifecycles ------------------------------------------------------------------------------------
async def test_a_pickup_order_picked_at_the_store_box_then_handed_over_at_the_till(world):
    services, http, box, lane = world
    sku = pieces()[0]["sku"]
    await receive(box, sku, 20)  # 40%: 8 escrowed for online
    member, order = await paid_order(services, http, box, [{"sku": sku, "qty": 2}])
    oid = order["order_id"]
    listed = (await lane.get("/picking/orders")).json()["orders"]
    assert [o["lines"] for o in listed if o["order_id"] == oid] == [[{"sku": sku, "name": pieces()[0]["name"],
                                                                       "qty": 2, "unit": "piece"}]]
    assert (await lane.post(f"/picking/orders/{oid}/start")).json()["status"] == "picking"
    await status_of(http, member, oid, "picking")  # the cloud saw start_picking
    early = await lane.post(f"/picking/orders/{oid}/done")
    assert early.status_code == 409 and "not picked yet" in early.json()["detail"]
    bad = await lane.post(f"/picking/orders/{oid}/lines/NOPE-0000", json={"qty": 1})
    assert bad.status_code == 404 and "has no line" in bad.json()["detail"]
    await lane.post(f"/picking/orders/{oid}/lines/{sku}", json={"qty": 2})
    assert (await lane.post(f"/picking/orders/{oid}/done")).json()["status"] == "picked"
    ready = await status_of(http, member, oid, "ready")
    # (the store's OrderPicked claimed its part first: a note, cloud/services/pick_claims.py)
    assert [e["event"] for e in ready["timeline"] if e["event"] != "pick_claimed"][-2:] == ["start_picking", "picked"]
    assert await eventually(lambda: drained(box), timeout_s=15)
    row = await agree(http, box, sku)
    assert (row["on_hand"], row["escrow"], row["confirmed"]) == (18, 6, 0)  # the reservation consumed
    # the till hands the picked order over: no stock moves again
    r = await lane.post(f"/pickups/{order['pickup_code']}")
    assert r.status_code == 200 and r.json()["status"] == "picked_up"
    await status_of(http, member, oid, "picked_up")
    assert await eventually(lambda: drained(box), timeout_s=15)
    assert (await box.store_db.stock_level(sku)).on_hand == 18
    assert (await agree(http, box, sku))["on_hand"] == 18
    assert await own_violations(http, [oid]) == []


async def test_catch_weight_picked_lighter_is_refunded_and_heavier_is_charged_within_the_tolerance(world):
    services, http, box, lane = world
    product = weighed()[0]
    sku = product["sku"]
    await receive(box, sku, 10_000)  # grams: 4 kg escrowed for online
    member, light = await paid_order(services, http, box, [{"sku": sku, "qty": 500}], balance_fen=20_000)
    assert product["catch_weight_tolerance_bp"] == 1000
    out = await lane.post(f"/picking/orders/{light['order_id']}/start")
    assert out.status_code == 200
    refused = await lane.post(f"/picking/orders/{light['order_id']}/lines/{sku}", json={"weight_g": 560})
    assert refused.status_code == 422 and "outside 450..550 g" in refused.json()["detail"]
    await pick(lane, light["order_id"], {sku: {"weight_g": 460}})
    await status_of(http, member, light["order_id"], "ready")
    refund = await eventually(lambda: movement(services, f"refund:{light['order_id']}:weight:{STORE}"))
    assert refund and refund["state"] == "done"
    assert refund["amount_fen"] == light["total_fen"] - reprice(services, sku, 460, light)
    assert await balance(http, member) == 20_000 - light["total_fen"] + refund["amount_fen"]
    view = (await http.get(f"/orders/{light['order_id']}", headers=member.headers)).json()
    assert view["refunded_fen"] == refund["amount_fen"]
    assert {"weighed", "refunded_part"} <= {e["event"] for e in view["timeline"]}

    heavy = await again(services, http, box, member, sku)
    before = await balance(http, member)
    await pick(lane, heavy["order_id"], {sku: {"weight_g": 540}})
    await status_of(http, member, heavy["order_id"], "ready")
    extra = await eventually(lambda: movement(services, f"charge:{heavy['order_id']}:weight:{STORE}"))
    assert extra and extra["state"] == "done" and extra["method"] == "stored_value"
    assert extra["amount_fen"] == reprice(services, sku, 540, heavy) - heavy["total_fen"]
    assert 0 < extra["amount_fen"] <= -(-heavy["total_fen"] // 10)  # never past the pre-authorised 10%
    assert await balance(http, member) == before - extra["amount_fen"]
    assert await eventually(lambda: drained(box), timeout_s=15)
    row = await agree(http, box, sku)
    assert row["confirmed"] == 0 and row["on_hand"] == 10_000 - 460 - 540
    assert await own_violations(http, [light["order_id"], heavy["order_id"]]) == []


async def again(services, http, box, member, sku: str) -> dict:
    """The same member orders 500 g of `sku` again and pays with what is left of their stored value."""
    slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=16, minute=0, second=0, microsecond=0).isoformat()
    r = await http.post("/orders", json={"fulfilment": "pickup", "store_id": STORE, "slot_start": slot,
                                         "items": [{"sku": sku, "qty": 500}]},
                        headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
    assert r.status_code == 201, r.text
    paid = await http.post(f"/orders/{r.json()['order_id']}/pay", json={"method": "stored_value"},
                           headers=member.headers)
    assert paid.status_code == 200, paid.text

    async def arrived():
        return any(o["order_id"] == r.json()["order_id"] for o in (await box.actor.ask("pick_list"))["orders"])
    assert await eventually(arrived, timeout_s=15)
    return paid.json()


def reprice(services, sku: str, grams: int, order: dict) -> int:
    """The order priced on `grams` by the promotion book, in the context it was placed in."""
    world = services.cloud.world
    ctx = PricingContext(channel="online", store_id=STORE, now_ms=int(datetime.fromisoformat(
        order["created_at"].replace("Z", "+00:00")).timestamp() * 1000))
    return price_basket(world.catalogue, world.rule_book, [BasketLine(sku=sku, weight_g=grams)], ctx).total_fen


async def test_a_substitution_is_charged_at_most_the_original_and_only_with_consent(world):
    services, http, box, lane = world
    wanted, cheaper = pieces()[1], min(pieces()[2:12], key=lambda p: p["price_fen"])
    await receive(box, wanted["sku"], 20)
    await receive(box, cheaper["sku"], 20)
    member, order = await paid_order(services, http, box, [{"sku": wanted["sku"], "qty": 2}],
                                     allow_substitutions=True)
    assert order["allow_substitutions"] is True
    await pick(lane, order["order_id"], {wanted["sku"]: {"qty": 0, "substitute_sku": cheaper["sku"],
                                                         "substitute_qty": 2}})
    ready = await status_of(http, member, order["order_id"], "ready")
    line_fen = order["lines"][0]["amount_fen"]
    back = line_fen - min(line_fen, 2 * cheaper["price_fen"])
    refund = await movement(services, f"refund:{order['order_id']}:sub:{STORE}:{wanted['sku']}")
    assert (refund["amount_fen"] if refund else 0) == back and (refund is None or refund["state"] == "done")
    assert "substituted" in {e["event"] for e in ready["timeline"]}
    assert await eventually(lambda: drained(box), timeout_s=15)
    assert (await agree(http, box, wanted["sku"]))["confirmed"] == 0  # the unpicked reservation went back
    assert (await agree(http, box, cheaper["sku"]))["on_hand"] == 18
    # without the customer's consent the picking API refuses a substitute, and records nothing
    _, plain = await paid_order(services, http, box, [{"sku": wanted["sku"], "qty": 1}])
    await lane.post(f"/picking/orders/{plain['order_id']}/start")
    no = await lane.post(f"/picking/orders/{plain['order_id']}/lines/{wanted['sku']}",
                         json={"qty": 0, "substitute_sku": cheaper["sku"], "substitute_qty": 1})
    assert no.status_code == 403 and "did not allow substitutions" in no.json()["detail"]
    assert await own_violations(http, [order["order_id"]]) == []


async def test_a_shortage_is_rerouted_to_a_store_with_escrow_which_then_picks_it(world, stack):
    services, http, box, lane = world
    sku = pieces()[12]["sku"]
    await receive(box, sku, 10)  # 4 escrowed online
    async with StoreLink(stack, OTHER) as other:
        await other.publish(StockMoved(**other.next_envelope(), sku=sku, delta=30, reason="receiving",
                                       shrinkage_reason="", on_hand_after=30, reference=""))
        await other.publish(EscrowGranted(**other.next_envelope(), sku=sku, qty=10, escrow_after=10))
        assert await eventually(lambda: _escrow(http, OTHER, sku, 10))
        member, order = await paid_order(services, http, box, [{"sku": sku, "qty": 3}])
        oid = order["order_id"]
        await pick(lane, oid, {sku: {"qty": 1}})  # 2 short
        told: list = []

        async def fulfil_sent():  # (among the business acks of its own events)
            told.extend(m for m in await other.commands(want=20, timeout_s=1) if isinstance(m, OrderToFulfil))
            return told
        assert await eventually(fulfil_sent, timeout_s=15)
        assert [(m.order_id, [(line.sku, line.qty) for line in m.lines]) for m in told] == [(oid, [(sku, 2)])]
        waiting = await status_of(http, member, oid, "picking")  # the other store's part is still to pick
        assert waiting["stores"] == sorted([STORE, OTHER])
        assert any(e["event"] == "rerouted" and e["detail"]["to_store"] == OTHER for e in waiting["timeline"])
        assert (await cloud_stock(http, OTHER, sku))["confirmed"] == 2
        assert await movement(services, f"refund:{oid}:short:{STORE}:{sku}") is None  # served, not refunded
        # the other store picks its part: the order is ready
        await other.publish(OrderPicked(**other.next_envelope(), order_id=oid,
                                        lines=(PickedLine(sku=sku, ordered=2, picked=2, short=0),)))
        await other.publish(StockMoved(**other.next_envelope(), sku=sku, delta=-2, reason="pick", shrinkage_reason="",
                                       on_hand_after=28, reference=oid))
        await status_of(http, member, oid, "ready")
    assert (await cloud_stock(http, OTHER, sku))["confirmed"] == 0
    assert await eventually(lambda: drained(box), timeout_s=15)
    row = await agree(http, box, sku)
    assert (row["on_hand"], row["confirmed"]) == (9, 0)
    assert await own_violations(http, [oid]) == []


async def _escrow(http, store: str, sku: str, qty: int) -> bool:
    return (await cloud_stock(http, store, sku)).get("escrow") == qty


async def test_a_shortage_no_store_can_serve_is_refunded(world):
    services, http, box, lane = world
    kept, missing = pieces()[13], pieces()[14]
    await receive(box, kept["sku"], 10)
    await receive(box, missing["sku"], 10)
    member, order = await paid_order(services, http, box, [{"sku": kept["sku"], "qty": 1},
                                                           {"sku": missing["sku"], "qty": 2}], balance_fen=50_000)
    oid = order["order_id"]
    await pick(lane, oid, {kept["sku"]: {"qty": 1}, missing["sku"]: {"qty": 0}})
    ready = await status_of(http, member, oid, "ready")
    share = next(line["amount_fen"] for line in order["lines"] if line["sku"] == missing["sku"])
    refund = await eventually(lambda: movement(services, f"refund:{oid}:short:{STORE}:{missing['sku']}"))
    assert refund and refund["state"] == "done" and refund["amount_fen"] == share
    assert ready["refunded_fen"] == share
    assert await balance(http, member) == 50_000 - order["total_fen"] + share
    assert any(e["event"] == "short" for e in ready["timeline"])
    assert await eventually(lambda: drained(box), timeout_s=15)
    assert (await agree(http, box, missing["sku"]))["confirmed"] == 0  # the short reservation went back
    assert await own_violations(http, [oid]) == []


async def test_a_delivery_order_picked_heavier_on_a_wallet_payment_is_absorbed_and_the_rider_hook_is_called(world):
    services, http, box, lane = world
    sku = weighed()[1]["sku"]
    await receive(box, sku, 5_000)
    called: list[str] = []

    async def on_ready(order_id: str) -> None:
        called.append(order_id)
    services.orders.on_ready = on_ready
    try:
        member = await customer(services, http)
        here = next(s for s in (await http.get("/stores")).json()["stores"] if s["store_id"] == STORE)
        slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=17, minute=0, second=0, microsecond=0).isoformat()
        r = await http.post("/orders", json={"fulfilment": "delivery", "location": {"lat": here["lat"], "lon": here["lon"]},
                                             "slot_start": slot, "items": [{"sku": sku, "qty": 500}]},
                            headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
        assert r.status_code == 201 and r.json()["stores"] == [STORE], r.text
        oid = r.json()["order_id"]
        await pay_by_wallet(services, http, member, oid)

        async def arrived():
            return any(o["order_id"] == oid for o in (await box.actor.ask("pick_list"))["orders"])
        assert await eventually(arrived, timeout_s=15)
        await pick(lane, oid, {sku: {"weight_g": 540}})
        ready = await status_of(http, member, oid, "ready")
        assert called == [oid]  # every part ready: the riders are called, once
        absorbed = [e for e in ready["timeline"] if e["event"] == "absorbed"]
        assert absorbed and absorbed[0]["detail"]["amount_fen"] > 0  # a wallet payment is not charged again
        assert await movement(services, f"charge:{oid}:weight:{STORE}") is None
        assert await own_violations(http, [oid]) == []
    finally:
        services.orders.on_ready = None


async def test_an_offline_stores_backlog_picks_and_hands_over_in_its_own_order(world, stack):
    """Start, picked (one short, refunded: no other store has it) and the till's pickup arrive together, as after a
    network cut: the pickup only hands over - the reservation is consumed by the one unit picked, not by two."""
    services, http, _, _ = world
    sku = pieces()[15]["sku"]
    async with StoreLink(stack, OTHER) as other:
        await other.publish(StockMoved(**other.next_envelope(), sku=sku, delta=25, reason="receiving",
                                       shrinkage_reason="", on_hand_after=25, reference=""))
        await other.publish(EscrowGranted(**other.next_envelope(), sku=sku, qty=10, escrow_after=10))
        assert await eventually(lambda: _escrow(http, OTHER, sku, 10))
        member = await customer(services, http)
        await top_up(services, http, member, 50_000)
        slot = (datetime.now(CN) + timedelta(days=1)).replace(hour=18, minute=0, second=0, microsecond=0).isoformat()
        made = await http.post("/orders", json={"fulfilment": "pickup", "store_id": OTHER, "slot_start": slot,
                                                "items": [{"sku": sku, "qty": 2}]},
                               headers={"Idempotency-Key": uuid.uuid4().hex, **member.headers})
        assert made.status_code == 201, made.text
        order = made.json()
        paid = await http.post(f"/orders/{order['order_id']}/pay", json={"method": "stored_value"},
                               headers=member.headers)
        assert paid.status_code == 200, paid.text
        oid, code = order["order_id"], paid.json()["pickup_code"]
        for event in (PickingStarted(**other.next_envelope(), order_id=oid),
                      OrderPicked(**other.next_envelope(), order_id=oid,
                                  lines=(PickedLine(sku=sku, ordered=2, picked=1, short=1),)),
                      StockMoved(**other.next_envelope(), sku=sku, delta=-1, reason="pick", shrinkage_reason="",
                                 on_hand_after=24, reference=oid),
                      PickupCompleted(**other.next_envelope(), order_id=oid, pickup_code=code, lane="1")):
            await other.publish(event)
        done = await status_of(http, member, oid, "picked_up")
    assert [e["event"] for e in done["timeline"] if e["event"] in ("start_picking", "picked", "pick_up")] == [
        "start_picking", "picked", "pick_up"]
    row = await cloud_stock(http, OTHER, sku)
    assert (row["escrow"], row["confirmed"], row["on_hand"]) == (9, 0, 24)  # one unit left the escrow, not two
    share = order["lines"][0]["amount_fen"] // 2
    refund = await movement(services, f"refund:{oid}:short:{OTHER}:{sku}")
    assert refund and refund["amount_fen"] == share and refund["state"] == "done"
    assert await own_violations(http, [oid]) == []


async def test_an_order_charged_extra_then_cancelled_gives_back_the_charge_the_extra_and_the_goods(world):
    services, http, box, lane = world
    sku = weighed()[2]["sku"]
    await receive(box, sku, 5_000)
    member, order = await paid_order(services, http, box, [{"sku": sku, "qty": 500}], balance_fen=30_000)
    oid = order["order_id"]
    await pick(lane, oid, {sku: {"weight_g": 545}})
    await status_of(http, member, oid, "ready")
    extra = await movement(services, f"charge:{oid}:weight:{STORE}")
    assert extra and extra["state"] == "done" and extra["amount_fen"] > 0
    assert await balance(http, member) == 30_000 - order["total_fen"] - extra["amount_fen"]
    cancelled = await services.orders.cancel(oid, None, "the customer never came")  # the cloud's own caller
    assert cancelled["status"] == "cancelled"
    refund = await eventually(lambda: movement(services, f"refund:{oid}"))
    assert refund and refund["state"] == "done" and refund["amount_fen"] == order["total_fen"] + extra["amount_fen"]
    assert await balance(http, member) == 30_000

    async def restocked():  # the store puts the picked goods back on the shelf
        return (await box.store_db.stock_level(sku)).on_hand == 5_000 and await drained(box)
    assert await eventually(restocked, timeout_s=15)
    assert (await agree(http, box, sku))["confirmed"] == 0
    assert await own_violations(http, [oid]) == []
