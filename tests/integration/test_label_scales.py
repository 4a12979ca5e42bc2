"""Label scales on real pseudo-terminals: the box pushes its PLU table, the simulated scale prints labels, the till
reads them back. In-process edge box (real SQLite, the lane API); no cloud needed."""
from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from edge import label_scales
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.clock import ReadingClock
from protocol.messages import CatalogueUpdated, RuleBookUpdated
from protocol.money import GRAMS_PER_KG, div_round
from simulators.label_scale import LabelScaleSim

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
SHANGHAI = timezone(timedelta(hours=8))  # the chain's time zone (protocol.policy)


def catalogue() -> list[dict]:
    return json.loads(WORLD.read_text())["catalogue"]


def weighed() -> dict:
    return next(p for p in catalogue() if p["unit"] == "kg" and p["plu"])


async def eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def eventually_async(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        if time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)
    return result


def clock_at(hour: int) -> tuple[ReadingClock, dict]:
    """A wall clock running from today's `hour`:00 in the chain's time zone (markdowns go by the time of day);
    moved on by adding to the returned dict's "ms"."""
    noon = datetime.now(SHANGHAI).replace(hour=hour, minute=0, second=0, microsecond=0)
    offset = {"ms": int(noon.timestamp() * 1000) - time.time_ns() // 1_000_000}
    return ReadingClock(lambda: time.time_ns() + offset["ms"] * 1_000_000, time.monotonic_ns), offset


@pytest_asyncio.fixture
async def bench(tmp_path, monkeypatch):
    monkeypatch.setattr(label_scales, "RETRY_S", 0.2)  # a down scale is retried sooner; what happens is the same
    weight_scale = LabelScaleSim(tmp_path / "ls1", seed=1)
    price_scale = LabelScaleSim(tmp_path / "ls2", seed=2)
    config = {"store_id": "S031", "data_dir": str(tmp_path / "data"), "world": str(WORLD),
              "devices": {"label_scales": [{"port": weight_scale.path},
                                           {"port": price_scale.path, "protocol": "fm-label",
                                            "weighed_layout": "price-fen"}]}}
    edge = await EdgeBox(config, clock=clock_at(12)[0]).start()  # noon: no time-of-day markdown
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(edge)), base_url="http://lane") as http:
        yield edge, http, weight_scale, price_scale
    await edge.stop()
    weight_scale.close()
    price_scale.close()


def with_plu() -> list[dict]:
    return [p for p in catalogue() if p["plu"]]


async def stock_audit(http) -> list:
    r = await http.get("/stock/audit")
    assert r.status_code == 200, r.text
    return r.json()["violations"]


async def test_scales_get_the_plu_table_at_start_and_the_till_reads_their_labels(bench):
    edge, http, weight_scale, price_scale = bench
    product = weighed()
    for scale in (weight_scale, price_scale):
        await eventually(lambda s=scale: len(s.plus) == len(with_plu()))
    await eventually(lambda: all(r["up_to_date"] for r in edge.label_scales.health().values()))  # the END was acked
    entry = next(e for e in weight_scale.plus.values() if e.sku == product["sku"])
    assert (entry.name, entry.unit, entry.price_fen) == (product["name"], "kg", product["price_fen"])
    health = (await http.get("/health")).json()["devices"]
    for name in ("label_scale_1", "label_scale_2"):
        assert health[name]["state"] == "ok" and health[name]["plus_loaded"] == len(with_plu())
        assert health[name]["up_to_date"] and health[name]["last_push_ms"]

    weight_scale.weigh(1375)
    label = weight_scale.print_label(product["plu"])
    assert label.code.startswith("21") and label.amount_fen == div_round(product["price_fen"] * 1375, GRAMS_PER_KG)
    r = await http.post("/lanes/1/scan", json={"code": label.code})
    assert r.status_code == 200, r.text
    line = r.json()["line"]
    assert (line["sku"], line["weight_g"], line["amount_fen"]) == (product["sku"], 1375, label.amount_fen)

    price_scale.weigh(820)
    priced = price_scale.print_label(product["plu"])
    assert priced.code.startswith("20")
    line = (await http.post("/lanes/1/scan", json={"code": priced.code})).json()["line"]
    assert line["amount_fen"] == priced.amount_fen  # the label's price, as the scale priced it
    assert abs(line["weight_g"] - 820) * product["price_fen"] < GRAMS_PER_KG  # the grams that price stands for
    sale = await http.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 1_000_000})
    assert sale.status_code == 201 and sale.json()["total_fen"] == label.amount_fen + priced.amount_fen
    assert await stock_audit(http) == []
    await eventually(lambda: [len(s.labels) for s in edge.label_scales.scales] == [1, 1])  # each reported its label
    listed = (await http.get("/label-scales")).json()["scales"]
    assert [x["code"] for x in listed["label_scale_1"]["labels"]] == [label.code]
    assert listed["label_scale_2"]["labels"][0]["amount_fen"] == priced.amount_fen


async def test_a_price_change_reaches_the_scales_and_the_next_label(bench):
    edge, http, weight_scale, price_scale = bench
    product = weighed()
    await eventually(lambda: len(weight_scale.plus) == len(with_plu()))
    downloads = weight_scale.downloads
    changed = [dict(p, price_fen=p["price_fen"] + 100) if p["sku"] == product["sku"] else p for p in catalogue()]
    message = CatalogueUpdated(event_id=edge.ids.new(), store_id="S031", seq=1, wall_ms=1, mono_ms=1, version=2,
                               payload=json.dumps(changed).encode())
    assert await edge.actor.ask("cloud_message", message=message) == "applied"
    new_price = product["price_fen"] + 100
    await eventually(lambda: next(e for e in weight_scale.plus.values() if e.sku == product["sku"]).price_fen
                     == new_price)
    assert weight_scale.downloads == downloads + 1
    weight_scale.weigh(2000)
    label = weight_scale.print_label(product["plu"])
    assert label.amount_fen == 2 * new_price
    line = (await http.post("/lanes/3/scan", json={"code": label.code})).json()["line"]
    assert line["amount_fen"] == 2 * new_price  # the till prices the label as the scale did

    edge.label_scales.push_prices({product["sku"]: 500})  # a markdown: the scales print the marked-down price
    await eventually(lambda: next(e for e in price_scale.plus.values() if e.sku == product["sku"]).price_fen == 500)
    price_scale.weigh(1000)
    marked = price_scale.print_label(product["plu"])
    assert marked.amount_fen == 500
    line = (await http.post("/lanes/3/scan", json={"code": marked.code})).json()["line"]
    assert line["amount_fen"] == 500
    await eventually(lambda: all(r["up_to_date"] for r in edge.label_scales.health().values()))
    downloads = weight_scale.downloads
    rules = RuleBookUpdated(event_id=edge.ids.new(), store_id="S031", seq=2, wall_ms=1, mono_ms=1, version=5,
                            payload=json.dumps({"version": 5, "rules": []}).encode())
    assert await edge.actor.ask("cloud_message", message=rules) == "applied"
    edge.label_scales.push_prices({product["sku"]: 500})  # the same prices again: nothing to download either
    await asyncio.sleep(0.6)
    assert weight_scale.downloads == downloads
    edge.label_scales.push_prices({})  # the markdown is over: back to the list price
    await eventually(lambda: next(e for e in price_scale.plus.values() if e.sku == product["sku"]).price_fen
                     == new_price)


async def test_garbage_a_mute_scale_and_a_power_cycle_do_not_stop_the_box(bench):
    edge, http, weight_scale, price_scale = bench
    await eventually(lambda: len(weight_scale.plus) == len(with_plu()))
    weight_scale.garbage(300)
    weight_scale.mute(True)
    edge.label_scales.push_prices({weighed()["sku"]: 111})
    scale = edge.label_scales.scales[0]
    await eventually(lambda: scale.last_error != "")  # it said why: the scale does not answer
    health = (await http.get("/health")).json()["devices"]["label_scale_1"]
    assert not health["up_to_date"] and "did not answer" in health["detail"] and health["state"] == "degraded"
    assert health["garbage"] >= 1
    await eventually(lambda: next(e for e in price_scale.plus.values() if e.sku == weighed()["sku"]).price_fen == 111)
    price_scale.weigh(500)
    r = await http.post("/lanes/1/scan", json={"code": price_scale.print_label(weighed()["plu"]).code})
    assert r.status_code == 200 and r.json()["line"]["amount_fen"] == 56  # 500 g at 111 fen/kg: the till goes on
    weight_scale.mute(False)
    await eventually(lambda: next(e for e in weight_scale.plus.values() if e.sku == weighed()["sku"]).price_fen == 111)
    await eventually(lambda: (edge.label_scales.health()["label_scale_1"]["up_to_date"]))
    await eventually(lambda: edge.label_scales.health()["label_scale_1"]["state"] == "ok")

    weight_scale.disconnect(0.6)  # the cable pulled out while a new price is on its way
    edge.label_scales.push_prices({weighed()["sku"]: 222})
    await eventually(lambda: next(e for e in weight_scale.plus.values() if e.sku == weighed()["sku"]).price_fen == 222)

    with weight_scale.lock:  # switched off and on: the scale forgot its table
        weight_scale.plus, weight_scale.version = {}, 0
    await eventually(lambda: len(weight_scale.plus) == len(with_plu()))  # its status told the box; pushed again
    assert await stock_audit(http) == []


def test_the_label_scale_command_line_answers_every_command_and_removes_its_link(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    commands = "weigh 640\nlabel 101\nbogus\nplus\nmute on\nmute off\nlabels\nquit\n"
    done = subprocess.run([sys.executable, "-m", "simulators.label_scale", "--dir", str(tmp_path / "ls")], cwd=root,
                          input=commands, capture_output=True, text=True, timeout=30)
    lines = done.stdout.splitlines()
    config = json.loads(lines[0])
    assert config["devices"]["label_scales"][0]["port"] == str(tmp_path / "ls" / "label_scale")
    answers = [line for line in lines[1:] if not line.startswith("#")]
    assert answers[0] == "ok platter: 640 g"
    assert answers[1] == "error: PLU 101 is not in the scale's table (0 PLUs loaded)"  # nothing downloaded yet
    assert answers[2].startswith("error: unknown command") and answers[3] == "ok {}"
    assert answers[4:] == ["ok muted on", "ok muted off", "ok "]
    assert done.returncode == 0 and not (tmp_path / "ls" / "label_scale").exists()


async def test_a_1900_markdown_reaches_the_scales_and_its_labels(tmp_path, monkeypatch):
    """The world's rule book marks leafy greens down 30% from 19:00: the scale's price follows the clock."""
    monkeypatch.setattr(label_scales, "MARKDOWN_CHECK_S", 0.2)
    world = json.loads(WORLD.read_text())
    rule = next(r for r in world["rule_book"]["rules"] if r["id"] == "MD-GREENS-1900")
    greens = next(p for p in catalogue() if p["sku"] in rule["skus"] and p["plu"] and p["unit"] == "kg")
    clock, offset = clock_at(12)
    scale = LabelScaleSim(tmp_path / "ls")
    edge = await EdgeBox({"store_id": "S031", "data_dir": str(tmp_path / "d"), "world": str(WORLD),
                          "devices": {"label_scales": [{"port": scale.path, "weighed_layout": "price-fen"}]}},
                         clock=clock).start()
    try:
        def price_now():
            entry = next((e for e in scale.plus.values() if e.sku == greens["sku"]), None)
            return entry.price_fen if entry else None
        await eventually(lambda: price_now() == greens["price_fen"])  # at noon: the list price
        offset["ms"] += 7 * 3600 * 1000 + 30 * 60 * 1000  # 19:30
        marked = greens["price_fen"] - greens["price_fen"] * rule["percent_off_bp"] // 10_000
        await eventually(lambda: abs(price_now() - marked) <= 1)
        scale.weigh(1250)
        label = scale.print_label(greens["plu"])
        marked_price = price_now()
        assert label.amount_fen == div_round(marked_price * 1250, GRAMS_PER_KG)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_lane_app(edge)),
                                     base_url="http://lane") as http:
            async def registered():  # the scale reported its label; the box keeps it as a markdown label
                return (await http.get("/markdowns/now")).json()["labels_printed"] == 1
            assert await eventually_async(registered)
            line = (await http.post("/lanes/1/scan", json={"code": label.code})).json()["line"]
            assert line["amount_fen"] == label.amount_fen  # the label's price: not marked down a second time
            assert line["weight_g"] == 1250 and line["markdown"]["rule_id"] == "MD-GREENS-1900"  # the grams weighed
            assert (await http.get("/label-scales")).json()["markdowns"][greens["sku"]] == marked_price
            assert (await http.post("/lanes/1/pay", json={"method": "cash", "tendered_fen": 10**6})).status_code == 201
            assert (await http.get("/stock/audit")).json()["violations"] == []
    finally:
        await edge.stop()
        scale.close()
