"""/openapi.json: every endpoint of the cloud API, its body and its answers."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from cloud.http import openapi_prices
from cloud.http.openapi_bookings import SCHEMAS as BOOKING_SCHEMAS
from cloud.http.openapi_bookings import booking_paths
from cloud.http.openapi_coupons import coupon_paths
from cloud.http.openapi_groups import group_paths
from cloud.http.openapi_mall import CART_REQUEST, mall_paths
from cloud.http.openapi_mall2 import mall2_paths
from cloud.http.openapi_office import office_paths
from cloud.http.openapi_stalls import stall_paths
from cloud.http.openapi_stock_policy import paths as stock_policy_paths
from cloud.http.routes.hq_reports import openapi_paths as hq_report_paths
from cloud.http.routes.return_promotions import paths as return_promotion_paths
from cloud.http.routes.rule_book_drafts import paths as rule_book_draft_paths

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _answer(description: str, schema: dict | None = None) -> dict:
    media = "application/json" if schema is None or schema is not PROBLEM else "application/problem+json"
    return {"description": description, "content": {media: {"schema": schema or {"type": "object"}}}}


def _op(summary: str, ok: tuple[str, str], errors: dict[str, str], body: str | None = None, key: bool = False,
        operator: bool = False, params: Sequence[str] = (), query: Sequence[str] = (), member: bool = False,
        flash_pass: bool = False) -> dict:
    op: dict[str, Any] = {"summary": summary, "responses": {ok[0]: _answer(ok[1])}}
    for status, text in errors.items():
        op["responses"][status] = _answer(text, PROBLEM)
    op["responses"]["503"] = _answer("actors or database unavailable; Retry-After given", PROBLEM)
    if body:
        schema = {"$ref": f"#/components/schemas/{body}"}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    parameters = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    parameters += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query]
    if key:
        parameters.append({"name": "Idempotency-Key", "in": "header", "required": True, "schema": {"type": "string"}})
    if parameters:
        op["parameters"] = parameters
    if operator:
        op["security"] = [{"operator": []}]
    if member:  # a signed-in member's session token; another member's resources answer 404
        op["security"] = [{"member": []}]
        op["responses"].setdefault("401", _answer("not signed in, or the session expired or was revoked", PROBLEM))
    if flash_pass:
        op["security"] = [{"flashPass": []}]
        op["responses"].setdefault("401", _answer("no flash pass, or it expired or was altered", PROBLEM))
    return op


def _also(op: dict, status: str, description: str) -> dict:
    """`op` with another success answer (a 202 beside a 200)."""
    op["responses"][status] = _answer(description)
    return op


def _obj(required: list[str], **props) -> dict:
    return {"type": "object", "required": required, "additionalProperties": False, "properties": props}


STR, INT, NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}
NO_SESSION = "no operator session token, or it expired or was revoked"
ROLE = "the operator's role may not do this"
SCHEMAS = {
    "Problem": _obj(["type", "title", "status", "detail"], type=STR, title=STR, status=INT, detail=STR),
    "Order": _obj(["fulfilment", "items", "slot_start"], fulfilment={"enum": ["pickup", "delivery"]},
                  items={"type": "array", "items": _obj(["sku", "qty"], sku=STR, qty=INT)},
                  slot_start={"type": "string", "format": "date-time"}, store_id=STR,
                  location=_obj(["lat", "lon"], lat=NUM, lon=NUM), coupons={"type": "array", "items": STR},
                  allow_substitutions={"type": "boolean", "default": False},
                  presale={"type": "boolean", "default": False}),
    "Pay": _obj(["method"], method={"enum": ["stored_value", "wallet_sim"]},
                points={"type": "integer", "minimum": 0, "description": "points paying part (at most 50%)"}),
    "Cancel": _obj([], reason=STR),
    "AfterSales": _obj(["lines", "reason"], lines={"type": "array", "items": _obj(["sku", "qty"], sku=STR, qty=INT)},
                       reason=STR, with_return={"type": "boolean"}),
    "Decision": _obj([], reason=STR),
    "TopUp": _obj(["amount_fen"], amount_fen=INT, method={"enum": ["cash", "wallet_sim"]}),
    "FlashSale": _obj(["sku", "quantity", "price_fen", "starts_at", "ends_at"], sku=STR, quantity=INT, price_fen=INT,
                      starts_at={"type": "string", "format": "date-time"}, ends_at={"type": "string", "format": "date-time"},
                      per_member_limit=INT, rate_per_s=INT,
                      # whose online escrow holds the units; without it, a sale-only sale (orders not sent to stores)
                      stores={"oneOf": [{"type": "array", "items": STR, "minItems": 1}, {"enum": ["chain"]}]}),
    "FlashOrder": _obj([], qty=INT),
    "GroupOrder": _obj(["qty", "slot_start"], qty=INT, slot_start={"type": "string", "format": "date-time"},
                       fulfilment={"enum": ["pickup", "delivery"]}, store_id=STR,
                       location=_obj(["lat", "lon"], lat=NUM, lon=NUM), allow_substitutions={"type": "boolean"},
                       rule_id=STR),  # rule_id: opening a group only
    "Products": _obj(["products"], products={"type": "array", "items": {"type": "object"}}, reason=STR),
    "RuleBook": _obj(["version", "rules"], version=INT, rules={"type": "array", "items": {"type": "object"}},
                     utc_offset_minutes=INT),
    "CodeRequest": _obj(["phone"], phone=STR),
    "SignIn": _obj(["phone", "code"], phone=STR, code=STR),
    "OperatorSignIn": _obj(["username", "password"], username=STR, password=STR),
    "OperatorAccount": _obj(["username", "password", "role"], username=STR, password=STR,
                            role={"enum": ["hq_admin", "store_manager", "viewer"]}, store_id=STR),
    "Store": _obj(["name", "lat", "lon"], name=STR, lat=NUM, lon=NUM, pickup_radius_m=INT, delivery_radius_m=INT,
                  opens=STR, closes=STR, slot_minutes=INT, slot_capacity=INT, open={"type": "boolean"}),
    "Allocation": _obj(["ratio_bp"], sku=STR, category=STR, ratio_bp=INT),
    "ReorderPoints": _obj(["items"], items={"type": "array", "items": _obj(["sku"], sku=STR,
                                                                            reorder_point=INT, target=INT)}),
    "Transfer": _obj(["from_store", "to_store", "lines"], from_store=STR, to_store=STR, reason=STR,
                     lines={"type": "array", "items": _obj(["sku", "qty"], sku=STR, qty=INT)}),
}

PATHS = {
    "/health": {"get": _op("Liveness of the database, actors and NATS", ("200", "all ok"), {})},
    "/audit": {"get": _op("Invariant audit of every stock pool, member ledger and flash sale (any operator)",
                          ("200", "violations (empty when all hold)"), {"401": NO_SESSION}, operator=True)},
    "/console": {"get": _op("The operator console: a live page (it signs the operator in; the page holds no data)",
                            ("200", "text/html"), {})},
    "/console/stream": {"get": _op("The console's live snapshots as server-sent events, about one a second (any "
                                   "operator; the session token as Bearer header or ?token=, since EventSource sends "
                                   "no headers)", ("200", "text/event-stream of `snapshot` events"),
                                   {"401": NO_SESSION}, operator=True, query=["token"])},
    "/console/snapshot": {"get": _op("One console snapshot: actors, stores, business figures, alerts (any operator)",
                                     ("200", "the snapshot"), {"401": NO_SESSION}, operator=True, query=["token"])},
    "/operator/sessions": {
        "post": _op("Operator sign-in with username and password (the same answer for an unknown username and a "
                    "wrong password; 5 wrong passwords lock the username for 15 minutes)",
                    ("201", "a session token (shown once, 12 hours), the username, role, store and expiry"),
                    {"401": "wrong username or password", "422": "invalid body",
                     "429": "locked after too many wrong passwords (Retry-After)"}, body="OperatorSignIn"),
        "delete": _op("Operator sign-out: the session token stops working", ("204", "signed out"),
                      {"401": "no session token"}, operator=True)},
    "/operator/me": {"get": _op("The signed-in operator: username, role, store", ("200", "the operator"),
                                {"401": NO_SESSION}, operator=True)},
    "/operators": {
        "get": _op("Operator accounts (hq_admin)", ("200", "the accounts, without their password hashes"),
                   {"401": NO_SESSION, "403": ROLE}, operator=True),
        "post": _op("Create an operator account (hq_admin): hq_admin, store_manager (with store_id) or viewer",
                    ("201", "the account"), {"401": NO_SESSION, "403": ROLE, "409": "the username is taken",
                                             "422": "invalid username, role, store or password (10+ characters)"},
                    body="OperatorAccount", operator=True)},
    "/operator/audit": {"get": _op("The operator audit log, newest first: who changed what, before and after "
                                   "(hq_admin); ?limit=N (up to 200) and ?before=<audit_id> for the next page",
                                   ("200", "entries and next_before"), {"401": NO_SESSION, "403": ROLE,
                                                                        "422": "limit or before not an integer"},
                                   operator=True, query=["limit", "before"])},
    "/metrics": {"get": _op("Prometheus metrics", ("200", "text exposition format"), {})},
    "/openapi.json": {"get": _op("This document", ("200", "OpenAPI 3.1"), {})},
    "/products": {"get": _op("The catalogue", ("200", "products and the rule book version"), {}),
                  "put": _op("Replace the catalogue (hq_admin); sent to every store; audited",
                             ("200", "the new world version"),
                             {"401": NO_SESSION, "403": ROLE, "422": "invalid catalogue (names the product)"},
                             body="Products", operator=True)},
    "/rule-book": {"put": _op("Replace the promotion book (hq_admin); sent to every store; audited",
                              ("200", "the new world version"),
                              {"401": NO_SESSION, "403": ROLE, "422": "invalid book (names the rule)"},
                              body="RuleBook", operator=True),
                   "get": _op("The promotion book in force (any operator), as PUT /rule-book takes it",
                              ("200", "version and rules"), {"401": NO_SESSION}, operator=True)},
    "/promotion-budgets": {"get": _op("Budget-capped and per-member-limited rules: cap, used, left, stores' shares "
                                      "(any operator)", ("200", "budgets"), {"401": NO_SESSION}, operator=True)},
    "/promotion-budgets/limit-conflicts": {"get": _op("Till sales past a member's per-member limit, newest first "
                                                      "(?store_id=; a store manager: own store)",
                                                      ("200", "conflicts"), {"401": NO_SESSION}, operator=True,
                                                      query=("store_id",))},
    "/stores/{store_id}": {"put": _op("Add or change a store (hq_admin, or the manager of this store); audited",
                                      ("200", "the new world version"),
                                      {"401": NO_SESSION, "403": ROLE + " or another store", "422": "invalid store"},
                                      body="Store", operator=True, params=["store_id"])},
    "/stores": {"get": _op("Stores with liveness, outbox depth and lag; with an operator session also till sales and "
                           "revenue (a store manager: of their own store)", ("200", "stores"), {})},
    "/stores/{store_id}/allocation": {
        "put": _op("Set the share of a store's on-hand of a SKU (or a category) offered online, in basis points "
                   "(hq_admin); sent to the store, which rebalances its escrow; audited",
                   ("200", "the allocation with its version"),
                   {"401": NO_SESSION, "403": ROLE, "404": "unknown store",
                    "422": "not exactly one of sku or category, unknown sku or category, ratio_bp not 0..10000"},
                   body="Allocation", operator=True, params=["store_id"]),
        "get": _op("A store's allocation ratios set by HQ, and the default (operators who see the store)",
                   ("200", "allocations"), {"401": NO_SESSION, "403": ROLE + " or another store",
                                            "404": "unknown store"}, operator=True, params=["store_id"])},
    "/stores/{store_id}/marketplaces/{marketplace}/share": {
        "put": _op("Set a marketplace's share of a store's online escrow of a SKU (or a category), in basis points "
                   "(hq_admin): the marketplace's orders reserve only from it, the mall from the rest; audited",
                   ("200", "the share with its version, and each SKU's share of the escrow now"),
                   {"401": NO_SESSION, "403": ROLE, "404": "unknown store",
                    "422": "not exactly one of sku or category, unknown sku or category, ratio_bp not 0..10000, a "
                           "bad marketplace id, or the store's marketplace shares of a SKU past 10000"},
                   body="Allocation", operator=True, params=["store_id", "marketplace"])},
    "/stores/{store_id}/marketplaces": {
        "get": _op("Each marketplace's share of a store's online escrow, as HQ set it (operators who see the store)",
                   ("200", "shares"), {"401": NO_SESSION, "403": ROLE + " or another store", "404": "unknown store"},
                   operator=True, params=["store_id"])},
    "/stores/{store_id}/reorder-points": {
        "put": _op("Set reorder points and targets of SKUs at a store (hq_admin); versioned, sent to the store, which "
                   "raises a restock alert when its projected stock falls below one; audited",
                   ("200", "the store's points (set and defaults)"),
                   {"401": NO_SESSION, "403": ROLE, "404": "unknown store",
                    "422": "unknown sku, a sku twice, a point or target not 0..100000000, target below the point"},
                   body="ReorderPoints", operator=True, params=["store_id"]),
        "get": _op("A store's reorder points: set by HQ, or defaults from its sales velocity over 7 days",
                   ("200", "points"), {"401": NO_SESSION, "403": ROLE + " or another store",
                                       "404": "unknown store"}, operator=True, params=["store_id"])},
    "/operator/restock": {"get": _op("Open restock alerts (?store=ID: of one store) and the suggested order per "
                                     "supplier, valued at cost, in whole supplier packs (pack_size, packs), less what "
                                     "other stores are sending (incoming_transfers)", ("200", "alerts and suggested orders"),
                                     {"401": NO_SESSION, "403": ROLE + " or another store", "404": "unknown store"},
                                     operator=True, query=["store"])},
    "/stores/{store_id}/stock": {"get": _op("A store's stock as the cloud sees it (on hand, escrow, reservations, lag); "
                                            "?sku=ID for one product", ("200", "positions"),
                                            {"404": "unknown store or product"}, params=["store_id"])},
    "/orders": {"post": _op("Place a pickup or delivery order: priced, routed, reserved", ("201", "the order"),
                            {"400": "missing Idempotency-Key",
                             "409": "out of stock, slot full, or the key reused with another body",
                             "422": "invalid body (names the field)"}, body="Order", key=True, member=True)},
    "/orders/{order_id}": {"get": _op("One of the member's orders, with its pickup code and its timeline (every "
                                      "step of its lifecycle: protocol/order_lifecycle.py)", ("200", "the order"),
                                      {"404": "unknown order, or another member's"}, params=["order_id"], member=True)},
    "/operator/orders/summary": {"get": _op(
        "Orders created since ?since= (RFC 3339; default the last 24 h): counts by final state, and every order that "
        "has not ended with what it waits for (a store manager sees their store's)",
        ("200", "{ended, open_count, open: [{order_id, status, waiting_for}], deliveries: {tries_by_status, "
                "failed_by_reason, redispatched}, till_returns: {count, fen, by_method}, after_sales: {status: "
                "{count, fen}}}"),
        {"401": "not signed in as an operator", "422": "since: not a time"}, operator=True, query=["since"])},
    "/operator/reports/markdowns": {"get": _op(
        "What markdowns (end-of-day clearance, near-expiry) gave away at the tills in [?from, ?to) (RFC 3339; default "
        "the last 24 h), per rule, store and chain day; ?store=ID for one store (a store manager: their own)",
        ("200", "{from_day, to_day, store_id, rows: [{rule_id, rule_name, store_id, day, lines, given_fen}], "
                "by_rule: {rule_id: fen}, by_store: {store_id: fen}, total_fen}"),
        {"401": NO_SESSION, "403": ROLE + " or another store",
         "422": "from/to: not a time, or not in order; store: not a store id"}, operator=True,
        query=["from", "to", "store"])},
    "/operator/reports/losses": {"get": _op(
        "What the stores wrote off (shrinkage) between two chain days, grouped by reason, category, store or day, "
        "valued at cost (the lot's received cost, else the product's) and at list price, with totals; format=csv "
        "answers CSV (operators who see store figures; a store manager: their own store)",
        ("200", "{from, to, store, group_by, rows: [{key, lines, pieces, grams, value_at_cost_fen, "
                "value_at_price_fen, unpriced_lines}], totals}"),
        {"401": "not signed in as an operator", "403": "another store's figures", "404": "unknown store",
         "422": "from/to not days, group_by or format unknown"}, operator=True,
        query=["from", "to", "store", "group_by", "format"])},
    "/orders/{order_id}/events": {"get": _op(
        "Follow the order live: its timeline as server-sent events (`step`), from after Last-Event-ID or ?after=; "
        "the session token may come as ?token= (EventSource sends no headers)",
        ("200", "text/event-stream of `step` events"),
        {"401": "not signed in", "404": "unknown order, or another member's", "422": "after: not a seq"},
        params=["order_id"], member=True)},
    "/orders/{order_id}/pay": {"post": _also(_op(
        "Pay with stored value (paid at once) or the simulated wallet provider (wallet_sim: a provider payment is "
        "created; the order is paid when the provider's signed notification, or a query, says it was paid; money "
        "that comes after the order expired or was cancelled is refunded through the provider)",
        ("200", "paid order"), {"404": "unknown order", "409": "expired/cancelled, payment refused, or another "
                                                              "payment of this order in progress",
                                "422": "invalid body"}, body="Pay", params=["order_id"], member=True),
        "202", "the order, still reserved, with `payment.pay`: the provider payment to pay (prepay_id, code_url)")},
    "/orders/{order_id}/cancel": {"post": _op("Cancel: stock and money go back", ("200", "cancelled order"),
                                              {"404": "unknown order", "409": "already fulfilled or expired"},
                                              body="Cancel", params=["order_id"], member=True)},
    "/orders/{order_id}/after-sales": {
        "post": _op("Ask for a refund of some lines of a handed-over order (within 7 days), with or without returning "
                    "them; the store decides", ("201", "the request (status requested)"),
                    {"404": "unknown order", "409": "not handed over, or the window closed",
                     "422": "invalid body, or lines past what was sold and not returned"},
                    body="AfterSales", params=["order_id"], member=True),
        "get": _op("The order's after-sales requests and their decisions", ("200", "{order_id, requests}"),
                   {"404": "unknown order"}, params=["order_id"], member=True)},
    "/operator/stocktakes": {"get": _op(
        "The stores' posted stocktakes, newest first (?store=; a store manager sees their own store's), each with its "
        "counted lines: counted, book at count, variance in units and valued at cost and at price",
        ("200", "{store, stocktakes: [{stocktake_id, store_id, scope, opened_by, approved_by, uncounted, "
                "variance_cost_fen, variance_price_fen, lines: [...]}]}"),
        {"401": "not signed in as an operator", "403": "another store's", "404": "unknown store",
         "422": "limit: 1..500"}, operator=True, query=["store", "limit"])},
    "/operator/transfers": {"post": _op(
        "Ask a store to send stock to another (hq_admin, or the receiving store's manager); HQ's ask is sent to the "
        "sending store, a manager's waits for its approval (.../decision); audited",
        ("201", "the transfer (requested, or awaiting_approval)"),
        {"401": NO_SESSION, "403": ROLE + " or another store", "422": "unknown store or product, bad quantity"},
        body="Transfer", operator=True)},
    "/operator/transfers/{transfer_id}/cancel": {"post": _op(
        "Cancel a transfer not dispatched yet (hq_admin, or the receiving store's manager); both stores told; audited",
        ("200", "the transfer (cancelled)"), {"401": NO_SESSION, "403": ROLE + " or another store",
                                              "404": "unknown transfer", "409": "dispatched already"},
        body="Decision", operator=True, params=["transfer_id"])},
    "/transfers": {"get": _op(
        "Transfers between stores (?status=awaiting_approval|requested|dispatched|received|cancelled|refused, "
        "?store= from or to; a store "
        "manager sees their own store's), with what is in transit per SKU and lot", ("200", "{transfers, in_transit}"),
        {"401": NO_SESSION, "403": ROLE + " or another store", "404": "unknown store", "422": "unknown status"},
        operator=True, query=["status", "store"])},
    "/operator/after-sales/{request_id}/approve": {"post": _op(
        "Approve an after-sales request (a manager of its store, or hq_admin): refunded through the order's payment; "
        "audited", ("200", "the request (approved)"), {"403": "another store's", "404": "unknown request",
                                                       "409": "refused already"},
        body="Decision", operator=True, params=["request_id"])},
    "/operator/after-sales/{request_id}/refuse": {"post": _op(
        "Refuse an after-sales request with a reason (a manager of its store, or hq_admin); audited",
        ("200", "the request (refused)"), {"403": "another store's", "404": "unknown request",
                                           "409": "approved already", "422": "no reason"},
        body="Decision", operator=True, params=["request_id"])},
    "/flash-sales": {"post": _op("Create a flash sale (hq_admin); audited", ("201", "the sale"),
                                 {"401": NO_SESSION, "403": ROLE, "409": "the stores' online escrow cannot cover the "
                                  "quantity (available per store named)", "422": "invalid body"}, body="FlashSale",
                                 operator=True)},
    "/flash-sales/{sale_id}": {"get": _op("A flash sale: quantity, sold, remaining", ("200", "status"),
                                          {"404": "unknown sale"}, params=["sale_id"])},
    "/flash-sales/{sale_id}/orders": {"post": _op("Buy in a flash sale", ("201", "accepted order"),
                                                  {"403": "over the member's limit", "404": "unknown sale",
                                                   "409": "sold out / not started / ended", "429": "throttled (Retry-After)",
                                                   "422": "invalid body"}, body="FlashOrder", key=True, params=["sale_id"],
                                                  flash_pass=True)},
    "/group-buys": {"post": _op("Open a group buy of a group_buy rule with your order of its item (at the group "
                                "price; paid like any order, sent to the store once the group forms)",
                                ("201", "{group, order}"), {"401": "not signed in", "409": "stock, slot, key reused",
                                 "422": "invalid body, or the rule is not a group buy in force online"},
                                body="GroupOrder", key=True, member=True)},
    "/group-buys/{group_id}": {"get": _op("A group buy's share page: item, prices, places joined and left, window; "
                                          "members by masked phone only", ("200", "the group"),
                                          {"404": "unknown group"}, params=["group_id"])},
    "/group-buys/{group_id}/join": {"post": _op(
        "Join a group buy with your order of its item (refused: formed or failed, window passed, already in it, full)",
        ("201", "{group, order}"), {"401": "not signed in", "404": "unknown group",
                                    "409": "group_buy problem (reason: closed, expired, already_member, full); stock",
                                    "422": "invalid body"}, body="GroupOrder", key=True, params=["group_id"],
        member=True)},
    "/auth/codes": {"post": _op("Send a one-time sign-in code to a phone by SMS (the same answer whether or not it is "
                                "a member)", ("202", "the masked phone and when the code expires"),
                                {"422": "not a phone number", "429": "asked again too soon, or the phone is locked",
                                 "503": "the SMS provider could not take it"}, body="CodeRequest")},
    "/auth/sessions": {"post": _op("Sign in with the code (registers the member if the phone is new)",
                                   ("201", "a session token (shown once), the member id, when it expires"),
                                   {"401": "wrong or expired code", "429": "locked after too many wrong codes"},
                                   body="SignIn"),
                       "delete": _op("Sign out: the session token stops working", ("204", "signed out"),
                                     {"401": "no session token"})},
    "/auth/passes": {"post": _op("A flash pass for the signed-in member: signed, valid 15 minutes, checked by the flash "
                                 "order endpoint without a database look-up (signing out does not recall it)",
                                 ("201", "the pass and when it expires"), {}, member=True)},
    "/me": {"get": _op("The signed-in member: balance, points, level", ("200", "member"),
                       {"401": "not signed in or the session is no longer valid"})},
    "/callbacks/sms": {"post": _op("Delivery receipts from the SMS provider (signed with the shared secret)",
                                   ("204", "recorded (once per message)"),
                                   {"401": "not signed by our provider, or too old", "422": "not a receipt"})},
    "/members/{member_id}": {"get": _op("The signed-in member's balance, points, level", ("200", "member"),
                                        {"404": "unknown member, or another member"}, params=["member_id"], member=True),
                             "delete": _op("Erase the member (operator; PIPL deletion): phone and member code gone, "
                                           "sessions ended, stores drop the member; the ledger keeps its amounts under "
                                           "the id; idempotent", ("200", "the tombstone: erased_at, sessions revoked, "
                                                                         "the balance left in the ledger"),
                                           {"401": "no token", "403": "wrong token", "404": "unknown member"},
                                           operator=True, params=["member_id"])},
    "/members/{member_id}/export": {"get": _op("Everything held about the member (operator; PIPL access): the phone, "
                                               "member code, ledger, orders, till sales, sessions",
                                               ("200", "the member's data"),
                                               {"401": "no token", "403": "wrong token", "404": "unknown member"},
                                               operator=True, params=["member_id"])},
    "/members/{member_id}/top-ups": {"post": _also(_op(
        "Top up stored value through the simulated wallet provider (wallet_sim): credited only when the provider's "
        "signed notification (or a query) says it was paid, once per provider transaction; cash only at a till",
        ("202", "the top-up (top_up_id, state requested) and `pay`: the provider payment to pay"),
        {"403": "cash: taken only at a till", "404": "unknown member, or another member",
         "409": "key reused for another top-up", "422": "invalid body"},
        body="TopUp", key=True, params=["member_id"], member=True),
        "200", "the same key again once credited: the top-up, state done")},
    "/members/{member_id}/top-ups/{top_up_id}": {"get": _op(
        "One of the member's top-ups: requested, done (credited, with the provider's transaction id) or failed",
        ("200", "the top-up and the member's balance"), {"404": "unknown top-up, or another member's"},
        params=["member_id", "top_up_id"], member=True)},
    "/callbacks/pay": {"post": _op(
        "Notifications from the wallet provider (WeChat Pay v3 shape: Pay-Timestamp, Pay-Nonce, Pay-Signature over "
        "the raw body, Ed25519 with the provider's key; TRANSACTION.SUCCESS, REFUND.SUCCESS, REFUND.ABNORMAL)",
        ("204", "handled: credited now, or before (a duplicate)"),
        {"400": "{code: FAIL}: unknown payment, wrong amount, currency or merchant, another transaction id; "
                "nothing credited",
         "401": "{code: FAIL}: not signed by the provider, or signed more than 5 minutes away"})},
    "/callbacks/rider": {"post": _op(
        "Status callbacks from the rider platform (Rider-App-Key, Rider-Timestamp, Rider-Nonce, Rider-Signature: "
        "HMAC-SHA256 with the app secret over the raw body; accepted, arrived_at_store, picked_up, delivering, "
        "delivered, failed, cancelled, with the rider and position)",
        ("200", "{code: 0}: handled: applied now, before (a duplicate), or late/out of order (acknowledged, the "
                "order does not move back)"),
        {"400": "unreadable callback (a field or status named)", "401": "not signed by the platform, or more than "
         "5 minutes away", "404": "no delivery of ours by that platform order id and try"})},
    "/callbacks/marketplace/{marketplace}": {"post": _op(
        "Webhooks from a marketplace (Mkt-App-Key, Mkt-Timestamp, Mkt-Nonce, Mkt-Signature: HMAC-SHA256 with the app "
        "secret over the raw body; order.created, order.cancelled, order.picked_up, order.delivered, "
        "refund.requested, refund.decided): its orders taken from its own share of the store's escrow",
        ("200", "{code: 0}: handled: applied now, before (a duplicate), or acknowledged without effect"),
        {"400": "unreadable webhook (a field named)", "401": "not signed by the marketplace, or more than 5 minutes "
         "away", "404": "no such marketplace is configured"},
        params=["marketplace"])},
}

from cloud.http import openapi_points  # noqa: E402 - it builds on the helpers above
from cloud.http.routes.shifts import openapi_paths as shift_paths  # noqa: E402 - likewise

PATHS.update(openapi_points.PATHS)
SCHEMAS.update(openapi_points.SCHEMAS)
PATHS.update(coupon_paths(_op))
PATHS.update(group_paths(_op))
PATHS.update(return_promotion_paths(_op))
PATHS.update(shift_paths(_op))  # cashiers' shift reports (cloud/http/routes/shifts.py)
PATHS.update(mall_paths(_op))  # the cart price and the mall's pages (cloud/http/openapi_mall.py)
SCHEMAS["CartRequest"] = CART_REQUEST
PATHS.update(mall2_paths(_op))
PATHS.update(office_paths(_op))  # the back office's pages (cloud/http/openapi_office.py)
PATHS.update(booking_paths(_op))  # local services booking (cloud/http/openapi_bookings.py)
SCHEMAS.update(BOOKING_SCHEMAS)
PATHS.update(stock_policy_paths(_op))  # transfer approval (cloud/http/openapi_stock_policy.py)
PATHS.update(stall_paths(_op))  # market stalls (cloud/http/openapi_stalls.py)
PATHS.update(rule_book_draft_paths(_op))  # the promotion book editor (cloud/http/routes/rule_book_drafts.py)
PATHS.update(hq_report_paths(_op))  # HQ's chain reports (cloud/http/routes/hq_reports.py)
PATHS.update(openapi_prices.paths(_op))  # HQ's catalogue and prices (cloud/http/routes/prices.py)
SCHEMAS.update(openapi_prices.SCHEMAS)


def openapi_document() -> dict:
    from cloud.http import openapi_segments  # builds on _op above
    from cloud.http.openapi_answers import ANSWERS, annotate  # operationIds, tags, answer schemas, media types
    from cloud.http.openapi_mall2 import ANSWERS as MALL2_ANSWERS
    ANSWERS.update(MALL2_ANSWERS)
    from cloud.http.openapi_stock_policy import ANSWERS as STOCK_ANSWERS
    ANSWERS.update(STOCK_ANSWERS)
    from cloud.http.openapi_stalls import ANSWERS as STALL_ANSWERS
    ANSWERS.update(STALL_ANSWERS)
    from cloud.logs import version
    paths, schemas = {**PATHS, **openapi_segments.PATHS}, {**SCHEMAS, "Campaign": openapi_segments.SCHEMA}
    return annotate(copy.deepcopy({"openapi": "3.1.0", "info": {"title": "FreshMesh cloud API", "version": version()},
                                   "paths": paths,
            "components": {"schemas": schemas,
                           "securitySchemes": {"operator": {"type": "http", "scheme": "bearer"},
                                               "member": {"type": "http", "scheme": "bearer",
                                                          "description": "session token from POST /auth/sessions"},
                                               "flashPass": {"type": "http", "scheme": "bearer",
                                                             "description": "flash pass from POST /auth/passes"}}}}))
