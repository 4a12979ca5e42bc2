"""The cloud's PostgreSQL schema, as numbered migrations applied at start (idempotent, under an advisory lock)."""
from __future__ import annotations

import asyncpg

from cloud.messaging.markdowns import MIGRATION_24
from cloud.messaging.receiving import MIGRATION_SQL as RECEIVING_SQL
from cloud.messaging.shard_leases import MIGRATION_39  # the bridge's shard leases
from cloud.messaging.shift_reports import MIGRATION_37
from cloud.messaging.stocktakes import MIGRATION_22
from cloud.runtime.shard_guard import MIGRATION_36  # the recorded shard counts
from cloud.services.booking_schema import MIGRATION_49  # local services booking
from cloud.services.channel_shares import MIGRATION_51
from cloud.services.coupon_schema import MIGRATION_26, MIGRATION_31  # coupons (cloud/services/coupons.py)
from cloud.services.group_schema import MIGRATION_27  # group buys
from cloud.services.group_views import MIGRATION_34  # group buys: HQ's cancel, the operators' list
from cloud.services.marketplace_orders import MIGRATION_52
from cloud.services.member_levels import MIGRATION_28
from cloud.services.member_names import MIGRATION_42  # members' names (sealed), shift reports' uncounted flag
from cloud.services.money_fix_schema import MIGRATION_43
from cloud.services.points_schema import MIGRATION_29
from cloud.services.report_rollup import (
    MIGRATION_44,  # HQ reports' daily rollups
    MIGRATION_50,  # late facts reopen a settled report day
)
from cloud.services.return_promotions_schema import MIGRATION_32  # returns undo promotions
from cloud.services.rule_book_drafts import MIGRATION_46  # promotion book drafts
from cloud.services.segment_schema import MIGRATION_30
from cloud.services.stall_schema import MIGRATION_48  # market stalls (issue 21.6)
from cloud.services.transfer_approval_schema import MIGRATION_47
from cloud.services.transfer_schema import TRANSFERS_SQL  # migration 23

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "actor journal and snapshots", """
        create table actor_journal (
            actor   text   not null,
            seq     bigint not null,
            at_ms   bigint not null,
            command bytea  not null,
            primary key (actor, seq)
        );
        create table actor_snapshot (
            actor text   primary key,
            seq   bigint not null,
            at_ms bigint not null,
            state bytea  not null
        );
    """),
    (2, "orders, members, flash sales, edge events, dead letters", """
        create table members (
            member_id   text primary key,
            phone       text not null unique,
            member_code text not null unique,
            created_ms  bigint not null
        );
        create table orders (
            order_id        text primary key,
            idempotency_key text unique,
            request_hash    bytea,
            kind            text not null,          -- pickup | delivery | flash
            status          text not null,          -- see protocol/order_lifecycle.py (migration 14)
            member_id       text,
            allocation      jsonb not null,         -- store -> [{sku, qty, reservation_id}]
            lines           jsonb not null,
            total_fen       bigint not null,
            pickup_code     text,
            slot_start_ms   bigint,
            location        jsonb,
            expires_ms      bigint,
            created_ms      bigint not null,
            updated_ms      bigint not null,
            payment         jsonb,
            problem         jsonb,                  -- the refusal a rejected order answered with (retries get it too)
            sale_id         text
        );
        create index orders_status_expires on orders (status, expires_ms);
        create unique index orders_pickup_code on orders (pickup_code) where pickup_code is not null;
        create table flash_sales (
            sale_id    text primary key,
            config     jsonb not null,
            created_ms bigint not null
        );
        create table edge_events (
            event_id    text primary key,
            store_id    text not null,
            seq         bigint not null,
            kind        text not null,
            wall_ms     bigint not null,
            received_ms bigint not null
        );
        create index edge_events_store_seq on edge_events (store_id, seq);
        create table till_sales (
            sale_id   text primary key,
            store_id  text not null,
            lane      text not null,
            total_fen bigint not null,
            lines     jsonb not null,
            payments  jsonb not null,
            member_id text,
            offline   boolean not null,
            wall_ms   bigint not null
        );
        create table store_stock (
            store_id   text not null,
            sku        text not null,
            on_hand    bigint not null,
            updated_ms bigint not null,
            seq        bigint not null default 0,   -- the edge event sequence it came from (newest wins)
            primary key (store_id, sku)
        );
        create table stock_movements (
            event_id         text primary key,
            store_id         text not null,
            sku              text not null,
            delta            bigint not null,
            reason           text not null,
            shrinkage_reason text not null,
            reference        text not null,
            wall_ms          bigint not null
        );
        create table dead_letters (
            id       bigserial primary key,
            subject  text not null,
            reason   text not null,
            raw      bytea not null,
            at_ms    bigint not null
        );
        create table store_command_seq (
            store_id text primary key,
            seq      bigint not null
        );
    """),
    (3, "the world, versioned", """
        create table world_versions (
            version    bigserial primary key,
            data       jsonb not null,
            reason     text not null,
            changed_ms bigint not null
        );
    """),
    # The operator console reads today's figures every few seconds: without these it scanned the three tables
    # whole, and expanded every till sale's payments JSON, on every refresh. The stored-value share of a sale is
    # computed once, when the row is written (a stored generated column), so the console's till query reads one
    # covering index and never touches the JSON. Shrinkage is a small fraction of stock movements: a partial index.
    (4, "console: indexes by day, a till sale's stored-value amount", """
        create function till_stored_value_fen(payments jsonb) returns bigint
            language sql immutable parallel safe as $$
            select coalesce(sum((p ->> 1)::bigint), 0)::bigint
            from jsonb_array_elements(payments) p where p ->> 0 = 'stored_value'
        $$;
        alter table till_sales add column stored_value_fen bigint
            generated always as (till_stored_value_fen(payments)) stored;
        create index till_sales_wall on till_sales (wall_ms) include (store_id, total_fen, stored_value_fen);
        create index orders_created on orders (created_ms);
        create index stock_movements_shrinkage on stock_movements (wall_ms) include (sku, delta, shrinkage_reason)
            where reason = 'shrinkage';
    """),
    (5, "one word per meaning: what the cloud sends a store is a cloud message", """
        alter table store_command_seq rename to cloud_message_seq;
    """),
    (6, "customer sign-in: one-time codes, lock-outs, sessions, SMS delivery receipts", """
        create table sign_in_codes (
            code_id    text primary key,
            phone      text not null,
            code_hash  bytea not null,
            created_ms bigint not null,
            expires_ms bigint not null,
            attempts   int not null,
            used_ms    bigint
        );
        create index sign_in_codes_phone on sign_in_codes (phone, created_ms);
        create table sign_in_locks (
            phone           text primary key,
            locked_until_ms bigint not null
        );
        create table sessions (
            token_hash bytea primary key,
            member_id  text not null references members (member_id),
            created_ms bigint not null,
            expires_ms bigint not null,
            revoked_ms bigint
        );
        create table sms_deliveries (
            message_id text primary key,
            status     text not null,
            at_ms      bigint not null
        );
    """),
    # Operators sign in with their own account (the shared operator token is gone); every operator write is
    # recorded with who did it and the before/after. Self-contained: it references only its own tables.
    (7, "operator accounts, sessions, sign-in lock-outs, the operator audit log", """
        create table operators (
            operator_id   text primary key,
            username      text not null unique,
            password_hash text not null,            -- argon2id, PHC string (never the password)
            role          text not null check (role in ('hq_admin', 'store_manager', 'viewer')),
            store_id      text,                     -- a store manager's store
            created_ms    bigint not null,
            disabled_ms   bigint,
            check ((role = 'store_manager') = (store_id is not null))
        );
        create table operator_sessions (
            token_hash  bytea primary key,          -- SHA-256 of the token; the token itself is shown once
            operator_id text not null references operators (operator_id),
            created_ms  bigint not null,
            expires_ms  bigint not null,
            revoked_ms  bigint
        );
        create index operator_sessions_operator on operator_sessions (operator_id);
        create table operator_sign_in_failures (
            username        text primary key,       -- any name tried, known or not (answers must not differ)
            failures        int not null,
            first_ms        bigint not null,
            locked_until_ms bigint
        );
        create table operator_audit (
            audit_id    bigserial primary key,
            at_ms       bigint not null,
            operator_id text,                       -- null: done from the command line on the server
            username    text not null,
            action      text not null,
            target      text not null,
            before      jsonb,
            after       jsonb
        );
    """),
    # Personal data (PIPL): a member's phone is kept sealed (AES-GCM, cloud/services/pii.py), found by its keyed hash
    # and shown masked. SQL cannot seal (the keys live in the processes), so the clear column is renamed here and
    # sealed, then dropped, by the first cloud process that starts with the key ring (`pii.seal_clear_phones`).
    # `member_code` stays in clear: it is a random pseudonymous till identifier (on cards, typed at the till), not
    # the person's number; an erased member's is cleared (`erased_ms` set: the row is a tombstone the ledger
    # entries still point at). Sign-in codes live 5 minutes and locks 15: they are dropped rather than converted
    # (at most one pending code per phone has to be asked for again) and keyed on the phone's hash from now on.
    (8, "members' phones sealed and hashed, sign-in keyed on the phone's hash, erasure tombstones", """
        alter table members add column phone_hash bytea unique, add column phone_sealed bytea,
            add column phone_masked text, add column erased_ms bigint;
        alter table members alter column phone drop not null;
        alter table members alter column member_code drop not null;
        alter table members rename column phone to phone_unsealed;
        alter table members drop constraint if exists members_phone_key;
        delete from sign_in_codes;
        alter table sign_in_codes drop column phone, add column phone_hash bytea not null;
        create index sign_in_codes_phone_hash on sign_in_codes (phone_hash, created_ms);
        drop table sign_in_locks;
        create table sign_in_locks (
            phone_hash      bytea primary key,
            locked_until_ms bigint not null
        );
    """),
    # Money (issue 14): every movement of money has one id, journaled here as 'requested' before it is attempted,
    # so that a retry, a crash or a late provider notification finishes it exactly once (protocol/money_saga.py).
    # `provider_txn_id` is unique: one provider transaction credits at most one movement.
    (9, "money movements: charges, refunds and provider top-ups, journaled before they are attempted", """
        create table money_movements (
            movement_id     text primary key,       -- charge:<order> | refund:<order> | topup:<member>:<key hash>
            kind            text not null check (kind in ('charge', 'refund', 'top_up')),
            order_id        text,
            member_id       text,
            method          text not null,          -- stored_value | wallet_sim
            amount_fen      bigint not null check (amount_fen >= 0),
            state           text not null check (state in ('requested', 'done', 'failed')),
            attempt         int not null default 1, -- a charge tried again after it failed (a new ledger id)
            provider_txn_id text unique,
            request_hash    bytea,                  -- a top-up's request, so a retried key with another body is 409
            pay             jsonb,                  -- what the customer needs to pay (a provider payment's code)
            detail          text,                   -- why it failed, or the last anomaly seen (a wrong amount)
            created_ms      bigint not null,
            updated_ms      bigint not null
        );
        create index money_movements_open on money_movements (state, updated_ms) where state = 'requested';
        create index money_movements_order on money_movements (order_id) where order_id is not null;
    """),
    # Cash top-ups at the tills, as the cloud took them (or refused them, with why): a store's cash is believed only
    # up to its daily cap, counted here per chain day.
    (10, "cash top-ups at the tills, per store and day", """
        create table till_topups (
            event_id    text primary key,
            store_id    text not null,
            day         date not null,
            member_id   text not null,
            amount_fen  bigint not null,
            cashier_id  text not null,
            shift_id    text not null,
            accepted    boolean not null,
            reason      text not null,
            received_ms bigint not null
        );
        create index till_topups_store_day on till_topups (store_id, day) where accepted;
    """),
    # 11: dead letters are bounded (issue 14): a store can publish junk, and each refused frame used to keep its raw
    # bytes whole, forever (100 frames of 1 MB were 104 MB). A row now keeps at most 4 KiB of its frame (enough to
    # see what it was; `raw_bytes` says how big it was) and names its store, and a statement trigger keeps each
    # store's newest 1,000 rows of the last 30 days: whatever writes dead letters, they cannot grow without end, and
    # one store's junk never pushes out another store's rows. The numbers are `cloud.messaging.refusals`' too.
    (11, "dead letters: per store, raw frame capped, trimmed by count and age", """
        alter table dead_letters add column store_id text not null default '', add column raw_bytes int;
        update dead_letters set raw_bytes = octet_length(raw), raw = substring(raw from 1 for 4096),
            store_id = case when subject like 'fm.store.%' then split_part(subject, '.', 3) else '' end;
        alter table dead_letters alter column raw_bytes set not null,
            add constraint dead_letters_raw_capped check (octet_length(raw) <= 4096);
        create index dead_letters_store on dead_letters (store_id, id);
        create index dead_letters_at on dead_letters (at_ms);
        -- whoever inserts (an older statement naming only subject, reason, raw, at_ms too): capped, sized, its store
        create function cap_dead_letter() returns trigger language plpgsql as $cap$
        begin
            if new.raw_bytes is null then new.raw_bytes := octet_length(new.raw); end if;
            new.raw := substring(new.raw from 1 for 4096);
            if new.store_id = '' and new.subject like 'fm.store.%' then
                new.store_id := split_part(new.subject, '.', 3);
            end if;
            return new;
        end $cap$;
        create trigger dead_letters_cap before insert on dead_letters for each row execute function cap_dead_letter();
        create function trim_dead_letters() returns trigger language plpgsql as $trim$
        begin
            delete from dead_letters d
             using (select store_id, (select x.id from dead_letters x where x.store_id = s.store_id
                                       order by x.id desc offset 1000 limit 1) as upto
                      from (select distinct store_id from added) s) t
             where d.store_id = t.store_id and t.upto is not null and d.id <= t.upto;
            delete from dead_letters where at_ms < (select max(at_ms) from added) - 30::bigint * 86400000;
            return null;
        end $trim$;
        create trigger dead_letters_trim after insert on dead_letters referencing new table as added
            for each statement execute function trim_dead_letters();
    """),
    # A flash order's row names its sale in `sale_id` (it was only in `allocation`), so that the audit's "units sold
    # == units in order rows" per sale is an index look-up rather than a scan of every order.
    (12, "flash orders name their sale, indexed", """
        update orders set sale_id = allocation->>'sale' where kind = 'flash' and sale_id is null;
        create index orders_flash_sale on orders (sale_id) where kind = 'flash';
    """),
    # 13 (12 is the flash branch's): a paid order records when its stores were told (`notified_ms`), set only after
    # every OrderToFulfil was published; the money sweeper tells again the stores of a paid order that has none past
    # the saga's grace (its request died in between). Orders paid before this are taken as told.
    (13, "orders record when their stores were told of the payment", """
        alter table orders add column notified_ms bigint;
        update orders set notified_ms = updated_ms where status in ('paid', 'fulfilled');
        create index orders_untold on orders (updated_ms) where status = 'paid' and notified_ms is null;
    """),
    # Every order follows one lifecycle (`protocol/order_lifecycle.py`): each change of status, and each fact on the
    # way (a picked weight, a rider's position, a refund), is a row of its timeline. `fulfilment` says the branch
    # (a flash-sale order is picked up unless it says otherwise); `fulfilled` becomes what it meant.
    (14, "the order lifecycle: fulfilment, a timeline per order, handed-over statuses", """
        alter table orders add column fulfilment text;
        update orders set fulfilment = case when kind = 'delivery' then 'delivery' else 'pickup' end;
        alter table orders alter column fulfilment set not null;
        update orders set status = case when fulfilment = 'delivery' then 'delivered' else 'picked_up' end
            where status = 'fulfilled';
        alter table orders add column refunded_fen bigint not null default 0;
        create table order_events (
            order_id   text not null,
            seq        int not null,                 -- 1, 2, ... per order
            event      text not null,                -- a lifecycle event or note
            status     text not null,                -- the order's status after it
            store_id   text,                         -- the store part it concerns (a split order's), if any
            detail     jsonb not null default '{}',
            event_key  text,                         -- the fact's own id (a callback's, a store event's): once
            at_ms      bigint not null,
            primary key (order_id, seq)
        );
        create unique index order_events_key on order_events (order_id, event_key) where event_key is not null;
        insert into order_events (order_id, seq, event, status, detail, at_ms)
            select order_id, 1, 'created', status, '{"migrated": true}', created_ms from orders;
    """),
    # Picking at the store (issue 15, item 2). A split order's parts each follow the lifecycle: `order_parts` keeps
    # each store's part's status (made when the order reaches its stores; the order's status is `overall` of them).
    # Orders placed before have no parts: their first store event makes them from the order's status.
    (15, "picking: the customer's consent to substitutions, each store's part of an order", """
        alter table orders add column if not exists allow_substitutions boolean not null default false;
        create table if not exists order_parts (
            order_id   text not null,
            store_id   text not null,
            status     text not null,
            updated_ms bigint not null,
            primary key (order_id, store_id)
        );
    """),
    # 16 (riders): each try to have a delivery order carried by a rider platform, one row per attempt (the first
    # rider, a redispatch), keyed by our order id and the attempt (the platform's idempotency key), so a retried or
    # repeated dispatch never makes a second delivery. New table only: nothing existing changes.
    (16, "deliveries: an order's tries with the rider platform", """
        create table if not exists deliveries (
            order_id          text not null,
            attempt           int not null,           -- 1: the first rider; 2: the redispatch
            store_id          text not null,
            platform          text not null,          -- which rider platform (or 'own_staff')
            platform_order_id text,                   -- the platform's id, once it made the delivery
            status            text not null,          -- requested | created | accepted | ... | delivered | failed
            reason            text,                   -- why it failed (no_rider, rider_cancelled, ...)
            fee_fen           bigint,                 -- what the platform charges us (its quote)
            rider             jsonb,                  -- {"name", "phone_masked"}: the phone is kept masked only
            position          jsonb,                  -- the rider's last known {"lat", "lon"}
            created_ms        bigint not null,
            updated_ms        bigint not null,
            primary key (order_id, attempt)
        );
        create index if not exists deliveries_open on deliveries (updated_ms)
            where status not in ('delivered', 'failed', 'cancelled');
    """),
    (17, "flash orders of stores: units given back, rows to assign", """
        -- when an ended flash order's units were back on sale (null: still sold, or not given back yet)
        alter table orders add column if not exists units_returned_ms bigint;
        create index if not exists orders_flash_unassigned on orders (created_ms)
            where kind = 'flash' and status = 'reserved' and expires_ms is null;
        create index if not exists orders_flash_ending on orders (updated_ms)
            where kind = 'flash' and units_returned_ms is null and status in ('expired', 'cancelled');
    """),
    (18, "HQ's allocation ratios per store and sku or category; escrow borrowed from stores' offline share", """
        create table if not exists store_allocations (
            store_id    text not null,
            scope       text not null check (scope in ('sku', 'category')),
            key         text not null,
            ratio_bp    int not null check (ratio_bp between 0 and 10000),
            version     bigint not null,                 -- grows per (store, scope, key): the store keeps the newest
            message_id  text not null,                   -- the AllocationSet's event id: a re-send is applied once
            updated_ms  bigint not null,
            updated_by  text,
            primary key (store_id, scope, key)
        );
        create table if not exists escrow_borrows (
            grant_event_id text primary key,             -- the store's EscrowGranted: applied once, either way
            borrow_id      text not null,
            store_id       text not null,
            sku            text not null,
            asked          int not null,
            granted        int not null,
            order_ref      text not null default '',
            at_ms          bigint not null
        );
        create index if not exists escrow_borrows_store on escrow_borrows (store_id, sku, at_ms);
    """),
    # Returns and after-sales (issue 15.6): each return a till took (`cloud/messaging/returns.py`; `lines` are
    # [sku, qty, fen given back]), what a till sale has had back, and customers' after-sales requests with the
    # store's decision. Only new tables and a column with a default: nothing existing changes.
    (19, "returns at the tills and after-sales requests", """
        create table if not exists till_returns (
            return_id   text primary key,
            event_id    text not null unique,
            store_id    text not null,
            sale_id     text,
            order_id    text,
            lane        text not null,
            lines       jsonb not null,
            method      text not null,
            amount_fen  bigint not null,
            member_id   text,
            wall_ms     bigint not null,
            received_ms bigint not null
        );
        create index if not exists till_returns_sale on till_returns (sale_id) where sale_id is not null;
        create index if not exists till_returns_order on till_returns (order_id) where order_id is not null;
        alter table till_sales add column if not exists returned_fen bigint not null default 0;
        create table if not exists after_sales (
            request_id      text primary key,
            order_id        text not null,
            member_id       text not null,
            store_id        text not null,
            lines           jsonb not null,
            amount_fen      bigint not null,
            reason          text not null,
            with_return     boolean not null,
            status          text not null,           -- requested | approved | refused
            decided_by      text,
            decision_reason text,
            created_ms      bigint not null,
            decided_ms      bigint,
            idempotency_key text unique             -- member:key: a retried request makes nothing more
        );
        create index if not exists after_sales_order on after_sales (order_id);
        create index if not exists after_sales_store on after_sales (store_id, status);
    """),
    # Lots (issue 16): each movement's share of every lot it touched (once per event and lot), and each store's
    # stock per (sku, lot) with its use-by, kept from those shares (`cloud/messaging/lots.py`).
    (20, "stock per lot: movements' lot shares, stores' lots with use-by", """
        create table if not exists stock_movement_lots (
            event_id  text not null,
            lot       text not null,
            store_id  text not null,
            sku       text not null,
            delta     bigint not null,
            use_by    text not null default '',
            wall_ms   bigint not null,
            primary key (event_id, lot)
        );
        create index if not exists stock_movement_lots_store on stock_movement_lots (store_id, sku, lot);
        create table if not exists stock_lots (
            store_id   text not null,
            sku        text not null,
            lot        text not null,
            use_by     text not null default '',
            on_hand    bigint not null,
            updated_ms bigint not null,
            primary key (store_id, sku, lot)
        );
    """),
    # Receiving and shrinkage (issue 16 items 1 and 3): delivery notes with their lines, each lot's unit cost per
    # store, one loss line per lot of every shrinkage movement, who wrote stock off. New tables only.
    (21, "receivings, lot costs, loss lines, shrinkage notes", RECEIVING_SQL),
    MIGRATION_24,  # markdowns given at the tills (cloud/messaging/markdowns.py)
    (22, "stocktakes the stores posted, with their counted lines and variances", MIGRATION_22),
    (23, "transfers between stores", TRANSFERS_SQL),
    (25, "restock: HQ's reorder points per store and sku, the stores' restock alerts, pre-sale orders", """
        create table if not exists reorder_points (
            store_id      text not null,
            sku           text not null,
            reorder_point bigint not null,              -- in the SKU's stock unit (pieces, or grams)
            target        bigint not null,
            version       int not null,                 -- grows per (store, sku): the store keeps only the newest
            updated_ms    bigint not null,
            updated_by    text not null,
            primary key (store_id, sku)
        );
        create table if not exists restock_alerts (
            alert_id      text primary key,             -- made by the store: one alert per id
            event_id      text not null unique,         -- the RestockAlerted that raised it
            store_id      text not null,
            sku           text not null,
            on_hand       bigint not null,
            owed          bigint not null,              -- online orders still to pick when it was raised
            reorder_point bigint not null,
            target        bigint not null,
            suggested_qty bigint not null,
            raised_ms     bigint not null,
            cleared_ms    bigint,                       -- the store's RestockCleared (stock back at or above the point)
            cleared_event text
        );
        create index if not exists restock_alerts_open on restock_alerts (store_id, sku) where cleared_ms is null;
        create table if not exists presale_orders (
            order_id      text primary key,
            store_id      text not null,                -- the store whose due supply the order waits for
            due_day       text not null,                -- YYYY-MM-DD: the earliest its slot may be
            lines         jsonb not null,               -- [{"sku", "qty"}]
            created_ms    bigint not null,
            attempts      int not null default 0,       -- reservations tried (each try's ids are its own)
            allocated_ms  bigint                        -- reserved at the store and sent to it to pick
        );
        create index if not exists presale_orders_waiting on presale_orders (store_id, created_ms)
            where allocated_ms is null;
    """),
    MIGRATION_26,  # coupons as issued instruments (cloud/services/coupon_schema.py)
    MIGRATION_27,
    (28, "member levels the stores were last told, budget-capped rules' uses (issue 17)", MIGRATION_28),
    (29, "points: paying part of online orders, exchanged for coupons, survey answers", MIGRATION_29),
    MIGRATION_30,  # member profiles and segments, campaigns, promotion uses (cloud/services/segment_schema.py)
    MIGRATION_31,  # coupons: till redemptions' savings, the offline fen allowance (cloud/services/coupon_schema.py)
    MIGRATION_32,  # returns undo promotions (cloud/services/return_promotions_schema.py)
    MIGRATION_34,  # group buys: who cancelled a group and why, the operators' list (cloud/services/group_views.py)
    MIGRATION_36,  # the shard counts the sharded actors were made with (cloud/runtime/shard_guard.py)
    (37, "cashiers' shift reports from the tills (cloud/messaging/shift_reports.py)", MIGRATION_37),
    MIGRATION_39,  # leases on the bridge's shards (cloud/messaging/shard_leases.py)
    (42, "members' names given at the till, sealed; shift reports closed without a count", MIGRATION_42),
    MIGRATION_43,  # till refunds by tender, till registrations' daily cap (cloud/services/money_fix_schema.py)
    MIGRATION_44,  # HQ reports' daily rollups (cloud/services/report_rollup.py)
    MIGRATION_46,  # promotion book drafts and their publications (cloud/services/rule_book_drafts.py)
    MIGRATION_47,  # transfers approved or refused (cloud/services/transfer_approvals.py)
    MIGRATION_48,  # market stalls, a stall owner's stall, a till sale's stall (cloud/services/stall_schema.py)
    MIGRATION_49,  # local services booking (cloud/services/booking_schema.py)
    MIGRATION_50,  # late facts reopen a settled report day (cloud/services/report_rollup.py)
    MIGRATION_51,  # marketplaces' shares of the stores' online escrow (cloud/services/channel_shares.py)
    MIGRATION_52,  # orders from the marketplaces (cloud/services/marketplace_orders.py)
]
_LOCK_KEY = 0x46524D53  # "FRMS": one migrator at a time


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply the migrations this database lacks; returns the versions applied now."""
    applied_now = []
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute("""create table if not exists schema_migrations (
                                  version int primary key, name text not null,
                                  applied_at timestamptz not null default now())""")
        done = {r["version"] for r in await conn.fetch("select version from schema_migrations")}
        for version, name, sql in MIGRATIONS:
            if version not in done:
                await conn.execute(sql)
                await conn.execute("insert into schema_migrations (version, name) values ($1, $2)", version, name)
                applied_now.append(version)
    return applied_now
