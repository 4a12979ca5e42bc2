"""/openapi.json's part for HQ's catalogue and prices (issue 21.1, cloud/http/routes/prices.py): the operations
(`paths(_op)`, merged into `cloud.http.openapi`) and their answers (`ANSWERS`, `MEDIA`, merged into
`cloud.http.openapi_answers`)."""
from __future__ import annotations

from cloud.http.openapi_answers_base import ANY, BOOL, INT, STR, TIME, array, nullable, obj

NO_SESSION = "no operator session token, or it expired or was revoked"
ROLE = "the operator's role may not do this (writes: hq_admin)"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LEVEL_PRICES = {"description": "member-level prices: [{level, price_fen}] or {level: price_fen}",
                "anyOf": [array(obj(["level", "price_fen"], level=STR, price_fen=INT)),
                          {"type": "object", "additionalProperties": INT}]}
SCHEMAS: dict[str, dict] = {
    "StorePrice": {"type": "object", "required": ["price_fen"], "additionalProperties": False, "properties": {
        "price_fen": INT, "member_prices": LEVEL_PRICES, "change_id": STR}},
    "PriceChange": {"type": "object", "required": ["price_fen", "effective_at"], "additionalProperties": False,
                    "properties": {"price_fen": INT, "effective_at": TIME, "member_prices": LEVEL_PRICES,
                                   "change_id": {"type": "string", "description": "made by the caller: the same "
                                                 "change sent again answers 200 exists"},
                                   "store_id": {"type": "string", "description": "a store's own change (omitted: "
                                                                                 "the chain's price)"}}},
    "Product": {"type": "object", "required": ["name", "category", "unit", "price_fen"], "properties": {
        "name": STR, "category": STR, "unit": {"enum": ["kg", "piece"]}, "price_fen": INT,
        "member_prices": array(obj(["level", "price_fen"], level=STR, price_fen=INT)),
        "channels": array({"enum": ["offline", "online"]}), "plu": STR, "gtin": STR, "shelf_life_days": INT,
        "supplier": STR, "cost_fen": INT, "pack_size": INT, "catch_weight_tolerance_bp": INT}},
}


def paths(_op) -> dict:
    sku, store, change = ["sku"], ["sku", "store_id"], ["sku", "change_id"]
    bad = "invalid (the detail names the product, and the store or field)"
    sheet = _op("Import products from a sheet (CSV or XLSX; header row of columns sku, name, category, unit, "
                "price_fen, member_prices as level:fen;..., channels, plu, gtin, shelf_life_days, supplier, "
                "cost_fen, pack_size, catch_weight_tolerance_bp): added or changed by sku, none deleted; all or "
                "nothing. dry_run=true previews the rows and every error without applying", (
                    "200", "the preview, or the new catalogue version"),
                {"401": NO_SESSION, "403": ROLE, "413": "the sheet is over 4 MiB",
                 "415": "not text/csv nor an XLSX workbook",
                 "422": "a bad sheet: `errors` lists each bad cell as {row, column, detail}; nothing was applied"},
                operator=True, query=["dry_run"])
    sheet["requestBody"] = {"required": True, "content": {"text/csv": {"schema": {"type": "string"}},
                                                          XLSX: {"schema": {"type": "string",
                                                                            "contentEncoding": "binary"}}}}
    put = _op("Add or replace one product (hq_admin); sent to every store; audited", ("200", "changed"),
              {"401": NO_SESSION, "403": ROLE, "422": bad}, body="Product", operator=True, params=sku)
    schedule = _op("Schedule a price change (chain-wide, or one store's) that takes effect at effective_at; the till "
                   "and the mall charge the price in force at the sale's time", ("201", "scheduled"),
                   {"401": NO_SESSION, "403": ROLE, "404": "no such product or store",
                    "409": "this change_id with other values, or a change already at that moment", "422": bad},
                   body="PriceChange", operator=True, params=sku)
    for op, status, text in ((put, "201", "created"), (schedule, "200", "the same change_id sent again: exists")):
        op["responses"][status] = {"description": text, "content": {"application/json": {"schema": {}}}}
    return {
        "/products/{sku}": {"put": put},
        "/products/{sku}/prices": {"get": _op(
            "A product's chain price, its store prices and scheduled changes, and the price in force now at every "
            "store where it differs", ("200", "the price book of the product"),
            {"401": NO_SESSION, "403": ROLE, "404": "no such product"}, operator=True, params=sku)},
        "/products/{sku}/store-prices/{store_id}": {
            "put": _op("Set the store's own price from now on (hq_admin): its till, label scales and the mall for "
                       "that store charge it; audited", ("200", "the new version and the entry"),
                       {"401": NO_SESSION, "403": ROLE, "404": "no such product or store", "422": bad},
                       body="StorePrice", operator=True, params=store),
            "delete": _op("The store goes back to the chain price (its own and scheduled entries removed)",
                          ("200", "the new version"), {"401": NO_SESSION, "403": ROLE,
                                                       "404": "no such product or store, or no price of its own"},
                          operator=True, params=store)},
        "/products/{sku}/price-changes": {"post": schedule},
        "/products/{sku}/price-changes/{change_id}": {"delete": _op(
            "Cancel a scheduled change (or remove a price entry)", ("200", "the new version"),
            {"401": NO_SESSION, "403": ROLE, "404": "no such change"}, operator=True, params=change)},
        "/products/versions": {"get": _op(
            "Who changed the catalogue or its prices, when and what (before/after), newest first",
            ("200", "the versions"), {"401": NO_SESSION, "403": ROLE, "422": "a bad limit or before"},
            operator=True, query=["sku", "limit", "before"])},
        "/products/export": {"get": _op(
            "The catalogue as a sheet: format=csv (default) or xlsx", ("200", "the sheet"),
            {"401": NO_SESSION, "403": ROLE, "422": "an unknown format"}, operator=True, query=["format"])},
        "/products/import": {"post": sheet},
    }


PRODUCT = obj(["sku", "name", "unit", "price_fen"], sku=STR, name=STR, unit={"enum": ["kg", "piece"]}, price_fen=INT)
ENTRY = obj(["change_id", "sku", "price_fen", "store_id", "member_prices", "effective_ms", "effective_at"],
            change_id=STR, sku=STR, price_fen=INT, store_id=STR, effective_ms=INT, effective_at=nullable(TIME),
            member_prices=array(obj(["level", "price_fen"], level=STR, price_fen=INT)))
IN_FORCE = obj(["price_fen", "member_prices"], price_fen=INT,
               member_prices=array(obj(["level", "price_fen"], level=STR, price_fen=INT)))
VERSION = dict(version=INT, stores=INT, products=INT, rule_book_version=INT)  # cloud/services/world_admin.py change
PREVIEW_ROW = obj(["row", "sku", "action"], row=INT, sku=STR, name=STR, price_fen=INT,
                  action={"enum": ["created", "changed", "unchanged"]})
ANSWERS: dict[tuple[str, str], dict] = {  # cloud/services/prices.py and cloud/http/routes/prices.py
    ("/products/{sku}", "put"): obj(["version", "sku", "created", "product"], sku=STR, created=BOOL, product=PRODUCT,
                                    **VERSION),
    ("/products/{sku}/prices", "get"): obj(["sku", "product", "chain", "entries", "stores"], sku=STR,
                                           product=PRODUCT, chain=IN_FORCE, entries=array(ENTRY),
                                           stores={"type": "object", "additionalProperties": IN_FORCE}),
    ("/products/{sku}/store-prices/{store_id}", "put"): obj(["version", "entry"], entry=ENTRY, **VERSION),
    ("/products/{sku}/store-prices/{store_id}", "delete"): obj(["version", "removed"], removed=INT, **VERSION),
    ("/products/{sku}/price-changes", "post"): obj(["status", "entry"], status={"enum": ["ok", "exists"]},
                                                   entry=ENTRY, **VERSION),
    ("/products/{sku}/price-changes/{change_id}", "delete"): obj(["version"], **VERSION),
    ("/products/versions", "get"): obj(["versions", "next_before"], next_before=nullable(INT), versions=array(obj(
        ["audit_id", "at", "by", "action", "before", "after"], audit_id=INT, at=TIME, by=STR,
        action={"enum": ["catalogue.change", "prices.change"]}, before=ANY, after=ANY))),
    ("/products/import", "post"): obj(["dry_run", "rows"], dry_run=BOOL, valid=BOOL, rows=array(PREVIEW_ROW),
                                      errors=array(obj(["row", "column", "detail"], row=INT, column=nullable(STR),
                                                       detail=STR)), error_count=INT, **VERSION),
}
MEDIA: dict[tuple[str, str], tuple[str, dict]] = {
    ("/products/export", "get"): ("text/csv", {
        "type": "string", "description": f"the products, one a row under a header of the import's columns (UTF-8 "
                                         f"with a BOM); with format=xlsx the same as an XLSX workbook ({XLSX})"}),
}
