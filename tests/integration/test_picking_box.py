"""The back-room picking API on a store box in-process: real SQLite store database, a real scale on a pseudo-terminal,
no cloud (the order arrives as the cloud message it is). What is committed is read back from the store database:
the order's status, the stock and escrow, and the outbox the relay would send."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol import codec
from protocol.ids import make_id
from protocol.messages import OrderCancelled, OrderLine, OrderToFulfil
from simulators.devices import Toledo8217Scale

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
STORE = "S009"


def products() -> list[dict]:
    return json.loads(WORLD.read_text())["catalogue"]


PIECE = next(p for p in products() if p["unit"] == "piece" and "online" in p["channels"])
WEIGHED = next(p for p in products() if p["unit"] == "kg" and "online" in p["channels"])


@pytest_asyncio.fixture
async def box(tmp_path):
    scale = Toledo8217Scale(tmp_path / "scale", grams=1_250)
    config = {"store_id": STORE, "data_dir": str(tmp_path / "data"), "world": str(WORLD),
              "devices": {"scale": {"port": scale.path, "protocol": "toledo8217"}}}
    edge = await EdgeBox(config).start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(edge)), base_url="http://lane") as http:
        for _ in range(60):
            if edge.devices["scale"].state == "ok":
                break
            await asyncio.sleep(0.05)
        yield edge, http, scale
    await edge.stop()
    scale.close()


SEQ = iter(range(1, 10_000))


def envelope() -> dict:
    now = time.time_ns() // 1_000_000
    return {"event_id": make_id(now, next(SEQ)), "store_id": STORE, "seq": next(SEQ), "wall_ms": now, "mono_ms": 0}


async def arrive(edge, order_id: str, lines: list[tuple[str, int]], allow: bool = False) -> None:
    message = OrderToFulfil(**envelope(), order_id=order_id, fulfilment="delivery",
                            lines=tuple(OrderLine(sku=s, qty=q, amount_fen=1_000) for s, q in lines), total_fen=2_000,
                            pickup_code="", slot_start_ms=0, slot_end_ms=0, member_id=None, allow_substitutions=allow)
    assert await edge.actor.ask("cloud_message", message=message) == "applied"


async def outbox(edge) -> list:
    return [codec.decode(frame) for _, _, frame, _ in await edge.store_db.outbox(0, 1_000)]


async def status(edge, order_id: str) -> str:
    async with edge.store_db.reader.execute("select status from orders where order_id = ?", (order_id,)) as cur:
        return (await cur.fetchone())[0]


async def test_weighed_on_the_scale_then_done_in_one_transaction(box):
    edge, http, scale = box
    await edge.actor.ask("receive", sku=PIECE["sku"], qty=10)  # 4 escrowed
    await edge.actor.ask("receive", sku=WEIGHED["sku"], qty=5_000)  # 2000 g escrowed
    await arrive(edge, "O-BOX-1", [(PIECE["sku"], 2), (WEIGHED["sku"], 1_200)])
    listed = (await http.get("/picking/orders")).json()["orders"]
    assert [o["order_id"] for o in listed] == ["O-BOX-1"]
    assert listed[0]["lines"][1]["weight_range_g"] == [1_080, 1_320]  # ±10% of 1200 g
    assert (await http.post("/picking/orders/O-BOX-1/start")).json()["status"] == "picking"
    r = await http.post(f"/picking/orders/O-BOX-1/lines/{WEIGHED['sku']}", json={})  # the scale says 1250 g
    assert r.status_code == 200, r.text
    assert next(line for line in r.json()["lines"] if line["sku"] == WEIGHED["sku"])["picked"]["picked"] == 1_250
    scale.set_grams(1_400)
    far = await http.post(f"/picking/orders/O-BOX-1/lines/{WEIGHED['sku']}", json={})
    assert far.status_code == 422 and "1400 g is outside 1080..1320 g" in far.json()["detail"]
    assert far.headers["content-type"] == "application/problem+json"
    await http.post(f"/picking/orders/O-BOX-1/lines/{PIECE['sku']}", json={"qty": 2})
    done = await http.post("/picking/orders/O-BOX-1/done")
    assert done.status_code == 200 and done.json()["status"] == "picked"
    assert await status(edge, "O-BOX-1") == "picked" and (await http.get("/picking/orders")).json()["orders"] == []
    piece, weighed = (await edge.store_db.stock_level(PIECE["sku"]), await edge.store_db.stock_level(WEIGHED["sku"]))
    assert (piece.on_hand, piece.escrow) == (8, 2)
    assert (weighed.on_hand, weighed.escrow) == (3_750, 800)  # 1250 g left the shelf; the 1200 g reserved the escrow
    sent = await outbox(edge)
    picks = [m for m in sent if m.KIND == "stock.moved" and m.reason == "pick"]
    assert sorted((m.sku, m.delta, m.reference) for m in picks) == sorted(
        [(PIECE["sku"], -2, "O-BOX-1"), (WEIGHED["sku"], -1_250, "O-BOX-1")])
    (picked,) = [m for m in sent if m.KIND == "order.picked"]
    assert [(line.sku, line.ordered, line.picked, line.short) for line in picked.lines] == [
        (PIECE["sku"], 2, 2, 0), (WEIGHED["sku"], 1_200, 1_250, 0)]
    assert [m.KIND for m in sent].count("order.picking_started") == 1
    again = await http.post("/picking/orders/O-BOX-1/done")  # done twice: the same answer, nothing moves again
    assert again.status_code == 200 and len(await outbox(edge)) == len(sent)


async def test_a_cancellation_reaches_an_order_being_picked_and_nothing_leaves_the_shelf(box):
    edge, http, _ = box
    await edge.actor.ask("receive", sku=PIECE["sku"], qty=10)
    await arrive(edge, "O-BOX-2", [(PIECE["sku"], 1)])
    await http.post("/picking/orders/O-BOX-2/start")
    await http.post(f"/picking/orders/O-BOX-2/lines/{PIECE['sku']}", json={"qty": 1})
    cancel = OrderCancelled(**envelope(), order_id="O-BOX-2", reason="customer")
    assert await edge.actor.ask("cloud_message", message=cancel) == "applied"
    assert await status(edge, "O-BOX-2") == "cancelled"
    r = await http.post("/picking/orders/O-BOX-2/done")
    assert r.status_code == 409 and "is cancelled" in r.json()["detail"]
    assert (await edge.store_db.stock_level(PIECE["sku"])).on_hand == 10
    unknown = await http.post("/picking/orders/NOPE/start")
    assert unknown.status_code == 404 and "no order NOPE" in unknown.json()["detail"]
    bad = await http.post(f"/picking/orders/O-BOX-2/lines/{PIECE['sku']}", json={"qty": 1, "weight_g": 3})
    assert bad.status_code == 422 and "not both" in bad.json()["detail"]


async def test_a_picked_order_the_cloud_cancels_goes_back_on_the_shelf(box):
    edge, http, _ = box
    await edge.actor.ask("receive", sku=PIECE["sku"], qty=10)  # 4 escrowed
    await arrive(edge, "O-BOX-3", [(PIECE["sku"], 3)])
    await http.post("/picking/orders/O-BOX-3/start")
    await http.post(f"/picking/orders/O-BOX-3/lines/{PIECE['sku']}", json={"qty": 3})
    assert (await http.post("/picking/orders/O-BOX-3/done")).json()["status"] == "picked"
    assert (await edge.store_db.stock_level(PIECE["sku"])).on_hand == 7
    cancel = OrderCancelled(**envelope(), order_id="O-BOX-3", reason="operator")
    assert await edge.actor.ask("cloud_message", message=cancel) == "applied"
    assert await edge.actor.ask("cloud_message", message=cancel) == "duplicate"  # once
    assert await status(edge, "O-BOX-3") == "cancelled"
    level = await edge.store_db.stock_level(PIECE["sku"])
    assert (level.on_hand, level.escrow) == (10, 1)  # back on the shelf; the escrow the cloud consumed stays taken
    back = [m for m in await outbox(edge) if m.KIND == "stock.moved" and m.reason == "return"]
    assert [(m.sku, m.delta, m.on_hand_after, m.reference) for m in back] == [(PIECE["sku"], 3, 10, "O-BOX-3")]
    gone = await http.post("/picking/orders/O-BOX-3/start")
    assert gone.status_code == 409 and "is cancelled" in gone.json()["detail"]
