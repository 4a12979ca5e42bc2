"""/openapi.json's entries for the market stalls' operator endpoints (cloud/http/routes/stalls.py): the paths (merged
by `cloud/http/openapi.py`, which passes its own helper so the two stay one style) and their answer schemas (merged
into `cloud/http/openapi_answers.ANSWERS`, written from the code that builds each body: cloud/services/stalls.py)."""
from __future__ import annotations

from collections.abc import Callable

from cloud.http.openapi_answers import INT, STR, TIME, array, obj

NO_SESSION = "no operator session token, or it expired or was revoked"
STALL = obj(["stall_id", "store_id", "name", "owner", "commission_bp", "monthly_fee_fen", "created_at"],
            stall_id=STR, store_id=STR, name=STR, owner=STR, commission_bp=INT, monthly_fee_fen=INT, created_at=TIME)
OTHER = "a stall owner asking about another stall, or a role without stall access (the detail names it)"
PERIOD = "from or to is not a day YYYY-MM-DD, to is before from, or the period is too long (the detail names it)"
SETTLEMENT = obj(["stall_id", "store_id", "name", "from", "to", "till_count", "till_sales_fen", "online_sales_fen",
                  "sales_fen", "commission_bp", "commission_fen", "months_charged", "monthly_fee_fen",
                  "fixed_fees_fen", "payout_fen"],
                 stall_id=STR, store_id=STR, name=STR, **{"from": STR, "to": STR}, till_count=INT, till_sales_fen=INT,
                 online_sales_fen=INT, sales_fen=INT, commission_bp=INT, commission_fen=INT, months_charged=INT,
                 monthly_fee_fen=INT, fixed_fees_fen=INT, payout_fen=INT)
SALE = obj(["sale_id", "lane", "total_fen", "returned_fen", "at", "lines"], sale_id=STR, lane=STR, total_fen=INT,
           returned_fen=INT, at=TIME, lines=array(obj(["sku", "amount", "unit", "amount_fen"], sku=STR, amount=INT,
                                                      unit=STR, amount_fen=INT)))
ONLINE = obj(["order_id", "sku", "amount_fen", "at"], order_id=STR, sku=STR, amount_fen=INT, at=TIME)

ANSWERS: dict[tuple[str, str], dict] = {
    ("/operator/stalls", "get"): obj(["stalls"], stalls=array(STALL)),
    ("/operator/stalls", "post"): STALL,
    ("/operator/stalls/{stall_id}", "get"): STALL,
    ("/operator/stalls/{stall_id}/products", "get"): obj(["stall_id", "products"], stall_id=STR,
                                                         products=array({"type": "object"})),
    ("/operator/stalls/{stall_id}/products/{sku}", "put"): obj(["product", "version"], product={"type": "object"},
                                                               version=INT),
    ("/operator/stalls/{stall_id}/sales", "get"): obj(
        ["stall_id", "store_id", "from", "to", "till_sales", "till_count", "till_sales_fen", "online_lines",
         "online_sales_fen"], stall_id=STR, store_id=STR, **{"from": STR, "to": STR}, till_sales=array(SALE),
        till_count=INT, till_sales_fen=INT, online_lines=array(ONLINE), online_sales_fen=INT),
    ("/operator/stalls/{stall_id}/settlement", "get"): SETTLEMENT,
}


def stall_paths(op: Callable[..., dict]) -> dict:
    one = {"401": NO_SESSION, "403": OTHER, "404": "no such stall"}
    return {
        "/operator/stalls": {
            "get": op("The market stalls the operator may see (store_id: of one store); a stall owner: their own only",
                      ("200", "{stalls}"), {"401": NO_SESSION, "403": OTHER}, operator=True, query=["store_id"]),
            "post": op("Create a market stall in a store (hq_admin; audited) {stall_id, store_id, name, owner, "
                       "commission_bp, monthly_fee_fen}; the same stall sent again answers 200",
                       ("201", "the stall"), {"401": NO_SESSION, "403": "only an hq_admin creates stalls",
                                              "409": "the stall_id is another stall's",
                                              "422": "a field is wrong or the store unknown (the detail names it)"},
                       operator=True)},
        "/operator/stalls/{stall_id}": {"get": op("One stall", ("200", "the stall"), one, operator=True,
                                                  params=["stall_id"])},
        "/operator/stalls/{stall_id}/products": {"get": op(
            "The stall's products (catalogue entries whose stall is this one)", ("200", "{stall_id, products}"), one,
            operator=True, params=["stall_id"])},
        "/operator/stalls/{stall_id}/products/{sku}": {"put": op(
            "Change a stall product's name and/or list price {name?, price_fen?} (hq_admin or the stall's owner; "
            "audited; a new catalogue version reaches every store and the mall)", ("200", "{product, version}"),
            {"401": NO_SESSION, "403": OTHER + "; or the product is not this stall's",
             "404": "no such stall or product", "422": "name or price_fen is wrong (the detail names it)"},
            operator=True, params=["stall_id", "sku"])},
        "/operator/stalls/{stall_id}/sales": {"get": op(
            "The stall's till sales (newest first, at most 500 listed; totals net of returns) and its products' lines "
            "in its store's handed-over online orders, for chain days from..to (both included)",
            ("200", "{stall_id, store_id, from, to, till_sales, till_count, till_sales_fen, online_lines, "
                    "online_sales_fen}"), {**one, "422": PERIOD}, operator=True, params=["stall_id"],
            query=["from", "to"])},
        "/operator/stalls/{stall_id}/settlement": {"get": op(
            "The stall's settlement for chain days from..to: sales (till + online), commission (basis points, "
            "rounded half up), fixed fees (each calendar month starting in the period) and payout; format=csv (or "
            "Accept: text/csv) answers the same figures as CSV", ("200", "the settlement"),
            {**one, "422": PERIOD + "; or format is not json or csv"}, operator=True, params=["stall_id"],
            query=["from", "to", "format"])},
    }
