"""PostgreSQL migration 48 (issue 21.6, market stalls): the stalls each store hosts, a stall owner's stall on their
operator account, and the stall a till sale was sold on (the bridge sets it from the believed sale's `stall`)."""
from __future__ import annotations

MIGRATION_48 = (48, "market stalls: stalls, a stall owner's stall, the stall of a till sale", """
    create table stalls (
        stall_id        text primary key,           -- made by HQ, unique chain-wide (protocol/stalls.py STALL_RE)
        store_id        text not null,              -- the store hosting it
        name            text not null,
        owner           text not null,
        commission_bp   int not null check (commission_bp between 0 and 10000),
        monthly_fee_fen bigint not null check (monthly_fee_fen >= 0),
        created_ms      bigint not null
    );
    create index stalls_store on stalls (store_id);
    alter table operators add column stall_id text references stalls (stall_id);
    -- the role stall_owner (protocol/roles.py): a store (their stall's) and a stall; only a stall owner has a stall
    alter table operators drop constraint if exists operators_role_check,
        drop constraint if exists operators_check,
        add constraint operators_role_check check (role in ('hq_admin', 'store_manager', 'viewer', 'stall_owner')),
        add constraint operators_store_check check ((role in ('store_manager', 'stall_owner')) = (store_id is not null)),
        add constraint operators_stall_check check ((role = 'stall_owner') = (stall_id is not null));
    alter table till_sales add column stall_id text not null default '';
    -- a stall's sales in a period are read by (stall, time): settlements and the stall owner's pages
    create index till_sales_stall on till_sales (stall_id, wall_ms) where stall_id <> '';
""")
