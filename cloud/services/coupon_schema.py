"""Migration 26: coupons as issued instruments (cloud/services/coupons.py is their one authority).

Every change of a coupon's status is one conditional UPDATE on its row (`... where code = $1 and status =
'issued'`), so two API processes, or a till and the mall, can never both win the same code.
"""
from __future__ import annotations

COUPONS_SQL = """
create table if not exists coupon_definitions (
    definition_id   text primary key,
    rule_id         text not null,                  -- a `coupon` rule of the promotion book
    body            jsonb not null,                 -- the definition as validated (protocol/coupons.py)
    on_registration boolean not null default false,
    trigger_min_fen bigint,                         -- a till_spend trigger: a coupon per sale of at least this
    issued_count    int not null default 0,         -- all ever issued: the total limit is checked against it
    created_ms      bigint not null,
    created_by      text not null
);
create table if not exists coupons (
    code            text primary key,               -- CP + 12 Crockford base32 + check (protocol/coupons.py)
    definition_id   text not null references coupon_definitions,
    member_id       text not null,
    status          text not null check (status in ('issued', 'reserved', 'redeemed')),
    source          text not null,                  -- batch:<id> | registration | sale:<event id> | ...
    why             text not null,                  -- campaign | registration | till_spend | operator
    issued_by       text not null,                  -- the operator, or the system's part that issued it
    issued_ms       bigint not null,
    valid_from_ms   bigint not null,
    valid_until_ms  bigint not null,
    reserved_for    text,                           -- an order id, or a till's cart (lane:<store>:<lane>:<cart>)
    reserved_until_ms bigint,                       -- a till's hold lapses then (an order's follows the order)
    redeemed_by     text,                           -- an order id, or store:<sale id>
    channel         text,                           -- where it was redeemed: online | offline
    store_id        text,
    redeemed_ms     bigint,
    releases        int not null default 0,         -- times it went back to the wallet (released, returned, lapsed)
    unique (definition_id, member_id, source)       -- one coupon per member per issuing act: retries issue once
);
create index if not exists coupons_member on coupons (member_id, status);
create index if not exists coupons_reserved on coupons (reserved_for) where status = 'reserved';
create table if not exists coupon_batches (
    definition_id   text not null,
    batch_id        text not null,                  -- made by the caller: a retry answers the first answer
    request_hash    bytea not null,
    answer          jsonb not null,
    created_ms      bigint not null,
    primary key (definition_id, batch_id)
);
create table if not exists coupon_conflicts (
    conflict_id     bigserial primary key,
    event_id        text not null unique,           -- the store's event that redeemed it a second time
    code            text not null,
    store_id        text not null,
    sale_id         text not null,
    first_redeemed_by text,                         -- who had redeemed it already
    detail          text not null,
    wall_ms         bigint not null,
    recorded_ms     bigint not null
);
"""
MIGRATION_26 = (26, "coupons: definitions, issued codes in members' wallets, batches, cross-channel conflicts",
                COUPONS_SQL)

# Migration 31: what each till redemption gave (the store's claim, judged by protocol/coupon_claims.py), so the cloud
# holds a store to its daily fen allowance of coupons taken without its hold as well as to the count; and what kind
# of report a conflict is (a code used twice, or a store past its allowance).
COUPON_SAVINGS_SQL = """
alter table coupons add column if not exists saving_fen bigint check (saving_fen >= 0);  -- a till's redemption
alter table coupon_conflicts add column if not exists kind text not null default 'used_elsewhere'
    check (kind in ('used_elsewhere', 'over_allowance'));
create index if not exists coupons_taken_offline on coupons (store_id, redeemed_ms)
    where status = 'redeemed' and channel = 'offline' and reserved_for is null;
"""
MIGRATION_31 = (31, "coupons: the saving of each till redemption, conflicts by kind (the offline fen allowance)",
                COUPON_SAVINGS_SQL)
