"""Migration 30 (issue 17 items 6 and 7): member profiles and segments, segment runs, campaigns to a segment with
the members each targeted, and every basket's promotion uses (cloud/messaging/promotion_uses.py). New tables and
indexes only: nothing existing changes."""
from __future__ import annotations

from cloud.messaging.promotion_uses import MIGRATION_SQL as PROMOTION_USES_SQL

SEGMENTS_SQL = """
    create table if not exists segment_runs (
        version     bigserial primary key,
        started_ms  bigint not null,
        computed_ms bigint,                      -- null: still running (or died: the next run goes on)
        members     int not null default 0,
        by_name     text not null                -- 'schedule' or the operator's username
    );
    create table if not exists member_profiles (
        member_id            text primary key,
        channels             jsonb not null,     -- ["till", "online"]: the channels the member used
        by_channel           jsonb not null,     -- {"till": visits, "online": visits}
        visits               int not null,
        spend_fen            bigint not null,
        avg_ticket_fen       bigint not null,
        favourite_categories jsonb not null,     -- by spend, largest first
        first_visit_ms       bigint,
        last_visit_ms        bigint,
        recency_days         int,
        frequency            int not null,       -- visits in the RFM window
        monetary_fen         bigint not null,    -- spend in the RFM window
        r int not null, f int not null, m int not null,
        computed_ms          bigint not null,
        version              bigint not null
    );
    create table if not exists member_segments (
        member_id   text primary key,
        segment     text not null,
        computed_ms bigint not null,
        version     bigint not null
    );
    create index if not exists member_segments_segment on member_segments (segment, member_id);
    create table if not exists campaigns (
        campaign_id     text primary key,
        definition_id   text not null,           -- the coupon definition it issues (the coupons part's)
        segment         text not null,
        segment_version bigint not null,         -- the segment run whose members it targeted
        issue_id        text not null unique,    -- the coupons part's issue id: one issue per campaign
        members         int not null,
        issue           jsonb,                   -- what the coupons part answered (null: not issued yet)
        created_ms      bigint not null,
        created_by      text not null
    );
    create table if not exists campaign_members (
        campaign_id text not null references campaigns (campaign_id),
        member_id   text not null,
        primary key (campaign_id, member_id)
    );
    -- a member's history, read per member by the recompute and the profile
    create index if not exists till_sales_member on till_sales (member_id, wall_ms) where member_id is not null;
    create index if not exists orders_member on orders (member_id, created_ms) where member_id is not null;
"""

MIGRATION_30 = (30, "member profiles and segments, campaigns to a segment, promotion uses per basket",
                SEGMENTS_SQL + PROMOTION_USES_SQL)
