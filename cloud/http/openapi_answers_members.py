"""/openapi.json answer schemas of the members' and marketing endpoints: after-sales requests, group buys, a
member's erasure and export (PIPL), points offers and exchanges, surveys, coupon definitions and what returns did
to coupons, member profiles, segments, campaigns and the promotion report.

Each schema is written from the code that builds the body (named beside it) and checked against live answers in
tests/integration/test_openapi_live.py; `cloud.http.openapi_answers.annotate` puts them in the document.
"""
from __future__ import annotations

from cloud.http.openapi_answers_base import BOOL, INT, ORDER, STR, TIME, array, counts, nullable, obj

AFTER_SALES = obj(  # cloud/services/after_sales.py view: decided_* once decided
    ["request_id", "order_id", "store_id", "lines", "amount_fen", "reason", "with_return", "status", "created_at"],
    request_id=STR, order_id=STR, store_id=STR, amount_fen=INT, reason=STR, with_return=BOOL,
    status={"enum": ["requested", "approved", "refused"]}, created_at=TIME,
    lines=array(obj(["sku", "qty", "amount_fen"], sku=STR, qty=INT, amount_fen=INT, store=STR)),
    decided_by=nullable(STR), decided_at=nullable(TIME), decision_reason=STR)
GROUP_PUBLIC = obj(  # cloud/services/group_buys.py GroupBuys.view: the share page (members by masked phone only)
    ["group_id", "rule_id", "sku", "name", "group_price_fen", "size", "joined", "remaining", "status", "opened_at",
     "closes_at", "members"], group_id=STR, rule_id=STR, sku=STR, name=STR, unit=STR, group_price_fen=INT,
    list_price_fen=nullable(INT), size=INT, joined=INT, remaining=INT, status=STR, opened_at=TIME, closes_at=TIME,
    formed_at=nullable(TIME), members=array(obj(["name", "leader"], name=STR, leader=BOOL)))
GROUP_ORDER = obj(["group", "order"], group=GROUP_PUBLIC, order=ORDER,  # GroupBuys._take_place
                  price=obj(["basis", "unit_fen", "group_price_fen", "note"], basis=STR, unit_fen=INT,
                            group_price_fen=INT, note=STR))
GROUP_SUMMARY = dict(  # cloud/services/group_views.py GroupViews._summary (and _names)
    group_id=STR, rule_id=STR, sku=STR, name=STR, rule_name=STR, list_price_fen=nullable(INT), store_id=nullable(STR),
    status=STR, size=INT, joined=INT, paid=INT, needed=INT, group_price_fen=INT, opened_at=TIME, closes_at=TIME,
    closes_in_s=nullable(INT), formed_at=nullable(TIME), cancelled_at=nullable(TIME), outcome=STR)
SUMMARY_REQUIRED = ["group_id", "rule_id", "sku", "name", "status", "size", "joined", "paid", "needed",
                    "group_price_fen", "opened_at", "closes_at", "outcome"]
GROUP_DETAIL = obj(  # GroupViews.detail: the group's whole story for operators
    [*SUMMARY_REQUIRED, "window", "cancelled", "members", "refunds", "refunded_fen"], **GROUP_SUMMARY,
    window=obj(["opened_at", "closes_at", "minutes"], opened_at=TIME, closes_at=TIME, minutes=INT,
               closes_in_s=nullable(INT)),
    cancelled=nullable(obj(["by", "reason", "at"], by=nullable(STR), reason=nullable(STR), at=nullable(TIME))),
    ended_at=nullable(TIME),
    members=array(obj(["member", "leader", "order_id", "joined_at", "stores", "qty", "total_fen", "status", "paid",
                       "holds_a_place", "refunded_fen"], member=STR, leader=BOOL, order_id=STR, joined_at=TIME,
                      stores=array(STR), qty=INT, total_fen=INT, status=STR, status_text=STR, paid=BOOL,
                      holds_a_place=BOOL, refunded_fen=INT)),
    refunds=array(obj(["order_id", "movement_id", "amount_fen", "state"], order_id=STR, movement_id=STR,
                      amount_fen=INT, method=nullable(STR), state=STR, at=TIME)),
    refunded_fen=INT)
LEDGER = {"stored_value_fen": INT, "points": INT}
# cloud/messaging/bridge.py keeps a till sale's lines and payments as compact rows, and the export shows them so
TILL_LINE = {"type": "array", "description": "[sku, quantity amount, unit (piece | g), amount_fen]",
             "prefixItems": [STR, INT, {"enum": ["piece", "g"]}, INT], "minItems": 4, "maxItems": 4}
TILL_PAYMENT = {"type": "array", "description": "[method, amount_fen, reference]",
                "prefixItems": [STR, INT, STR], "minItems": 3, "maxItems": 3}
EXPORT = obj(  # cloud/services/members.py Members.export: everything held, the phone in clear
    ["member_id", "phone", "member_code", "created_at", "erased_at", "ledger", "orders", "till_sales", "sessions"],
    member_id=STR, phone=nullable(STR), phone_masked=nullable(STR), member_code=nullable(STR), created_at=TIME,
    erased_at=nullable(TIME), ledger=obj(["stored_value_fen", "points", "level"], level=STR, **LEDGER),
    orders=array(ORDER),
    till_sales=array(obj(["sale_id", "store_id", "lane", "total_fen", "lines", "payments", "offline", "at"],
                         sale_id=STR, store_id=STR, lane=STR, total_fen=INT, lines=array(TILL_LINE),
                         payments=array(TILL_PAYMENT), offline=BOOL, at=TIME)),
    sessions=obj(["total", "live"], total=INT, live=INT))
ERASED = obj(["member_id", "erased_at", "sessions_revoked", "stored_value_fen", "points"],  # Members.erase
             member_id=STR, erased_at=TIME, sessions_revoked=INT, **LEDGER)
COUPON_VALUE = obj(["amount_off_fen", "percent_off_bp", "min_spend_fen"], amount_off_fen=nullable(INT),
                   percent_off_bp=nullable(INT), min_spend_fen=nullable(INT))
OFFER = obj(  # cloud/services/points_exchange.py PointsExchange.offers
    ["offer_id", "definition_id", "points", "worth_fen", "title", "value", "channels", "stores"], offer_id=STR,
    definition_id=STR, points=INT, worth_fen=INT, title=STR, channels=array(STR), stores=array(STR),
    value=COUPON_VALUE, valid_until=nullable(TIME), valid_days=nullable(INT), left=INT)
EXCHANGE = obj(["exchange_id", "offer_id", "points", "definition_id", "state", "created_at"],  # exchange_json
               exchange_id=STR, offer_id=STR, points=INT, definition_id=STR, state=STR, created_at=TIME,
               coupon=obj([], code=STR), code=STR, detail=STR)
SURVEY = obj(["sale_id", "store_id", "points_granted", "state", "answered_at"],  # cloud/services/surveys.py answer
             sale_id=STR, store_id=STR, points_granted=INT, state=STR, answered_at=TIME)
COUPON_DEFINITION = obj(  # cloud/services/coupons.py Coupons._definition_json (protocol/coupons.py Definition)
    ["definition_id", "rule_id", "name", "channels", "stores", "issued_count", "by_status", "created_at"],
    definition_id=STR, rule_id=STR, name=STR, channels=array(STR), stores=array(STR), valid_from_ms=INT,
    valid_until_ms=INT, valid_days=INT, per_member_limit=INT, total_limit=INT, on_registration=BOOL,
    trigger=nullable(obj(["kind", "min_fen"], kind=STR, min_fen=INT, channel_issued=STR)), points_price=INT,
    issued_count=INT, by_status=counts(), created_at=TIME, created_by=STR)
WALLET = obj(["member_id", "coupons"], member_id=STR, coupons=array(obj(  # cloud/services/coupons.py Coupons.wallet
    ["code", "name", "definition_id", "value", "status", "channels", "stores", "valid_from", "valid_until", "why"],
    code=STR, name=STR, definition_id=STR, value=nullable(COUPON_VALUE), status=STR, channels=array(STR),
    stores=array(STR), valid_from=nullable(TIME), valid_until=nullable(TIME), why=STR, redeemed_by=nullable(STR))))
RETURN_EFFECTS = obj(["effects"], effects=array(obj(  # cloud/messaging/return_promotions.py effects
    ["code", "effect", "detail", "sale_id", "return_id", "store_id", "at_ms"], code=STR, effect=STR, detail=STR,
    sale_id=STR, return_id=STR, store_id=STR, at_ms=INT)))
PROFILE = obj(  # cloud/services/segments.py Segments.profile + profile_json
    ["member_id", "phone", "joined", "channels", "visits_by_channel", "visits", "spend_fen", "avg_ticket_fen", "rfm",
     "segment_now", "segment"], member_id=STR, phone=nullable(STR), joined=TIME, channels=array(STR),
    visits_by_channel=counts(), visits=INT, spend_fen=INT, avg_ticket_fen=INT, favourite_categories=array(STR),
    first_visit=nullable(TIME), last_visit=nullable(TIME),
    rfm=obj(["recency_days", "frequency", "monetary_fen", "r", "f", "m"], recency_days=nullable(INT), frequency=INT,
            monetary_fen=INT, r=INT, f=INT, m=INT),
    segment_now=STR, segment=nullable(obj(["segment", "version", "computed_at"], segment=STR, version=INT,
                                          computed_at=TIME)))
SEGMENTS = obj(  # Segments.overview; with ?segment= also its members (masked phone) and the next page's start
    ["version", "computed_at", "segments"], version=nullable(INT), computed_at=nullable(TIME),
    segments=array(obj(["segment", "name", "members"], segment=STR, name=STR, members=INT)), segment=STR,
    members=array(obj(["member_id", "phone", "rfm"], member_id=STR, phone=nullable(STR), visits=nullable(INT),
                      spend_fen=nullable(INT), avg_ticket_fen=nullable(INT), last_visit=nullable(TIME),
                      rfm=array(nullable(INT)))),
    next_after=nullable(STR))
RECOMPUTED = obj(["version", "members", "computed_at", "segments"], version=INT, members=INT,  # Segments._run
                 computed_at=TIME, segments=counts())
CAMPAIGN = obj(  # cloud/services/segments.py campaign_json
    ["campaign_id", "definition_id", "segment", "segment_version", "issue_id", "members", "issue", "created_at"],
    campaign_id=STR, definition_id=STR, segment=STR, segment_version=INT, issue_id=STR, members=INT,
    issue=nullable({"type": "object"}), created_at=TIME, created_by=STR)
CHANNEL_COUNTS = obj(["till", "online"], till=INT, online=INT)
PROMOTIONS = obj(  # cloud/services/promotion_report.py PromotionReport.report
    ["from", "to", "store", "channel", "rows", "rules", "baskets", "coupons", "campaigns"], store=nullable(STR),
    channel=nullable(STR),
    rows=array(obj(["rule_id", "name", "channel", "store_id", "uses", "discount_fen", "baskets_with",
                    "sales_with_fen", "avg_basket_with_fen", "baskets_without", "sales_without_fen",
                    "avg_basket_without_fen"], rule_id=STR, name=STR, channel=STR, store_id=STR, uses=INT,
                   discount_fen=INT, baskets_with=INT, sales_with_fen=INT, avg_basket_with_fen=INT,
                   baskets_without=INT, sales_without_fen=INT, avg_basket_without_fen=INT)),
    rules=array(obj(["rule_id", "name", "uses", "discount_fen", "uses_by_channel"], rule_id=STR, name=STR, uses=INT,
                    discount_fen=INT, uses_by_channel=counts())),
    baskets=array(obj(["channel", "store_id", "baskets", "sales_fen"], channel=STR, store_id=STR, baskets=INT,
                      sales_fen=INT)),
    coupons=obj(["available"], available=BOOL, note=STR,  # without the coupons table: available false and a note
                by_definition=array(obj(["definition_id", "issued", "redeemed", "redeemed_by_channel"],
                                        definition_id=STR, issued=INT, redeemed=INT,
                                        redeemed_by_channel=CHANNEL_COUNTS))),
    campaigns=array(obj(["campaign_id", "definition_id", "segment", "members", "baskets_since", "sales_since_fen"],
                        campaign_id=STR, definition_id=STR, segment=STR, members=INT, baskets_since=INT,
                        sales_since_fen=INT, coupons_issued=INT, coupons_redeemed=INT,
                        coupons_redeemed_by_channel=CHANNEL_COUNTS)),
    **{"from": STR, "to": STR})

ANSWERS: dict[tuple[str, str], dict] = {
    ("/orders/{order_id}/after-sales", "post"): AFTER_SALES,
    ("/orders/{order_id}/after-sales", "get"): obj(["order_id", "requests"], order_id=STR,  # routes/after_sales.py
                                                   requests=array(AFTER_SALES)),
    ("/members/{member_id}/coupons", "get"): WALLET,
    ("/operator/after-sales/{request_id}/approve", "post"): AFTER_SALES,
    ("/operator/after-sales/{request_id}/refuse", "post"): AFTER_SALES,
    ("/group-buys", "post"): GROUP_ORDER,
    ("/group-buys/{group_id}/join", "post"): GROUP_ORDER,
    ("/group-buys/{group_id}", "get"): GROUP_PUBLIC,
    ("/operator/group-buys", "get"): obj(["groups", "next_before"],  # GroupViews.listed
                                         groups=array(obj(SUMMARY_REQUIRED, **GROUP_SUMMARY)),
                                         next_before=nullable(STR)),
    ("/operator/group-buys/{group_id}", "get"): GROUP_DETAIL,
    ("/operator/group-buys/{group_id}/cancel", "post"): GROUP_DETAIL,  # GroupBuys.cancel: the detail after it
    ("/members/{member_id}", "delete"): ERASED,
    ("/members/{member_id}/export", "get"): EXPORT,
    ("/points/offers", "get"): obj(["offers"], offers=array(OFFER)),
    ("/members/{member_id}/points/exchange", "post"): EXCHANGE,
    ("/members/{member_id}/points/exchanges", "get"): obj(["exchanges"], exchanges=array(EXCHANGE)),
    ("/surveys/{token}", "post"): SURVEY,
    ("/operator/coupon-definitions", "post"): COUPON_DEFINITION,
    ("/operator/coupon-definitions", "get"): obj(["definitions"], definitions=array(COUPON_DEFINITION)),
    ("/operator/coupons/returns", "get"): RETURN_EFFECTS,
    ("/operator/members/{member_id}/profile", "get"): PROFILE,
    ("/operator/segments", "get"): SEGMENTS,
    ("/operator/segments/recompute", "post"): RECOMPUTED,
    ("/operator/campaigns", "post"): CAMPAIGN,
    ("/operator/campaigns", "get"): obj(["campaigns"], campaigns=array(CAMPAIGN)),  # segments.py campaigns
    ("/operator/reports/promotions", "get"): PROMOTIONS,
}
# Success answers the code gives that the operation's entry did not list: (path, method) -> {status: description}
ALSO: dict[tuple[str, str], dict[str, str]] = {
    ("/operator/coupon-definitions", "post"): {"200": "the same body again: the definition as first made"},
    ("/orders/{order_id}/after-sales", "post"): {"200": "the same Idempotency-Key again: the request as first made"},
    ("/operator/stalls", "post"): {"200": "the same stall sent again: the stall as first made"},
    ("/bookings", "post"): {"200": "the same booking_id again: the booking as first made"},
}
MEDIA: dict[tuple[str, str], tuple[str, dict]] = {
    ("/surveys/{token}", "get"): ("text/html; charset=utf-8", {  # cloud/services/surveys.py Surveys.show
        "type": "string", "description": "the survey form of a till sale (from the receipt's QR code), or a page "
                                         "saying it was answered already"}),
}
