"""/openapi.json's part for member profiles, segments, campaigns and the promotion-effect report
(cloud/http/routes/segments.py)."""
from __future__ import annotations

from cloud.http.openapi import NO_SESSION, ROLE, _also, _op

PATHS = {
    "/operator/members/{member_id}/profile": {"get": _op(
        "A member's profile, computed now from their till sales and paid online orders: channels used, visits, "
        "spend, average ticket, favourite categories by spend, first and last visit, RFM scores, the segment now "
        "and as of the last recompute; the phone masked only (hq_admin, viewer)",
        ("200", "{member_id, phone (masked), joined, channels, visits_by_channel, visits, spend_fen, avg_ticket_fen, "
                "favourite_categories, first_visit, last_visit, rfm: {recency_days, frequency, monetary_fen, r, f, "
                "m}, segment_now, segment: {segment, version, computed_at} | null}"),
        {"401": NO_SESSION, "403": ROLE, "404": "unknown or erased member"}, operator=True, params=["member_id"])},
    "/operator/segments": {"get": _op(
        "Members per RFM segment as of the last recompute; with segment=, a page of that segment's members "
        "(after=: the previous page's next_after; limit 1..200) (hq_admin, viewer)",
        ("200", "{version, computed_at, segments: [{segment, name, members}], segment?, members?: [{member_id, "
                "phone (masked), visits, spend_fen, avg_ticket_fen, last_visit, rfm}], next_after?}"),
        {"401": NO_SESSION, "403": ROLE, "422": "unknown segment, or limit out of range"}, operator=True,
        query=["segment", "after", "limit"])},
    "/operator/segments/recompute": {"post": _op(
        "Recompute every member's profile and segment now (also done on a schedule); audited (hq_admin)",
        ("200", "{version, members, computed_at, segments: {segment: members}}"),
        {"401": NO_SESSION, "403": ROLE, "409": "a recompute is running; ask again when it is done"},
        operator=True)},
    "/operator/campaigns": {
        "post": _also(_op(
            "Launch a campaign: coupons of a definition to every member of a segment as of the last recompute "
            "(the members are recorded; issued through the coupons part with the issue id campaign:<id>); audited "
            "(hq_admin). campaign_id (or Idempotency-Key) makes a retry answer the same campaign",
            ("201", "{campaign_id, definition_id, segment, segment_version, issue_id, members, issue, created_at, "
                    "created_by}"),
            {"401": NO_SESSION, "403": ROLE, "409": "segments never computed; campaign_id reused with another body",
             "422": "unknown segment, bad definition_id or campaign_id, unknown field"},
            body="Campaign", operator=True),
            "200", "the same campaign_id again: the campaign as first made (nothing issued twice)"),
        "get": _op("The latest campaigns (hq_admin, viewer)", ("200", "{campaigns: [...]}"),
                   {"401": NO_SESSION, "403": ROLE}, operator=True)},
    "/operator/reports/promotions": {"get": _op(
        "Promotion effect between two chain days: per rule, channel and store, uses, discount given, and baskets "
        "with the rule vs without (same period, stores, channel); per rule totals; baskets per channel and store; "
        "campaigns (members, their baskets since launch, coupons issued vs redeemed); coupons issued vs redeemed "
        "per definition when the coupons table exists. format=csv answers the per-rule rows as CSV, format=html a "
        "server-rendered page (token as ?token= allowed) (operators who see store figures; a store manager: their "
        "own store)",
        ("200", "{from, to, store, channel, rows: [{rule_id, name, channel, store_id, uses, discount_fen, "
                "baskets_with, sales_with_fen, avg_basket_with_fen, baskets_without, sales_without_fen, "
                "avg_basket_without_fen}], rules, baskets, campaigns, coupons: {available, ...}}"),
        {"401": NO_SESSION, "403": "another store's figures", "404": "unknown store",
         "422": "from/to not days, channel or format unknown"}, operator=True,
        query=["from", "to", "store", "channel", "format", "token"])},
}
SCHEMA = {"type": "object", "required": ["definition_id", "segment"], "additionalProperties": False,
          "properties": {"definition_id": {"type": "string"}, "segment": {"type": "string"},
                         "campaign_id": {"type": "string"}}}
