"""/openapi.json's part for points (issue 17.5): the exchange offers, a member's exchanges, the till survey.
Merged into `cloud.http.openapi` (PATHS, SCHEMAS) at its end."""
from __future__ import annotations

from cloud.http.openapi import STR, _obj, _op

SCHEMAS: dict[str, dict] = {
    "PointsExchange": _obj(["offer_id"], offer_id={"type": "string", "description": "a coupon definition id "
                                                    "from GET /points/offers (its points price is what is redeemed)"}),
    "SurveyAnswers": _obj(["satisfaction", "freshness"], satisfaction={"type": "integer", "minimum": 1, "maximum": 5},
                          freshness={"type": "integer", "minimum": 1, "maximum": 5}, comment=STR),
}
PATHS: dict[str, dict] = {
    "/points/offers": {"get": _op(
        "What points buy: the coupon definitions with a points price, valid and issuable now (with a customer's "
        "Authorization: also below that member's per-member limit)", (
            "200", "{offers: [{offer_id (= definition_id), definition_id, points, worth_fen, title, value, channels, "
                   "stores, valid_until, valid_days, left?}]}"), {"401": "an Authorization that is not a valid session"})},
    "/members/{member_id}/points/exchange": {"post": _op(
        "Exchange the signed-in member's points for a coupon (idempotent by Idempotency-Key: the points are redeemed "
        "once per exchange, and given back if the coupon cannot be issued)",
        ("201", "{exchange_id, offer_id, points, definition_id, state: issued, code, coupon}"),
        {"404": "another member's account", "409": "insufficient points; the offer ended, is not valid yet or a "
                                                   "limit is reached (no points taken); or the key used for another "
                                                   "exchange",
         "422": "not an offer (no such definition, or it has no points price)",
         "503": "the coupon could not be issued; the points were given back"},
        body="PointsExchange", key=True, params=["member_id"], member=True)},
    "/members/{member_id}/points/exchanges": {"get": _op(
        "The signed-in member's exchanges, newest first", ("200", "{exchanges: [...]}"),
        {"404": "another member's account"}, params=["member_id"], member=True)},
    "/surveys/{token}": {
        "get": _op("The satisfaction survey of a till sale (the receipt's link; HTML, Chinese first)",
                   ("200", "text/html: the form, or that it was answered"),
                   {"403": "a forged or altered token", "404": "the sale has not reached the cloud yet, or has no "
                                                           "member"}, params=["token"]),
        "post": _op("Answer it (JSON or the page's form): points granted once", (
            "201", "{sale_id, store_id, points_granted, state, answered_at}"),
            {"403": "a forged or altered token", "404": "the sale is not known (yet) or has no member",
             "409": "answered already", "422": "an answer out of range"}, body="SurveyAnswers", params=["token"])},
}
