"""Migration 32: what returns undo of the promotions their sales and orders carried (`protocol.return_promotions`;
`cloud/messaging/return_promotions.py`, `cloud/services/points_refunds.py`).

- `coupons.status` may be `voided`: a till-spend coupon whose sale's returns left it under the trigger's minimum,
  taken back unused (one conditional UPDATE from `issued`, like every other step of a coupon).
- `coupon_conflicts.kind` may be `trigger_used`: a till-spend coupon the member keeps (already used) although the
  sale that earned it was returned under the trigger.
- `till_sale_coupons`: the coupons a till sale triggered (sale id -> code), so a return of the sale, in any later
  batch, finds them (a coupon names only its sale's event id as its source).
- `return_coupon_effects`: what each believed return did to a coupon (given back, kept because it expired, voided,
  or kept although used - that last one also a coupon conflict): once per (return event, code).
- `till_return_points`: the points a till return of a sale paid partly with points gives back (ledger
  `till-return-pts:<return id>`), never more in all than the cloud took from the member for that sale.
- `points_refunds`: the points a partial refund of an online order gives back, journaled `requested` before the
  ledger is asked (its id is the ledger transfer's), `done` once granted: once per refund part.
"""
from __future__ import annotations

RETURN_PROMOTIONS_SQL = """
alter table coupons drop constraint if exists coupons_status_check;
alter table coupons add constraint coupons_status_check
    check (status in ('issued', 'reserved', 'redeemed', 'voided'));
-- a till-spend coupon kept although its sale was returned under the trigger is a conflict of its own kind (the
-- column as migration 31 makes it, if it has not run: it adds it the same way)
alter table coupon_conflicts add column if not exists kind text not null default 'used_elsewhere';
alter table coupon_conflicts drop constraint if exists coupon_conflicts_kind_check;
alter table coupon_conflicts add constraint coupon_conflicts_kind_check
    check (kind in ('used_elsewhere', 'over_allowance', 'trigger_used'));
create table if not exists till_sale_coupons (
    sale_id     text not null,
    store_id    text not null,
    code        text not null,
    primary key (sale_id, code)
);
create table if not exists return_coupon_effects (
    event_id    text not null,                  -- the GoodsReturned that did it
    code        text not null,
    return_id   text not null,
    store_id    text not null,
    sale_id     text not null,
    effect      text not null,                  -- protocol.return_promotions.EFFECTS
    detail      text not null,
    wall_ms     bigint not null,                -- the return's time at the till
    recorded_ms bigint not null,
    primary key (event_id, code)
);
create index if not exists return_coupon_effects_code on return_coupon_effects (code);
create table if not exists points_refunds (
    movement_id text primary key,               -- pts-ret:<order>:<part>: the ledger's GrantPoints id
    order_id    text not null,
    member_id   text not null,
    part        text not null,                  -- the refund part it goes with (ret:<return>, as:<request>)
    points      bigint not null check (points > 0),
    value_fen   bigint not null,
    state       text not null check (state in ('requested', 'done')),
    created_ms  bigint not null,
    updated_ms  bigint not null
);
create index if not exists points_refunds_order on points_refunds (order_id);
create table if not exists till_return_points (
    return_id   text primary key,               -- a till return of a sale paid partly with points
    sale_id     text not null,
    member_id   text not null,
    points      bigint not null,                -- what the cloud gives back: the store's claim, within what it took
    state       text not null check (state in ('requested', 'done')),
    created_ms  bigint not null
);
create index if not exists till_return_points_sale on till_return_points (sale_id);
"""
MIGRATION_32 = (32, "returns undo promotions: voided trigger coupons, a sale's trigger coupons, coupon effects of "
                    "returns, points given back by partial refunds", RETURN_PROMOTIONS_SQL)
