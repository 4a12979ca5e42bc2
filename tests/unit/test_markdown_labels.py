"""Markdown labels as pure decisions (edge/core/markdowns.py): the price-embedded barcode in the store's layout, the
label's price from the book now, the printed bytes as the printer reads them, and the line a scanned label makes."""
from __future__ import annotations

import pytest

from edge.core.markdowns import LotInStock, label_code, label_line, label_ticket, marked_down_now, plan_labels, price_layout
from edge.core.outcome import Refused
from edge.core.state import Books
from protocol.barcodes import DEFAULT_LAYOUTS, VariableMeasureLayout, parse_scan
from protocol.pricing import Catalogue, Product, load_rule_book
from simulators.escpos_reader import EscPosReader

DAY_START = 1_767_225_600_000 - 8 * 3_600_000  # 2026-01-01 00:00 in UTC+8
AT_1905 = DAY_START + (19 * 60 + 5) * 60_000
AT_1200 = DAY_START + 12 * 3_600_000
CATALOGUE = Catalogue([
    Product(sku="BOK", name="Bok choy", category="vegetables", unit="kg", price_fen=1000, plu="00101"),
    Product(sku="BREAD", name="Bread", category="packed", unit="piece", price_fen=1200, plu="00103"),
    Product(sku="MILK", name="Milk", category="dairy", unit="piece", price_fen=1250),
])
BOOK = load_rule_book({"version": 1, "rules": [
    {"id": "MD-GREENS", "type": "markdown", "name": "Greens after 19:00", "skus": ["BOK"], "from_time": "19:00",
     "percent_off_bp": 3000},
    {"id": "MD-USEBY", "type": "markdown", "name": "Use-by day", "days_to_use_by": 0, "percent_off_bp": 5000}]},
    CATALOGUE)
BOOKS = Books(CATALOGUE, BOOK)


@pytest.mark.parametrize("layout", [
    DEFAULT_LAYOUTS[1],
    VariableMeasureLayout(name="de", prefixes=("22",), pattern="PPIIIIVAAAAAC"),
    VariableMeasureLayout(name="yuan-jiao", prefixes=("23",), pattern="PPIIIIIAAAAAC", amount_decimals=1),
    VariableMeasureLayout(name="left", prefixes=("24",), pattern="PPIIIIIAAAAAC", check="left13"),
])
def test_the_label_code_reads_back_as_its_item_and_price_in_each_layout(layout):
    code, carried = label_code(layout, "00101", 1234)
    read = parse_scan(code, (layout,))
    assert read.item_code.lstrip("0") == "101" and read.amount_fen == carried and code.startswith(layout.prefixes[0])
    assert carried == (1230 if layout.amount_decimals == 1 else 1234)  # rounded down, in the customer's favour


def test_the_price_layout_is_the_first_amount_only_13_digit_layout():
    assert price_layout(DEFAULT_LAYOUTS).name == "price-fen"
    with pytest.raises(Refused, match="no price-embedded barcode layout"):
        price_layout(DEFAULT_LAYOUTS[:1])
    with pytest.raises(Refused, match="does not fit"):
        label_code(DEFAULT_LAYOUTS[1], "00101", 10_000_000)


def test_a_weighed_label_is_priced_by_the_book_for_its_weight_now():
    label = plan_labels(BOOKS, "BOK", None, "", 400, 1, DEFAULT_LAYOUTS, "S1", AT_1905)
    assert (label.rule_id, label.was_fen, label.now_fen, label.weight_g) == ("MD-GREENS", 400, 280, 400)
    lot = LotInStock("BOK", "L1", "2026-01-01", 5000)
    label = plan_labels(BOOKS, "BOK", lot, "L1", 400, 1, DEFAULT_LAYOUTS, "S1", AT_1200)  # noon: only the use-by one
    assert (label.rule_id, label.now_fen, label.lot, label.use_by) == ("MD-USEBY", 200, "L1", "2026-01-01")


@pytest.mark.parametrize("args, status, words", [
    (("BOK", None, "", 400, 1, AT_1200), 409, "no markdown applies"),
    (("BOK", LotInStock("BOK", "L0", "2025-12-31", 10), "L0", 400, 1, AT_1905), 409, "expired on 2025-12-31"),
    (("BOK", None, "L9", 400, 1, AT_1905), 404, "no lot 'L9'"),
    (("BOK", None, "", None, 1, AT_1905), 422, "give weight_g"),
    (("BREAD", None, "", 100, 1, AT_1905), 422, "sold by the piece"),
    (("MILK", LotInStock("MILK", "M", "2026-01-01", 3), "M", None, 1, AT_1905), 422, "no PLU"),
    (("BOK", None, "", 400, 51, AT_1905), 422, "count"),
    (("NOPE", None, "", 400, 1, AT_1905), 404, "unknown product"),
])
def test_labels_are_refused_saying_why(args, status, words):
    sku, lot, asked, weight, count, now = args
    with pytest.raises(Refused, match=words) as err:
        plan_labels(BOOKS, sku, lot, asked, weight, count, DEFAULT_LAYOUTS, "S1", now)
    assert err.value.status == status


def test_the_printed_labels_decode_with_their_barcode_and_the_scanned_line_is_the_markdown():
    lot = LotInStock("BREAD", "B1", "2026-01-01", 4)
    label = plan_labels(BOOKS, "BREAD", lot, "B1", None, 3, DEFAULT_LAYOUTS, "S1", AT_1200)
    printed = EscPosReader().feed(label_ticket(label, "Bread", 3))
    assert len(printed) == 3 and all(r.barcodes == [label.code] and not r.errors for r in printed)
    assert "Use by 2026-01-01" in printed[0].text and "Lot B1" in printed[0].text and "6.00" in printed[0].text
    line = label_line(label, AT_1905)
    assert (line.basket.amount_fen, line.basket.was_fen, line.basket.markdown_rule) == (600, 1200, "MD-USEBY")
    assert (line.quantity.amount, line.quantity.unit, line.lot, line.use_by) == (1, "piece", "B1", "2026-01-01")
    with pytest.raises(Refused, match="expired"):
        label_line(label, AT_1905 + 86_400_000)  # the next day: the lot is past its use-by


def test_what_is_marked_down_now_per_lot():
    stock = [LotInStock("BOK", "", "", 3000), LotInStock("BOK", "L1", "2026-01-01", 500),
             LotInStock("BREAD", "B2", "2026-01-05", 4), LotInStock("MILK", "", "", 0)]
    assert [(i["sku"], i["lot"], i["rule_id"], i["now_fen"]) for i in marked_down_now(BOOKS, stock, "S1", AT_1200)] == [
        ("BOK", "L1", "MD-USEBY", 500)]
    assert [(i["sku"], i["lot"], i["rule_id"], i["now_fen"]) for i in marked_down_now(BOOKS, stock, "S1", AT_1905)] == [
        ("BOK", "", "MD-GREENS", 700), ("BOK", "L1", "MD-USEBY", 500)]


def test_a_sale_reports_only_markdowns_of_its_own_lines():
    from protocol.errors import ProtocolError
    from protocol.markdowns import MarkdownGiven, check_markdowns
    given = MarkdownGiven(rule_id="MD-USEBY", line=1, sku="BOK", saving_fen=150, lot="L1")
    check_markdowns((given,), ["BREAD", "BOK"])
    with pytest.raises(ProtocolError, match="not a line of this sale"):
        check_markdowns((given,), ["BOK"])
    with pytest.raises(ProtocolError, match="not a line of this sale"):
        check_markdowns((given,), ["BREAD", "MILK"])
    with pytest.raises(ProtocolError, match="marked down twice"):
        check_markdowns((given, given), ["BREAD", "BOK"])
    with pytest.raises(ProtocolError, match="saving_fen"):
        MarkdownGiven(rule_id="MD-USEBY", line=0, sku="BOK", saving_fen=0)


def test_a_code_stands_for_one_label_per_chain_day():
    from edge.core.markdowns import Label, registry_clash

    lot_a = Label("2000103006005", "BREAD", "L1", "2026-01-01", "MD-USEBY", "Use-by day", 1200, 600, 0)
    lot_b = Label("2000103006005", "BREAD", "L2", "2026-01-03", "MD-USEBY", "Use-by day", 1200, 600, 0)
    assert registry_clash(None, "", lot_b, "2026-01-01") is None
    assert registry_clash(lot_a, "2026-01-01", lot_a, "2026-01-01") is None  # a re-print of the same label
    assert "L1" in registry_clash(lot_a, "2026-01-01", lot_b, "2026-01-01")  # same code, another lot: refused
    assert registry_clash(lot_a, "2025-12-31", lot_b, "2026-01-01") is None  # yesterday's row no longer counts
    other_rule = Label(lot_a.code, "BREAD", "L1", "2026-01-01", "MD-OTHER", "Other", 1300, 600, 0)
    assert registry_clash(lot_a, "2026-01-01", other_rule, "2026-01-01") is None  # the same lot: a re-print


async def test_the_registry_forgets_a_code_at_the_end_of_its_day_and_refuses_a_clash_the_same_day():
    import aiosqlite

    from edge import markdowns_db
    from edge.core.markdowns import Label

    lot_a = Label("2000103006005", "BREAD", "L1", "2026-01-01", "MD-USEBY", "Use-by day", 1200, 600, 0)
    lot_b = Label("2000103006005", "BREAD", "L2", "2026-01-03", "MD-USEBY", "Use-by day", 1200, 600, 0)
    async with aiosqlite.connect(":memory:", isolation_level=None) as db:
        await db.executescript(markdowns_db.SCHEMA)
        await markdowns_db.record_labels(db, lot_a, 2, "ana", AT_1905)
        assert await markdowns_db.label_for(db, lot_a.code, AT_1905 + 60_000) == lot_a
        with pytest.raises(Refused, match="already printed today") as refused:
            await markdowns_db.record_labels(db, lot_b, 1, "ana", AT_1905 + 60_000)
        assert refused.value.status == 409
        assert await markdowns_db.label_for(db, lot_a.code, AT_1905 + 60_000) == lot_a  # nothing written
        tomorrow = AT_1200 + 86_400_000
        assert await markdowns_db.label_for(db, lot_a.code, tomorrow) is None  # an ordinary code again
        await markdowns_db.record_labels(db, lot_b, 1, "ana", tomorrow)  # tomorrow the code may stand for lot L2
        assert await markdowns_db.label_for(db, lot_a.code, tomorrow) == lot_b
        assert await markdowns_db.labels_printed(db) == 3
