"""Products as a sheet (CSV or XLSX): HQ's bulk import and export. Pure: bytes in, rows, products and errors out.

A sheet has a header row naming its columns (`COLUMNS`, any order; `sku` and, for a new product, `name`,
`category`, `unit` and `price_fen` are required); each further row is one product, added or changed by SKU.
A column the sheet does not have keeps an existing product's value (a sheet of sku and price_fen changes prices
only); an empty cell in a column it has is the field's default. `member_prices` is `level:fen` pairs separated by
`;` (`gold:900;silver:950`), `channels` is `offline;online`.

Every bad cell is reported as (row number as the spreadsheet shows it: the header is row 1, column, what is wrong)
and the import is all or nothing: one bad row and nothing is applied (the caller checks `errors` first). Products
not in the sheet are kept: an import never deletes.
"""
from __future__ import annotations

import csv
import io
from dataclasses import fields
from typing import Any

from protocol.errors import ProtocolError
from protocol.pricing.catalogue import Catalogue, Product
from protocol.reports import sheet_safe
from protocol.schema import record_from_wire, to_wire

COLUMNS = ("sku", "name", "category", "unit", "price_fen", "member_prices", "channels", "plu", "gtin",
           "shelf_life_days", "supplier", "cost_fen", "pack_size", "catch_weight_tolerance_bp")
REQUIRED_NEW = ("name", "category", "unit", "price_fen")
INTEGERS = frozenset({"price_fen", "shelf_life_days", "cost_fen", "pack_size", "catch_weight_tolerance_bp"})
SHEET_MAX_BYTES = 4 * 1024 * 1024
SHEET_ROWS_MAX = 20_000
CELL_MAX_CHARS = 200
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_DEFAULTS = {f.name: f.default for f in fields(Product)}


class SheetError(ValueError):
    """The file itself cannot be read as a sheet (not CSV text, not an XLSX workbook, no header, too big)."""


def rows_from_csv(raw: bytes) -> list[list[Any]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK unless told otherwise
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise SheetError("the CSV is neither UTF-8 nor GB18030 text")
    try:
        return [row for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise SheetError(f"the CSV cannot be read: {exc}") from None


def rows_from_xlsx(raw: bytes) -> list[list[Any]]:
    import zipfile

    from openpyxl import load_workbook
    try:
        book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise SheetError(f"not an XLSX workbook: {exc}") from None
    try:
        sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)  # read no further than the limit: a sheet may claim a million rows
        return [list(row) for _, row in zip(range(SHEET_ROWS_MAX + 2), rows, strict=False)]
    finally:
        book.close()


def _cell(column: str, value: Any) -> Any:
    """One cell as its field's wire value; ValueError says what is wrong."""
    if isinstance(value, str):
        value = value.strip()
        if len(value) > CELL_MAX_CHARS:
            raise ValueError(f"at most {CELL_MAX_CHARS} characters")
    if value is None or value == "":
        default = _DEFAULTS[column]
        return list(default) if isinstance(default, tuple) else default
    if column in INTEGERS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"a whole number is required, not {value!r}")
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a PLU or GTIN typed as a number
    value = str(value)
    if column == "channels":
        return [c.strip() for c in value.replace(",", ";").split(";") if c.strip()]
    if column == "member_prices":
        out = []
        for pair in value.split(";"):
            level, sep, fen = pair.strip().partition(":")
            if not sep or not fen.strip().isdigit():
                raise ValueError(f"{pair.strip()!r} is not level:fen (e.g. gold:900)")
            out.append({"level": level.strip(), "price_fen": int(fen)})
        return out
    return value


def _column_of(message: str) -> str | None:
    return next((c for c in sorted(COLUMNS, key=len, reverse=True) if c in message or c.replace("_", " ") in message),
                None)


def parse(rows: list[list[Any]], existing: Catalogue) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Catalogue | None]:
    """(preview rows {row, sku, action: created|changed|unchanged}, errors {row, column, detail}, the catalogue
    after the import (None when any row is bad))."""
    body = [(n, r) for n, r in enumerate(rows, start=1) if any(v not in (None, "") for v in r)]
    if not body:
        raise SheetError("the sheet is empty: a header row (sku, name, ...) and a row per product are expected")
    (_, header), data = body[0], body[1:]
    if len(data) > SHEET_ROWS_MAX:
        raise SheetError(f"{len(data)} products exceed {SHEET_ROWS_MAX} per import")
    names = [str(h).strip().lower() if h is not None else "" for h in header]
    errors: list[dict[str, Any]] = []
    unknown = [h for h in names if h and h not in COLUMNS]
    for h in unknown:
        errors.append({"row": 1, "column": h, "detail": f"unknown column (known: {', '.join(COLUMNS)})"})
    if "sku" not in names:
        errors.append({"row": 1, "column": "sku", "detail": "the sku column is required"})
    if len(set(n for n in names if n)) != len([n for n in names if n]):
        errors.append({"row": 1, "column": None, "detail": "a column is named twice"})
    if errors:
        return [], errors, None
    preview: list[dict[str, Any]] = []
    products = dict(existing.by_sku)
    seen: dict[str, int] = {}
    for n, row in data:
        values = {name: row[i] if i < len(row) else None for i, name in enumerate(names) if name}
        sku = str(values.get("sku") or "").strip()
        if not sku:
            errors.append({"row": n, "column": "sku", "detail": "a sku is required"})
            continue
        if sku in seen:
            errors.append({"row": n, "column": "sku", "detail": f"{sku} is also on row {seen[sku]}"})
            continue
        seen[sku] = n
        old = existing.by_sku.get(sku)
        wire: dict[str, Any] = to_wire(old) if old is not None else {}
        bad = False
        for column in names:
            if not column or column == "sku":
                continue
            try:
                wire[column] = _cell(column, values[column])
            except ValueError as exc:
                errors.append({"row": n, "column": column, "detail": str(exc)})
                bad = True
        missing = [c for c in REQUIRED_NEW if old is None and wire.get(c) in (None, "")]
        for c in missing:
            errors.append({"row": n, "column": c, "detail": f"required for a new product ({sku})"})
        if bad or missing:
            continue
        try:
            product = record_from_wire(Product, {**wire, "sku": sku}, f"product {sku!r}")
        except ProtocolError as exc:
            errors.append({"row": n, "column": _column_of(str(exc)), "detail": str(exc)})
            continue
        products[sku] = product
        preview.append({"row": n, "sku": sku, "name": product.name, "price_fen": product.price_fen,
                        "action": "created" if old is None else "unchanged" if old == product else "changed"})
    if errors:
        return preview, errors, None
    try:
        after = Catalogue(list(products.values()), existing.prices, existing.store_id)
    except ProtocolError as exc:  # a PLU or GTIN now used twice: name the row of the product the sheet brought
        at_row = next((int(p["row"]) for p in preview if p["sku"] in str(exc)), 1)
        return preview, [{"row": at_row, "column": _column_of(str(exc)), "detail": str(exc)}], None
    return preview, [], after


def _out(product: Product, column: str) -> Any:
    value = getattr(product, column)
    if column == "member_prices":
        return ";".join(f"{lp.level}:{lp.price_fen}" for lp in value)
    if column == "channels":
        return ";".join(value)
    return value


def to_csv(catalogue: Catalogue) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for p in sorted(catalogue.by_sku.values(), key=lambda p: p.sku):
        writer.writerow([sheet_safe(_out(p, c)) for c in COLUMNS])  # a name like "=HYPERLINK(...)" stays text
    return out.getvalue().encode("utf-8-sig")  # the BOM: Excel then shows the Chinese names right


def to_xlsx(catalogue: Catalogue) -> bytes:
    from openpyxl import Workbook
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "products"
    sheet.append(list(COLUMNS))
    for p in sorted(catalogue.by_sku.values(), key=lambda p: p.sku):
        sheet.append([sheet_safe(_out(p, c)) for c in COLUMNS])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text, never a formula (openpyxl makes any "=..." string one)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
