"""/openapi.json's entries for the coupon endpoints (cloud/http/routes/coupons.py), merged into the document by
`cloud/http/openapi.py` (which passes its own helpers, so the two stay one style)."""
from __future__ import annotations

from collections.abc import Callable

NO_SESSION = "no operator session token, or it expired or was revoked"
ROLE = "the operator's role may not do this"


def coupon_paths(op: Callable[..., dict]) -> dict:
    return {
        "/operator/coupon-definitions": {
            "post": op("Define a coupon (hq_admin; audited): {definition_id, rule_id (a coupon rule of the book), name, "
                       "channels, stores, valid_from_ms, valid_until_ms and/or valid_days, per_member_limit, "
                       "total_limit, on_registration, trigger {kind: till_spend, min_fen, channel_issued}, "
                       "points_price (> 0: sold in the points shop for that many points)}",
                       ("201", "the definition (200: the same body again)"),
                       {"401": NO_SESSION, "403": ROLE, "409": "the id is taken by another body",
                        "422": "a field is wrong (the detail names it)"}, operator=True),
            "get": op("Coupon definitions with issued counts by status", ("200", "{definitions}"),
                      {"401": NO_SESSION, "403": ROLE}, operator=True)},
        "/operator/coupon-definitions/{definition_id}/issue": {
            "post": op("Issue a coupon of the definition to members (hq_admin; audited): {batch_id, member_ids, why: "
                       "campaign | operator}; idempotent by batch_id; within per-member and total limits",
                       ("200", "{issued: [{member_id, code}], refused: [{member_id, reason}]}"),
                       {"401": NO_SESSION, "403": ROLE, "404": "unknown definition",
                        "409": "batch_id reused with other members", "422": "a field is wrong"},
                       operator=True, params=["definition_id"])},
        "/operator/coupons/conflicts": {
            "get": op("Coupons a store redeemed offline that were already redeemed elsewhere, or past the store's "
                      "daily fen allowance of coupons taken offline (the sale stood)",
                      ("200", "{conflicts: [{conflict_id, kind: used_elsewhere | over_allowance, code, store_id, "
                              "sale_id, first_redeemed_by, detail, at}]}"),
                      {"401": NO_SESSION, "403": ROLE}, operator=True)},
        "/operator/coupon-rules": {
            "get": op("The promotion book's coupon rules (what a definition may grant)", ("200", "{rules}"),
                      {"401": NO_SESSION, "403": ROLE}, operator=True)},
        "/members/{member_id}/coupons": {
            "get": op("The signed-in member's coupons: code, name, value, status (issued, reserved, redeemed, expired), "
                      "channels, valid until", ("200", "{member_id, coupons}"),
                      {"404": "unknown member, or another member"}, params=["member_id"], member=True)},
    }
