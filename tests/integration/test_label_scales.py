"""Label scales on real pseudo-terminals: the box pushes its PLU table, the simulated scale prints labels, the till
reads them back. In-process edge box (real SQLite, the lane API); no cloud needed."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from edge import label_scales
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from protocol.messages import CatalogueUpdated, RuleBookUpdated
from protocol.money import GRAMS_PER_KG, div_round
from simulators.label_scale import LabelScaleSim

pytestmark = pytest.mark.integration
WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"


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


@pytest_asyncio.fixture
async def bench(tmp_path, monkeypatch):
    monkeypatch.setattr(label_scales, "RETRY_S", 0.2)  # a down scale is retried sooner; what happens is the same
    weight_scale = LabelScaleSim(tmp_path / "ls1", seed=1)
    price_scale = LabelScaleSim(tmp_path / "ls2", seed=2)
    config = {"store_id": "S031", "data_dir": str(tmp_path / "data"), "world": str(WORLD),
              "devices": {"label_scales": [{"port": weight_scale.path},
                                           {"port": price_scale.path, "protocol": "fm-label",
                                            "weighed_layout": "price-fen"}]}}
    edge = await EdgeBox(config).start()
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
