"""Migration 27: group buys (cloud/services/group_buys.py) - the groups, their places, and the hold on an order of a
group that has not formed (paid, but not sent to its store to pick)."""
from __future__ import annotations

MIGRATION_27 = (27, "group buys: groups, their members' places, orders held until their group forms", """
    create table if not exists group_buys (
        group_id    text primary key,               -- derived from the leader and their Idempotency-Key
        rule_id     text not null,                  -- the GroupBuy rule of the promotion book
        sku         text not null,
        leader_id   text not null,
        store_id    text,                           -- the leader's store (members pick their own)
        size        int not null,
        price_fen   bigint not null,                -- the group price per unit, as the rule said when it opened
        opened_ms   bigint not null,
        closes_ms   bigint not null,
        status      text not null default 'open',   -- open | formed | failed (protocol/group_buys.py)
        formed_ms   bigint,
        ended_ms    bigint                          -- a failed group's orders all cancelled and refunded
    );
    create index if not exists group_buys_due on group_buys (closes_ms) where status = 'open';
    create index if not exists group_buys_failing on group_buys (group_id) where status = 'failed' and ended_ms is null;
    create table if not exists group_members (
        order_id    text primary key,               -- one place per order
        group_id    text not null references group_buys (group_id),
        member_id   text not null,
        joined_ms   bigint not null
    );
    create index if not exists group_members_group on group_members (group_id);
    alter table orders add column if not exists group_held boolean not null default false;
""")
