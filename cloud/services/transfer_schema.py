"""Migration 23 (cloud/migrations.py): transfers between stores, as the cloud records them (issue 16 item 5).

One row per transfer: who asked (a store's staff, an HQ operator, or routing), its asked lines, what left the sending
store (per SKU and lot, with use-by) and what arrived, with the discrepancies (dispatched - received per line). What
is in transit is the dispatched lines of the transfers still `dispatched`.
"""
from __future__ import annotations

TRANSFERS_SQL = """
    create table if not exists transfers (
        transfer_id       text primary key,
        from_store        text not null,
        to_store          text not null,
        status            text not null,            -- requested | dispatched | received | cancelled
        lines             jsonb not null,           -- asked: [{"sku", "qty"}]
        dispatched        jsonb,                    -- [{"sku", "lot", "use_by", "qty"}]
        received          jsonb,                    -- the same lines, as received
        discrepancies     jsonb,                    -- [{"sku", "lot", "dispatched", "received", "short"}]
        reason            text not null default '',
        origin            text not null,            -- store | hq | routing
        requested_by      text not null,
        dispatched_by     text,
        received_by       text,
        request_event_id  text,
        dispatch_event_id text,
        receive_event_id  text,
        requested_ms      bigint not null,
        dispatched_ms     bigint,
        received_ms       bigint,
        updated_ms        bigint not null
    );
    create index if not exists transfers_from on transfers (from_store, status);
    create index if not exists transfers_to on transfers (to_store, status);
    create index if not exists transfers_status on transfers (status, updated_ms);
"""
