"""Migration 29 (issue 17.5): points paying part of online orders, points exchanged for coupons, survey answers."""
from __future__ import annotations

MIGRATION_29 = """
    create table if not exists points_payments (
        order_id    text primary key,             -- the order the points part pays
        member_id   text not null,
        points      bigint not null,
        value_fen   bigint not null,              -- what those points pay (protocol.points.points_value_fen)
        attempt     int not null default 1,       -- ledger ids pts:<order>#n / pts-back:<order>#n
        state       text not null,                -- redeeming | redeemed | returned | failed
        detail      text,
        created_ms  bigint not null,
        updated_ms  bigint not null
    );
    create index if not exists points_payments_open on points_payments (updated_ms)
        where state in ('redeeming', 'redeemed');
    create table if not exists points_exchanges (
        exchange_id   text primary key,           -- derived from the member and their Idempotency-Key
        member_id     text not null,
        offer_id      text not null,
        points        bigint not null,
        definition_id text not null,              -- the coupon definition the offer issues
        request_hash  bytea not null,
        state         text not null,              -- redeeming | issued | returned | refused
        coupon        jsonb,                      -- what the coupons part answered
        detail        text,
        created_ms    bigint not null,
        updated_ms    bigint not null
    );
    create index if not exists points_exchanges_member on points_exchanges (member_id, created_ms);
    create table if not exists survey_answers (
        sale_id     text primary key,             -- one survey per till sale, answered once
        store_id    text not null,
        member_id   text not null,
        answers     jsonb not null,
        points      bigint not null,
        state       text not null,                -- answered (points on their way) | granted
        answered_ms bigint not null,
        granted_ms  bigint
    );
    create index if not exists survey_answers_when on survey_answers (answered_ms);
    create table if not exists till_points (
        reference   text primary key,             -- a points hold id (ptshold:...), or claim:<event>:<n>
        store_id    text not null,
        member_id   text not null,
        sale_id     text,                         -- the sale that captured the hold / made the claim
        points      bigint not null,              -- held, or claimed by the store
        believed    bigint not null,              -- what was taken from the member (a claim: within the allowance)
        state       text not null,                -- holding | held | refused | captured | released | lapsed
                                                  -- | claiming | claimed
        detail      text,
        expires_ms  bigint,
        created_ms  bigint not null,
        updated_ms  bigint not null
    );
    create index if not exists till_points_live on till_points (expires_ms) where state in ('held', 'holding');
    create index if not exists till_points_claims on till_points (store_id, member_id, created_ms)
        where state in ('claiming', 'claimed');
"""
