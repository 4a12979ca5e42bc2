"""Label scales without ports: the fm-label framing, composing the codes a scale prints, the PLU table a store
pushes, and the GS1 lot lines of the till (edge.core.gs1_lines)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.core.gs1_lines import checked_line, gs1_line
from edge.core.label_plus import layout_named, plu_records
from edge.core.outcome import Refused
from edge.devices.events import Garbage
from edge.devices.label_scale_codec import COMMANDS, Frame, FrameReader, LabelScaleCodec, encode
from protocol.barcodes import DEFAULT_LAYOUTS, VariableMeasureLayout, parse_scan
from protocol.errors import ProtocolError
from protocol.gs1 import Gs1Scan
from protocol.label_codes import compose
from protocol.lots import LotLevel, lot_name
from protocol.money import div_round
from protocol.pricing import Catalogue

WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"
CATALOGUE = Catalogue.from_data(json.loads(WORLD.read_text())["catalogue"])
WEIGHT, PRICE = layout_named("weight-g"), layout_named("price-fen")
GERMAN = VariableMeasureLayout(name="de-price", prefixes=("22",), pattern="PPIIIIVAAAAAC")
EIGHTEEN = VariableMeasureLayout(name="cn-18", prefixes=("26",), pattern="PPIIIIIAAAAAWWWWWC")


def test_frames_round_trip_with_their_bcc_and_names_with_separators():
    data = encode(7, "PLU", "00101", "VEG-1", "小白菜|Bok", "kg", 963, "21", "PPIIIIIWWWWWC", 3, 2)
    assert data[0] == 0x02 and data[-1] == 0x0D
    (frame,) = FrameReader().feed(data)
    assert frame.seq == 7 and frame.get("name") == "小白菜/Bok" and frame.get("price_fen") == "963"


def test_garbage_bad_bcc_and_cut_frames_are_reported_and_the_next_frame_reads():
    reader = LabelScaleCodec()
    good = encode(3, "ACK")
    bad_bcc = good[:-3] + b"00\r"
    events = reader.feed(b"\xff\x00noise\r" + bad_bcc + good[:5] + good + encode(0, "LBL", "00101", 1250, 1204, "2"))
    assert [type(e).__name__ for e in events] == ["Garbage", "Garbage", "Garbage", "Frame", "Frame"]
    assert "bad BCC" in events[1].reason and events[3] == Frame(3, "ACK", ())
    assert isinstance(reader.feed(encode(1, "CLR"))[0], Garbage)  # a host command from the scale's side is garbage
    assert isinstance(reader.feed(b"\x02" + b"x" * 600)[0], Garbage)  # bounded
    assert reader.feed(good)[-1] == Frame(3, "ACK", ())  # after the over-long run is reported


@given(st.binary(max_size=400), st.sampled_from(sorted(COMMANDS)))
def test_any_bytes_then_a_frame_still_read(noise, cmd):
    fields = [f"v{i}" for i in range(len(COMMANDS[cmd][1]))]
    events = FrameReader().feed(noise + b"\r" + encode(42, cmd, *fields))
    assert events[-1] == Frame(42, cmd, tuple(fields))


@given(item=st.integers(0, 99_999), grams=st.integers(0, 99_999), fen=st.integers(0, 99_999))
def test_composed_codes_parse_back(item, grams, fen):
    plu = f"{item:05d}"
    for layout, kw in ((WEIGHT, {"weight_g": grams}), (PRICE, {"amount_fen": fen}), (GERMAN, {"amount_fen": fen // 10}),
                       (EIGHTEEN, {"weight_g": grams, "amount_fen": fen})):
        code = compose(layout, plu[-layout.pattern.count("I"):], **kw)
        scan = parse_scan(code, (layout,))
        assert scan.weight_g == kw.get("weight_g") and scan.amount_fen == kw.get("amount_fen")


def test_compose_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        compose(WEIGHT, "00101", weight_g=100_000)
    with pytest.raises(ValueError, match="item code"):
        compose(WEIGHT, "123456", weight_g=1)
    with pytest.raises(ValueError, match="no weight was given"):
        compose(WEIGHT, "00101")


def test_the_plu_table_has_every_plu_product_at_its_price_or_markdown():
    records, skipped = plu_records(CATALOGUE, {}, WEIGHT, PRICE)
    with_plu = [p for p in CATALOGUE.by_sku.values() if p.plu]
    assert len(records) == len(with_plu) and skipped == ()
    veg = next(p for p in with_plu if p.weighed)
    record = next(r for r in records if r.sku == veg.sku)
    assert (record.unit, record.price_fen, record.prefix, record.pattern) == ("kg", veg.price_fen, "21", WEIGHT.pattern)
    marked, _ = plu_records(CATALOGUE, {veg.sku: 100}, PRICE, PRICE)
    record = next(r for r in marked if r.sku == veg.sku)
    assert (record.price_fen, record.prefix) == (100, "20")
    assert plu_records(None, {}, WEIGHT, PRICE) == ((), ())


def test_gs1_lines_and_the_expiry_rule():
    packed = next(p for p in CATALOGUE.by_sku.values() if p.gtin and not p.weighed)
    scan = Gs1Scan(gtin="0" + packed.gtin, lot="L1", use_by="2026-11-30")
    line = checked_line(scan, CATALOGUE, [], "2026-11-30")  # on its use-by day: sold
    assert (line.lot, line.use_by, line.quantity.amount) == ("L1", "2026-11-30", 1)
    with pytest.raises(Refused) as err:
        checked_line(scan, CATALOGUE, [], "2026-12-01")
    assert err.value.status == 409 and str(err.value) == (
        f"lot L1 of {packed.name} passed its use-by 2026-11-30: it cannot be sold; write it off as expired")
    only_lot = Gs1Scan(gtin="0" + packed.gtin, lot="L1")
    with pytest.raises(Refused, match="passed its use-by 2026-11-29"):
        checked_line(only_lot, CATALOGUE, [LotLevel("L1", "2026-11-29", 4)], "2026-11-30")
    assert checked_line(only_lot, CATALOGUE, [LotLevel("L1", "2026-12-29", 4)], "2026-11-30").use_by == "2026-12-29"
    with pytest.raises(ProtocolError, match="sold by the piece"):
        gs1_line(Gs1Scan(gtin="0" + packed.gtin, net_weight_g=10), CATALOGUE)
    odd = checked_line(Gs1Scan(gtin="0" + packed.gtin, lot="L*1"), CATALOGUE, [], "2026-11-30")  # GS1 charset 82
    assert odd.lot == lot_name("L*1") and odd.lot.startswith("L_1-")  # sold, under the lot's canonical name
    with pytest.raises(Refused, match="passed its use-by"):  # the box knows that lot by its canonical name
        checked_line(Gs1Scan(gtin="0" + packed.gtin, lot="L*1"), CATALOGUE, [LotLevel(odd.lot, "2026-11-29", 2)],
                     "2026-11-30")
    assert DEFAULT_LAYOUTS  # the till reads what compose writes with the same layouts


def test_a_label_at_the_markdown_price_becomes_a_markdown_label_and_one_at_the_list_price_does_not():
    from edge.core.label_plus import Markdown, markdown_label

    price = layout_named("price-fen")
    md = Markdown(price_fen=700, rule_id="MD-GREENS-1900", rule_name="Greens after 19:00")
    label = markdown_label(md, 1000, "VEG-1", "2000101008759", 1250, 875, True, price)
    assert label is not None and (label.was_fen, label.now_fen, label.weight_g, label.rule_id) == (
        1250, 875, 1250, "MD-GREENS-1900")
    assert markdown_label(md, 1000, "VEG-1", "2000101012505", 1250, 1250, True, price) is None  # printed before 19:00
    assert markdown_label(md, 1000, "EGG-1", "2000102007008", 0, 700, False, price).weight_g == 0
    assert markdown_label(md, 1000, "EGG-1", "2000102014006", 0, 1400, False, price) is None  # two pieces


def test_a_weight_embedded_label_is_never_a_markdown_label():
    """21 IIIII WWWWW C: a 500 g label printed at 19:30 at the markdown price is the same code as tomorrow's 500 g
    label at the list price; registered, tomorrow's pack would sell at yesterday's markdown."""
    from edge.core.label_plus import Markdown, embeds_price, label_layout, markdown_label

    weight, price = layout_named("weight-g"), layout_named("price-fen")
    assert not embeds_price(weight) and embeds_price(price)
    assert label_layout(True, weight, price) is weight and label_layout(False, weight, price) is price
    md = Markdown(price_fen=700, rule_id="MD-GREENS-1900", rule_name="Greens after 19:00")
    assert markdown_label(md, 1000, "VEG-1", "2100101005004", 500, 350, True, weight) is None


def test_markdown_prices_follow_the_time_of_day():
    from datetime import datetime, timedelta, timezone

    from edge.core.label_plus import markdown_prices
    from protocol.pricing import load_rule_book

    world = json.loads(WORLD.read_text())
    book = load_rule_book(world["rule_book"], CATALOGUE)
    rule = next(r for r in world["rule_book"]["rules"] if r["id"] == "MD-GREENS-1900")
    day = datetime(2026, 11, 30, tzinfo=timezone(timedelta(hours=8)))
    assert rule["skus"][0] not in markdown_prices(CATALOGUE, book, "S001", int(day.replace(hour=18).timestamp() * 1000))
    at_night = markdown_prices(CATALOGUE, book, "S001", int(day.replace(hour=19, minute=5).timestamp() * 1000))
    sku = next(s for s in rule["skus"] if CATALOGUE.by_sku[s].plu)
    assert at_night[sku].rule_id == "MD-GREENS-1900"
    list_fen = CATALOGUE.by_sku[sku].price_fen
    assert at_night[sku].price_fen == list_fen - div_round(list_fen * rule["percent_off_bp"], 10_000)


def test_the_scales_get_the_stores_own_price_and_a_scheduled_one_from_its_moment():
    """The box's scales are pushed the prices in force at their store (protocol.pricing.price_book): a store's own
    price, and a scheduled change once its moment has come (the markdown check re-pushes on its beat)."""
    from types import SimpleNamespace

    from edge.label_scales import LabelScales
    from protocol.clock import ManualClock
    from protocol.pricing.price_book import PriceEntry

    product = next(p for p in CATALOGUE.by_sku.values() if p.plu)
    t = 1_800_000_000_000
    entries = (PriceEntry(change_id="own", sku=product.sku, price_fen=product.price_fen + 11, store_id="S069"),
               PriceEntry(change_id="later", sku=product.sku, price_fen=product.price_fen + 22, store_id="S069",
                          effective_ms=t + 1_000))
    at_store = Catalogue(list(CATALOGUE.by_sku.values()), entries, "S069")
    now = [t]
    scales = LabelScales([{"port": "/dev/null-scale"}], ManualClock(), lambda: now[0])
    scales.books = SimpleNamespace(catalogue=at_store, rule_book=None)
    scales.store_id = "S069"

    def pushed() -> int:
        scales._want()
        return next(r.price_fen for r in scales.scales[0].wanted if r.sku == product.sku)

    assert pushed() == product.price_fen + 11
    now[0] = t + 1_000
    assert pushed() == product.price_fen + 22
